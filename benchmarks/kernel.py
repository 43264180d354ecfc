"""fad.kernel against hand-written numpy: values and derivatives over 10^3 ... 10^7 points.

Run it as ``python benchmarks/kernel.py`` (``--quick`` stops at 10^6). Two pipelines (issue
8, point 5), each computing the values *and* the per-element derivatives:

- the sigmoid of the contract, ``multiply(-1.0) >> exp >> add(1.0) >> reciprocal``;
- a chain of 20 elementwise primitives (11 of them transcendental).

Rows, side by side in one process (medians of interleaved rounds, ``_timing.run``):

- naive numpy: the value, then the derivative, every operation a fresh temporary (the
  reference of the ratio column);
- numpy with ``out=``: the same operations into preallocated buffers, whole arrays;
- numexpr with ``out=`` (when installed): hand-written expressions;
- JAX ``jit(vmap(value_and_grad))`` (when installed);
- fad.kernel as compiled by default (numpy engine, threads on batches of 2^17 and more),
  on one thread, and with the numexpr engine (when installed);
- the floor: ``np.copyto`` of the input into both result buffers, the memory traffic an
  ideal fused kernel cannot avoid.

Targets (ratios to naive numpy): sigmoid at 10^6 and 10^7 <= 0.75, at 10^3 <= 1.5; the
chain at 10^6 <= 0.95; with numexpr, fad's numexpr engine on the sigmoid at 10^6 within
1.2x of hand-written numexpr.
A plot of ns per element against N (log-log) is saved beside this file when matplotlib is
installed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _timing import Results, Target, Variant, describe_machine, optional, print_summary, run

import fad
import fad.kernel
from fad.kernel._kernel import default_threads
from fad.prims import (
    add,
    affine,
    cos,
    exp,
    expm1,
    log,
    log1p,
    multiply,
    reciprocal,
    sigmoid,
    sin,
    softplus,
    sqrt,
    square,
    tanh,
)

ne = optional("numexpr")
jax = optional("jax")
plt = optional("matplotlib.pyplot")

SIGMOID = multiply(-1.0) >> exp >> add(1.0) >> reciprocal
CHAIN = fad.pipe(
    sin, multiply(0.5), add(1.5), log, tanh, square, add(0.25), sqrt, exp, multiply(0.3),
    cos, add(1.0), reciprocal, expm1, log1p, affine(2.0, -1.0), sigmoid, softplus,
    multiply(-1.0), exp,
)  # fmt: skip

Array = np.ndarray[Any, Any]
Pair = tuple[Array, Array]


def _sig(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


# The chain by hand: each step's value and its derivative from (x, y), as a user writes them.
STEPS: list[tuple[Callable[[Array], Array], Callable[[Array, Array], Any]]] = [
    (np.sin, lambda x, y: np.cos(x)),
    (lambda x: 0.5 * x, lambda x, y: 0.5),
    (lambda x: x + 1.5, lambda x, y: 1.0),
    (np.log, lambda x, y: 1.0 / x),
    (np.tanh, lambda x, y: 1.0 - y * y),
    (np.square, lambda x, y: 2.0 * x),
    (lambda x: x + 0.25, lambda x, y: 1.0),
    (np.sqrt, lambda x, y: 0.5 / y),
    (np.exp, lambda x, y: y),
    (lambda x: 0.3 * x, lambda x, y: 0.3),
    (np.cos, lambda x, y: -np.sin(x)),
    (lambda x: x + 1.0, lambda x, y: 1.0),
    (lambda x: 1.0 / x, lambda x, y: -y * y),
    (np.expm1, lambda x, y: y + 1.0),
    (np.log1p, lambda x, y: 1.0 / (1.0 + x)),
    (lambda x: 2.0 * x - 1.0, lambda x, y: 2.0),
    (_sig, lambda x, y: y * (1.0 - y)),
    (lambda x: np.log1p(np.exp(x)), lambda x, y: _sig(x)),
    (lambda x: -x, lambda x, y: -1.0),
    (np.exp, lambda x, y: y),
]


def naive_sigmoid(x: Array) -> Pair:
    y = 1.0 / (1.0 + np.exp(-x))
    return y, y * (1.0 - y)


def out_sigmoid(x: Array, y: Array, d: Array) -> Pair:
    np.negative(x, out=y)
    np.exp(y, out=y)
    np.add(y, 1.0, out=y)
    np.divide(1.0, y, out=y)
    np.subtract(1.0, y, out=d)
    np.multiply(d, y, out=d)
    return y, d


def floor(x: Array, y: Array, d: Array) -> Pair:
    """The traffic an ideal fused kernel can't avoid: read the input, write two results."""
    np.copyto(y, x)
    np.copyto(d, x)
    return y, d


def naive_chain(x: Array) -> Pair:
    xs = [x]
    for f, _ in STEPS:  # the values, keeping every intermediate...
        xs.append(f(xs[-1]))
    d: Any = 1.0
    for (_, df), a, b in zip(STEPS, xs, xs[1:], strict=False):  # ...then the derivative
        d = d * df(a, b)
    return xs[-1], d


def out_chain(x: Array, y: Array, d: Array, t: Array) -> Pair:
    """The chain with out= buffers: value and derivative side by side, whole arrays."""
    np.copyto(t, x)
    d.fill(1.0)
    for f, df in STEPS:
        np.copyto(y, f(t))  # numpy has no out= for the lambdas: one temporary each
        np.multiply(d, df(t, y), out=d)
        t, y = y, t
    np.copyto(y, t)
    return y, d


NE_SIGMOID = ("1 / (1 + exp(-x))", "y * (1 - y)")


def numexpr_sigmoid(x: Array, y: Array, d: Array) -> Pair:
    ne.evaluate(NE_SIGMOID[0], local_dict={"x": x}, out=y)
    ne.evaluate(NE_SIGMOID[1], local_dict={"y": y}, out=d)
    return y, d


def jax_variant(f: Callable[[Any], Any], x: Array) -> Callable[[], Pair] | None:
    if jax is None:
        return None
    jax.config.update("jax_enable_x64", True)
    vg = jax.jit(jax.vmap(jax.value_and_grad(f)))
    xj = jax.numpy.asarray(x)

    def call() -> Pair:
        y, d = vg(xj)
        y.block_until_ready()
        return np.asarray(y), np.asarray(d)

    return call


def jax_sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + jax.numpy.exp(-x))


def jax_chain(x: Any) -> Any:
    jnp = jax.numpy
    for f in (
        jnp.sin, lambda v: 0.5 * v, lambda v: v + 1.5, jnp.log, jnp.tanh, jnp.square,
        lambda v: v + 0.25, jnp.sqrt, jnp.exp, lambda v: 0.3 * v, jnp.cos, lambda v: v + 1.0,
        lambda v: 1.0 / v, jnp.expm1, jnp.log1p, lambda v: 2.0 * v - 1.0,
        lambda v: 1.0 / (1.0 + jnp.exp(-v)), lambda v: jnp.log1p(jnp.exp(v)), lambda v: -v,
        jnp.exp,
    ):  # fmt: skip
        x = f(x)
    return x


def table(name: str, n: int, rounds: int) -> Results:
    x = np.random.default_rng(0).uniform(-3.0, 3.0, n)
    y, d, t = (np.empty(n) for _ in range(3))
    is_sigmoid = name == "sigmoid"
    f = SIGMOID if is_sigmoid else CHAIN
    k = fad.kernel.compile(f)
    k1 = fad.kernel.compile(f, threads=1)
    kn = fad.kernel.compile(f, engine="numexpr") if ne is not None else None
    variants = [
        Variant("naive numpy", lambda: naive_sigmoid(x) if is_sigmoid else naive_chain(x)),
        Variant(
            "numpy out=",
            (lambda: out_sigmoid(x, y, d)) if is_sigmoid else (lambda: out_chain(x, y, d, t)),
        ),
    ]
    if ne is not None and is_sigmoid:
        variants.append(Variant("numexpr out=", lambda: numexpr_sigmoid(x, y, d)))
    jv = jax_variant(jax_sigmoid if is_sigmoid else jax_chain, x)
    if jv is not None:
        variants.append(Variant("JAX jit(vmap(grad))", jv))
    variants += [
        Variant("fad.kernel", lambda: k(x)),
        Variant("fad.kernel 1 thread", lambda: k1(x)),
        *([Variant("fad.kernel numexpr", lambda: kn(x))] if kn is not None else []),
        Variant("floor: np.copyto", lambda: floor(x, y, d), expected=(x, x)),
    ]
    targets = []
    if is_sigmoid and n >= 10**6:
        targets.append(Target.ratio("fad.kernel", "naive numpy", 0.75))
    if is_sigmoid and n == 10**3:
        targets.append(Target.ratio("fad.kernel", "naive numpy", 1.5))
    if not is_sigmoid and n == 10**6:
        targets.append(Target.ratio("fad.kernel", "naive numpy", 0.95))
    if is_sigmoid and n == 10**6 and ne is not None:
        targets.append(Target.ratio("fad.kernel numexpr", "numexpr out=", 1.2))
    return run(
        f"{name}, value and derivative, N = {n:.0e}  ({k!r})",
        variants,
        reference="naive numpy",
        targets=targets,
        per=n,
        unit="element",
        rounds=rounds,
        min_time=0.05,
        budget=8.0,
        rtol=1e-9,
        atol=1e-12,
    )


def plot(results: dict[str, list[tuple[int, Results]]], path: Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, (name, rows) in zip(axes[0], results.items(), strict=True):
        names = list(rows[0][1].timings)
        for v in names:
            pts = [(n, r.medians()[v] * 1e9) for n, r in rows if v in r.timings]
            ax.loglog(*zip(*pts, strict=True), marker="o", label=v)
        ax.set_title(f"{name}: value and derivative")
        ax.set_xlabel("N (elements)")
        ax.set_ylabel("ns per element")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nplot saved to {path}")


def _load() -> str:
    """The cores and the load average: on a shared machine, the context of the timings
    (fad's threads can only use cores that other work leaves free)."""
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "unknown"
    return f"fad.kernel threads by default: {default_threads()}; load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description="fad.kernel benchmark")
    parser.add_argument("--quick", action="store_true", help="stop at N = 10^6")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(describe_machine(numexpr=getattr(ne, "__version__", "absent")))
    print(_load())
    sizes = [10**3, 10**4, 10**5, 10**6] + ([] if args.quick else [10**7])
    results: dict[str, list[tuple[int, Results]]] = {"sigmoid": [], "20-op chain": []}
    for name in results:
        for n in sizes:
            results[name].append((n, table(name, n, args.rounds)))
    print("\nRatios to naive numpy (median time; lower is faster)")
    for name, rows in results.items():
        names = list(rows[0][1].timings)
        print(f"\n{name}")
        print("  " + "variant".ljust(28) + "".join(f"{n:>9.0e}" for n, _ in rows))
        for v in names:
            cells = []
            for _, r in rows:
                m = r.medians()
                cells.append(f"{m[v] / m['naive numpy']:9.2f}" if v in m else f"{'-':>9}")
            print("  " + v.ljust(28) + "".join(cells))
    print_summary(r for rows in results.values() for _, r in rows)
    print(_load())
    if plt is not None:
        plot(results, Path(__file__).with_name("kernel.png"))


if __name__ == "__main__":
    main()
