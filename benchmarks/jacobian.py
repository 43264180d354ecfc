"""Does ``fad.jacobian`` choose the mode well? Its time against the faster of the two.

Run it as ``python benchmarks/jacobian.py``. For n inputs and m outputs in
{1, 10, 100, 1000}, f(x) = tanh(A @ x) with a fixed m-by-n matrix A; its Jacobian is
(1 - y²)[:, None] * A. Forward mode pushes n tangent columns, reverse mode pulls m
cotangent rows, so the cheaper one changes across the grid. Issue 5, point 7: in every
cell, the time of ``fad.jacobian`` divided by the faster of ``fad.jacfwd`` and
``fad.jacrev`` is <= 1.2; no peer chooses the mode for the user.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import _one_blas_thread  # noqa: F401  (before numpy loads BLAS)
import numpy as np
from _timing import Results, Variant, describe_machine, fmt_time, run

import fad

SIZES = (1, 10, 100, 1000)
TARGET = 1.2
WIDTHS = (6, 6, 11, 11, 11, 11, 16, 9)  # the columns of the printed table

Array = np.ndarray[Any, Any]


def hand_jacobian(a: Array, x: Array) -> Array:
    y = np.tanh(a @ x)
    j: Array = (1.0 - y * y)[:, None] * a
    return j


def cell(n: int, m: int) -> Results:
    rng = np.random.default_rng(n * 10_000 + m)
    a = rng.standard_normal((m, n)) / np.sqrt(n)
    x = rng.standard_normal(n)

    def f(x: Any) -> Any:
        return np.tanh(a @ x)

    transforms = {"jacobian": fad.jacobian(f), "jacfwd": fad.jacfwd(f), "jacrev": fad.jacrev(f)}
    variants = [Variant("hand-written", lambda: hand_jacobian(a, x))]
    variants += [Variant(name, partial(t, x)) for name, t in transforms.items()]
    return run(
        f"n = {n}, m = {m}",
        variants,
        reference="hand-written",
        rtol=1e-9,
        atol=1e-12,
        rounds=15,
        min_time=0.01,
        budget=2.0,
        show=False,
    )


def main(argv: list[str]) -> None:
    print(describe_machine())
    print("\nJacobian of f(x) = tanh(A @ x), A of shape (m, n)")
    headers = ["n", "m", "hand", "jacobian", "jacfwd", "jacrev", "jacobian / min", "<= 1.2"]
    print("".join(h.rjust(w) for h, w in zip(headers, WIDTHS, strict=True)))
    met = total = 0
    notes: list[str] = []
    for n in SIZES:
        for m in SIZES:
            res = cell(n, m)
            med = {k: t.median for k, t in res.timings.items()}
            cols = [str(n), str(m)]
            for k in ("hand-written", "jacobian", "jacfwd", "jacrev"):
                cols.append(fmt_time(med[k]) if k in med else "failed")
            best = min((med[k] for k in ("jacfwd", "jacrev") if k in med), default=None)
            if "jacobian" in med and best is not None:
                ratio = med["jacobian"] / best
                ok = ratio <= TARGET
                met += ok
                total += 1
                cols += [f"{ratio:.2f}", "MET" if ok else "MISSED"]
            else:
                cols += ["n/a", "n/a"]
            print("".join(c.rjust(w) for c, w in zip(cols, WIDTHS, strict=True)))
            notes += [f"n = {n}, m = {m}: {k} FAILED: {why}" for k, why in res.failures.items()]
    for note in notes:
        print(f"  {note}")
    print(
        f"\nSummary of targets\n  jacobian / min(jacfwd, jacrev) <= {TARGET}: met in {met} of "
        f"{total} measured cells ({len(SIZES) ** 2 - total} not measured)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
