"""Properties of the numpy error function ``fad.prims._erf.erf``, checked against ``math.erf``."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from fad.prims._erf import erf

REL_TOL = 1e-14
# Where erf(x) is subnormal (|x| < 2e-308) relative error means nothing: the result
# has few bits. Allow a few units of the smallest subnormal there.
ABS_TOL = 4 * math.ulp(0.0)

# All finite doubles (hypothesis favours extremes and subnormals), plus a dense draw
# where erf is neither ~x nor ~+-1 and all three of Cody's regions meet.
finite = st.floats(allow_nan=False, allow_infinity=False)
reals = st.one_of(st.floats(-7.0, 7.0), finite)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)


def reference(x: NDArray[Any]) -> NDArray[np.float64]:
    """``math.erf`` elementwise in float64, the oracle."""
    return np.array([math.erf(float(v)) for v in x.ravel()]).reshape(x.shape)


def erf_array(x: NDArray[Any]) -> NDArray[np.floating[Any]]:
    """``erf`` of an array, checked to be (and typed as) an array."""
    y = erf(x)
    assert isinstance(y, np.ndarray)
    return y


def assert_close_to_math_erf(x: NDArray[np.float64]) -> None:
    got, want = erf_array(x), reference(x)
    bound = np.maximum(REL_TOL * np.abs(want), ABS_TOL)
    bad = ~(np.abs(got - want) <= bound)
    assert not bad.any(), f"erf({x[bad]}) = {got[bad]}, math.erf says {want[bad]}"


@given(reals)
def test_scalar_relative_error_below_1e_14(x: float) -> None:
    assert_close_to_math_erf(np.array(x))


@given(hnp.arrays(np.float64, shapes, elements=reals))
def test_array_relative_error_below_1e_14(x: NDArray[np.float64]) -> None:
    assert_close_to_math_erf(x)


def test_region_seams_are_accurate() -> None:
    # Cody's formulas change at |x| = 0.46875, 4 and (here) 6; sweep both sides closely.
    seams = np.array([0.46875, 4.0, 6.0])
    offsets = np.concatenate([-np.geomspace(1e-2, 1e-15, 200), np.geomspace(1e-15, 1e-2, 200)])
    x = (seams[:, None] + offsets).ravel()
    assert_close_to_math_erf(np.concatenate([x, -x, np.nextafter(seams, 0), seams]))


@given(hnp.arrays(np.float64, shapes, elements=reals))
def test_erf_is_odd(x: NDArray[np.float64]) -> None:
    # Exact, down to the sign of zero: the kernel works on |x| and copies the sign.
    assert np.array_equal(erf(-x), -erf(x))
    assert np.array_equal(np.signbit(erf(-x)), np.signbit(-erf(x)))


@given(reals)
def test_python_float_gives_python_float(x: float) -> None:
    y = erf(x)
    assert type(y) is float
    assert y == math.erf(x)


@given(st.sampled_from([np.float32, np.float64]), finite)
def test_numpy_scalar_keeps_its_type(scalar: type[np.floating[Any]], x: float) -> None:
    with np.errstate(over="ignore"):  # casting a huge double to float32 gives inf
        s = scalar(x)
    y = erf(s)  # type: ignore[arg-type]  # numpy scalars are outside Num, yet supported
    assert isinstance(y, scalar)
    assert type(y) is scalar  # isinstance narrows for mypy; this rules out subclasses
    assert np.array_equal(y, erf_array(np.array([s]))[0])  # the array path, tested above


@given(hnp.arrays(np.float32, shapes, elements=st.floats(width=32, allow_nan=False)))
def test_float32_stays_float32_and_rounds_like_math_erf(x: NDArray[np.float32]) -> None:
    y = erf(x)
    assert isinstance(y, np.ndarray)
    assert y.dtype == np.float32
    # float64 results within 1e-14 of erf round to float32 as erf does, except right at
    # a float32 rounding tie; allow that one float32 ulp.
    want = reference(x).astype(np.float32)
    assert np.all(np.abs(y - want) <= np.spacing(np.abs(want)))


@given(hnp.arrays(hnp.floating_dtypes(sizes=(32, 64)), shapes))
def test_shape_and_dtype_are_preserved(x: NDArray[np.floating[Any]]) -> None:
    y = erf(x)
    assert isinstance(y, np.ndarray)
    assert (y.shape, y.dtype) == (x.shape, x.dtype)


@given(hnp.arrays(hnp.floating_dtypes(sizes=(32, 64)), shapes))
def test_input_is_not_written_to(x: NDArray[np.floating[Any]]) -> None:
    before = x.copy()
    y = erf(x)
    assert np.array_equal(x, before, equal_nan=True)
    assert np.array_equal(np.signbit(x), np.signbit(before))
    assert not np.shares_memory(x, y)


def test_non_contiguous_views_are_read_correctly() -> None:
    x = np.linspace(-5.0, 5.0, 24).reshape(4, 6)
    for view in (x.T, x[:, ::2], x[::-1, 1:5:3]):
        assert np.array_equal(erf(view), erf(np.ascontiguousarray(view)))
        assert_close_to_math_erf(view)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype: type[np.floating[Any]]) -> None:
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], dtype=dtype)
    y = erf(x)
    assert np.array_equal(y, [1.0, -1.0, np.nan, 0.0, 0.0], equal_nan=True)
    assert np.array_equal(np.signbit(y), [False, True, False, False, True])


def test_special_values_as_python_floats() -> None:
    assert erf(math.inf) == 1.0
    assert erf(-math.inf) == -1.0
    assert math.isnan(erf(math.nan))
    assert math.copysign(1.0, erf(-0.0)) == -1.0


def test_large_arguments_give_exactly_one() -> None:
    big = np.array([6.0, 27.0, 1e10, 1e300, np.finfo(np.float64).max])
    assert np.array_equal(erf(big), np.ones_like(big))
    assert np.array_equal(erf(-big), -np.ones_like(big))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_floating_point_warnings_even_when_numpy_raises(
    dtype: type[np.floating[Any]],
) -> None:
    info = np.finfo(dtype)
    edges = [0.0, float(info.smallest_subnormal), float(info.tiny), 1e-30, 1e-16, 0.46875]
    edges += [4.0, 6.0, 26.6, 1e30, float(info.max), math.inf, math.nan]
    x = np.array(edges + [-e for e in edges], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y = erf_array(x)
    assert np.isfinite(y[~np.isnan(x)]).all()
