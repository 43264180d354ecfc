"""Pointed style, numpy on fad values, vector primitives, custom rules, errors (issue 6).

Properties are stated over random programs drawn by hypothesis: the same expression built
pointed (``fad.sin(a) * b``), with untouched numpy (``np.sin(a) * b``) and point-free
(``(fst >> fad.sin) * snd``) must give equal values and derivatives; every vector primitive
agrees with central finite differences over random shapes. Fixed examples are kept for
regressions, above all the table of "no NaN where mathematics gives a number" cases taken
from the issue trackers of JAX, autograd and PyTorch, each named for its thread.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

import fad
from _numeric import close, flat, leaves, numerical_jacobian, value_of
from fad import fst, snd

# (rtol, atol) by what is compared: two exact computations of one number in a different
# order, or an exact derivative against float64 finite differences.
EXACT = {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-4, 1e-5)}
FINITE_DIFF = {np.dtype(np.float64): (1e-6, 1e-8), np.dtype(np.float32): (2e-3, 1e-4)}
F64 = np.dtype(np.float64)

PROPERTY = settings(max_examples=30, deadline=None)
seeds = hs.integers(0, 2**32 - 1)


# ------------------------------------------------------------------------------ helpers


def check_against_finite_differences(f: Callable[..., Any], x: np.ndarray, what: str) -> None:
    """jacfwd and jacrev of f at x both agree with finite differences."""
    expected = numerical_jacobian(f, x)
    for jac in (fad.jacfwd, fad.jacrev):
        got = jac(f)(x)
        assert np.shape(got) == expected.shape, f"{what} {jac.__name__}: shape {np.shape(got)}"
        close(got, expected, FINITE_DIFF[F64], f"{what} ({jac.__name__})")


# --------------------------------------- random programs: pointed, numpy and point-free

UNARY = {
    # name: (fad pointed, untouched numpy, point-free)
    "sin": (fad.sin, np.sin, fad.sin),
    "tanh": (fad.tanh, np.tanh, fad.tanh),
    "sigmoid": (fad.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)), fad.sigmoid),
    "square": (fad.square, np.square, fad.square),
    "exp_tanh": (lambda x: fad.exp(fad.tanh(x)), lambda x: np.exp(np.tanh(x)), fad.tanh >> fad.exp),
    "log1p_square": (lambda x: fad.log1p(x * x), lambda x: np.log1p(x**2),
                     fad.square >> fad.log1p),
    "softplus": (fad.softplus, lambda x: np.log1p(np.exp(x)), fad.softplus),
    "affine": (lambda x: 0.5 * x - 1.0, lambda x: 0.5 * x - 1.0, fad.affine(0.5, -1.0)),
}  # fmt: skip
BINARY = {
    "+": (lambda a, b: a + b, lambda a, b: a + b, lambda f, g: f + g),
    "-": (lambda a, b: a - b, lambda a, b: np.subtract(a, b), lambda f, g: f - g),
    "*": (lambda a, b: a * b, lambda a, b: np.multiply(a, b), lambda f, g: f * g),
    "/": (lambda a, b: a / (1.0 + b * b), lambda a, b: a / (1.0 + np.square(b)),
          lambda f, g: f / (1.0 + g * g)),
}  # fmt: skip

expressions = hs.recursive(
    hs.sampled_from(["a", "b"]),
    lambda kids: (
        hs.tuples(hs.sampled_from(sorted(UNARY)), kids)
        | hs.tuples(hs.sampled_from(sorted(BINARY)), kids, kids)
    ),
    max_leaves=8,
)


def realise(expr: Any, how: int) -> Any:
    """The expression as a pointed function of (a, b) (how 0: fad, 1: numpy) or an Fn (2)."""
    if isinstance(expr, str):
        if how == 2:
            return fst if expr == "a" else snd
        return (lambda a, b: a) if expr == "a" else (lambda a, b: b)
    if len(expr) == 2:
        op, inner = UNARY[expr[0]][how], realise(expr[1], how)
        return inner >> op if how == 2 else (lambda a, b: op(inner(a, b)))
    op, left, right = BINARY[expr[0]][how], realise(expr[1], how), realise(expr[2], how)
    return op(left, right) if how == 2 else (lambda a, b: op(left(a, b), right(a, b)))


def show(expr: Any) -> str:
    if isinstance(expr, str):
        return expr
    if len(expr) == 2:
        return f"{expr[0]}({show(expr[1])})"
    return f"({show(expr[1])} {expr[0]} {show(expr[2])})"


def three_ways(expr: Any) -> tuple[Any, Any, Any]:
    """Scalar functions of (a, b): pointed with fad names, with numpy, and point-free."""
    pointed, numpy_, free = (realise(expr, how) for how in range(3))
    return (
        lambda a, b: fad.sum(pointed(a, b)),
        lambda a, b: np.sum(numpy_(a, b)),
        free >> fad.sum,
    )


def ab(n: int, seed: int, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.5, 1.5, n).astype(dtype), rng.uniform(-1.5, 1.5, n).astype(dtype)


@PROPERTY
@given(expressions, hs.integers(1, 4), seeds)
def test_pointed_numpy_and_point_free_programs_agree(expr: Any, n: int, seed: int) -> None:
    pointed, numpy_, free = three_ways(expr)
    a, b = ab(n, seed)
    what = show(expr)
    tols = EXACT[F64]
    value = free.value((a, b))
    close(value_of(fad.lift(pointed), (a, b)), value, tols, f"value of {what} (pointed)")
    close(value_of(fad.lift(numpy_), (a, b)), value, tols, f"value of {what} (numpy)")
    g = fad.grad(free)((a, b))
    close(fad.grad(pointed, argnums=(0, 1))(a, b), g, tols, f"grad of {what} (pointed)")
    close(fad.grad(numpy_, argnums=(0, 1))(a, b), g, tols, f"grad of {what} (numpy)")
    close(fad.grad(fad.lift(pointed))((a, b)), g, tols, f"grad of lift({what})")
    close(fad.jacfwd(free)((a, b)), g, tols, f"jacfwd of {what}")
    close(fad.jacfwd(numpy_, argnums=(0, 1))(a, b), g, tols, f"jacfwd of {what} (numpy)")


@PROPERTY
@given(expressions, seeds)
def test_pointed_and_point_free_second_derivatives_agree(expr: Any, seed: int) -> None:
    pointed, numpy_, free = three_ways(expr)
    a, b = ab(2, seed)
    h = fad.hessian(free)((a, b))
    close(fad.hessian(pointed, argnums=(0, 1))(a, b), h, EXACT[F64], show(expr))
    close(fad.hessian(numpy_, argnums=(0, 1))(a, b), h, EXACT[F64], show(expr))
    # And against finite differences of the gradient, a plain function of 4 numbers.
    blocks = [[h[0][0], h[0][1]], [h[1][0], h[1][1]]]
    dense = np.block(blocks)
    grad = fad.grad(free)
    fd = numerical_jacobian(lambda z: np.concatenate(grad((z[:2], z[2:]))), np.concatenate([a, b]))
    close(dense, fd, FINITE_DIFF[F64], f"hessian of {show(expr)} vs finite differences")


@PROPERTY
@given(expressions, seeds)
def test_random_programs_agree_with_finite_differences(expr: Any, seed: int) -> None:
    _, numpy_, _ = three_ways(expr)
    a, b = ab(3, seed)
    check_against_finite_differences(lambda x: numpy_(x[:3], x[3:]), np.concatenate([a, b]),
                                     show(expr))  # fmt: skip


@PROPERTY
@given(expressions, hs.integers(1, 3), seeds)
def test_float32_programs_stay_float32(expr: Any, n: int, seed: int) -> None:
    _, numpy_, free = three_ways(expr)
    a, b = ab(n, seed, np.float32)
    value, (ga, gb) = fad.value_and_grad(numpy_, argnums=(0, 1))(a, b)
    assert np.result_type(value) == np.float32, show(expr)
    assert ga.dtype == gb.dtype == np.float32, show(expr)
    g64 = fad.grad(free)((a.astype(np.float64), b.astype(np.float64)))
    close((ga, gb), g64, FINITE_DIFF[np.dtype(np.float32)], show(expr))
    j = fad.jacfwd(free)((a, b))
    assert all(np.result_type(leaf) == np.float32 for leaf in leaves(j))


def textbook(x1: Any, x2: Any) -> Any:
    return fad.log(x1) + x1 * x2 - fad.sin(x2)


def test_textbook_in_pointed_style() -> None:
    assert fad.grad(textbook, argnums=(0, 1))(2.0, 5.0) == (5.5, 1.7163378145367738)
    assert fad.grad(textbook)(2.0, 5.0) == 5.5  # the plain 5.0 is a constant
    assert fad.lift(textbook).value((2.0, 5.0)) == 11.652071455223084
    free = (fst >> fad.log) + fst * snd - (snd >> fad.sin)
    value, d = fad.lift(textbook)((2.0, 5.0))
    free_value, free_d = free((2.0, 5.0))
    assert value == free_value
    assert [float(v) for v in 1.0 @ d] == [float(v) for v in 1.0 @ free_d]


# -------------------------------------------------------- untouched numpy functions


W = np.random.default_rng(7).normal(size=(3, 2))
V = np.random.default_rng(8).normal(size=(2, 3))

NUMPY_PROGRAMS = [
    ("np.sin", lambda x: np.sin(x), (3,)),
    ("np.exp", lambda x: np.exp(x), (2, 2)),
    ("np.tanh", lambda x: np.tanh(x), (3,)),
    ("np.log", lambda x: np.log(np.abs(x) + 0.5), (3,)),
    ("np.sqrt", lambda x: np.sqrt(x * x + 0.5), (3,)),
    ("np.power", lambda x: np.power(x, 3) + x**2, (3,)),
    ("np.sum", lambda x: np.sum(x * x), (2, 3)),
    ("np.sum-axis", lambda x: np.sum(x, axis=0), (2, 3)),
    ("ndarray.sum", lambda x: (x * x).sum(axis=1), (2, 3)),
    ("np.mean", lambda x: np.mean(x * x, axis=1), (2, 3)),
    ("x @ W", lambda x: x @ W, (3,)),
    ("X @ W", lambda x: x @ W, (2, 3)),
    ("V @ x", lambda x: V @ x, (3,)),
    ("np.dot", lambda x: np.dot(x, W) + np.dot(x, x), (3,)),
    ("np.where", lambda x: np.where(x > 0, x**2, -x), (4,)),
    ("np.maximum", lambda x: np.maximum(x, 0.1 * x), (4,)),
    ("np.concatenate", lambda x: np.concatenate([x, x**2]), (3,)),
    ("np.stack", lambda x: np.stack([x, np.cos(x)], axis=1), (3,)),
    ("reshape-.T", lambda x: x.reshape(3, 2).T @ np.arange(3.0), (6,)),
    ("np.transpose", lambda x: np.transpose(x * x), (2, 3)),
    ("np.reshape", lambda x: np.reshape(x, (3, 2)) ** 2, (2, 3)),
    ("slicing", lambda x: x[1:, ::2] * 2.0, (3, 4)),
    ("fancy-indexing", lambda x: x[[0, 2, 2]] * x[1], (3,)),
    ("newaxis-indexing", lambda x: x[None, :, 1] * x[:, None, 0], (3, 2)),
    ("np.linalg.norm", lambda x: np.linalg.norm(x), (3,)),
    ("np.max", lambda x: np.max(x), (4,)),
    ("np.outer", lambda x: np.outer(x, np.sin(x)), (3,)),
    ("np.expand_dims-squeeze", lambda x: np.squeeze(np.expand_dims(x, 0) * 2.0), (3,)),
    ("np.abs", lambda x: np.abs(x), (3,)),
]


@pytest.mark.parametrize(
    "fn, shape", [p[1:] for p in NUMPY_PROGRAMS], ids=[p[0] for p in NUMPY_PROGRAMS]
)
@settings(max_examples=10, deadline=None)
@given(seed=seeds)
def test_untouched_numpy_is_differentiated(
    fn: Callable[[Any], Any], shape: tuple[int, ...], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    # Entries at least 0.1 apart and away from 0: no ties or kinks within the FD step.
    size = int(np.prod(shape))
    grid = (rng.permutation(size) - size / 2 + 0.5) * 0.4
    x = (grid + rng.uniform(-0.05, 0.05, size)).reshape(shape)
    x = np.where(np.abs(x) < 0.1, x + 0.3, x)
    close(value_of(fn, x), fn(x), EXACT[F64], "value equals numpy's own")
    check_against_finite_differences(fn, x, "numpy program")


# ------------------------------------------------------------------- broadcasting


@PROPERTY
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), seeds)
def test_broadcasting_reduces_gradients_to_operand_shapes(shapes: Any, seed: int) -> None:
    sa, sb = shapes.input_shapes
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-1, 1, sa), rng.uniform(-1, 1, sb)

    def f(a: Any, b: Any) -> Any:
        return np.sum(np.sin(a * b + a) * (b - 0.5))

    ga, gb = fad.grad(f, argnums=(0, 1))(a, b)
    assert np.shape(ga) == sa and np.shape(gb) == sb
    na = numerical_jacobian(lambda a: f(a, b), a)
    nb = numerical_jacobian(lambda b: f(a, b), b)
    close(ga, na, FINITE_DIFF[F64], "d/da")
    close(gb, nb, FINITE_DIFF[F64], "d/db")
    fa, fb = fad.jacfwd(f, argnums=(0, 1))(a, b)
    close(fa, ga, EXACT[F64], "forward d/da")
    close(fb, gb, EXACT[F64], "forward d/db")


def test_scalar_times_vector_and_row_plus_matrix() -> None:
    x = np.array([1.0, 2.0, 3.0])
    g_scalar, g_vector = fad.grad(lambda s, v: np.sum(s * v), argnums=(0, 1))(2.0, x)
    assert g_scalar == 6.0 and type(g_scalar) is float
    close(g_vector, [2.0, 2.0, 2.0], EXACT[F64])
    row, matrix = np.ones((1, 3)), np.arange(6.0).reshape(2, 3)
    g_row, g_matrix = fad.grad(lambda r, m: np.sum((r + m) ** 2), argnums=(0, 1))(row, matrix)
    assert g_row.shape == (1, 3) and g_matrix.shape == (2, 3)
    close(g_row, np.sum(2 * (row + matrix), axis=0, keepdims=True), EXACT[F64])
    close(g_matrix, 2 * (row + matrix), EXACT[F64])


# ------------------------------------------------------------------------- indexing


FROM_OUTPUT = [
    name
    for name, f in fad.prims._declare.REGISTRY.items()
    if not fad.prims._declare.declaration(f).reads_x
]


@pytest.mark.parametrize("name", FROM_OUTPUT)
def test_rules_that_read_only_the_value_in_every_mode(name: str) -> None:
    """tanh, sigmoid, sqrt... record their value, not a coefficient; the derivative read
    back in every mode - a pass, a kept map, its transpose, forward Jacobians, a second
    derivative, fused behind another step or not - is the rule's closed form."""
    rec = fad.prims._declare.declaration(fad.prims._declare.REGISTRY[name])
    x = np.linspace(0.2, 1.4, 7)
    y = rec.kernel(x)
    slope = rec.rule(x, y)

    def f(x: Any) -> Any:
        return np.sum(rec.run(x + 0.0) * 3.0)

    np.testing.assert_allclose(fad.grad(f)(x), 3.0 * slope, rtol=1e-12)
    _, d = fad.linearize(lambda x: rec.run(x + 0.0), x)
    assert type(d._nodes[0]).__name__ == "FromOutput"  # the path under test
    np.testing.assert_allclose(d @ np.ones(7), slope, rtol=1e-12)
    np.testing.assert_allclose(d.T @ np.ones(7), slope, rtol=1e-12)
    np.testing.assert_allclose(fad.jacobian(lambda x: rec.run(x + 0.0))(x), np.diag(slope))
    np.testing.assert_allclose(fad.jacfwd(f)(x), 3.0 * slope, rtol=1e-12)
    fused = fad.grad(lambda x: np.sum(rec.run(rec.run(x + 0.0))))(x)
    np.testing.assert_allclose(fused, rec.rule(y, rec.kernel(y)) * slope, rtol=1e-12)
    second = fad.hessian(f)(x)
    close(np.diag(second), numerical_jacobian(fad.grad(f), x).diagonal(), (1e-6, 1e-8), name)


@pytest.mark.parametrize("name", FROM_OUTPUT)
def test_a_value_reading_rule_on_a_sum_passes_its_cotangent_to_every_term(name: str) -> None:
    """tanh(a + b) records the sum's terms as its parents; read back in every mode, and
    with another step fused behind it, it is the closed form."""
    rec = fad.prims._declare.declaration(fad.prims._declare.REGISTRY[name])
    x = np.linspace(0.2, 0.7, 6)
    u = x + x[::-1]
    slope = rec.rule(u, rec.kernel(u))
    expected = 3.0 * (slope + slope[::-1])

    def f(x: Any) -> Any:
        return np.sum(rec.run(x + x[::-1]) * 3.0)

    np.testing.assert_allclose(fad.grad(f)(x), expected, rtol=1e-12)
    np.testing.assert_allclose(fad.jacfwd(f)(x), expected, rtol=1e-12)
    _, d = fad.linearize(lambda x: rec.run(x + x[::-1]), x)
    assert type(d._nodes[0]).__name__ == "FromOutput" and len(d._nodes[0].parents) == 2
    np.testing.assert_allclose(np.ones(6) @ d, slope + slope[::-1], rtol=1e-12)
    np.testing.assert_allclose(d @ np.ones(6), 2.0 * slope, rtol=1e-12)

    def g(x: Any) -> Any:
        return np.sum(np.sin(rec.run(x + x[::-1])))

    close(fad.grad(g)(x), fad.jacfwd(g)(x), (1e-12, 1e-14), "fused behind it")


@PROPERTY
@given(hs.integers(1, 5), hs.integers(1, 8), seeds)
def test_repeated_integer_indices_accumulate(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    idx, w, x = rng.integers(0, n, m), rng.normal(size=m), rng.normal(size=n)
    expected = np.zeros(n)
    np.add.at(expected, idx, w)
    close(fad.grad(lambda x: np.sum(x[idx] * w))(x), expected, EXACT[F64], f"x[{idx}]")
    close(fad.jacfwd(lambda x: np.sum(x[idx] * w))(x), expected, EXACT[F64], "forward")
    # Squared: each use contributes 2 x[i] w, so the repeats must add, not overwrite.
    expected_sq = np.zeros(n)
    np.add.at(expected_sq, idx, 2 * x[idx] * w)
    close(fad.grad(lambda x: np.sum(x[idx] ** 2 * w))(x), expected_sq, EXACT[F64])


@PROPERTY
@given(hs.integers(2, 6), seeds, hs.sampled_from([np.float64, np.float32]))
def test_a_full_sum_of_an_index_puts_ones_at_its_places(n: int, seed: int, dtype: Any) -> None:
    # The sum's cotangent reaches the index as one number (a Fill), written at the index
    # without being broadcast first; the gradient keeps the input's dtype.
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(dtype)
    for index in (rng.integers(0, n, 2 * n), slice(1, None), slice(None, None, -2), n - 1, x > 0):
        expected = np.zeros(n, dtype)
        np.add.at(expected, index, 1.0)
        g = fad.grad(lambda x, index=index: np.sum(x[index]) * 2.0)(x)
        assert g.dtype == dtype
        close(g, 2.0 * expected, EXACT[F64], f"x[{index}]")
        close(fad.jacfwd(lambda x, index=index: np.sum(x[index]))(x), expected, EXACT[F64])


def test_repeated_indices_in_two_dimensions_and_in_a_loop() -> None:
    x = np.arange(6.0).reshape(2, 3)
    rows, cols = np.array([0, 0, 1, 0]), np.array([1, 1, 2, 1])
    g = fad.grad(lambda x: np.sum(x[rows, cols]))(x)
    close(g, [[0.0, 3.0, 0.0], [0.0, 0.0, 1.0]], EXACT[F64])

    def loop(x: Any) -> Any:
        total = 0.0
        for i in [0, 1, 1, 2, 1]:
            total = total + x[i] * x[i]
        return total

    close(fad.grad(loop)(np.array([1.0, 2.0, 3.0])), [2.0, 12.0, 6.0], EXACT[F64])


# ------------------------------------------------------------------- control flow


def piecewise(x: Any) -> Any:
    if x > 0:  # noqa: SIM108  (the point is a Python if statement on a traced value)
        y = x * x
    else:
        y = -3.0 * x
    for _ in range(3):
        y = y + fad.sin(x)
    while y < 100.0:
        y = 2.0 * y
    return y


def piecewise_derivative(x: float) -> float:
    y, dy = (x * x, 2 * x) if x > 0 else (-3 * x, -3.0)
    y, dy = y + 3 * math.sin(x), dy + 3 * math.cos(x)
    while y < 100.0:
        y, dy = 2 * y, 2 * dy
    return dy


@given(hs.floats(0.2, 5.0) | hs.floats(-5.0, -0.2))
def test_python_if_for_and_while_read_primal_values(x: float) -> None:
    expected = piecewise_derivative(x)
    assert fad.grad(piecewise)(x) == pytest.approx(expected, rel=1e-12)
    assert fad.derivative(piecewise)(x) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ vector primitives


def distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random entries at least 0.3 apart: no ties within a finite-difference step."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * 0.4 + rng.uniform(-0.05, 0.05, size)).reshape(
        shape
    )


def axis_for(data: hs.DataObject, ndim: int) -> Any:
    return data.draw(hs.none() | hs.integers(-ndim, ndim - 1), label="axis")


def shape_for(data: hs.DataObject, min_dims: int = 1, max_dims: int = 3) -> tuple[int, ...]:
    return data.draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, max_side=4))


def case_sum(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = rng.normal(size=shape_for(data))
    axis = axis_for(data, x.ndim)
    return fad.sum(axis=axis), x, lambda v: np.sum(v, axis=axis)


def case_pointed_sum(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = rng.normal(size=shape_for(data))
    axis = axis_for(data, x.ndim)
    return (lambda v: fad.sum(v * v, axis=axis)), x, lambda v: np.sum(v * v, axis=axis)


def case_mean(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = rng.normal(size=shape_for(data))
    axis = axis_for(data, x.ndim)
    return fad.mean(axis=axis), x, lambda v: np.mean(v, axis=axis)


def case_dot(data: hs.DataObject, rng: np.random.Generator) -> Any:
    shape = shape_for(data, 1, 2)
    w = rng.normal(size=shape[-1])
    return fad.dot(w), rng.normal(size=shape), lambda v: np.dot(v, w)


def case_matmul(data: hs.DataObject, rng: np.random.Generator) -> Any:
    shape = shape_for(data, 1, 2)
    w = rng.normal(size=(shape[-1], data.draw(hs.integers(1, 3))))
    return fad.matmul(w), rng.normal(size=shape), lambda v: v @ w


def case_norm(data: hs.DataObject, rng: np.random.Generator) -> Any:
    return fad.norm, rng.normal(size=shape_for(data)) + 0.5, lambda v: np.sqrt(np.sum(v * v))


def case_logsumexp(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = rng.normal(size=shape_for(data)) * 3
    axis = axis_for(data, x.ndim)
    return fad.logsumexp(axis=axis), x, lambda v: np.log(np.sum(np.exp(v), axis=axis))


def case_softmax(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = rng.normal(size=shape_for(data)) * 3
    axis = data.draw(hs.integers(-x.ndim, x.ndim - 1))
    ref = lambda v: np.exp(v) / np.sum(np.exp(v), axis=axis, keepdims=True)  # noqa: E731
    return fad.softmax(axis=axis), x, ref


def case_default_softmax(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = rng.normal(size=shape_for(data)) * 3
    return fad.softmax, x, lambda v: np.exp(v) / np.sum(np.exp(v), axis=-1, keepdims=True)


def case_mse(data: hs.DataObject, rng: np.random.Generator) -> Any:
    shape = shape_for(data)
    target = rng.normal(size=shape)
    return fad.mse(target), rng.normal(size=shape), lambda v: np.mean((v - target) ** 2)


def case_cross_entropy(data: hs.DataObject, rng: np.random.Generator) -> Any:
    batch, classes = data.draw(hs.integers(1, 4)), data.draw(hs.integers(2, 4))
    labels = rng.integers(0, classes, batch)
    x = rng.normal(size=(batch, classes)) * 2

    def ref(v: np.ndarray) -> Any:
        logp = v - np.log(np.sum(np.exp(v), axis=-1, keepdims=True))
        return -np.mean(logp[np.arange(batch), labels])

    return fad.cross_entropy(labels), x, ref


def case_cross_entropy_one_sample(data: hs.DataObject, rng: np.random.Generator) -> Any:
    classes = data.draw(hs.integers(2, 5))
    label = int(rng.integers(0, classes))
    x = rng.normal(size=classes)
    return fad.cross_entropy(label), x, lambda v: np.log(np.sum(np.exp(v))) - v[label]


def case_max(data: hs.DataObject, rng: np.random.Generator) -> Any:
    return fad.max, distinct(rng, shape_for(data)), np.max


def case_min(data: hs.DataObject, rng: np.random.Generator) -> Any:
    return fad.min, distinct(rng, shape_for(data)), np.min


def case_max_axis(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = distinct(rng, shape_for(data))
    axis = data.draw(hs.integers(-x.ndim, x.ndim - 1))
    return fad.max(axis=axis), x, lambda v: np.max(v, axis=axis)


def case_reshape(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = rng.normal(size=shape_for(data))
    shape = data.draw(hs.sampled_from([(-1,), x.shape[::-1], (1, -1), (x.size, 1)]))
    return fad.reshape(shape=shape), x, lambda v: np.reshape(v, shape)


def case_transpose(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = rng.normal(size=shape_for(data))
    axes = tuple(data.draw(hs.permutations(range(x.ndim))))
    return fad.transpose(axes=axes), x, lambda v: np.transpose(v, axes)


def case_concatenate(data: hs.DataObject, rng: np.random.Generator) -> Any:
    shape = shape_for(data)
    axis = data.draw(hs.integers(0, len(shape) - 1))
    split = data.draw(hs.integers(0, shape[axis]))
    x = rng.normal(size=shape)

    def f(v: Any) -> Any:
        first, second = v[(slice(None),) * axis + (slice(None, split),)], v
        return fad.concatenate([first * 2.0, np.sin(second)], axis=axis)

    def ref(v: np.ndarray) -> Any:
        first = v[(slice(None),) * axis + (slice(None, split),)]
        return np.concatenate([first * 2.0, np.sin(v)], axis=axis)

    return f, x, ref


def case_stack(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = rng.normal(size=shape_for(data, 1, 2))
    axis = data.draw(hs.integers(-x.ndim - 1, x.ndim))
    return (
        lambda v: fad.stack([v, v * v, np.cos(v)], axis=axis),
        x,
        lambda v: np.stack([v, v * v, np.cos(v)], axis=axis),
    )


def case_where(data: hs.DataObject, rng: np.random.Generator) -> Any:
    x = rng.normal(size=shape_for(data))
    mask = rng.random(x.shape) < 0.5
    return (
        lambda v: fad.where(mask, v * v, np.sin(v)),
        x,
        lambda v: np.where(mask, v * v, np.sin(v)),
    )


VECTOR_PRIMITIVES = {
    "sum": case_sum, "sum-pointed": case_pointed_sum, "mean": case_mean, "dot": case_dot,
    "matmul": case_matmul, "norm": case_norm, "logsumexp": case_logsumexp,
    "softmax": case_softmax, "softmax-default-axis": case_default_softmax, "mse": case_mse,
    "cross_entropy": case_cross_entropy, "cross_entropy-one-sample": case_cross_entropy_one_sample,
    "max": case_max, "min": case_min, "max-axis": case_max_axis, "reshape": case_reshape,
    "transpose": case_transpose, "concatenate": case_concatenate, "stack": case_stack,
    "where": case_where,
}  # fmt: skip


@pytest.mark.parametrize("case", VECTOR_PRIMITIVES.values(), ids=VECTOR_PRIMITIVES.keys())
@settings(max_examples=15, deadline=None)
@given(data=hs.data(), seed=seeds)
def test_vector_primitive_agrees_with_finite_differences(
    case: Callable[..., Any], data: hs.DataObject, seed: int
) -> None:
    f, x, reference = case(data, np.random.default_rng(seed))
    close(value_of(f, x), reference(x), EXACT[F64], "value vs numpy reference")
    check_against_finite_differences(f, x, repr(f))


def test_primitives_curry_like_toolz() -> None:
    x = np.arange(6.0).reshape(2, 3)
    close(fad.sum(x, axis=0).value, np.sum(x, axis=0), EXACT[F64])
    close(fad.sum(axis=0).value(x), np.sum(x, axis=0), EXACT[F64])
    assert fad.sum.value(x) == 15.0
    close(fad.softmax(axis=0).value(x), np.exp(x) / np.exp(x).sum(0), EXACT[F64])
    assert repr(fad.sum(axis=0)) == "sum(axis=0)"


# ---------------------------------------------------------------------- stability


def test_logsumexp_of_two_thousands_is_a_thousand_plus_log_two() -> None:
    assert fad.logsumexp.value(np.array([1000.0, 1000.0])) == 1000.0 + math.log(2.0)
    close(fad.grad(fad.logsumexp)(np.array([1000.0, 1000.0])), [0.5, 0.5], EXACT[F64])


def test_softmax_of_large_values_does_not_overflow() -> None:
    x = np.array([1000.0, 1001.0, 999.0, -1000.0])
    s = fad.softmax.value(x)
    e = np.exp(x - 1001.0)
    close(s, e / e.sum(), EXACT[F64])
    j = fad.jacrev(fad.softmax)(x)
    assert np.all(np.isfinite(j))
    close(j, np.diag(s) - np.outer(s, s), EXACT[F64])


def test_cross_entropy_with_huge_logits_is_finite() -> None:
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]])
    loss = fad.cross_entropy(np.array([1, 1]))
    value, g = fad.value_and_grad(loss)(logits)
    assert value == pytest.approx(5e3)
    close(g, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], EXACT[F64])


@pytest.mark.parametrize("x", [1000.0, -1000.0, np.array([1000.0, -1000.0, 0.0])])
@pytest.mark.parametrize("f", [fad.sigmoid, fad.softplus], ids=repr)
def test_sigmoid_and_softplus_are_finite_in_both_tails(f: fad.Fn, x: Any) -> None:
    value, d = f(x)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(np.asarray(d)))


# -------------------------------------------------- no NaN where mathematics gives a number


def norm_rows_then_where(x: Any) -> Any:
    r = np.sqrt(np.sum(x**2, axis=1))
    return np.sum(np.where(r > 0.5, r, np.ones_like(r)))


def case(f: Any, x: Any, expected: Any, name: str, quiet: bool = False) -> Any:
    """A row of the table; ``quiet`` silences numpy where the primal itself warns."""
    return pytest.param(f, x, expected, quiet, id=name)


NO_NAN = [
    case(lambda x: fad.where(x < 1.0, x, fad.sqrt(x)), 0.0, 1.0,
         "jax-5798-where-x-or-sqrt-at-0"),
    # The two rows below are quiet because fad's sqrt rule warns at 0 on arrays; that
    # warning is specified on its own in test_derivative_rules_do_not_warn_where_f_does_not.
    case(lambda x: np.sum(np.where(x < 1, x, np.sqrt(x))), np.array([0.0, 4.0]), [1.0, 0.25],
         "jax-5798-np-where-on-an-array-with-a-0", quiet=True),
    case(norm_rows_then_where, np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]),
         [[1 / 5**0.5, 2 / 5**0.5], [0.6, 0.8], [0.0, 0.0]],
         "jax-347-zero-row-norm-masked-by-where", quiet=True),
    case(lambda x: fad.where(x > 0, fad.sqrt(fad.where(x > 0, x, 1.0)), 0.0), -1.0, 0.0,
         "jax-1052-double-where-sqrt-of-masked-negative"),
    case(lambda x: fad.where(x >= 0, x, fad.sqrt(-x)), 1.0, 1.0,
         "autograd-802-where-x-or-sqrt-of-negative", quiet=True),
    case(lambda x: fad.where(x > 2, fad.log(x), 2 * x), 0.0, 2.0,
         "torch-108618-where-log-at-0", quiet=True),
    case(lambda a: fad.where(a <= 0, fad.exp(a), 1 + a), np.float32(100.0), 1.0,
         "torch-68425-where-masks-an-overflowing-exp", quiet=True),
    case(fad.norm, np.zeros(3), [0.0, 0.0, 0.0], "torch-2421-norm-at-0"),
    case(np.linalg.norm, np.zeros(3), [0.0, 0.0, 0.0], "autograd-151-np-linalg-norm-at-0"),
    case(lambda x: fad.norm(x) ** 2, 0.0, 0.0, "jax-21723-squared-norm-at-0"),
    case(lambda x: np.linalg.norm(x) ** 2, np.zeros(2), [0.0, 0.0],
         "jax-4177-squared-np-linalg-norm-of-zeros"),
    case(lambda x: np.sum(x ** np.arange(3.0)), 0.0, 1.0,
         "jax-14397-polynomial-x-to-the-arange-at-0", quiet=True),
    case(lambda x: x**0, 0.0, 0.0, "jax-12409-x-to-the-0-at-0"),
    case(fad.power(0), 0.0, 0.0, "power-0-at-0"),
    case(lambda x: x**2, 0.0, 0.0, "x-squared-at-0"),
    case(fad.power(3), 0.0, 0.0, "power-3-at-0"),
    case(fad.derivative(fad.derivative(lambda x: np.exp(-(x**2)))), 0.0, 0.0,
         "autograd-116-third-derivative-of-gaussian-at-0"),
    case(fad.derivative(fad.derivative(fad.derivative(lambda x: np.exp(-(x**2))))), 0.0, 12.0,
         "autograd-116-fourth-derivative-of-gaussian-at-0"),
    case(fad.abs, 0.0, 0.0, "abs-at-0-is-0"),
    case(fad.relu, 0.0, 0.0, "relu-at-0-is-0"),
    case(fad.clip(0.0, 1.0), 0.0, 1.0, "clip-lower-corner-is-1"),
    case(fad.clip(0.0, 1.0), 1.0, 1.0, "clip-upper-corner-is-1"),
    # sqrt(x^2) is |x|: at 0 it follows abs's convention, as forward mode already does.
    case(lambda x: fad.sqrt(x * x), 0.0, 0.0, "sqrt-of-square-at-0-follows-abs"),
    case(fad.max, np.array([1.0, 3.0, 3.0]), [0.0, 0.5, 0.5], "max-ties-share-the-gradient"),
    case(fad.softplus, 0.0, 0.5, "jax-2107-softplus-at-0"),
    case(fad.softplus, 1000.0, 1.0, "softplus-at-1000"),
    case(fad.softplus, -1000.0, 0.0, "softplus-at-minus-1000"),
    case(fad.sigmoid, 1000.0, 0.0, "sigmoid-at-1000"),
    case(fad.sigmoid, -1000.0, 0.0, "sigmoid-at-minus-1000"),
    case(lambda x: np.sum(fad.sigmoid(x)), np.array([-200.0, -100.0, 0.0]),
         [math.exp(-200.0), math.exp(-100.0), 0.25], "jax-777-sigmoid-gradient-in-the-tail"),
    case(fad.logsumexp, np.array([1000.0, 1000.0]), [0.5, 0.5], "logsumexp-at-1000s"),
    case(fad.logsumexp, np.array([-1000.0, -1000.0]), [0.5, 0.5], "logsumexp-at-minus-1000s"),
    case(fad.logsumexp, np.array([0.0, -np.inf]), [1.0, 0.0],
         "torch-31829-logsumexp-with-a-minus-inf-entry"),
    case(lambda x: fad.softmax(x)[0], np.array([1000.0, 1000.0]), [0.25, -0.25],
         "softmax-at-1000s"),
    case(fad.log1p, 1e-20, 1.0, "log1p-at-1e-20"),
    case(fad.expm1, 1e-20, 1.0, "expm1-at-1e-20"),
    case(fad.cross_entropy(np.array([1])), np.array([[1e4, 0.0, -1e4]]), [[1.0, -1.0, 0.0]],
         "cross-entropy-with-logits-1e4"),
]  # fmt: skip


def directional(f: Callable[[Any], Any], x: Any, mode: str) -> Any:
    """The gradient of a scalar ``f`` one direction at a time: by jvp or by a linear map."""
    xa = np.asarray(x)
    basis = np.eye(xa.size, dtype=xa.dtype).reshape((xa.size, *xa.shape))
    directions = [e if xa.shape else float(e) for e in basis]
    if mode == "jvp":
        cols = [fad.jvp(f, x, e)[1] for e in directions]
    else:
        _, d = fad.linearize(f, x)
        cols = [d @ e for e in directions]
    return np.reshape(np.array(cols, dtype=float), xa.shape)


@pytest.mark.parametrize("mode", ["reverse", "forward", "jvp", "linearize"])
@pytest.mark.parametrize("f, x, expected, quiet", NO_NAN)
def test_no_nan_where_mathematics_gives_a_number(
    f: Callable[[Any], Any], x: Any, expected: Any, quiet: bool, mode: str
) -> None:
    """Every way of differentiating: whole passes, directions one at a time, a kept map."""
    with np.errstate(all="ignore") if quiet else contextlib.nullcontext():
        if mode in ("jvp", "linearize"):
            g = directional(f, x, mode)
        else:
            g = fad.grad(f)(x) if mode == "reverse" else fad.jacfwd(f)(x)
    assert np.shape(g) == np.shape(x)
    assert np.all(np.isfinite(g)), g
    np.testing.assert_allclose(flat(g), flat(expected), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize(
    "f, x",
    [(lambda x: np.sum(np.where(x < 1, x, np.sqrt(x))), np.array([0.0, 4.0])),
     (norm_rows_then_where, np.array([[1.0, 2.0], [0.0, 0.0]])),
     (lambda x: np.sum(np.where(x > 0, np.sqrt(np.abs(x)), 0.0)), np.array([0.0, 1.0])),
     (lambda x: np.sum(x ** np.arange(3.0)), 0.0)],
    ids=["where-sqrt", "norm-rows", "where-sqrt-abs", "x-to-the-arange"],
)  # fmt: skip
def test_derivative_rules_do_not_warn_where_f_does_not(
    f: Callable[[Any], Any], x: Any, mode: str
) -> None:
    # f itself evaluates without a numpy warning (checked first); then so must its
    # derivative: filterwarnings = error turns a warning from a rule into a failure.
    value_of(f, x)
    fad.grad(f)(x) if mode == "reverse" else fad.jacfwd(f)(x)


def test_the_no_nan_table_is_long_enough() -> None:
    assert len(NO_NAN) >= 15
    assert len({c.id for c in NO_NAN}) == len(NO_NAN)


# ------------------------------------------------------------------ stop_gradient


def test_stop_gradient_pointed() -> None:
    assert fad.grad(lambda x: x * fad.stop_gradient(x))(3.0) == 3.0
    x = np.array([1.0, -2.0])
    close(fad.grad(lambda x: np.sum(x * fad.stop_gradient(x * x)))(x), x * x, EXACT[F64])
    assert fad.stop_gradient(2.5) == 2.5


def test_stop_gradient_point_free() -> None:
    f = fad.identity * fad.stop_gradient()
    assert f.value(3.0) == 9.0
    assert fad.derivative(f)(3.0) == 3.0
    g = fad.sin >> fad.stop_gradient() >> fad.exp
    assert g.value(0.5) == pytest.approx(math.exp(math.sin(0.5)))
    assert fad.derivative(g)(0.5) == 0.0


def test_stop_gradient_stops_every_level_of_nesting() -> None:
    # d/dx [x * sg(x^2)] = sg(x^2), a constant to the outer derivative as well.
    f = lambda x: x * fad.stop_gradient(x * x)  # noqa: E731
    assert fad.derivative(f)(3.0) == 9.0
    assert fad.derivative(fad.derivative(f))(3.0) == 0.0
    assert fad.grad(fad.grad(f))(3.0) == 0.0


# -------------------------------------------------------------------- custom rules


def norm2_value(x: Any) -> Any:
    return np.sqrt(x @ x)


def norm2_jvp(x: Any, t: Any) -> Any:
    return (x @ t) / np.sqrt(x @ x)


def norm2_vjp(x: Any, ct: Any) -> Any:
    return ct * x / np.sqrt(x @ x)


NORM2 = {
    "jvp-and-vjp": fad.primitive(norm2_value, jvp=norm2_jvp, vjp=norm2_vjp, name="norm2"),
    "jvp-only": fad.primitive(norm2_value, jvp=norm2_jvp, name="norm2_jvp_only"),
    "vjp-only": fad.primitive(norm2_value, vjp=norm2_vjp, name="norm2_vjp_only"),
}
X34 = np.array([3.0, 4.0])
HESSIAN_OF_NORM_AT_34 = (np.eye(2) - np.outer(X34, X34) / 25.0) / 5.0


@pytest.mark.parametrize("prim", NORM2.values(), ids=NORM2.keys())
def test_a_custom_primitive_works_in_both_modes(prim: fad.Fn) -> None:
    assert prim.value(X34) == 5.0
    close(fad.grad(prim)(X34), [0.6, 0.8], EXACT[F64], "reverse")
    close(fad.jacfwd(prim)(X34), [0.6, 0.8], EXACT[F64], "forward")
    assert fad.jvp(prim, X34, np.array([1.0, 0.0]))[1] == pytest.approx(0.6, rel=1e-15)
    _, pullback = fad.vjp(prim, X34)
    close(pullback(2.0), ([1.2, 1.6],), EXACT[F64], "vjp")


@pytest.mark.parametrize("prim", NORM2.values(), ids=NORM2.keys())
@pytest.mark.parametrize(
    "nesting",
    [fad.hessian, lambda f: fad.jacfwd(fad.jacrev(f)), lambda f: fad.jacrev(fad.jacfwd(f)),
     lambda f: fad.jacrev(fad.grad(f))],
    ids=["hessian", "jacfwd(jacrev)", "jacrev(jacfwd)", "jacrev(grad)"],
)  # fmt: skip
def test_custom_primitives_nest(prim: fad.Fn, nesting: Callable[..., Any]) -> None:
    close(nesting(lambda x: prim(x) * 2.0)(X34), 2.0 * HESSIAN_OF_NORM_AT_34, EXACT[F64])


@PROPERTY
@given(hs.floats(0.2, 3.0), hs.floats(-2.0, 2.0))
def test_a_rule_closing_over_an_outer_differentiated_value(a: float, x: float) -> None:
    # g(a) = d/dx [a x^3] = 3 a x^2, with the custom rule closing over the outer a.
    def scaled_cube(a: Any) -> fad.Fn:
        return fad.primitive(lambda x: a * x**3, jvp=lambda x, t: 3 * a * x**2 * t,
                             vjp=lambda x, ct: 3 * a * x**2 * ct, name="scaled_cube")  # fmt: skip

    assert fad.derivative(lambda a: fad.derivative(scaled_cube(a))(x))(a) == pytest.approx(
        3 * x**2, rel=1e-12, abs=1e-12
    )
    assert fad.grad(lambda a: fad.grad(scaled_cube(a))(x))(a) == pytest.approx(
        3 * x**2, rel=1e-12, abs=1e-12
    )
    assert fad.grad(fad.grad(scaled_cube(a)))(x) == pytest.approx(6 * a * x, rel=1e-12, abs=1e-12)


def test_a_primitive_closing_over_a_value_of_the_same_transform_is_not_silently_wrong() -> None:
    # f(a, x) = a x^3 through a custom primitive of x that closes over a. Either fad
    # differentiates through the closure (grad [x^3, 3 a x^2] = [8, 18] at (1.5, 2)) or
    # it refuses clearly, naming the primitive (as JAX's custom_jvp does); a zero
    # derivative for a, or a Dual leaking out of grad, is a silent wrong answer.
    def f(p: Any) -> Any:
        a = p[0]
        cube = fad.primitive(lambda x: a * x**3, jvp=lambda x, t: 3 * a * x**2 * t,
                             vjp=lambda x, ct: 3 * a * x**2 * ct, name="closing_cube")  # fmt: skip
        return cube(p[1])

    try:
        g = fad.grad(f)(np.array([1.5, 2.0]))
    except (TypeError, ValueError, NotImplementedError) as e:
        assert "closing_cube" in str(e)
    else:
        assert type(g) is np.ndarray, f"grad returned {g!r}"
        close(g, [8.0, 18.0], EXACT[F64])


def test_an_elementwise_custom_primitive_has_higher_derivatives() -> None:
    cube = fad.primitive(lambda x: x**3, deriv=lambda x: 3 * x**2, name="cube")
    assert fad.derivative(cube)(2.0) == 12.0
    assert fad.derivative(fad.derivative(cube))(2.0) == 12.0
    close(fad.grad(lambda x: np.sum(cube(x)))(np.array([1.0, -2.0])), [3.0, 12.0], EXACT[F64])


def test_a_jvp_rule_that_cannot_be_transposed_names_the_primitive_and_mode() -> None:
    opaque = fad.primitive(np.sin, jvp=lambda x, t: np.asarray(t) * np.cos(x), name="opaque")
    close(fad.jvp(opaque, np.ones(2), np.ones(2))[1], np.cos(np.ones(2)), EXACT[F64])
    with pytest.raises(NotImplementedError, match=r"opaque.*reverse"):
        fad.grad(lambda x: np.sum(opaque(x)))(np.ones(2))


def test_a_vjp_rule_that_cannot_be_transposed_names_the_primitive_and_mode() -> None:
    opaque = fad.primitive(np.sin, vjp=lambda x, ct: np.asarray(ct) * np.cos(x), name="opaque_v")
    close(fad.grad(lambda x: np.sum(opaque(x)))(np.ones(2)), np.cos(np.ones(2)), EXACT[F64])
    with pytest.raises(NotImplementedError, match=r"opaque_v.*forward"):
        fad.jvp(opaque, np.ones(2), np.ones(2))


def test_a_rule_in_plain_python_math_is_refused_in_the_other_mode() -> None:
    mathy = fad.primitive(math.sin, jvp=lambda x, t: float(t) * math.cos(x), name="mathy")
    assert fad.jvp(mathy, 1.0, 1.0)[1] == math.cos(1.0)
    with pytest.raises(NotImplementedError, match=r"mathy.*reverse"):
        fad.grad(mathy)(1.0)


def test_a_custom_primitive_of_several_arguments() -> None:
    def mul_jvp(x: Any, t: Any) -> Any:
        return t[0] * x[1] + x[0] * t[1]

    mul = fad.primitive(lambda ab: ab[0] * ab[1], jvp=mul_jvp, name="mul")
    assert fad.grad(lambda a, b: mul((a, b)), argnums=(0, 1))(2.0, 3.0) == (3.0, 2.0)
    h = fad.hessian(lambda p: mul((p[0], p[1])))(np.array([2.0, 3.0]))
    close(h, [[0.0, 1.0], [1.0, 0.0]], EXACT[F64])


# -------------------------------------------------------------------------- errors


def test_a_shape_error_names_the_function_and_both_shapes() -> None:
    f = fad.sin >> fad.matmul(np.ones((4, 2)))
    with pytest.raises(fad.ShapeError) as info:
        f(np.ones(3))
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "matmul" in message and "(3,)" in message and "(4, 2)" in message
    with pytest.raises(fad.ShapeError, match=r"matmul.*\(3,\).*\(4, 2\)"):
        fad.grad(f >> fad.sum)(np.ones(3))


def test_a_shape_error_in_pointed_code() -> None:
    with pytest.raises(fad.ShapeError, match=r"\(2,\).*\(3,\)|\(3,\).*\(2,\)"):
        fad.grad(lambda x: np.sum(x + np.ones(3)))(np.ones(2))


def my_loss(x: Any) -> Any:
    return x * x


@pytest.mark.parametrize(
    "bad", ["a", None, True, 1 + 2j, np.array([True, False]), np.array([1j])],
    ids=["str", "None", "bool", "complex", "bool-array", "complex-array"],
)  # fmt: skip
def test_non_numbers_are_a_type_error_naming_the_function(bad: Any) -> None:
    with pytest.raises(TypeError, match="sin"):
        fad.sin(bad)
    with pytest.raises(TypeError, match=r"sin >> exp"):
        (fad.sin >> fad.exp)(bad)
    with pytest.raises(TypeError, match="my_loss"):
        fad.grad(my_loss)(bad)
    with pytest.raises(TypeError, match="my_loss"):
        fad.jacfwd(my_loss)(bad)


def test_integers_are_accepted_as_float64() -> None:
    g = fad.grad(lambda x: x**3)(4)
    assert g == 48.0 and np.result_type(g) == np.float64
    assert fad.derivative(fad.power(3))(4) == 48.0
    g = fad.grad(lambda x: np.sum(x * x))(np.array([1, 2, 3]))
    assert g.dtype == np.float64
    close(g, [2.0, 4.0, 6.0], EXACT[F64])
    g = fad.grad(lambda x: x * 2.0)(np.int32(6))
    assert g == 2.0 and np.result_type(g) == np.float64


def test_out_of_domain_follows_numpy() -> None:
    with pytest.warns(RuntimeWarning):
        assert math.isnan(fad.log.value(-1.0))
    with np.errstate(invalid="ignore"):
        value, _ = fad.log(-1.0)
        assert math.isnan(value)
        assert np.isnan(fad.log.value(np.array([-1.0, 1.0])))[0]


def test_debug_nans_names_the_first_primitive_in_the_forward_pass() -> None:
    with fad.debug_nans():
        with pytest.raises(fad.DomainError, match=r"^log.*-1\.0"):
            (fad.log >> fad.sqrt)(-1.0)
        with pytest.raises(fad.DomainError, match=r"^log"):
            fad.grad(lambda x: fad.sqrt(fad.log(x)) + x)(-1.0)
        with pytest.raises(fad.DomainError, match=r"^log"):
            fad.grad(lambda x: np.sum(np.sqrt(np.log(x))))(np.array([2.0, -1.0]))
        assert fad.grad(fad.log)(2.0) == 0.5  # finite results pass


def test_debug_nans_names_the_adjoint_in_the_reverse_pass() -> None:
    # sqrt(0) = 0 is finite; its adjoint 0.5 / sqrt(0) turns the cotangent into inf.
    with fad.debug_nans():
        with pytest.raises(fad.DomainError, match="adjoint of sqrt"):
            fad.grad(lambda x: fad.exp(fad.sqrt(x)))(0.0)
        # quiet: sqrt's rule warns at 0 on arrays (see test_derivative_rules_do_not_warn...)
        with np.errstate(divide="ignore"), pytest.raises(fad.DomainError, match="adjoint of sqrt"):
            fad.grad(lambda x: np.sum(np.exp(np.sqrt(x))))(np.array([1.0, 0.0]))


def test_debug_nans_is_off_outside_the_block() -> None:
    with fad.debug_nans():
        pass
    with np.errstate(invalid="ignore"):
        assert math.isnan(fad.log(-1.0).value)


def test_mixing_derivatives_of_different_inputs_outside_a_transform_is_an_error() -> None:
    with pytest.raises(fad.MixedInputsError, match=r"fad\.lift|grad"):
        fad.log(2.0) + fad.sin(5.0)
    with pytest.raises(fad.MixedInputsError):
        textbook(2.0, 5.0)
    assert issubclass(fad.MixedInputsError, ValueError)
    value, d = fad.log(2.0) + 1.0  # a Dual with a plain number is fine
    assert value == math.log(2.0) + 1.0 and float(d) == 0.5


def test_mixing_is_fine_inside_a_transform() -> None:
    g = fad.grad(lambda a, b: fad.log(a) + fad.sin(b), argnums=(0, 1))(2.0, 5.0)
    assert g == (0.5, math.cos(5.0))
    assert fad.grad(lambda a: fad.log(a) + fad.sin(5.0))(2.0) == 0.5


def assign(x: Any) -> Any:
    x[0] = 1.0
    return np.sum(x)


def out_argument(x: Any) -> Any:
    return np.sum(np.add(x, 1.0, out=np.zeros(3)))


def in_place_ufunc(x: Any) -> Any:
    y = np.zeros(3) + x
    np.multiply(y, 2.0, out=y)
    return np.sum(y)


def augmented_assignment(x: Any) -> Any:
    y = np.zeros(3)
    y += x  # numpy's in-place add, with the differentiated value as operand
    return np.sum(y)


def into_a_plain_array(x: Any) -> Any:
    buffer = np.zeros(3)
    buffer[0] = x[0]
    return np.sum(buffer)


@pytest.mark.parametrize(
    "f, message",
    [(assign, r"x\[i\] = v"), (out_argument, "out="), (in_place_ufunc, "out="),
     (augmented_assignment, "out=")],
    ids=["x[i] = v", "out=", "ufunc-out-on-a-fad-value", "+="],
)  # fmt: skip
def test_in_place_writes_on_a_differentiated_value_are_type_errors(
    f: Callable[[Any], Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        fad.grad(f)(np.ones(3))


def test_writing_a_differentiated_value_into_a_plain_array_fails_loudly() -> None:
    # numpy takes any object with __getitem__ for a sequence and raises its own
    # ValueError before fad's __float__/__array__ can explain; what matters is that the
    # gradient is never silently wrong.
    with pytest.raises(ValueError, match="sequence"):
        fad.grad(into_a_plain_array)(np.ones(3))


def test_a_numpy_function_without_a_rule_is_named() -> None:
    with pytest.raises(TypeError, match=r"cumsum.*fad\.primitive"):
        fad.grad(lambda x: np.sum(np.cumsum(x)))(np.ones(3))
    with pytest.raises(TypeError, match="arctan2"):
        fad.grad(lambda x: np.sum(np.arctan2(x, 1.0)))(np.ones(3))


# ------------------------------------------------------------------------- float32


def test_float32_in_gives_float32_values_and_gradients() -> None:
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    W32 = W.astype(np.float32)

    def f(x: Any) -> Any:
        return fad.logsumexp(np.tanh(x @ W32 + 1.0)) + fad.norm(x) + np.mean(x * x)

    value, g = fad.value_and_grad(f)(x)
    assert np.result_type(value) == np.float32 and g.dtype == np.float32
    close(g, fad.grad(f)(x.astype(np.float64)), FINITE_DIFF[np.dtype(np.float32)])
    for prim in (fad.sin, fad.exp, fad.sigmoid, fad.softplus, fad.sqrt, fad.relu):
        value, d = prim(np.abs(x))
        assert value.dtype == np.float32 and np.asarray(d).dtype == np.float32, repr(prim)
    assert fad.jacfwd(fad.softmax)(x).dtype == np.float32
    assert fad.jacrev(fad.softmax)(x).dtype == np.float32
    assert fad.hessian(lambda x: np.sum(x**3))(x).dtype == np.float32
    assert fad.hvp(lambda x: np.sum(x**3), x, np.ones(3, np.float32)).dtype == np.float32


# ------------------------------------------------------------------- thread safety


def nested_confusion(x: float) -> Any:
    return fad.derivative(lambda x: x * fad.derivative(lambda y: x * y + y * y)(x))(x)


THREAD_TASKS: list[Callable[[float], Any]] = [
    lambda x: fad.grad(lambda v: np.sum(100 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2))(
        np.array([x, 1.0 - x, 0.5 * x, 2.0])
    ),
    lambda x: fad.hessian(lambda v: fad.logsumexp(np.sin(v) * v))(np.array([x, -x, 1.0])),
    lambda x: fad.jacfwd(lambda v: fad.softmax(np.tanh(v @ W)))(np.array([x, 0.3, -x])),
    nested_confusion,
]


def test_four_threads_get_the_same_answers_as_one() -> None:
    points = [0.1 * k - 2.0 for k in range(40)]
    jobs = [(t, x) for x in points for t in range(len(THREAD_TASKS))]
    sequential = [THREAD_TASKS[t](x) for t, x in jobs]
    barrier = threading.Barrier(4)

    def run(chunk: list[tuple[int, float]]) -> list[Any]:
        barrier.wait()  # all four start together
        return [THREAD_TASKS[t](x) for t, x in chunk]

    for _ in range(5):
        chunks = [jobs[i::4] for i in range(4)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(run, chunks))
        for i, chunk_results in enumerate(results):
            for (t, x), got, want in zip(chunks[i], chunk_results, sequential[i::4], strict=True):
                assert np.array_equal(got, want), (t, x, got, want)
