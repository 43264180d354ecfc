"""The tour: ``python -m fad`` walks through fad's ideas in a few printed steps."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import fad
from fad import fst, snd
from fad.prims import add, exp, log, multiply, reciprocal, sin


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 66 - len(title)))


def main() -> None:
    print("fad: differentiable functions are values a -> M b; bind is the chain rule.")

    section("1. The sigmoid, built from four primitives")
    m = fad.unit(0.0)
    for f in (multiply(-1.0), exp, add(1.0), reciprocal):
        m = fad.bind(m, f)
        print(f"  bind {f!r:<14} value {m.value + 0.0:<8.4g} derivative {float(m.deriv):.4g}")
    sigmoid = fad.comp(reciprocal, add(1.0), exp, multiply(-1.0))
    piped = multiply(-1.0) >> exp >> add(1.0) >> reciprocal
    arith = 1 / (1 + (multiply(-1.0) >> exp))
    for label, s in (("comp", sigmoid), (">>", piped), ("arithmetic", arith)):
        v, d = s(0.0)
        print(f"  {label:<11} {s!r}\n  {'':<11} at 0: value {v}, derivative {float(d)}")

    section("2. Dual numbers: f(x) = 3x^2 at x = 4")
    f = 3 * fad.square
    v, d = f(4)
    print(f"  f = {f!r}: value {v}, derivative {float(d)}")

    section("3. A batch of a million points in one call")
    xs = np.linspace(-6.0, 6.0, 1_000_000)
    start = time.perf_counter()
    ys, dys = fad.value_and_derivative(sigmoid)(xs)
    ms = 1e3 * (time.perf_counter() - start)
    print(f"  sigmoid over {xs.size:,} points in {ms:.1f} ms (vectorised, no Python loop)")
    print(f"  max |d - s(1 - s)| = {np.max(np.abs(dys - ys * (1 - ys))):.1e}")

    section("4. Several inputs, forward and reverse mode")
    g = (fst >> log) + fst * snd - (snd >> sin)
    x = (2.0, 5.0)
    print(f"  f = {g!r}")
    print(f"  f(2, 5) = {g.value(x)}")
    _, d = fad.linearize(g, x)
    print(f"  forward, one tangent per input: df = ({d @ (1.0, 0.0)}, {d @ (0.0, 1.0)})")
    print(f"  reverse, one pass:              grad = {1.0 @ d}")
    print(f"  fad.grad(f)(2, 5)             = {fad.grad(g)(x)}")

    section("5. Derivatives of derivatives")
    print(f"  d/dx d/dx sin at 1 = {fad.derivative(fad.derivative(sin))(1.0):.6f} (-sin 1)")
    inner = fad.derivative(lambda x: x * fad.derivative(lambda y: x + y)(1.0))(1.0)
    print(f"  d/dx [x * d/dy (x + y)] at x = 1: {inner} (no perturbation confusion)")
    section("6. Pointed style: plain numpy code, differentiated")

    def rosenbrock(x: Any) -> Any:
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    x0 = np.array([1.5, 0.5, -0.5])
    print("  def rosenbrock(x): return np.sum(100 (x[1:] - x[:-1]**2)**2 + (1 - x[:-1])**2)")
    print(f"  fad.grad(rosenbrock)({x0}) = {fad.grad(rosenbrock)(x0)}")
    print(f"  fad.hessian(rosenbrock)(x0)[0] = {fad.hessian(rosenbrock)(x0)[0]}")
    print("\nMore: README.md and docs/.")


if __name__ == "__main__":
    main()
