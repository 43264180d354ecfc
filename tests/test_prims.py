"""Every primitive against finite differences and its closed-form derivative.

Driven by the registry, so a new elementwise primitive is tested the moment it is
declared (and must be given a closed form below). Points come from each primitive's
declared domain; float64 and float32 both, with dtypes preserved. Then: stable
formulations, inputs never written to, arithmetic on functions against the sum,
product and quotient rules, and depth.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as hs

import fad
from fad import laws
from fad import strategies as st
from fad.prims._declare import REGISTRY

ELEMENTWISE = list(REGISTRY.values())  # the built-ins, read before any test declares more
DTYPES = [np.float64, np.float32]
SHAPES = [(), (5,)]
PRIMS: list[Any] = [*ELEMENTWISE, fad.add, fad.multiply, fad.power, fad.affine, fad.clip]
CHECK = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sigmoid(x: Any) -> Any:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# The derivatives, written independently of the rules (other formulas where possible).
CLOSED_FORM: dict[str, Callable[[Any], Any]] = {
    "exp": np.exp,
    "log": lambda x: 1.0 / x,
    "sin": np.cos,
    "cos": lambda x: -np.sin(x),
    "tan": lambda x: 1.0 / np.cos(x) ** 2,
    "tanh": lambda x: 1.0 / np.cosh(x) ** 2,
    "sigmoid": lambda x: 0.25 / np.cosh(0.5 * x) ** 2,
    "softplus": _sigmoid,
    "relu": lambda x: (x > 0).astype(np.float64),
    "abs": np.sign,
    "sqrt": lambda x: 0.5 / np.sqrt(x),
    "square": lambda x: 2.0 * x,
    "reciprocal": lambda x: -1.0 / (x * x),
    "neg": lambda x: -np.ones_like(x),
    "log1p": lambda x: 1.0 / (1.0 + x),
    "expm1": np.exp,
    "erf": lambda x: 2.0 / math.sqrt(math.pi) * np.exp(-x * x),
}
# Tolerances of the rule against the closed form, by dtype: rules such as tanh's
# 1 - y**2 lose absolute accuracy (a few ulps of 1) where y is near 1.
RTOL = {np.float64: 1e-12, np.float32: 1e-5}
ATOL = {np.float64: 1e-14, np.float32: 1e-6}


def name_of(prim: fad.Fn[Any, Any]) -> str:
    return repr(prim)


def derivative_array(f: fad.Fn[Any, Any], x: Any) -> Any:
    return np.asarray(fad.derivative(f)(x))


def test_every_primitive_has_a_closed_form() -> None:
    assert sorted(CLOSED_FORM) == sorted(map(name_of, ELEMENTWISE))


@pytest.mark.parametrize("prim", ELEMENTWISE, ids=repr)
@CHECK
@given(dtype=hs.sampled_from(DTYPES), shape=hs.sampled_from(SHAPES), data=hs.data())
def test_rule_agrees_with_finite_differences(
    prim: fad.Fn[Any, Any], dtype: Any, shape: Any, data: Any
) -> None:
    x = data.draw(st.points(prim, shape, dtype), label="x")
    laws.check_finite_differences(prim, x)
    laws.check_finite_differences(prim, x, order=2)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("prim", ELEMENTWISE, ids=repr)
@CHECK
@given(data=hs.data())
def test_rule_agrees_with_the_closed_form(prim: fad.Fn[Any, Any], dtype: Any, data: Any) -> None:
    x = data.draw(st.points(prim, (5,), dtype), label="x")
    expected = CLOSED_FORM[name_of(prim)](x.astype(np.float64))
    got = derivative_array(prim, x)
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=ATOL[dtype])
    scalar = x[0] if dtype == np.float32 else float(x[0])
    _, d = prim(scalar)
    np.testing.assert_allclose(float(d), expected[0], rtol=RTOL[dtype], atol=ATOL[dtype])


@pytest.mark.parametrize("prim", ELEMENTWISE, ids=repr)
@CHECK
@given(data=hs.data())
def test_dtype_is_preserved_in_value_and_derivative(prim: fad.Fn[Any, Any], data: Any) -> None:
    x = data.draw(st.points(prim, (5,), np.float32), label="x")
    y, d = prim(x)
    assert y.dtype == np.float32 and np.asarray(d).dtype == np.float32
    assert (d @ np.ones(5, np.float32)).dtype == np.float32
    assert (np.ones(5, np.float32) @ d).dtype == np.float32
    assert derivative_array(prim, x).dtype == np.float32
    assert fad.grad(lambda v: np.sum(prim(v)))(x).dtype == np.float32
    s = prim(x[0])
    assert (
        np.result_type(s.value) == np.float32 and np.result_type(np.asarray(s.deriv)) == np.float32
    )
    y64, d64 = prim(float(x[0]))
    assert np.result_type(y64) == np.float64 and isinstance(float(d64), float)


@pytest.mark.parametrize("prim", ELEMENTWISE, ids=repr)
@CHECK
@given(data=hs.data())
def test_inputs_are_never_written_to(prim: fad.Fn[Any, Any], data: Any) -> None:
    x = data.draw(st.points(prim, (4,), np.float64), label="x")
    before = x.copy()
    prim(x)
    prim.value(x)
    fad.derivative(prim)(x)
    fad.grad(lambda v: np.sum(prim(v)))(x)
    _, d = fad.linearize(prim, x)
    t = np.ones_like(x)
    d @ t
    t @ d
    fad.hvp(lambda v: np.sum(prim(v)), x, t)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(t, np.ones_like(x))


# ------------------------------------------------------- parameterised primitives


FAMILIES = [
    ("add", hs.tuples(hs.floats(-3, 3)), lambda c: (lambda x: x + c, lambda x: 1.0 + 0 * x)),
    ("multiply", hs.tuples(hs.floats(-3, 3)), lambda c: (lambda x: c * x, lambda x: c + 0 * x)),
    (
        "affine",
        hs.tuples(hs.floats(-3, 3), hs.floats(-3, 3)),
        lambda a, b: (lambda x: a * x + b, lambda x: a + 0 * x),
    ),
    (
        "power",
        hs.tuples(hs.sampled_from([0.0, 1.0, 2.0, 3.0, -1.0, -2.0, 0.5, 1.5, -0.5])),
        lambda k: (lambda x: x**k, lambda x: k * x ** (k - 1) if k else 0 * x),
    ),
    (
        "clip",
        hs.tuples(hs.floats(-3, 2), hs.floats(0.5, 3)),
        lambda lo, w: (
            lambda x: np.clip(x, lo, lo + w),
            lambda x: ((x >= lo) & (x <= lo + w)) * 1.0,
        ),
    ),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f[0])
@CHECK
@given(data=hs.data())
def test_parameterised_primitives_against_closed_forms(family: Any, dtype: Any, data: Any) -> None:
    name, params, closed = family
    args = data.draw(params, label="params")
    prim = fad.clip(args[0], args[0] + args[1]) if name == "clip" else getattr(fad, name)(*args)
    value, deriv = closed(*args)
    x = data.draw(st.points(prim, (5,), dtype), label="x")
    x64 = x.astype(np.float64)
    tol = RTOL[dtype]
    np.testing.assert_allclose(prim.value(x), value(x64), rtol=tol, atol=tol)
    np.testing.assert_allclose(derivative_array(prim, x), deriv(x64), rtol=tol, atol=tol)
    assert np.asarray(fad.derivative(prim)(x)).dtype == dtype
    laws.check_finite_differences(prim, x)
    laws.check_finite_differences(prim, float(x64[0]), order=2)


def test_parameterised_primitives_are_named_by_the_call_that_builds_them() -> None:
    sigmoid = fad.multiply(-1.0) >> fad.exp >> fad.add(1.0) >> fad.reciprocal
    assert repr(sigmoid) == "multiply(-1.0) >> exp >> add(1.0) >> reciprocal"
    assert repr(fad.affine(2, 1)) == "affine(2.0, 1.0)"
    assert repr(fad.power(3)) == "power(3.0)"
    assert repr(fad.clip(0, 1)) == "clip(0.0, 1.0)"


@pytest.mark.parametrize("x", [-1.0, np.float64(-1.0), np.array([-1.0, 4.0])], ids=repr)
def test_a_non_integer_power_of_a_negative_number_is_nan_not_complex(x: Any) -> None:
    # Outside the domain fad follows numpy: nan. Python's (-1.0) ** -0.5 is complex.
    with np.errstate(invalid="ignore"):
        y, d = fad.power(0.5)(x)
        derivative = np.asarray(d @ np.ones_like(np.asarray(x)))
    assert np.isnan(np.asarray(y).ravel()[0]) and derivative.dtype.kind == "f"
    assert np.isnan(derivative.ravel()[0])


def test_kink_conventions() -> None:
    # At a kink the derivative follows JAX and PyTorch: relu and abs give 0, clip gives 1.
    assert fad.derivative(fad.relu)(0.0) == 0.0
    assert fad.derivative(fad.abs)(0.0) == 0.0
    assert fad.derivative(fad.clip(0.0, 1.0))(0.0) == 1.0
    assert fad.derivative(fad.clip(0.0, 1.0))(1.0) == 1.0
    for f in (fad.relu, fad.abs, fad.clip(0.0, 1.0)):
        laws.check_modes_agree(f, 0.0)
        laws.check_modes_agree(f, np.zeros(3))


# ---------------------------------------------------------------------- stability


def no_warnings(f: Callable[[], Any]) -> Any:
    """Call ``f``; any warning or floating-point overflow, nan or division by zero fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            return f()


@pytest.mark.parametrize("dtype", [float, np.float64, np.float32], ids=lambda d: d.__name__)
def test_sigmoid_and_softplus_are_stable_in_both_tails(dtype: Any) -> None:
    for x, sig, soft in ((1000.0, 1.0, 1000.0), (-1000.0, 0.0, 0.0)):
        v, d = no_warnings(lambda x=x: fad.sigmoid(dtype(x)))
        assert float(v) == sig and float(d) == 0.0
        v, d = no_warnings(lambda x=x: fad.softplus(dtype(x)))
        assert float(v) == soft and float(d) == sig
        for f in (fad.sigmoid, fad.softplus):
            g = no_warnings(lambda f=f, x=x: fad.grad(f)(dtype(x)))
            assert math.isfinite(float(g))
            h = no_warnings(lambda f=f, x=x: fad.hvp(f, dtype(x), dtype(1.0)))
            assert math.isfinite(float(h))
    xs = np.array(
        [-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype=np.float64 if dtype is float else dtype
    )
    for f in (fad.sigmoid, fad.softplus):
        v, d = no_warnings(lambda f=f: f(xs))
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(np.asarray(d)))


@pytest.mark.parametrize("dtype", [float, np.float64, np.float32], ids=lambda d: d.__name__)
def test_log1p_and_expm1_are_accurate_at_tiny_x(dtype: Any) -> None:
    for x in (1e-20, -1e-20, 1e-10, 1e-300 if dtype is not np.float32 else 1e-30):
        v, d = no_warnings(lambda x=x: fad.log1p(dtype(x)))
        assert float(v) == pytest.approx(float(dtype(x)), rel=1e-6) and float(d) == pytest.approx(
            1.0
        )
        v, d = no_warnings(lambda x=x: fad.expm1(dtype(x)))
        assert float(v) == pytest.approx(float(dtype(x)), rel=1e-6) and float(d) == pytest.approx(
            1.0
        )


@pytest.mark.parametrize("dtype", [float, np.float64, np.float32], ids=lambda d: d.__name__)
def test_the_derivative_of_expm1_is_accurate_where_expm1_is_near_minus_one(dtype: Any) -> None:
    """e**x from x, not expm1(x) + 1 from the value, which cancels: at -16 in float32 that
    was 6 % off, and at -40 in float64 it was 0."""
    for x in (-16.0, -40.0, -700.0):
        want = np.exp(np.float64(x))
        d = float(fad.derivative(fad.expm1)(dtype(x)))
        assert d == pytest.approx(float(dtype(want)), rel=1e-6)
        g = fad.grad(lambda v: np.sum(np.expm1(v)))(np.full(3, x, dtype=np.float64))
        np.testing.assert_allclose(g, want, rtol=1e-12)


# --------------------------------------------------------- arithmetic on functions


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@CHECK
@given(fg=hs.tuples(st.pipelines(3, prims=PRIMS), st.pipelines(3, prims=PRIMS)), data=hs.data())
def test_arithmetic_on_functions_follows_the_sum_product_and_quotient_rules(
    fg: Any, dtype: Any, data: Any
) -> None:
    f, g = fg
    c = data.draw(hs.sampled_from([-2.0, 0.5, 3.0]), label="c")
    try:  # points where f and g are defined and g is away from 0, if there are any
        points = st.points(f * (c / g), (4,), dtype)
    except ValueError:
        reject()
    x = data.draw(points, label="x")
    x64 = x.astype(np.float64)
    a, da = fad.value_and_derivative(f)(x64)
    b, db = fad.value_and_derivative(g)(x64)
    rules = {
        "f + g": (f + g, da + db),
        "f - g": (f - g, da - db),
        "f * g": (f * g, da * b + a * db),
        "f / g": (f / g, (da * b - a * db) / (b * b)),
        "-f": (-f, -da),
        "c * f": (c * f, c * da),
        "f + c": (f + c, da),
        "c / g": (c / g, -c * db / (b * b)),
        "f ** 2": (f**2, 2 * a * da),
    }
    tol = RTOL[dtype] * 100
    for label, (h, expected) in rules.items():
        got = np.asarray(fad.derivative(h)(x), dtype=np.float64)
        scale = np.abs(da * b) + np.abs(a * db) + np.abs(da) + np.abs(db) + np.abs(expected)
        assert np.all(np.abs(got - expected) <= tol * (scale + 1e-3) + 1e-12), (
            label,
            f,
            g,
            x,
            got,
            expected,
        )


# -------------------------------------------------------------------------- depth


def test_ten_thousand_sins_compose_without_recursion() -> None:
    f = fad.comp(*[fad.sin] * 10_000)
    x, d = 1.0, 1.0
    for _ in range(10_000):
        d *= math.cos(x)
        x = math.sin(x)
    v, deriv = f(1.0)
    assert v == pytest.approx(x, rel=1e-12) and float(deriv) == pytest.approx(d, rel=1e-9)
    assert fad.derivative(f)(1.0) == pytest.approx(d, rel=1e-9)
    assert fad.grad(f)(1.0) == pytest.approx(d, rel=1e-9)
    arr = np.array([1.0, 0.5], dtype=np.float32)
    y, dy = f(arr)
    assert y.dtype == np.float32 and np.asarray(dy).dtype == np.float32
    assert float(y[0]) == pytest.approx(x, rel=1e-3)
    # A loop of >> too (shorter: each >> copies the steps so far, so the loop is
    # quadratic in its length; 10,000 takes seconds).
    g = fad.identity
    for _ in range(2_000):
        g = g >> fad.sin
    x, d = 1.0, 1.0
    for _ in range(2_000):
        d *= math.cos(x)
        x = math.sin(x)
    assert float(g(1.0).deriv) == pytest.approx(d, rel=1e-9)
