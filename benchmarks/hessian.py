"""Second derivatives: the dense Hessian and Hessian-vector products.

Run it as ``python benchmarks/hessian.py``. The function is
f(x) = Σ sin(x)·x² + Σ x[:-1]·x[1:], written in plain numpy (pointed style), whose Hessian
is tridiagonal: -sin(x)·x² + 4x·cos(x) + 2 sin(x) on the diagonal and ones beside it.
Issue 5, point 7: ``fad.hessian`` at n = 1,000 in <= 30 ms (batched tangents, not n
Python-level passes) and ``fad.hvp`` at n = 1,000 in <= 1 ms, against the hand-written
closed forms and autograd when it is installed.
"""

from __future__ import annotations

import sys
from typing import Any

import _one_blas_thread  # noqa: F401  (before numpy loads BLAS)
import numpy as np
from _timing import Results, Target, Variant, describe_machine, optional, print_summary, run

import fad

ag = optional("autograd")
anp = optional("autograd.numpy")

Array = np.ndarray[Any, Any]


def f(x: Any, xp: Any = np) -> Any:
    """Σ sin(x)·x² + Σ x[:-1]·x[1:], written with the array module ``xp``."""
    return xp.sum(xp.sin(x) * x**2) + xp.sum(x[:-1] * x[1:])


def hand_gradient(x: Array) -> Array:
    g: Array = np.cos(x) * x**2 + 2.0 * x * np.sin(x)
    g[:-1] += x[1:]
    g[1:] += x[:-1]
    return g


def hand_diagonal(x: Array) -> Array:
    s, c = np.sin(x), np.cos(x)
    h: Array = -s * x**2 + 4.0 * x * c + 2.0 * s
    return h


def hand_hessian(x: Array) -> Array:
    n = x.size
    h = np.diag(hand_diagonal(x))
    i = np.arange(n - 1)
    h[i, i + 1] = 1.0
    h[i + 1, i] = 1.0
    return h


def hand_hvp(x: Array, v: Array) -> Array:
    hv = hand_diagonal(x) * v
    hv[:-1] += v[1:]
    hv[1:] += v[:-1]
    return hv


def dense(n: int) -> Results:
    x = np.random.default_rng(0).uniform(-2.0, 2.0, n)
    h = fad.hessian(f)
    variants = [
        Variant("hand-written numpy", lambda: hand_hessian(x)),
        Variant("fad hessian", lambda: h(x)),
    ]
    if ag is not None:
        agh = ag.hessian(lambda x: f(x, anp))
        variants.append(Variant("autograd hessian", lambda: agh(x)))
    targets = [Target.time("fad hessian", 30e-3)] if n == 1000 else []
    targets.append(Target.speedup("fad hessian", "autograd hessian", 1.0))
    return run(
        f"Dense Hessian of Σ sin(x)·x² + Σ x[:-1]·x[1:], n = {n:,}",
        variants,
        reference="hand-written numpy",
        rtol=1e-10,
        atol=1e-12,
        rounds=5,
        targets=targets,
    )


def products(n: int) -> Results:
    rng = np.random.default_rng(1)
    x = rng.uniform(-2.0, 2.0, n)
    v = rng.standard_normal(n)
    g = fad.grad(f)
    variants = [
        Variant("hand-written numpy", lambda: hand_hvp(x, v)),
        Variant("fad hvp", lambda: fad.hvp(f, x, v)),
        Variant("fad grad (for scale)", lambda: g(x), expected=hand_gradient(x)),
    ]
    if ag is not None:
        aghvp = ag.hessian_vector_product(lambda x: f(x, anp))
        variants.append(Variant("autograd hessian_vector_product", lambda: aghvp(x, v)))
    return run(
        f"Hessian-vector product of the same f, n = {n:,}",
        variants,
        reference="hand-written numpy",
        rtol=1e-10,
        atol=1e-12,
        targets=[
            Target.time("fad hvp", 1e-3),
            Target.speedup("fad hvp", "autograd hessian_vector_product", 1.0),
        ],
    )


def main(argv: list[str]) -> None:
    print(describe_machine())
    print_summary([dense(100), dense(1_000), products(1_000)])


if __name__ == "__main__":
    main(sys.argv[1:])
