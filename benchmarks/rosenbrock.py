"""Reverse mode on a vector function: ``value_and_grad`` of the Rosenbrock function.

Run it as ``python benchmarks/rosenbrock.py``. The function is written once, in plain
numpy (fad's pointed style: numpy's functions dispatch to fad on the values a transform
passes in), and timed at n = 1,000 and n = 1,000,000 against numpy evaluating ``f``
alone, a hand-written numpy gradient, and autograd (and JAX without jit, torch) when
installed. Issue 5, point 7: fad's ``value_and_grad`` divided by numpy ``f`` should be
<= 4.0 at n = 10^6 (stretch <= 3.0, beating the hand-written gradient) and <= 10 at
n = 10^3 (stretch <= 5).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from _timing import Results, Target, Variant, describe_machine, optional, print_summary, run

import fad

ag = optional("autograd")
anp = optional("autograd.numpy")
jax = optional("jax")
torch = optional("torch")


def rosenbrock(x: Any, xp: Any = np) -> Any:
    """Σ 100 (x[i+1] - x[i]²)² + (1 - x[i])², written with the array module ``xp``."""
    return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def hand_value_and_grad(x: np.ndarray[Any, Any]) -> tuple[float, np.ndarray[Any, Any]]:
    """The value and the gradient written by hand, sharing the common terms."""
    head, tail = x[:-1], x[1:]
    t = tail - head**2
    u = 1.0 - head
    value = np.sum(100.0 * t**2 + u**2)
    g = np.zeros_like(x)
    g[:-1] = -400.0 * head * t - 2.0 * u
    g[1:] += 200.0 * t
    return value, g


def comparisons(x: np.ndarray[Any, Any]) -> list[Variant]:
    """The peers that are installed."""
    variants = []
    if ag is not None:
        agvg = ag.value_and_grad(lambda x: rosenbrock(x, anp))
        variants.append(Variant("autograd value_and_grad", lambda: agvg(x)))
    if jax is not None:
        jax.config.update("jax_enable_x64", True)
        jx = jax.numpy.asarray(x)
        jvg = jax.value_and_grad(lambda x: rosenbrock(x, jax.numpy))

        def jax_eager() -> tuple[Any, Any]:
            v, g = jvg(jx)
            return float(v), np.asarray(g)

        variants.append(Variant("jax value_and_grad (no jit)", jax_eager))
    if torch is not None:

        def torch_backward() -> tuple[Any, Any]:
            tx = torch.tensor(x, requires_grad=True)
            v = rosenbrock(tx, torch)
            v.backward()
            return v.item(), tx.grad.numpy()

        variants.append(Variant("torch backward", torch_backward))
    return variants


def table(n: int) -> Results:
    x = np.random.default_rng(0).uniform(-2.0, 2.0, n)
    vg = fad.value_and_grad(rosenbrock)
    variants = [
        Variant("numpy f alone", lambda: rosenbrock(x), expected=hand_value_and_grad(x)[0]),
        Variant("hand-written numpy value+grad", lambda: hand_value_and_grad(x)),
        Variant("fad value_and_grad", lambda: vg(x)),
        *comparisons(x),
    ]
    big = n >= 10**6
    return run(
        f"Rosenbrock value_and_grad, n = {n:,} (pointed style)",
        variants,
        reference="numpy f alone",
        expected=hand_value_and_grad(x),
        rtol=1e-10,
        memory=big,
        rounds=7 if big else 9,
        targets=[
            Target.ratio("fad value_and_grad", "numpy f alone", 4.0 if big else 10.0),
            Target.ratio(
                "fad value_and_grad", "numpy f alone", 3.0 if big else 5.0, note="stretch"
            ),
            Target.ratio(
                "fad value_and_grad",
                "hand-written numpy value+grad",
                1.0,
                note="stretch: beat the hand-written gradient",
            ),
        ],
    )


def main(argv: list[str]) -> None:
    print(describe_machine())
    print_summary([table(1_000), table(1_000_000)])


if __name__ == "__main__":
    main(sys.argv[1:])
