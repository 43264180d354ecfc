"""The cost of fad's machinery: scalar calls, deep compositions, and million-point batches.

Run it as ``python benchmarks/overhead.py``. Three tables (issue 4, point 10; the depth
target of reverse mode is issue 5's):

(a) value and derivative of the four-primitive sigmoid
    ``multiply(-1.0) >> exp >> add(1.0) >> reciprocal`` at a Python float, against
    hand-written Python (``math.exp`` and the hand derivative) and autograd.
    Targets: <= 10 µs per call and >= 8x faster than autograd (stretch <= 3 µs).
(b) ``fad.comp(*[fad.sin] * K)`` for K = 1,000 and 10,000, value and derivative at a
    scalar, against a plain ``math`` loop and autograd; and reverse mode (``fad.grad``)
    through the same composition. Targets per composed function: <= 2 µs forward,
    <= 10 µs reverse.
(c) the sigmoid's values and derivatives over 10^6 float64 points through the ordinary
    path, against naive numpy: the value, then the derivative ``y * (1 - y)``, each
    operation making a fresh temporary. Target: <= 1.5x naive numpy.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from _timing import Results, Target, Variant, describe_machine, optional, print_summary, run

import fad
from fad.prims import add, exp, multiply, reciprocal

ag = optional("autograd")
anp = optional("autograd.numpy")

SIGMOID = multiply(-1.0) >> exp >> add(1.0) >> reciprocal
X0 = 0.3


def hand_sigmoid(x: float) -> tuple[float, float]:
    """The sigmoid and its derivative written by hand with ``math``."""
    y = 1.0 / (1.0 + math.exp(-x))
    return y, y * (1.0 - y)


def fad_unpacked(f: fad.Fn[Any, Any], x: Any) -> tuple[Any, Any]:
    """``v, d = f(x)``, the derivative read as a number (scalars) or an array (batches)."""
    v, d = f(x)
    return v, (float(d) if type(x) is float else np.asarray(d))


def scalar_sigmoid() -> Results:
    vd = fad.value_and_derivative(SIGMOID)
    variants = [
        Variant("hand-written math", lambda: hand_sigmoid(X0)),
        Variant("fad value_and_derivative", lambda: vd(X0)),
        Variant("fad v, d = sigmoid(x)", lambda: fad_unpacked(SIGMOID, X0)),
        Variant("fad grad (reverse)", lambda: (SIGMOID.value(X0), fad.grad(SIGMOID)(X0))),
    ]
    if ag is not None:
        agvg = ag.value_and_grad(lambda x: 1.0 / (1.0 + anp.exp(-x)))
        variants.append(Variant("autograd value_and_grad", lambda: agvg(X0)))
    return run(
        f"(a) sigmoid {SIGMOID!r} at a Python float: value and derivative",
        variants,
        reference="hand-written math",
        rtol=1e-12,
        targets=[
            Target.time("fad value_and_derivative", 10e-6),
            Target.speedup("fad value_and_derivative", "autograd value_and_grad", 8.0),
            Target.time("fad value_and_derivative", 3e-6, note="stretch"),
            Target.time("fad v, d = sigmoid(x)", 10e-6),
        ],
    )


def math_chain(k: int, x: float) -> tuple[float, float]:
    """``sin`` applied ``k`` times and its derivative, by hand with ``math``."""
    d = 1.0
    for _ in range(k):
        d *= math.cos(x)
        x = math.sin(x)
    return x, d


def deep_composition(k: int) -> Results:
    f = fad.comp(*[fad.sin] * k)
    vd = fad.value_and_derivative(f)
    g = fad.grad(f)
    variants = [
        Variant("math loop", lambda: math_chain(k, X0)),
        Variant("fad value_and_derivative", lambda: vd(X0)),
        Variant("fad v, d = f(x)", lambda: fad_unpacked(f, X0)),
        Variant("fad grad (reverse)", lambda: (f.value(X0), g(X0))),
    ]
    if ag is not None:

        def chain(x: Any) -> Any:
            for _ in range(k):
                x = anp.sin(x)
            return x

        agvg = ag.value_and_grad(chain)
        variants.append(Variant("autograd value_and_grad", lambda: agvg(X0)))
    return run(
        f"(b) sin composed K = {k:,} times at a Python float: value and derivative",
        variants,
        reference="math loop",
        per=k,
        unit="composed function",
        rounds=5,
        rtol=1e-10,
        targets=[
            Target.time("fad value_and_derivative", 2e-6),
            Target.time("fad v, d = f(x)", 2e-6),
            Target.time("fad grad (reverse)", 10e-6, note="issue 5"),
        ],
    )


def naive_sigmoid(x: np.ndarray[Any, Any]) -> tuple[Any, Any]:
    """Value, then derivative, each numpy operation making a fresh temporary."""
    y = 1.0 / (1.0 + np.exp(-x))
    return y, y * (1.0 - y)


def batch_sigmoid(n: int) -> Results:
    xs = np.random.default_rng(0).uniform(-5.0, 5.0, n)
    vd = fad.value_and_derivative(SIGMOID)
    variants = [
        Variant("naive numpy", lambda: naive_sigmoid(xs)),
        Variant("fad value_and_derivative", lambda: vd(xs)),
        Variant("fad sigmoid(xs), np.asarray(d)", lambda: fad_unpacked(SIGMOID, xs)),
    ]
    if ag is not None:

        def ag_value_and_derivative(x: Any) -> tuple[Any, Any]:
            pullback, y = ag.make_vjp(lambda x: 1.0 / (1.0 + anp.exp(-x)))(x)
            return y, pullback(np.ones_like(x))

        variants.append(Variant("autograd make_vjp", lambda: ag_value_and_derivative(xs)))
    return run(
        f"(c) sigmoid over {n:,} float64 points: values and derivatives",
        variants,
        reference="naive numpy",
        rtol=1e-12,
        targets=[
            Target.ratio("fad value_and_derivative", "naive numpy", 1.5),
            Target.ratio("fad sigmoid(xs), np.asarray(d)", "naive numpy", 1.5),
        ],
    )


def main(argv: list[str]) -> None:
    print(describe_machine())
    tables: list[Callable[[], Results]] = [
        scalar_sigmoid,
        lambda: deep_composition(1_000),
        lambda: deep_composition(10_000),
        lambda: batch_sigmoid(1_000_000),
    ]
    print_summary([t() for t in tables])


if __name__ == "__main__":
    main(sys.argv[1:])
