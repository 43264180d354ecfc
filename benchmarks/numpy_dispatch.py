"""Untouched numpy code against the same code written with fad's own names.

Run it as ``python benchmarks/numpy_dispatch.py``. numpy's functions reach fad through
``__array_ufunc__``/``__array_function__``; this measures what that dispatch costs.
Issue 6, point 2: ``fad.grad`` of the plain numpy function should take <= 1.2x the time
of the same function written with fad's names, at n = 10^3 and 10^6.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from _timing import Results, Target, Variant, describe_machine, print_summary, run

import fad


def plain_numpy(x: Any, w: Any) -> Any:
    """A small model in untouched numpy: tanh features, a log-sum-exp, a quadratic."""
    h = np.tanh(x * w + 0.5)
    return np.sum(np.exp(h) * np.sin(x)) + np.log(np.sum(h * h) + 1.0) + np.dot(x, x)


def fad_names(x: Any, w: Any) -> Any:
    """The same function written with fad's primitives."""
    h = fad.tanh(x * w + 0.5)
    return fad.sum(fad.exp(h) * fad.sin(x)) + fad.log(fad.sum(h * h) + 1.0) + fad.dot(x)(x)


def table(n: int) -> Results:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, n)
    w = rng.uniform(-1.0, 1.0, n)
    g_numpy = fad.grad(plain_numpy)
    g_fad = fad.grad(fad_names)
    return run(
        f"fad.grad of untouched numpy vs fad's names, n = {n:,}",
        [
            Variant("fad names", lambda: g_fad(x, w)),
            Variant("untouched numpy", lambda: g_numpy(x, w)),
        ],
        reference="fad names",
        rtol=1e-10,
        rounds=9,
        targets=[Target.ratio("untouched numpy", "fad names", 1.2)],
    )


def main(argv: list[str]) -> None:
    print(describe_machine())
    print_summary([table(1_000), table(1_000_000)])


if __name__ == "__main__":
    main(sys.argv[1:])
