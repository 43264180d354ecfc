"""Numerical helpers shared by the transform and pointed-style tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import fad


def leaves(tree: Any) -> list[Any]:
    """The leaves of a pytree of numbers and arrays, in fad's order."""
    if isinstance(tree, tuple | list):
        return [leaf for item in tree for leaf in leaves(item)]
    if isinstance(tree, dict):
        return [leaf for key in tree for leaf in leaves(tree[key])]
    return [tree]


def flat(tree: Any) -> np.ndarray:
    """All leaves of a pytree as one float64 vector."""
    parts = [np.ravel(np.asarray(leaf, dtype=np.float64)) for leaf in leaves(tree)]
    return np.concatenate(parts) if parts else np.zeros(0)


def close(actual: Any, expected: Any, tols: tuple[float, float], what: str = "") -> None:
    """Elementwise |a - e| <= atol + rtol * max|e| (scaled, so cancellation is fair)."""
    a, e = flat(actual), flat(expected)
    assert a.shape == e.shape, f"{what}: {a.shape} vs {e.shape}"
    rtol, atol = tols
    scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
    np.testing.assert_allclose(a, e, rtol=0, atol=atol + rtol * scale, err_msg=what)


def value_of(f: Callable[..., Any], x: Any) -> Any:
    """f(x) as plain numbers, for a pointed function or an Fn."""
    return f.value(x) if isinstance(f, fad.Fn) else fad.lift(f).value(x)


def numerical_derivative(g: Callable[[np.ndarray], Any], x: np.ndarray) -> np.ndarray:
    """d g / d x of a plain array function by finite differences; shape out + in, float64.

    Fourth-order central differences at steps h and h/2, Richardson-extrapolated to
    sixth order: a composition like exp(sin(quadratic)) has fifth derivatives large
    enough that the fourth-order error alone (h**4 times the fifth derivative, over
    30) exceeded 1e-6 (hypothesis drew such programs, twice).
    """
    x = np.asarray(x, dtype=np.float64)
    jac = np.zeros(np.shape(g(x)) + x.shape)
    for i in np.ndindex(x.shape):
        h = 1e-3 * max(1.0, abs(float(x[i])))

        def diff(h: float, i: tuple[int, ...] = i) -> np.ndarray:
            def at(k: float) -> np.ndarray:
                z = x.copy()
                z[i] += k * h
                return np.asarray(g(z), dtype=np.float64)

            return (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * h)

        coarse, fine = diff(h), diff(h / 2)
        jac[(Ellipsis, *i)] = fine + (fine - coarse) / 15.0
    return jac


def numerical_jacobian(f: Callable[..., Any], x: np.ndarray) -> np.ndarray:
    """d f / d x for a pointed function or an Fn (see ``numerical_derivative``)."""
    return numerical_derivative(lambda z: value_of(f, z), x)
