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


def numerical_jacobian(f: Callable[..., Any], x: np.ndarray) -> np.ndarray:
    """d f / d x by the 5-point central stencil; shape out + in, in float64."""
    x = np.asarray(x, dtype=np.float64)
    y0 = np.asarray(value_of(f, x), dtype=np.float64)
    jac = np.zeros(y0.shape + x.shape)
    for i in np.ndindex(x.shape):
        h = 1e-3 * max(1.0, abs(float(x[i])))

        def at(k: float, i: tuple[int, ...] = i, h: float = h) -> np.ndarray:
            z = x.copy()
            z[i] += k * h
            return np.asarray(value_of(f, z), dtype=np.float64)

        d = (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * h)
        jac[(Ellipsis, *i)] = d
    return jac
