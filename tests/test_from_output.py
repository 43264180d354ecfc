"""Value-reading rules (tanh, sigmoid, sqrt...) and the reverse pass's in-place product.

Their rules return a new array for an array value, and ``FromOutput``'s transpose
multiplies the cotangent into it. Stated here: the contract holds for every such rule,
and the pass never writes into the kept value, a cotangent or the caller's arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import fad
from _numeric import close
from fad import _linear as lin

FROM_OUTPUT = [
    name
    for name, f in fad.prims._declare.REGISTRY.items()
    if not fad.prims._declare.declaration(f).reads_x
]
PROPERTY = settings(max_examples=25, deadline=None)
TIGHT = (1e-12, 1e-14)


def record(name: str) -> Any:
    return fad.prims._declare.declaration(fad.prims._declare.REGISTRY[name])


@hs.composite
def points(draw: Any, dtype: Any = np.float64) -> np.ndarray:
    # Small ones take the plain product, from IN_PLACE_MIN elements on it is formed in place.
    shape = draw(hs.sampled_from([(5,), (2, 3), (40, 30), (3, 1, 400), (lin.IN_PLACE_MIN,)]))
    rng = np.random.default_rng(draw(hs.integers(0, 2**32 - 1)))
    return rng.uniform(0.2, 1.4, shape).astype(dtype)


@pytest.mark.parametrize("name", FROM_OUTPUT)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(2, 3), (2, lin.IN_PLACE_MIN)])
def test_value_reading_rules_return_a_new_array(name: str, dtype: Any, shape: Any) -> None:
    rec = record(name)
    y = rec.kernel(np.linspace(0.2, 1.4, np.prod(shape)).astype(dtype).reshape(shape))
    kept = y.copy()
    first, second = rec.rule(None, y), rec.rule(None, y)
    for c in (first, second):
        assert type(c) is np.ndarray and c.dtype == y.dtype and c.shape == y.shape
        assert c.base is None and not np.shares_memory(c, y)
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(y, kept)


@pytest.mark.parametrize("n", [9, lin.IN_PLACE_MIN + 1])
def test_tanh_and_sigmoid_slopes_are_the_closed_forms(n: int) -> None:
    y = np.tanh(np.linspace(-2.0, 2.0, n))
    np.testing.assert_array_equal(record("tanh").rule(None, y), 1.0 - y * y)
    np.testing.assert_array_equal(record("sigmoid").rule(None, y), y * (1.0 - y))
    assert record("tanh").rule(None, 0.5) == 0.75 and record("sigmoid").rule(None, 0.5) == 0.25


@pytest.mark.parametrize("name", FROM_OUTPUT)
@PROPERTY
@given(x=points())
def test_pulling_back_twice_writes_into_nothing_it_was_given(name: str, x: np.ndarray) -> None:
    rec = record(name)
    slope = rec.rule(None, rec.kernel(x))
    w = np.cos(np.arange(x.size)).reshape(x.shape)
    out, pullback = fad.vjp(lambda v: rec.run(v + 0.0), x)
    out0, x0, w0 = out.copy(), x.copy(), w.copy()
    first, second = pullback(w)[0], pullback(w)[0]
    close(first, w * slope, TIGHT, name)
    np.testing.assert_array_equal(first, second)
    assert not np.shares_memory(first, second) and first.flags.writeable
    for now, then in ((out, out0), (x, x0), (w, w0)):
        np.testing.assert_array_equal(now, then)


@pytest.mark.parametrize("name", FROM_OUTPUT)
@PROPERTY
@given(x=points())
def test_one_cotangent_shared_by_several_value_reading_steps(name: str, x: np.ndarray) -> None:
    """A sum hands the same cotangent array to each term; every term gets it intact."""
    rec, tanh = record(name), record("tanh")
    w = np.cos(np.arange(x.size)).reshape(x.shape)

    def f(v: Any) -> Any:
        u = v + 0.0
        return np.sum((rec.run(u) + tanh.run(u) + rec.run(u * 2.0)) * w)

    expected = w * (
        rec.rule(None, rec.kernel(x))
        + tanh.rule(None, tanh.kernel(x))
        + 2.0 * rec.rule(None, rec.kernel(2.0 * x))
    )
    close(fad.grad(f)(x), expected, TIGHT, name)
    close(fad.jacfwd(f)(x), expected, TIGHT, name)


@PROPERTY
@given(x=points(np.float32))
def test_float32_values_with_float64_cotangents(x: np.ndarray) -> None:
    """The product's dtype differs from the rule's array: formed in a new array."""
    w = np.cos(np.arange(x.size)).reshape(x.shape)  # float64 weights: float64 cotangents
    g = fad.grad(lambda v: np.sum(fad.tanh(v + np.float32(0.0)) * w))(x)
    y = np.tanh(x)
    assert g.dtype == np.float32
    close(g, w * (1.0 - y.astype(np.float64) ** 2), (1e-6, 1e-7), "float32 tanh")


def test_a_batch_of_cotangents_is_not_formed_in_place() -> None:
    x = np.linspace(0.2, 1.4, lin.IN_PLACE_MIN)
    u = np.cos(np.arange(3.0 * x.size)).reshape(3, x.size)
    _, pullback = fad.vjp(lambda v: fad.tanh(v + 0.0), x)
    close(pullback(u)[0], u * (1.0 - np.tanh(x) ** 2), TIGHT, "a batch of 3 cotangents")


def test_zero_times_an_infinite_slope_is_still_zero() -> None:
    """sqrt's slope is inf at 0; a cotangent of 0 there gives 0, in the in-place pass too."""
    x = np.full(lin.IN_PLACE_MIN, 4.0)
    x[::2] = 0.0
    with np.errstate(divide="ignore"):
        g = fad.grad(lambda v: np.sum(fad.where(v > 0.0, fad.sqrt(v), 0.0)))(x)
    np.testing.assert_array_equal(g, np.where(x > 0.0, 0.25, 0.0))
