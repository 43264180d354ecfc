"""fad.laws and fad.strategies: every law holds on random pipelines, and each catches bugs.

The laws are only worth their name if they fail on wrong derivatives, so half of this
file plants bugs (a rule that is not the derivative, a pullback that is not the
transpose, a kink convention that differs between modes, an error only float32 shows)
and checks the right law catches each, with the shrunk pipeline in the message.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as hs

import fad
from fad import laws
from fad import strategies as st
from fad.prims._declare import POSITIVE, REGISTRY

# The built-in primitives, read before any test registers its own (planted bugs must
# not leak into other tests' pipelines).
BUILTINS = dict(REGISTRY)
PRIMS: list[Any] = [*BUILTINS.values(), fad.add, fad.multiply, fad.power, fad.affine, fad.clip]
DTYPES = [np.float64, np.float32]
SHAPES = [(), (3,)]

LAWS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLANTED = settings(
    max_examples=100, deadline=None, database=None, report_multiple_bugs=False, derandomize=True
)


@pytest.fixture
def registry() -> Iterator[None]:
    """Restore the primitive registry after a test that declares primitives."""
    saved = dict(REGISTRY)
    try:
        yield
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)


def pipelines(max_depth: int = 4) -> Any:
    return st.pipelines(max_depth=max_depth, prims=PRIMS)


# ---------------------------------------------------------- the laws hold everywhere


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@LAWS
@given(f=pipelines(), data=hs.data())
def test_derivatives_agree_with_finite_differences(
    f: fad.Fn[Any, Any], data: Any, dtype: Any, shape: Any
) -> None:
    x = data.draw(st.points(f, shape, dtype), label="x")
    laws.check_finite_differences(f, x)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@LAWS
@given(f=pipelines(3), data=hs.data())
def test_hessian_vector_products_agree_with_finite_differences(
    f: fad.Fn[Any, Any], data: Any, dtype: Any
) -> None:
    shape = data.draw(hs.sampled_from(SHAPES), label="shape")
    laws.check_finite_differences(f, data.draw(st.points(f, shape, dtype), label="x"), order=2)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@LAWS
@given(f=pipelines(), data=hs.data())
def test_reverse_mode_is_the_transpose_of_forward_mode(
    f: fad.Fn[Any, Any], data: Any, dtype: Any
) -> None:
    shape = data.draw(hs.sampled_from(SHAPES), label="shape")
    laws.check_jvp_vjp(f, data.draw(st.points(f, shape, dtype), label="x"))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@LAWS
@given(f=pipelines(), data=hs.data())
def test_forward_and_reverse_mode_agree(f: fad.Fn[Any, Any], data: Any, dtype: Any) -> None:
    shape = data.draw(hs.sampled_from(SHAPES), label="shape")
    laws.check_modes_agree(f, data.draw(st.points(f, shape, dtype), label="x"))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@LAWS
@given(f=pipelines(3), data=hs.data())
def test_forward_and_reverse_mode_agree_to_second_order(
    f: fad.Fn[Any, Any], data: Any, dtype: Any
) -> None:
    shape = data.draw(hs.sampled_from(SHAPES), label="shape")
    laws.check_modes_agree(f, data.draw(st.points(f, shape, dtype), label="x"), order=2)


@LAWS
@given(f=pipelines(3), data=hs.data())
def test_modes_agree_at_kinks_and_domain_edges(f: fad.Fn[Any, Any], data: Any) -> None:
    # nan, inf and the sign of zero must come out the same both ways (Haskell ad #109:
    # two modes disagreeing on diff cos 0).
    laws.check_modes_agree(f, data.draw(st.points(f, special=True), label="x"))


def test_modes_agree_when_infinite_terms_are_summed_in_two_orders() -> None:
    """log(x) * (exp(x) - log(x)) at 0: forward forms a·(b' - c') = (-∞)(-∞) = ∞,
    reverse a·b' - a·c' = -∞ + ∞ = nan. Both are the same sum of infinities; nan
    against a finite number still disagrees."""
    laws.check_modes_agree(fad.log * (fad.exp - fad.log), 0.0)
    bad = fad.primitive(
        lambda x: x, jvp=lambda x, t: t, vjp=lambda x, u: u * np.nan, name="nan_backward"
    )
    with pytest.raises(AssertionError, match="nan on one side only"):
        laws.check_modes_agree(bad, 1.0)


def test_modes_agree_says_nothing_of_outputs_whose_value_is_infinite() -> None:
    """1 / (exp(x) - (x + 1)) at 0 is 1/0: forward forms (1 - 1)·(-∞) = 0 by the 0·∞
    convention, reverse 1·(-∞) - 1·(-∞) = nan. Neither is a derivative of an infinite
    value, so the law compares neither (hypothesis found it in CI)."""
    f = (fad.exp - fad.add(1.0)) >> fad.power(-1.0)
    with np.errstate(divide="ignore"):
        laws.check_modes_agree(f, 0.0)
        laws.check_modes_agree(f, 0.0, order=2)
        laws.check_modes_agree(f, np.array([0.0, 0.5]))  # the finite entry still counts
    bad = fad.primitive(
        lambda x: x, jvp=lambda x, t: t, vjp=lambda x, u: u * np.nan, name="nan_backward"
    )
    with pytest.raises(AssertionError, match="nan on one side only"):
        laws.check_modes_agree(f + bad, np.array([0.0, 0.5]))


def test_modes_agree_on_the_sign_of_zero_derivatives() -> None:
    laws.check_modes_agree(fad.cos, 0.0)  # -0.0 both ways
    laws.check_modes_agree(fad.sin >> fad.cos, 0.0)


def test_the_laws_take_pointed_functions_and_tuple_points() -> None:
    def f(a: Any, b: Any) -> Any:
        return fad.log(a) * b - fad.sin(b)

    def g(p: Any) -> Any:
        return fad.exp(p[0]) * p[1]

    x = (2.0, np.array([0.5, 5.0]))
    for h in (f, g):
        laws.check_left_identity(h, x)
        laws.check_chain_rule(h, fad.tanh, x)
        laws.check_associativity(h, fad.tanh, fad.square, x)
        laws.check_jvp_vjp(h, x)
        laws.check_modes_agree(h, x)
        laws.check_finite_differences(h, x)
        laws.check_finite_differences(h, x, order=2)
        laws.check_modes_agree(h, x, order=2)


def test_the_laws_take_given_directions() -> None:
    x = np.array([0.5, 1.5], dtype=np.float32)
    t = np.array([1.0, -2.0], dtype=np.float32)
    laws.check_jvp_vjp(fad.sin >> fad.exp, x, t=t, ct=np.array([3.0, 0.5], dtype=np.float32))
    laws.check_finite_differences(fad.sin >> fad.exp, x, t=t)


# ---------------------------------------------------- planted bugs: the laws catch them


def wrong_sin() -> fad.Fn[Any, Any]:
    return fad.primitive(np.sin, deriv=np.sin, name="wrong_sin")  # d sin is cos


def test_finite_differences_catch_a_wrong_rule_with_a_readable_message(registry: None) -> None:
    with pytest.raises(AssertionError) as info:
        laws.check_finite_differences(wrong_sin(), 1.0, t=1.0)
    message = str(info.value)
    assert "the derivative of wrong_sin is wrong at x = 1.0" in message
    assert f"forward J t             = {float(np.sin(1.0))!r}" in message  # the rule's side
    assert "finite differences      = 0.54030230586" in message  # cos(1), the truth
    assert "tolerance" in message


def shrunk_function(message: str) -> str:
    """The function a law's message names (after ``of`` or ``for f =``)."""
    found = re.search(r"(?:derivative of|product of|mode of) (.*?) is wrong", message)
    found = found or re.search(r"for f = (.*?)(?:, s\(x\)|, g =| at x =)", message)
    assert found, message
    return found.group(1)


def primitives_in(text: str) -> int:
    return len(re.findall(r"[a-z_][a-z_0-9]*(?:\([^()]*\))?", text))


@pytest.mark.parametrize(
    ("law", "dtype"),
    [
        (lambda f, x: laws.check_finite_differences(f, x), np.float64),
        (lambda f, x: laws.check_finite_differences(f, x), np.float32),
        (lambda f, x: laws.check_finite_differences(f, x, order=2), np.float64),
    ],
    ids=["finite differences", "finite differences, float32", "finite differences, order 2"],
)
def test_a_wrong_rule_is_caught_and_shrunk_to_itself(
    registry: None, law: Callable[[Any, Any], None], dtype: Any
) -> None:
    wrong = wrong_sin()

    @PLANTED
    @given(f=st.pipelines(max_depth=4), data=hs.data())
    def holds(f: fad.Fn[Any, Any], data: Any) -> None:
        law(f, data.draw(st.points(f, (), dtype)))

    with pytest.raises(AssertionError) as info:
        holds()
    culprit = shrunk_function(str(info.value))
    assert "wrong_sin" in culprit, str(info.value)
    assert primitives_in(culprit) <= 3, culprit
    notes = "\n".join(getattr(info.value, "__notes__", []))
    # hypothesis names the shrunk case ("Falsifying example", or "Failing test case"
    # in newer versions); either way the culprit is printed as code.
    assert re.search(r"f=.*wrong_sin", notes), notes
    del wrong


def general_sin(vjp_sign: float) -> fad.Fn[Any, Any]:
    """sin as a general primitive whose pullback is ``vjp_sign`` times the transpose."""
    return fad.primitive(
        np.sin,
        jvp=lambda x, t: np.cos(x) * t,
        vjp=lambda x, ct: vjp_sign * np.cos(x) * ct,
        name="sin_with_vjp" if vjp_sign == 1 else "sin_with_wrong_vjp",
    )


def test_a_correct_general_primitive_passes() -> None:
    f = general_sin(1.0) >> fad.exp
    for x in (0.7, np.array([0.1, 2.0, -1.0])):
        laws.check_jvp_vjp(f, x)
        laws.check_modes_agree(f, x)
        laws.check_finite_differences(f, x)


@pytest.mark.parametrize(
    "law",
    [laws.check_jvp_vjp, laws.check_modes_agree, laws.check_finite_differences],
    ids=["jvp/vjp", "modes agree", "finite differences"],
)
def test_a_pullback_that_is_not_the_transpose_is_caught(law: Callable[[Any, Any], None]) -> None:
    wrong = general_sin(-1.0)

    @PLANTED
    @given(f=st.pipelines(max_depth=3, prims=[wrong, fad.exp, fad.tanh, fad.add]), data=hs.data())
    def holds(f: fad.Fn[Any, Any], data: Any) -> None:
        law(f, data.draw(st.points(f, data.draw(hs.sampled_from(SHAPES)))))

    with pytest.raises(AssertionError) as info:
        holds()
    culprit = shrunk_function(str(info.value))
    assert "sin_with_wrong_vjp" in culprit and primitives_in(culprit) <= 3, str(info.value)


def test_kink_conventions_that_differ_between_modes_are_caught() -> None:
    # relu whose forward rule says 0 at the kink and whose reverse rule says 1.
    relu = fad.primitive(
        lambda x: np.maximum(x, 0.0),
        jvp=lambda x, t: np.heaviside(x, 0.0) * t,
        vjp=lambda x, ct: np.heaviside(x, 1.0) * ct,
        name="inconsistent_relu",
    )
    laws.check_modes_agree(relu, 1.5)  # away from the kink the modes agree
    with pytest.raises(AssertionError, match="inconsistent_relu"):
        laws.check_modes_agree(relu, 0.0)

    @PLANTED
    @given(f=st.pipelines(max_depth=3, prims=[relu, fad.sin, fad.exp]), data=hs.data())
    def holds(f: fad.Fn[Any, Any], data: Any) -> None:
        laws.check_modes_agree(f, data.draw(st.points(f, special=True)))

    with pytest.raises(AssertionError, match="inconsistent_relu"):
        holds()


def test_an_error_only_float32_shows_is_caught(registry: None) -> None:
    def deriv(x: Any) -> Any:
        wrong = np.result_type(x) == np.float32
        return np.cos(x) * (1.01 if wrong else 1.0)

    sin32 = fad.primitive(np.sin, deriv=deriv, name="sin_wrong_in_float32")
    laws.check_finite_differences(sin32, np.array([0.5, 1.0]))
    with pytest.raises(AssertionError, match="sin_wrong_in_float32"):
        laws.check_finite_differences(sin32, np.array([0.5, 1.0], dtype=np.float32))


def test_a_rule_slightly_off_fails_by_default_and_passes_a_looser_tolerance(registry: None) -> None:
    off = fad.primitive(np.exp, deriv=lambda x: np.exp(x) * (1 + 1e-4), name="exp_off")
    with pytest.raises(AssertionError, match=r"rtol=1e-06"):
        laws.check_finite_differences(off, 0.5)
    laws.check_finite_differences(off, 0.5, rtol=1e-3)
    laws.check_finite_differences(off, np.float32(0.5))  # within float32's tolerance


def test_the_monad_laws_catch_a_function_that_is_not_a_function() -> None:
    # A Kleisli arrow must be a function of its input: this one counts its calls.
    calls = itertools.count()

    def impure(x: Any) -> Any:
        return fad.sin(x) * float(next(calls))

    with pytest.raises(AssertionError, match=r"left identity fails for f = .*impure.* at x = 0\.5"):
        laws.check_left_identity(impure, 0.5)
    with pytest.raises(AssertionError, match="associativity fails"):
        laws.check_associativity(fad.exp, impure, fad.tanh, 0.5)
    with pytest.raises(AssertionError, match="chain rule fails"):
        laws.check_chain_rule(impure, fad.tanh, 0.5)


def test_a_failure_message_shows_the_function_the_point_both_sides_and_the_error() -> None:
    calls = itertools.count(1)

    def drifting(x: Any) -> Any:
        return fad.exp(x) * float(next(calls))

    with pytest.raises(AssertionError) as info:
        laws.check_left_identity(drifting, np.array([0.0, 1.0], dtype=np.float32))
    message = str(info.value)
    assert "drifting" in message
    assert "x = [0., 1.] (float32, shape (2,))" in message
    assert re.search(r"bind\(unit\(x\), f\)\.value = \[1\.\s*, 2\.71828\d*\] \(float32", message)
    assert re.search(r"f\(x\)\.value = \[2\.\s*, 5\.43656\d*\] \(float32", message)
    assert "|difference| = 1 > tolerance" in message


def test_check_finite_differences_refuses_a_point_outside_the_domain() -> None:
    with pytest.raises(ValueError, match="not finite"):
        laws.check_finite_differences(fad.log, -1.0)


# ------------------------------------- false alarms benchmarks/mutation.py once raised
# Correct pipelines on which a law failed (python benchmarks/mutation.py --skip-mutants
# --correct 10000 --seed 7 found both, as f, g, h and a point of f >> g >> h; the
# finite-difference laws are run on f >> g).

# cos(1/x**2) turns about ten times between the largest steps and the smallest: the
# tables started at large steps agreed with each other on a wrong value, and with one
# of small steps whose error estimate was large enough to agree with anything.
OSCILLATING = (fad.power(2.0) >> fad.reciprocal, (fad.log / fad.add(0.0)) / fad.cos)
OSCILLATING_X = -0.14386999607086182


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_a_fast_oscillation_does_not_fool_finite_differences(dtype: Any) -> None:
    f, g = OSCILLATING
    x = dtype(OSCILLATING_X)
    laws.check_finite_differences(f >> g, x)
    laws.check_finite_differences(f >> g, x, order=2)


def test_a_wrong_rule_is_still_caught_where_the_function_oscillates(registry: None) -> None:
    # In float64: float32's allowance for rounding the point, rtol * |f''|, is some
    # 900 here (|f''| is about 1e6), more than the wrong rule's error.
    f, _ = OSCILLATING
    wrong_cos = fad.primitive(np.cos, deriv=np.sin, name="wrong_cos")  # d cos is -sin
    bad = f >> (fad.log / fad.add(0.0)) / wrong_cos
    with pytest.raises(AssertionError, match="wrong_cos"):
        laws.check_finite_differences(bad, OSCILLATING_X)
    with pytest.raises(AssertionError, match="wrong_cos"):
        laws.check_finite_differences(bad, OSCILLATING_X, order=2)


# exp(5.2) * 5.2 feeds sin, so f >> g turns thousands of times faster than x, which no
# step of finite differences resolves; h is constant where relu is 0, and hid that from
# points(f >> g >> h), which only looked at the last value.
STEEP = (
    fad.erf + fad.power(2.0),
    (fad.relu * (-1.0 * fad.exp)) >> (-2.92 / fad.sin),
    (fad.relu / fad.affine(2.59, -0.0)) >> fad.tanh,
)


def test_points_of_a_composition_are_smooth_for_each_step() -> None:
    f, g, h = STEEP
    fg = f >> g
    steep = float(np.float32(-2.4938700199127197))

    @settings(max_examples=60, deadline=None, database=None)
    @given(data=hs.data())
    def smooth(data: Any) -> None:
        dtype = data.draw(hs.sampled_from(DTYPES), label="dtype")
        x = data.draw(st.points(fg >> h, (), dtype), label="x")
        assert float(x) != steep
        d = 1e-6 * max(1.0, abs(float(x)))
        slope = abs(fg.value(float(x) + d) - fg.value(float(x) - d)) / (2 * d)
        assert slope <= 1e4, (x, slope)
        laws.check_finite_differences(fg, x)
        laws.check_finite_differences(fg, x, order=2)

    smooth()
    # The point itself is inside every domain: the old rule's choice.
    x = np.array([steep])
    assert st.walk(fg >> h, x)[1][0]


# -------------------------------------------------------------------- the strategies


@LAWS
@given(f=pipelines(6), data=hs.data())
def test_points_lie_inside_every_steps_domain(f: fad.Fn[Any, Any], data: Any) -> None:
    dtype = data.draw(hs.sampled_from(DTYPES))
    x = data.draw(st.points(f, (4,), dtype))
    assert x.dtype == dtype and x.shape == (4,)
    assert np.all(st.walk(f, x.astype(np.float64))[1]), (f, x)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # nothing leaves a domain
        y = f.value(x)
    assert np.all(np.isfinite(y)) and np.all(np.abs(y) <= st.BOUND)


@LAWS
@given(f=pipelines(), data=hs.data())
def test_scalar_points_are_python_floats_or_float32(f: fad.Fn[Any, Any], data: Any) -> None:
    assert type(data.draw(st.points(f))) is float
    assert type(data.draw(st.points(f, dtype=np.float32))) is np.float32


def test_points_respect_a_composed_domain() -> None:
    @LAWS
    @given(st.points(fad.sin >> fad.log), st.points(fad.log >> fad.log >> fad.log))
    def inside(x: float, y: float) -> None:
        assert np.sin(x) > 0
        assert np.log(y) > 1

    inside()


def test_points_refuse_a_function_without_a_domain() -> None:
    with pytest.raises(ValueError, match="no input"):
        st.points(fad.sin >> fad.add(-2.0) >> fad.log)  # sin(x) - 2 > 0 never holds


def test_pipelines_shrink_to_short_readable_reprs() -> None:
    quiet = settings(database=None, max_examples=500, derandomize=True)
    assert repr(find(pipelines(), lambda f: "log" in repr(f), settings=quiet)) == "log"
    assert repr(find(pipelines(), lambda f: "power" in repr(f), settings=quiet)) == "power(2.0)"
    two = find(pipelines(), lambda f: len(f.steps) >= 2, settings=quiet)
    assert repr(two) == "exp >> exp"


def test_pipelines_draw_every_kind_of_step() -> None:
    seen: set[str] = set()
    features = [
        "add(",
        "multiply(",
        "affine(",
        "clip(",
        "power(",
        " + ",
        " - ",
        " * ",
        " / ",
        " ** ",
    ]

    @settings(max_examples=300, deadline=None, database=None, phases=[Phase.generate])
    @given(pipelines(6))
    def draw(f: fad.Fn[Any, Any]) -> None:
        text = repr(f)
        seen.update(n for n in features if n in text)
        seen.update(n for n in BUILTINS if re.search(rf"\b{n}\b", text))

    draw()
    assert seen == set(features) | set(BUILTINS)


def test_user_primitives_take_part_with_their_domain(registry: None) -> None:
    cube_root_log = fad.primitive(
        lambda x: np.log(x) / 3.0,
        deriv=lambda x: 1.0 / (3.0 * x),
        name="third_log",
        domain=POSITIVE,
    )
    found = find(
        st.pipelines(),
        lambda f: "third_log" in repr(f),
        settings=settings(database=None, max_examples=2000),
    )
    assert repr(found) == "third_log"

    @LAWS
    @given(st.points(cube_root_log))
    def positive(x: float) -> None:
        assert x > 0

    positive()
    del cube_root_log


def test_points_of_a_pointed_function_are_found_by_evaluating_it() -> None:
    def f(x: Any) -> Any:
        return fad.log(x - 2.0)

    @LAWS
    @given(st.points(f))
    def above_two(x: float) -> None:
        assert x > 2.0

    above_two()


def test_arrays_have_the_shape_and_dtype_asked_for() -> None:
    @LAWS
    @given(st.arrays((2, 3), np.float32))
    def shaped(x: Any) -> None:
        assert x.shape == (2, 3) and x.dtype == np.float32 and np.all(np.abs(x) <= st.LIMIT)

    shaped()


def test_strategies_without_hypothesis_name_the_test_extra() -> None:
    code = "import sys; sys.modules['hypothesis'] = None\nimport fad.strategies"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "fad[test]" in result.stderr, result.stderr
