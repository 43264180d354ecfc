"""The short ways through the core agree with the general ones.

Arithmetic with a number (``x * 2.0``, ``1.0 - x``, ``x ** 2``), basic indexing and
``np.sum`` of a one-level array take shortcuts past the general primitive machinery
(``Binary.apply``, ``Dual.__getitem__``, ``reduce_sum``). Under ``debug_nans`` every
step takes the general way (named primitives, no fusing), so the two are compared on
the same functions: same values, same gradients up to the order of scalar factors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import fad
from _numeric import close
from fad import _linear as lin
from fad._transforms import _trace

TIGHT = (1e-12, 1e-14)

FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "rosenbrock": lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2),
    "numbers on both sides": lambda x: np.sum(2.0 * x - 3 + (1.5 - x) * 4 + x**3 - 2**x),
    "integer powers": lambda x: np.sum(x**2 * x**1 + x**0 + x ** (-2)),
    "division": lambda x: np.sum(x / 2.0 + 3.0 / x),
    "indexing": lambda x: x[0] * x[-1] + np.sum(x[1:-1] * x[:-2][::-1]) + np.sum(x[::2]),
    "sums over axes": lambda x: np.sum(np.sum(x.reshape(2, -1), axis=1) ** 2),
}


@settings(max_examples=30, deadline=None)
@given(
    hs.sampled_from(sorted(FUNCTIONS)),
    hs.integers(2, 40).map(lambda n: 2 * n),
    hs.integers(0, 2**32 - 1),
    hs.sampled_from([np.float64, np.float32]),
)
def test_the_short_ways_agree_with_the_general_ones(
    name: str, n: int, seed: int, dtype: Any
) -> None:
    f = FUNCTIONS[name]
    x = np.random.default_rng(seed).uniform(0.5, 1.5, n).astype(dtype)
    v, g = fad.value_and_grad(f)(x)
    with fad.debug_nans():
        v_general, g_general = fad.value_and_grad(f)(x)
    tight = TIGHT if dtype == np.float64 else (1e-5, 1e-6)
    close(v, v_general, tight, "value")
    close(g, g_general, tight, "gradient")
    assert g.dtype == x.dtype


@pytest.mark.parametrize("index", [0, -1, slice(1, None), slice(None, None, -1)])
def test_basic_indexing_of_a_matrix_takes_the_short_way_too(index: Any) -> None:
    x = np.arange(6.0).reshape(2, 3)
    g = fad.grad(lambda x: np.sum(x[index] ** 2))(x)
    expected = np.zeros_like(x)
    expected[index] = 2 * x[index]
    np.testing.assert_array_equal(g, expected)


def _reachable(roots: list[Any]) -> set[int]:
    seen: set[int] = set()
    stack = [r for r in roots if r is not None]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(node.parents)
    return seen


@pytest.mark.parametrize(
    "f",
    [
        lambda x: np.tanh(np.ones((3, 4)) @ x),  # a chain: toposort's short way
        lambda x: np.sin(x) * np.cos(x) + x[::-1],  # shared parents: the general way
        lambda x: x,
    ],
)
def test_toposort_orders_every_reachable_node_once_parents_first(f: Callable[[Any], Any]) -> None:
    _, d, _ = _trace(f, (np.linspace(0.1, 0.9, 4),), 0, False)
    order = lin.toposort(d._nodes)
    assert len({id(n) for n in order}) == len(order)
    assert {id(n) for n in order} == _reachable(list(d._nodes))
    place = {id(n): i for i, n in enumerate(order)}
    assert all(place[id(p)] < place[id(n)] for n in order for p in n.parents)
