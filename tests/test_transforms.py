"""The transforms (issue 5): derivatives as linear maps, both modes, nesting, sharing, pytrees.

Properties are stated over random programs: small numpy programs written in pointed style
(``tanh(W x + b)``, sums of products, softmax, matmuls, indexing...) with random shapes and
weights, drawn by hypothesis. Fixed examples are kept for the classics (the textbook
function at (2, 5), perturbation confusion) and named for them.

Reference values come from outside fad: central finite differences in float64 (a 5-point
stencil, error O(h**4)), closed forms, or the other mode.
"""

from __future__ import annotations

import dataclasses
import gc
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

import fad
from _numeric import close, numerical_derivative, numerical_jacobian, value_of
from fad import fst, snd

# (rtol, atol) by what is compared: two exact computations of the same number in a
# different order (modes, transposes), or an exact derivative against finite differences.
EXACT = {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-4, 1e-6)}
FINITE_DIFF = {np.dtype(np.float64): (1e-6, 1e-8), np.dtype(np.float32): (2e-3, 1e-4)}

PROPERTY = settings(max_examples=40, deadline=None)
JACOBIANS = [fad.jacfwd, fad.jacrev, fad.jacobian]


# ---------------------------------------------------------------- random numpy programs


@dataclasses.dataclass(frozen=True)
class Layer:
    """One step of a random program: a pointed numpy function from an n- to an m-vector."""

    name: str
    fn: Callable[[Any], Any]
    n_out: int

    def __repr__(self) -> str:
        return self.name


def make_layer(kind: str, n: int, rng: np.random.Generator) -> Layer:
    m = int(rng.integers(1, 5))
    if kind == "tanh_affine":  # a dense layer
        W, b = rng.normal(size=(m, n)), rng.normal(size=m)
        return Layer(f"tanh(W{W.shape} x + b)", lambda x: np.tanh(x @ W.T + b), m)
    if kind == "matmul":
        W = rng.normal(size=(n, m))
        return Layer(f"x @ W{W.shape}", lambda x: x @ W, m)
    if kind == "softmax":
        return Layer("softmax(x)", lambda x: fad.softmax(x), n)
    if kind == "products":  # sums of products: every entry used twice
        c = rng.normal(size=n)
        return Layer("x * x[::-1] + c * x", lambda x: x * x[::-1] + c * x, n)
    if kind == "index":  # integer indexing with repeats
        idx = rng.integers(0, n, size=m)
        return Layer(f"x[{idx.tolist()}]", lambda x: x[idx], m)
    if kind == "exp_sin":
        return Layer("exp(sin(x)) / 2", lambda x: np.exp(np.sin(x)) / 2.0, n)
    if kind == "concat":
        return Layer("concatenate([x, cos(x)])", lambda x: np.concatenate([x, np.cos(x)]), 2 * n)
    if kind == "outer":  # a 2-d intermediate, broadcasting and a sum over an axis
        w = rng.normal(size=n)
        return Layer("(x[:, None] * (x * w)[None, :]).sum(0)",
                     lambda x: (x[:, None] * (x * w)[None, :]).sum(axis=0), n)  # fmt: skip
    if kind == "log1p_square":
        return Layer("log1p(x ** 2)", lambda x: np.log1p(x**2), n)
    if kind == "normalize":
        return Layer("x / (1 + norm(x))", lambda x: x / (1.0 + fad.norm(x)), n)
    raise AssertionError(kind)


KINDS = ["tanh_affine", "matmul", "softmax", "products", "index", "exp_sin", "concat", "outer",
         "log1p_square", "normalize"]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Program:
    layers: tuple[Layer, ...]
    n_in: int
    n_out: int

    def __call__(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer.fn(x)
        return x

    def __repr__(self) -> str:
        return f"Program(R^{self.n_in} -> R^{self.n_out}: {' >> '.join(map(repr, self.layers))})"


@hs.composite
def programs(draw: hs.DrawFn, max_layers: int = 4) -> Program:
    n_in = draw(hs.integers(1, 4))
    kinds = draw(hs.lists(hs.sampled_from(KINDS), min_size=1, max_size=max_layers))
    rng = np.random.default_rng(draw(hs.integers(0, 2**32 - 1)))
    n, layers = n_in, []
    for kind in kinds:
        layer = make_layer(kind, n, rng)
        layers.append(layer)
        n = layer.n_out
    return Program(tuple(layers), n_in, n)


def scalarized(p: Program, seed: int) -> Callable[[Any], Any]:
    """A scalar function from a program: a random linear read-out, then logsumexp."""
    c = np.random.default_rng(seed).normal(size=p.n_out)

    def f(x: Any) -> Any:
        y = p(x)
        return fad.logsumexp(fad.stack([np.sum(c * y), np.sum(y * y) / 4.0]))

    return f


def point(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.5, 1.5, size=n)


seeds = hs.integers(0, 2**32 - 1)


# ------------------------------------------------------------- linear maps: <u, J v>


@PROPERTY
@given(programs(), seeds)
def test_transpose_is_the_adjoint(p: Program, seed: int) -> None:
    # <u, J v> == <J^T u, v>: the map reverse mode applies is the transpose of forward's.
    rng = np.random.default_rng(seed)
    x, v, u = rng.uniform(-1.5, 1.5, p.n_in), rng.normal(size=p.n_in), rng.normal(size=p.n_out)
    _, d = fad.linearize(p, x)
    jv, jtu = d @ v, u @ d
    assert np.shape(jv) == (p.n_out,) and np.shape(jtu) == (p.n_in,)
    lhs, rhs = float(u @ jv), float(jtu @ v)
    scale = float(np.abs(u) @ np.abs(jv) + np.abs(jtu) @ np.abs(v)) + 1.0
    assert abs(lhs - rhs) <= 1e-12 * scale, (lhs, rhs)
    close(d.T @ u, jtu, EXACT[np.dtype(np.float64)], "d.T @ u vs u @ d")


@PROPERTY
@given(programs(), seeds)
def test_jvp_and_vjp_functions_are_adjoint(p: Program, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, v, u = rng.uniform(-1.5, 1.5, p.n_in), rng.normal(size=p.n_in), rng.normal(size=p.n_out)
    y1, jv = fad.jvp(p, x, v)
    y2, pullback = fad.vjp(p, x)
    (jtu,) = pullback(u)
    close(y1, value_of(p, x), EXACT[np.dtype(np.float64)], "jvp's primal")
    close(y2, value_of(p, x), EXACT[np.dtype(np.float64)], "vjp's primal")
    scale = float(np.abs(u) @ np.abs(jv) + np.abs(jtu) @ np.abs(v)) + 1.0
    assert abs(float(u @ jv) - float(jtu @ v)) <= 1e-12 * scale


# ----------------------------------------------------------- forward equals reverse


@PROPERTY
@given(programs(), seeds)
def test_jacfwd_equals_jacrev(p: Program, seed: int) -> None:
    x = point(p.n_in, seed)
    jf, jr, ja = fad.jacfwd(p)(x), fad.jacrev(p)(x), fad.jacobian(p)(x)
    assert np.shape(jf) == np.shape(jr) == np.shape(ja) == (p.n_out, p.n_in)
    close(jf, jr, EXACT[np.dtype(np.float64)], "jacfwd vs jacrev")
    close(ja, jr, EXACT[np.dtype(np.float64)], "jacobian vs jacrev")


def test_the_finite_difference_reference_is_accurate_where_fifth_derivatives_are_large() -> None:
    # exp(sin(quadratic)), as random programs compose it: a plain fourth-order stencil
    # at h = 1e-3 is off by ~1e-6 here (hypothesis found one such program).
    def g(x: np.ndarray) -> np.ndarray:
        return np.exp(np.sin(3.0 * x**2)) / 2.0

    x = np.linspace(-1.5, 1.5, 13)
    exact = np.diag(np.exp(np.sin(3.0 * x**2)) * np.cos(3.0 * x**2) * 3.0 * x)
    close(numerical_derivative(g, x), exact, (1e-9, 1e-11), "richardson")


@PROPERTY
@given(programs(), seeds)
def test_jacobian_agrees_with_finite_differences(p: Program, seed: int) -> None:
    x = point(p.n_in, seed)
    expected = numerical_jacobian(p, x)
    for jac in JACOBIANS:
        close(jac(p)(x), expected, FINITE_DIFF[np.dtype(np.float64)], jac.__name__)


@PROPERTY
@given(programs(), seeds)
def test_jvp_columns_and_vjp_rows_rebuild_the_jacobian(p: Program, seed: int) -> None:
    x = point(p.n_in, seed)
    jac = fad.jacrev(p)(x)
    _, pullback = fad.vjp(p, x)
    eye_in, eye_out = np.eye(p.n_in), np.eye(p.n_out)
    cols = np.stack([fad.jvp(p, x, eye_in[i])[1] for i in range(p.n_in)], axis=1)
    rows = np.stack([pullback(eye_out[j])[0] for j in range(p.n_out)])
    close(cols, jac, EXACT[np.dtype(np.float64)], "jvp columns")
    close(rows, jac, EXACT[np.dtype(np.float64)], "vjp rows")


@pytest.mark.parametrize("shape", [(2, 3), (1, 4), (3, 1)])
@pytest.mark.parametrize("jac", JACOBIANS, ids=lambda j: j.__name__)
def test_a_jacobians_shape_is_the_outputs_then_the_inputs(
    jac: Callable[..., Any], shape: tuple[int, int]
) -> None:
    W = np.random.default_rng(0).normal(size=(shape[1], 2))
    x = np.random.default_rng(1).normal(size=shape)

    def f(x: Any) -> Any:
        return np.tanh(x @ W)

    j = jac(f)(x)
    assert j.shape == (shape[0], 2, *shape)
    close(j, numerical_jacobian(f, x), FINITE_DIFF[np.dtype(np.float64)])


# ----------------------------------------------------------------------- Hessians


@PROPERTY
@given(programs(max_layers=3), seeds)
def test_hessian_is_symmetric_and_agrees_with_finite_differences_of_grad(
    p: Program, seed: int
) -> None:
    f = scalarized(p, seed)
    x = point(p.n_in, seed + 1)
    h = fad.hessian(f)(x)
    assert h.shape == (p.n_in, p.n_in)
    close(h, h.T, EXACT[np.dtype(np.float64)], "symmetry")
    close(h, numerical_derivative(fad.grad(f), x), FINITE_DIFF[np.dtype(np.float64)], "fd of grad")


@PROPERTY
@given(programs(max_layers=3), seeds)
def test_hessian_equals_every_nesting_of_jacobians(p: Program, seed: int) -> None:
    f = scalarized(p, seed)
    x = point(p.n_in, seed + 1)
    h = fad.hessian(f)(x)
    tols = EXACT[np.dtype(np.float64)]
    close(fad.jacfwd(fad.jacrev(f))(x), h, tols, "jacfwd(jacrev)")
    close(fad.jacrev(fad.jacfwd(f))(x), h, tols, "jacrev(jacfwd)")
    close(fad.jacrev(fad.jacrev(f))(x), h, tols, "jacrev(jacrev)")
    close(fad.jacfwd(fad.grad(f))(x), h, tols, "jacfwd(grad)")
    close(fad.jacfwd(fad.jacfwd(f))(x), h, tols, "jacfwd(jacfwd)")


@PROPERTY
@given(programs(max_layers=3), seeds)
def test_hvp_is_hessian_times_vector(p: Program, seed: int) -> None:
    f = scalarized(p, seed)
    x = point(p.n_in, seed + 1)
    v = np.random.default_rng(seed + 2).normal(size=p.n_in)
    hv = fad.hvp(f, x, v)
    assert np.shape(hv) == (p.n_in,)
    close(hv, fad.hessian(f)(x) @ v, EXACT[np.dtype(np.float64)])


DIAGONAL_EXITS: dict[str, Callable[[Any], Any]] = {
    "elementwise only": lambda x: np.exp(np.sin(x)) * x,
    "plus a term that mixes elements": lambda x: np.sin(x) + x[::-1] * 2.0,
    "two diagonals and a mixed term": lambda x: np.sin(x) + np.cos(x) + x.reshape(x.shape),
    "broadcast against a matrix": lambda x: np.cos(x) * np.ones((3, 1, 1), x.dtype),
    "scaled by a reduction": lambda x: x * np.sum(x),
    "a full sum": lambda x: np.sum(np.sin(x) * x, keepdims=True),
    "a partial sum": lambda x: np.sum(np.tanh(x), axis=0),
    "a matrix product": lambda x: np.sin(x) @ np.ones((x.shape[-1], 2), x.dtype),
    "a nested derivative": lambda x: fad.grad(lambda y: np.sum(np.sin(y) * x))(x),
}


@pytest.mark.parametrize("name", DIAGONAL_EXITS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_jacobians_keep_the_identity_diagonal_and_leave_it_exactly(
    name: str, dtype: Any
) -> None:
    """jacfwd seeds the identity as a diagonal (O(n) through elementwise steps); every
    way out of it - a step that mixes elements, a broadcast, a reduction, a nested
    transform - gives the dense answer of reverse mode, in the input's precision."""
    f = DIAGONAL_EXITS[name]
    x = np.linspace(0.1, 1.2, 12).reshape(4, 3).astype(dtype)
    expected = fad.jacrev(f)(x)
    for jac in (fad.jacfwd, fad.jacobian):
        j = jac(f)(x)
        assert j.dtype == expected.dtype == dtype, jac.__name__
        close(j, expected, EXACT[np.dtype(dtype)], f"{jac.__name__}: {name}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_jacobians_of_layers_scale_rows_and_agree_with_reverse_mode(dtype: Any) -> None:
    """A diagonal tangent times a matrix, either side: the rows of the matrix, scaled."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 3)).astype(dtype)
    b = rng.normal(size=(3, 4)).astype(dtype)
    x = rng.normal(size=3).astype(dtype)
    for f in (
        lambda x: np.tanh(a @ x),
        lambda x: np.tanh(x @ b),
        lambda x: np.sin(x) @ b,
        lambda x: a @ np.sin(x) * 2.0,
        lambda x: (x @ b) @ b.T + x,
    ):
        expected = fad.jacrev(f)(x)
        for jac in (fad.jacfwd, fad.jacobian):
            j = jac(f)(x)
            assert j.dtype == dtype
            close(j, expected, EXACT[np.dtype(dtype)], jac.__name__)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reverse_jacobians_pull_identity_rows_and_agree_with_row_by_row_pullbacks(
    dtype: Any,
) -> None:
    """jacrev seeds the identity's rows as a diagonal: kept through elementwise steps,
    summed with other diagonals, added to dense rows, and made the matrix's scaled rows
    at a product. Each row must equal a plain pullback of that unit cotangent."""
    rng = np.random.default_rng(4)
    a = rng.normal(size=(5, 3)).astype(dtype)
    b = rng.normal(size=(3, 5)).astype(dtype)
    x = rng.normal(size=3).astype(dtype)
    for f in (
        lambda x: np.tanh(a @ x),
        lambda x: np.tanh(x @ b) * 3.0 - 1.0,
        lambda x: (lambda u: np.tanh(u) + np.sin(u))(a @ x),  # two diagonals meet at u
        lambda x: (lambda u: np.tanh(u) + u[::-1])(a @ x),  # a diagonal meets dense rows
        lambda x: np.exp(a @ np.sin(x)),
        lambda x: (x @ b) * (x @ b),  # both factors depend on x
    ):
        y, pullback = fad.vjp(f, x)
        rows = np.stack([pullback(e)[0] for e in np.eye(y.size, dtype=dtype)])
        for jac in (fad.jacrev, fad.jacobian):
            j = jac(f)(x)
            assert j.dtype == dtype
            close(j, rows, EXACT[np.dtype(dtype)], jac.__name__)


@pytest.mark.parametrize(
    ("f", "n", "m", "mode"),
    [
        # Reverse pulls the identity's rows through tanh, then scales A's rows once;
        # forward scales A's columns, then multiplies all n x m entries by tanh's slope.
        (lambda a, x: np.tanh(a @ x), 1000, 100, "rev"),
        (lambda a, x: np.tanh(a @ x), 10, 1000, "rev"),
        # The mirror image: forward keeps the identity diagonal through sin.
        (lambda a, x: a @ np.sin(x), 1000, 100, "fwd"),
        (lambda a, x: a @ np.sin(x), 100, 1000, "fwd"),
        (lambda a, x: np.sum(np.sin(x) * x), 1000, 1, "rev"),  # a gradient
        (lambda a, x: x[::-1][:100] * 2.0, 1000, 100, "rev"),  # mixes at once: dense identity
        (lambda a, x: np.sin(x) * x, 100, 100, "fwd"),  # elementwise: a tie, sizes decide
    ],
    ids=[
        "layer-wide",
        "layer-tall",
        "sin-layer-wide",
        "sin-layer-tall",
        "gradient",
        "mixing",
        "elementwise",
    ],
)
def test_jacobian_picks_the_mode_that_does_less_work(
    f: Callable[[Any, Any], Any], n: int, m: int, mode: str
) -> None:
    a = np.random.default_rng(0).normal(size=(m, n))
    _, d = fad.linearize(lambda x: f(a, x), np.ones(n))
    assert d._cheaper_mode(n, m) == mode


def test_hessian_of_a_closed_form() -> None:
    # f = sum(sin(x) x^2) + sum(x[:-1] x[1:]) (the benchmark's function).
    def f(x: Any) -> Any:
        return np.sum(np.sin(x) * x**2) + np.sum(x[:-1] * x[1:])

    x = np.array([0.3, -1.2, 2.0, 0.7])
    diag = -np.sin(x) * x**2 + 4 * x * np.cos(x) + 2 * np.sin(x)
    expected = np.diag(diag) + np.diag(np.ones(3), 1) + np.diag(np.ones(3), -1)
    close(fad.hessian(f)(x), expected, EXACT[np.dtype(np.float64)])


@pytest.mark.parametrize(
    "f, x, expected",
    [(lambda x: x[0] + np.exp(x[1]), np.array([0.0, 0.0]), [[0.0, 0.0], [0.0, 1.0]]),
     (lambda x: np.sum(x[:2]) + np.sum(x[2:] ** 3), np.array([1.0, 2.0, 1.0]),
      np.diag([0.0, 0.0, 6.0])),
     (lambda x: x[0] * x[1] + x[1], np.array([2.0, 3.0]), [[0.0, 1.0], [1.0, 0.0]])],
    ids=["linear-entry-plus-exp-entry", "sum-of-slices", "product-of-entries"],
)  # fmt: skip
def test_second_derivatives_of_functions_that_read_entries(
    f: Callable[[Any], Any], x: np.ndarray, expected: Any
) -> None:
    # Indexing's transpose scatters cotangents; in a Hessian those cotangents are
    # themselves differentiated values, also where one entry's is a plain constant.
    close(fad.hessian(f)(x), expected, EXACT[np.dtype(np.float64)], "hessian")
    close(fad.jacrev(fad.grad(f))(x), expected, EXACT[np.dtype(np.float64)], "jacrev(grad)")
    v = np.arange(1.0, len(x) + 1.0)
    close(fad.hvp(f, x, v), np.asarray(expected) @ v, EXACT[np.dtype(np.float64)], "hvp")


# ------------------------------------------------------------------- the textbook


TEXTBOOK = (fst >> fad.log) + fst * snd - (snd >> fad.sin)  # ln x1 + x1 x2 - sin x2
TEXTBOOK_VALUE = 11.652071455223084
TEXTBOOK_GRAD = (5.5, 1.7163378145367738)


def test_textbook_value() -> None:
    assert TEXTBOOK.value((2.0, 5.0)) == TEXTBOOK_VALUE


def test_textbook_gradient_in_reverse_mode() -> None:
    assert fad.grad(TEXTBOOK)((2.0, 5.0)) == TEXTBOOK_GRAD
    value, g = fad.value_and_grad(TEXTBOOK)((2.0, 5.0))
    assert (value, g) == (TEXTBOOK_VALUE, TEXTBOOK_GRAD)
    _, pullback = fad.vjp(TEXTBOOK, (2.0, 5.0))
    assert pullback(1.0) == (TEXTBOOK_GRAD,)
    assert tuple(float(g) for g in fad.jacrev(TEXTBOOK)((2.0, 5.0))) == TEXTBOOK_GRAD


def test_textbook_gradient_in_forward_mode() -> None:
    assert fad.jvp(TEXTBOOK, (2.0, 5.0), (1.0, 0.0)) == (TEXTBOOK_VALUE, TEXTBOOK_GRAD[0])
    assert fad.jvp(TEXTBOOK, (2.0, 5.0), (0.0, 1.0)) == (TEXTBOOK_VALUE, TEXTBOOK_GRAD[1])
    assert tuple(float(g) for g in fad.jacfwd(TEXTBOOK)((2.0, 5.0))) == TEXTBOOK_GRAD


def test_textbook_as_a_monadic_value() -> None:
    value, d = TEXTBOOK((2.0, 5.0))
    assert value == TEXTBOOK_VALUE
    assert tuple(float(g) for g in 1.0 @ d) == TEXTBOOK_GRAD
    assert float(d @ (1.0, 0.0)) == TEXTBOOK_GRAD[0]


# ------------------------------------------------------------------------ nesting

finite_floats = hs.floats(-10.0, 10.0, allow_nan=False)


@given(hs.lists(finite_floats, min_size=1, max_size=5))
def test_second_derivative_of_sin_is_minus_sin(xs: list[float]) -> None:
    d2 = fad.derivative(fad.derivative(fad.sin))
    for x in xs:
        assert d2(x) == pytest.approx(-math.sin(x), rel=1e-15, abs=1e-300)
    close(d2(np.array(xs)), -np.sin(xs), (1e-15, 0.0), "elementwise on an array")


@given(finite_floats)
def test_third_derivatives_of_exp_and_sin_are_exact(x: float) -> None:
    d3 = fad.derivative(fad.derivative(fad.derivative(fad.exp)))
    assert d3(x) == math.exp(x)
    d3 = fad.derivative(fad.derivative(fad.derivative(fad.sin)))
    assert d3(x) == -math.cos(x)


def test_nested_derivatives_keep_perturbations_apart() -> None:
    # d/dx [x * d/dy (x + y) at y = 1] at x = 1 is 1; untagged dual numbers say 2.
    assert fad.derivative(lambda x: x * fad.derivative(lambda y: x + y)(1.0))(1.0) == 1.0


@pytest.mark.parametrize(
    "outer, inner",
    [(fad.grad, fad.grad), (fad.grad, fad.derivative), (fad.derivative, fad.grad),
     (fad.jacfwd, fad.grad), (fad.jacrev, fad.derivative)],
    ids=lambda t: t.__name__,
)  # fmt: skip
def test_perturbations_stay_apart_in_every_pair_of_modes(
    outer: Callable[..., Any], inner: Callable[..., Any]
) -> None:
    assert float(outer(lambda x: x * inner(lambda y: x + y)(1.0))(1.0)) == 1.0


def test_grad_inside_a_differentiated_function_closes_over_the_outer_variable() -> None:
    # h(x) = x * d/dy [x y^2] at y = 3 = 6 x^2, so h'(x) = 12 x.
    def h(x: Any) -> Any:
        return x * fad.grad(lambda y: x * y**2)(3.0)

    for x in (0.5, -2.0, 3.0):
        assert fad.grad(h)(x) == pytest.approx(12 * x, rel=1e-15)
        assert fad.derivative(h)(x) == pytest.approx(12 * x, rel=1e-15)
        assert fad.jvp(h, x, 1.0)[1] == pytest.approx(12 * x, rel=1e-15)


def test_inner_gradient_of_a_vector_function_differentiated_by_jacobian() -> None:
    # g(w) = grad_x [sum(sin(w * x))] at x0 = w * cos(w * x0); dg/dw is diagonal.
    x0 = np.array([0.3, -0.7, 1.1])

    def g(w: Any) -> Any:
        return fad.grad(lambda x: np.sum(np.sin(w * x)))(x0)

    w = np.array([1.5, -0.5, 2.0])
    expected = np.diag(np.cos(w * x0) - w * x0 * np.sin(w * x0))
    for jac in JACOBIANS:
        close(jac(g)(w), expected, EXACT[np.dtype(np.float64)], jac.__name__)


# ------------------------------------------------------------------------ sharing


def counting_primitives() -> tuple[fad.Fn, fad.Fn, dict[str, int]]:
    """A multiply and a sine whose rules count their calls: a measure of work."""
    calls = {"mul_jvp": 0, "mul_vjp": 0, "sin_jvp": 0, "sin_vjp": 0}

    def mul_jvp(x: Any, t: Any) -> Any:
        calls["mul_jvp"] += 1
        return t[0] * x[1] + x[0] * t[1]

    def mul_vjp(x: Any, ct: Any) -> Any:
        calls["mul_vjp"] += 1
        return ct * x[1], ct * x[0]

    def sin_jvp(x: Any, t: Any) -> Any:
        calls["sin_jvp"] += 1
        return np.cos(x) * t

    def sin_vjp(x: Any, ct: Any) -> Any:
        calls["sin_vjp"] += 1
        return ct * np.cos(x)

    mul = fad.primitive(lambda xy: xy[0] * xy[1], jvp=mul_jvp, vjp=mul_vjp, name="counted_mul")
    sin = fad.primitive(np.sin, jvp=sin_jvp, vjp=sin_vjp, name="counted_sin")
    return mul, sin, calls


def test_squaring_fifty_times_is_linear_work_in_reverse_mode() -> None:
    # y = y * y fifty times: x ** (2 ** 50), whose derivative at 1 is 2 ** 50. A reverse
    # pass that re-walked shared values would run the rule 2 ** 50 times, not 50.
    mul, _, calls = counting_primitives()

    def f(x: Any) -> Any:
        y = x
        for _ in range(50):
            y = mul((y, y))
        return y

    assert fad.grad(f)(1.0) == 2.0**50
    assert calls["mul_vjp"] == 50


def test_squaring_fifty_times_with_builtin_multiply() -> None:
    def f(x: Any) -> Any:
        y = x
        for _ in range(50):
            y = y * y
        return y

    assert fad.grad(f)(1.0) == 2.0**50 * 1.0 ** (2**50 - 1)
    assert fad.derivative(f)(1.0) == 2.0**50
    assert fad.jacfwd(f)(np.ones(1)).tolist() == [[2.0**50]]


def test_a_value_used_by_a_hundred_branches_is_differentiated_once_per_use() -> None:
    _, sin, calls = counting_primitives()
    branches = fad.fork(*[sin] * 100)

    def f(x: Any) -> Any:
        total = 0.0
        for y in branches(x):
            total = total + y
        return total

    assert fad.grad(f)(0.3) == pytest.approx(100 * math.cos(0.3), rel=1e-14)
    assert calls["sin_vjp"] == 100
    assert fad.jvp(f, 0.3, 1.0)[1] == pytest.approx(100 * math.cos(0.3), rel=1e-14)
    assert calls["sin_jvp"] == 100


@pytest.mark.parametrize("steps", [1, 63, 64, 200])
def test_a_matrix_shared_by_many_vector_products_gets_every_share(steps: int) -> None:
    """``h @ W`` at every step of a loop: W's cotangent is the sum of all steps' outer
    products (summed in chunks), plus what other uses of W add (whole, and by entry)."""
    rng = np.random.default_rng(steps)
    w = rng.normal(size=(4, 4)) / 2.0
    xs = rng.normal(size=(steps, 4))

    def f(w: Any) -> Any:
        total = np.sum(w) + w[1, 2] * 3.0
        for x in xs:
            total = total + np.sum(np.tanh(x @ w) * 2.0)
        return total

    g = fad.grad(f)(w)
    expected = np.ones((4, 4))
    expected[1, 2] += 3.0
    for x in xs:
        expected += np.outer(x, 2.0 * (1.0 - np.tanh(x @ w) ** 2))
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-12)
    close(fad.jacfwd(f)(w), g, EXACT[np.dtype(np.float64)], "forward mode")


def test_a_diamond_of_depth_forty_is_linear_work() -> None:
    # y = a(y) + b(y) forty times: every level has two paths, 2**40 paths in all.
    _, sin, calls = counting_primitives()

    def f(x: Any) -> Any:
        y = x
        for _ in range(40):
            y = sin(y) + 0.5 * y
        return y

    g, expected = fad.grad(f)(0.4), 1.0
    y = 0.4
    for _ in range(40):
        expected *= math.cos(y) + 0.5
        y = math.sin(y) + 0.5 * y
    assert g == pytest.approx(expected, rel=1e-12)
    assert calls["sin_vjp"] == 40


# ------------------------------------------------------------------- deep programs


DEPTH = 10_000


def iterated_sin(x: float, n: int) -> tuple[float, float]:
    d = 1.0
    for _ in range(n):
        d *= math.cos(x)
        x = math.sin(x)
    return x, d


def test_ten_thousand_composed_sins_in_reverse_mode() -> None:
    f = fad.pipe(*[fad.sin] * DEPTH)
    value, expected = iterated_sin(0.9, DEPTH)
    assert f.value(0.9) == pytest.approx(value, rel=1e-14)
    assert fad.grad(f)(0.9) == pytest.approx(expected, rel=1e-10)
    x = np.array([0.9, -0.4])
    close(fad.grad(lambda x: np.sum(f(x)))(x),
          [iterated_sin(0.9, DEPTH)[1], iterated_sin(-0.4, DEPTH)[1]], (1e-10, 0.0))  # fmt: skip


def test_ten_thousand_pointed_steps_that_cannot_be_fused() -> None:
    # Each step keeps two parents (sin(y) and y), so the graph is 10,000 nodes deep.
    def f(x: Any) -> Any:
        y = x
        for _ in range(DEPTH):
            y = np.sin(y) + 1e-4 * y
        return np.sum(y)

    expected, y = 1.0, 0.9
    for _ in range(DEPTH):
        expected *= math.cos(y) + 1e-4
        y = math.sin(y) + 1e-4 * y
    assert fad.grad(f)(np.array([0.9]))[0] == pytest.approx(expected, rel=1e-10)
    assert fad.jvp(f, np.array([0.9]), np.ones(1))[1] == pytest.approx(expected, rel=1e-10)


# -------------------------------------------------------------------------- pytrees


class Params(NamedTuple):
    w: Any
    b: Any


@dataclasses.dataclass
class Model:
    w: Any
    b: Any


class Pair:
    """A user's container, admitted with register_container."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second


fad.register_container(Pair, lambda p: ((p.first, p.second), None), lambda _, ch: Pair(*ch))


def sin_total(tree: Any) -> Any:
    """sum over every leaf of sum(sin(leaf)): its gradient is cos, leaf by leaf."""
    total = 0.0
    for leaf in tree_leaves(tree):
        total = total + np.sum(np.sin(leaf))
    return total


def tree_leaves(tree: Any) -> list[Any]:
    if isinstance(tree, Pair):
        return tree_leaves(tree.first) + tree_leaves(tree.second)
    if isinstance(tree, Model):
        return tree_leaves(tree.w) + tree_leaves(tree.b)
    if isinstance(tree, tuple | list):
        return [leaf for item in tree for leaf in tree_leaves(item)]
    if isinstance(tree, dict):
        return [leaf for key in tree for leaf in tree_leaves(tree[key])]
    return [tree]


def assert_same_structure(g: Any, x: Any) -> None:
    """Same container types, keys and lengths; leaves of the same shape and dtype."""
    assert type(g) is type(x), (type(g), type(x))
    if isinstance(x, Pair):
        assert_same_structure(g.first, x.first)
        assert_same_structure(g.second, x.second)
    elif isinstance(x, Model):
        assert_same_structure(g.w, x.w)
        assert_same_structure(g.b, x.b)
    elif isinstance(x, tuple | list):
        assert len(g) == len(x)
        for gi, xi in zip(g, x, strict=True):
            assert_same_structure(gi, xi)
    elif isinstance(x, dict):
        assert list(g) == list(x)
        for k in x:
            assert_same_structure(g[k], x[k])
    else:
        assert np.shape(g) == np.shape(x)
        assert np.result_type(g) == np.result_type(x), (np.result_type(g), np.result_type(x))


def assert_grad_is_cos(tree: Any) -> None:
    g = fad.grad(sin_total)(tree)
    assert_same_structure(g, tree)
    for gl, xl in zip(tree_leaves(g), tree_leaves(tree), strict=True):
        dt = np.result_type(xl)
        close(gl, np.cos(np.asarray(xl, dtype=dt)), EXACT[dt], f"leaf {xl!r}")


float_leaves = hs.floats(-3, 3) | hnp.arrays(
    np.float64, hnp.array_shapes(max_dims=2, max_side=3), elements=hs.floats(-3, 3)
)
float32_leaves = hnp.arrays(
    np.float32, hnp.array_shapes(max_dims=2, max_side=3), elements=hs.floats(-3, 3, width=32)
)


def trees(leaf: hs.SearchStrategy[Any]) -> hs.SearchStrategy[Any]:
    return hs.recursive(
        leaf,
        lambda kids: (
            hs.tuples(kids, kids)
            | hs.lists(kids, min_size=1, max_size=3)
            | hs.dictionaries(hs.sampled_from("abcd"), kids, min_size=1, max_size=3)
        ),
        max_leaves=6,
    )


@settings(max_examples=60, deadline=None)
@given(trees(float_leaves))
def test_gradients_come_back_in_the_structure_of_the_input(tree: Any) -> None:
    assert_grad_is_cos(tree)


@settings(max_examples=30, deadline=None)
@given(trees(float32_leaves))
def test_float32_pytrees_keep_float32_gradients(tree: Any) -> None:
    assert_grad_is_cos(tree)


@pytest.mark.parametrize(
    "tree",
    [
        Params(np.array([0.5, -1.0]), 0.3),
        Model(np.array([[0.5], [2.0]]), {"bias": 0.3}),
        Pair(0.2, (np.array([1.0, 2.0]), [0.4])),
        {"layer": Params(np.ones(2), np.zeros(1)), "pairs": [Pair(0.1, 0.2)]},
        Params(np.array([0.5, -1.0], dtype=np.float32), np.float32(0.3)),
    ],
    ids=["namedtuple", "dataclass", "registered", "nested", "namedtuple-float32"],
)
def test_named_containers_round_trip(tree: Any) -> None:
    assert_grad_is_cos(tree)


def test_mixed_precision_leaves_keep_their_own_dtypes() -> None:
    # float32 weights beside a Python-float bias: the output is float64 (numpy promotes),
    # yet each gradient has its own leaf's dtype, as a float32 model's parameters must.
    tree = Params(np.array([0.5, -1.0], dtype=np.float32), 0.3)
    assert_grad_is_cos(tree)


@pytest.mark.parametrize("jac", [fad.jacfwd, fad.jacrev], ids=lambda j: j.__name__)
def test_jacobians_of_pytree_inputs_and_outputs(jac: Callable[..., Any]) -> None:
    def f(p: dict[str, Any]) -> Any:
        return {"y": np.sin(p["a"]) * p["b"], "z": p["b"] ** 2}

    p = {"a": np.array([0.1, 0.2]), "b": 3.0}
    j = jac(f)(p)
    assert set(j) == {"y", "z"} and set(j["y"]) == {"a", "b"}
    close(j["y"]["a"], np.diag(np.cos(p["a"]) * 3.0), EXACT[np.dtype(np.float64)])
    close(j["y"]["b"], np.sin(p["a"]), EXACT[np.dtype(np.float64)])
    assert np.shape(j["y"]["a"]) == (2, 2) and np.shape(j["y"]["b"]) == (2,)
    assert float(j["z"]["b"]) == 6.0 and np.shape(j["z"]["a"]) == (2,)


# ---------------------------------------------------------------- the transforms' API


@pytest.mark.parametrize(
    "f",
    [
        np.sum,
        lambda x: x + 0.0,
        lambda x: x[1:] * 1.0,
        lambda x: x[::2],
        lambda x: x[[0, 0, 2]],
        lambda x: np.broadcast_to(x, (2, 3)),
    ],
    ids=["sum", "identity", "slice", "bare slice", "repeated indices", "broadcast"],
)
def test_cotangents_are_fresh_arrays_the_caller_may_write_into(f: Callable[[Any], Any]) -> None:
    """Not a read-only broadcast view (np.sum's transpose), not the caller's own array."""
    x = np.arange(3.0)
    u = np.ones(np.shape(f(x)))
    g = fad.vjp(f, x)[1](u)[0]
    assert g.flags.writeable
    assert not np.may_share_memory(g, u) and not np.may_share_memory(g, x)
    g += 1.0  # the caller owns it


def test_two_inputs_never_share_a_gradient_array() -> None:
    c = np.arange(3.0)
    ga, gb = fad.grad(lambda x, y: np.sum((x + y) * c), argnums=(0, 1))(np.ones(3), np.ones(3))
    assert not np.may_share_memory(ga, gb)
    ga += 1.0
    np.testing.assert_array_equal(gb, c)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradients_of_full_sums_are_fresh_arrays_of_the_inputs_dtype(dtype: Any) -> None:
    """A full sum's transpose is kept as one number through sums and scalings; the
    gradient that comes out of it is still a fresh writeable array of the input's dtype."""
    x = np.linspace(-1.0, 1.0, 5).astype(dtype)
    for f, want in [
        (np.sum, np.ones_like(x)),
        (lambda x: np.sum(3.0 * x), np.full_like(x, 3.0)),
        (lambda x: np.sum(-(x**2) * 0.5 + x), 1.0 - x),
        (lambda x: np.sum(np.tanh(x)), 1.0 - np.tanh(x) ** 2),
        (lambda x: np.sum(x[1:] ** 2), np.r_[0.0, 2.0 * x[1:]].astype(dtype)),
    ]:
        g = fad.grad(f)(x)
        assert g.dtype == dtype and g.flags.writeable and not np.may_share_memory(g, x)
        np.testing.assert_allclose(g, want, rtol=1e-6)
        g += 1.0


def test_a_gradient_frees_the_graph_as_it_reads_it() -> None:
    """value_and_grad reads its derivative once and drops each node's saved values after
    its transpose (peak memory: about the nodes not yet reached); reading that map
    again is a clear error, not a wrong answer. linearize keeps its map readable."""
    from fad import _linear as lin
    from fad._transforms import _trace

    def f(x: Any) -> Any:
        t = x[1:] - x[:-1] ** 2
        return np.sum(100.0 * t**2 + np.tanh(x[:-1]) @ np.ones((3, 3)) @ x[1:])

    x = np.array([0.5, -1.0, 2.0, 0.25])
    _, d, _ = _trace(f, (x,), 0, False)
    saved = [n for n in lin.toposort(d._nodes) if type(n) is lin.Scale]
    assert saved and all(n.c is not None for n in saved)
    g = d.gradient_once()
    np.testing.assert_allclose(g, fad.linearize(f, x)[1].T @ 1.0, rtol=1e-12)
    np.testing.assert_allclose(g, fad.grad(f)(x), rtol=1e-12)
    assert all(n.c is None for n in saved)
    with pytest.raises(RuntimeError, match="read once"):
        d @ x
    with pytest.raises(RuntimeError, match="read once"):
        1.0 @ d
    _, kept = fad.linearize(f, x)
    np.testing.assert_array_equal(1.0 @ kept, 1.0 @ kept)  # readable as often as wanted


def test_a_gradient_with_a_nan_from_zero_times_infinity_records_the_function_again() -> None:
    """The freed graph can't be pulled again, so a nan in a gradient makes
    value_and_grad run the function once more and pull with every product checked."""
    calls = []

    def f(x: Any) -> Any:
        calls.append(1)
        return np.sum(np.where(x > 0.0, np.sqrt(x), 0.0))

    x = np.array([0.0, 4.0])
    np.testing.assert_array_equal(fad.grad(f)(x), [0.0, 0.25])
    assert len(calls) == 2
    calls.clear()
    np.testing.assert_array_equal(fad.grad(f)(np.array([1.0, 4.0])), [0.5, 0.25])
    assert len(calls) == 1


@given(
    hs.floats(-1e3, 1e3, allow_subnormal=False),
    hs.floats(-1e3, 1e3, allow_subnormal=False),
    hnp.arrays(np.float64, 4, elements=hs.floats(-10, 10)),
)
def test_scalar_steps_fuse_into_an_array_coefficient_without_changing_it(
    a: float, b: float, x: np.ndarray[Any, Any]
) -> None:
    """``a * (b * x**2)`` keeps a and b apart from the array 2x (no pass over it per
    scalar step); its derivative in every mode is still a * b * 2x."""
    want = a * b * 2.0 * x
    f = lambda x: a * (-(b * x**2))  # noqa: E731
    _, d = fad.linearize(f, x)
    np.testing.assert_allclose(np.asarray(d), -want, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(d @ np.ones(4), -want, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(fad.grad(lambda x: np.sum(f(x)))(x), -want, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(np.diag(fad.jacfwd(f)(x)), -want, rtol=1e-12, atol=1e-300)


def test_scalar_factors_that_overflow_or_underflow_are_multiplied_in() -> None:
    x = np.array([1.0, 0.0, -2.0])
    with np.errstate(over="ignore"):
        big = np.asarray(fad.linearize(lambda x: 1e200 * (1e200 * x**2), x)[1])
    np.testing.assert_array_equal(big, [np.inf, 0.0, -np.inf])
    tiny = np.asarray(fad.linearize(lambda x: 1e-200 * (1e-200 * x**2), x)[1])
    np.testing.assert_array_equal(tiny, [0.0, 0.0, -0.0])


def test_the_garbage_collector_is_paused_only_while_a_transform_runs() -> None:
    """Off while recording and reading the graph; back on after, even after an error;
    left off if the caller had turned it off."""
    seen = []

    def f(x: Any) -> Any:
        seen.append(gc.isenabled())
        return np.sum(x * x)

    assert gc.isenabled()
    fad.grad(f)(np.ones(3))
    fad.jacfwd(f)(np.ones(3))
    assert seen == [False, False] and gc.isenabled()
    with pytest.raises(ZeroDivisionError):
        fad.grad(lambda x: 1 / 0)(np.ones(3))
    assert gc.isenabled()
    gc.disable()
    try:
        fad.grad(f)(np.ones(3))
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("private", [True, False], ids=["numpy-contextvar", "np.errstate"])
def test_an_unchecked_reverse_pass_ignores_invalid_values_as_errstate_would(
    private: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reverse pass sets numpy's error state itself (``_ignore_invalid``, through
    numpy's private context variable when there is one): inside it, the caller's state
    with invalid="ignore", as ``np.errstate(invalid="ignore")`` makes it; after it, the
    caller's state again, also when the state changes between calls."""
    from fad import _linear as lin

    if not private:
        monkeypatch.setattr(lin, "_NP_ERRORS", None)
    seen: list[dict[str, str]] = []

    def vjp(x: Any, ct: Any) -> Any:
        seen.append(np.geterr())
        return ct

    ident = fad.primitive(lambda x: x, jvp=lambda x, t: t, vjp=vjp, name="ident")
    for state in [{}, {"all": "raise"}, {"divide": "warn", "invalid": "raise"}, {"all": "warn"}]:
        with np.errstate(**state):  # type: ignore[arg-type]
            outside = np.geterr()
            with np.errstate(invalid="ignore"):
                want = np.geterr()
            np.testing.assert_array_equal(fad.grad(lambda x: np.sum(ident(x)))(X3), [1.0] * 3)
            assert seen.pop() == want and np.geterr() == outside


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_nan_check_of_a_pass_neither_warns_nor_misses(dtype: Any) -> None:
    """A pass's results are checked for nan (``has_nan``, by their sum of squares); a
    finite gradient whose check overflows gives no warning, and a nan is found in every
    dtype and shape, infinities of both signs being no nan."""
    from fad import _linear as lin

    big = np.finfo(dtype).max / 2
    x = np.full(4, 1e-3, dtype)
    with np.errstate(all="raise"):
        g = fad.grad(lambda x: np.sum(x) * dtype(big))(x)
    np.testing.assert_array_equal(g, np.full(4, big, dtype))
    for a in [np.arange(12, dtype=dtype).reshape(3, 4), np.zeros((), dtype), np.zeros(0, dtype)]:
        for v in [a, a.T, a[..., ::2] if a.ndim else a]:
            assert not lin.has_nan([v])
            if v.size:
                w = v.copy()
                w.reshape(-1)[0], w.reshape(-1)[-1] = -np.inf, np.inf
                assert not lin.has_nan([w])
                w.reshape(-1)[-1] = np.nan
                assert lin.has_nan([w])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_indexed_cotangent_pieces_add_up_as_add_at_does(dtype: Any) -> None:
    """``Sparse.dense`` (indexing's transpose, written once at the input) adds basic
    pieces into its zeros in place, slices without a call to ``is_basic``: the result is
    ``np.add.at`` into zeros, bit for bit, signed zeros included (-0.0 becomes 0.0)."""
    from fad import _linear as lin

    rng = np.random.default_rng(0)
    shape = (4, 5)
    pieces: list[tuple[Any, Any]] = [
        (slice(1, None), np.array(-0.0, dtype)),
        (slice(None, -1), rng.normal(size=(3, 5)).astype(dtype)),
        ((2, slice(None, None, 2)), rng.normal(size=3).astype(dtype)),
        ((1, 3), dtype(-0.0)),
        ((0, 0), 2.5),
        (np.array([0, 0, 3]), rng.normal(size=(3, 5)).astype(dtype)),
        (..., np.full(shape, -0.0, dtype)),
    ]
    for k in range(1, len(pieces) + 1):
        sparse = lin.Sparse(shape, np.dtype(dtype), *pieces[0])
        for index, value in pieces[1:k]:
            sparse.merge(lin.Sparse(shape, np.dtype(dtype), index, value))
        want = np.zeros(shape, dtype)
        for index, value in pieces[:k]:
            np.add.at(want, index, value)
        got = sparse.dense()
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))


def test_grad_of_a_non_scalar_output_says_to_use_jacobian() -> None:
    with pytest.raises(TypeError, match="jacobian"):
        fad.grad(lambda x: np.sin(x))(np.ones(3))
    with pytest.raises(TypeError, match="jacobian"):
        fad.value_and_grad(lambda x: (x, x))(1.0)


def loss_with_aux(x: Any) -> Any:
    return np.sum(x * x), {"norm": np.sqrt(np.sum(x * x))}


X3 = np.array([1.0, 2.0, 2.0])


def test_grad_has_aux() -> None:
    g, aux = fad.grad(loss_with_aux, has_aux=True)(X3)
    close(g, 2 * X3, EXACT[np.dtype(np.float64)])
    assert aux == {"norm": 3.0} and type(aux["norm"]) is not fad.Dual


def test_value_and_grad_has_aux() -> None:
    (value, aux), g = fad.value_and_grad(loss_with_aux, has_aux=True)(X3)
    assert value == 9.0 and aux == {"norm": 3.0}
    close(g, 2 * X3, EXACT[np.dtype(np.float64)])


def test_vjp_has_aux() -> None:
    y, pullback, aux = fad.vjp(lambda x: (np.sin(x), "aux"), X3, has_aux=True)
    close(y, np.sin(X3), EXACT[np.dtype(np.float64)])
    assert aux == "aux"
    close(pullback(np.ones(3))[0], np.cos(X3), EXACT[np.dtype(np.float64)])


@pytest.mark.parametrize("jac", [fad.jacfwd, fad.jacrev], ids=lambda j: j.__name__)
def test_jacobians_have_aux(jac: Callable[..., Any]) -> None:
    j, aux = jac(lambda x: (x**2, [x.shape, 7]), has_aux=True)(X3)
    close(j, np.diag(2 * X3), EXACT[np.dtype(np.float64)])
    assert aux == [(3,), 7]


def test_has_aux_requires_a_pair() -> None:
    with pytest.raises(TypeError, match="has_aux"):
        fad.grad(lambda x: x * x, has_aux=True)(1.0)


def f3(a: Any, b: Any, c: Any) -> Any:
    return a * b**2 * np.sum(np.sin(c))


C = np.array([0.1, 0.2])
S = float(np.sum(np.sin(C)))


def test_argnums_int_selects_one_argument() -> None:
    assert fad.grad(f3, argnums=1)(2.0, 3.0, C) == pytest.approx(2 * 2.0 * 3.0 * S)
    assert fad.grad(f3)(2.0, 3.0, C) == pytest.approx(9.0 * S)
    close(fad.grad(f3, argnums=-1)(2.0, 3.0, C), 18.0 * np.cos(C), EXACT[np.dtype(np.float64)])


def test_argnums_tuple_gives_a_tuple_and_a_one_tuple_gives_a_one_tuple() -> None:
    g = fad.grad(f3, argnums=(1,))(2.0, 3.0, C)
    assert isinstance(g, tuple) and len(g) == 1
    assert g[0] == pytest.approx(12.0 * S)
    ga, gc = fad.grad(f3, argnums=(0, 2))(2.0, 3.0, C)
    assert ga == pytest.approx(9.0 * S)
    close(gc, 18.0 * np.cos(C), EXACT[np.dtype(np.float64)])
    j = fad.jacfwd(f3, argnums=(0, 1))(2.0, 3.0, C)
    assert isinstance(j, tuple) and len(j) == 2
    assert float(j[1]) == pytest.approx(12.0 * S)


def test_argnums_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="argnums"):
        fad.grad(f3, argnums=3)(2.0, 3.0, C)


@PROPERTY
@given(programs(), seeds)
def test_linearize_gives_the_map_and_its_transpose(p: Program, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, v, u = rng.uniform(-1.5, 1.5, p.n_in), rng.normal(size=p.n_in), rng.normal(size=p.n_out)
    y, d = fad.linearize(p, x)
    close(y, value_of(p, x), EXACT[np.dtype(np.float64)], "primal")
    j = fad.jacrev(p)(x)
    close(d @ v, j @ v, EXACT[np.dtype(np.float64)], "d @ v")
    close(u @ d, u @ j, EXACT[np.dtype(np.float64)], "u @ d")
    close(d.T @ u, u @ j, EXACT[np.dtype(np.float64)], "d.T @ u")
    close(v @ d.T, j @ v, EXACT[np.dtype(np.float64)], "v @ d.T")
    close(d.T.T @ v, d @ v, EXACT[np.dtype(np.float64)], "d.T.T @ v")


@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=finite_floats))
def test_the_derivative_of_an_elementwise_function_is_its_per_element_derivative(
    x: np.ndarray,
) -> None:
    f = fad.sin >> fad.multiply(2.0) >> fad.tanh
    _, d = f(x)
    expected = (1 - np.tanh(2 * np.sin(x)) ** 2) * 2 * np.cos(x)
    assert np.asarray(d).shape == x.shape
    close(np.asarray(d), expected, EXACT[np.dtype(np.float64)])
    _, d = fad.value_and_derivative(lambda x: np.tanh(2 * np.sin(x)))(x)
    close(np.asarray(d), expected, EXACT[np.dtype(np.float64)], "pointed")
    close(fad.derivative(f)(x), expected, EXACT[np.dtype(np.float64)], "derivative")


@given(finite_floats)
def test_a_scalar_derivative_is_a_number(x: float) -> None:
    _, d = fad.sin(x)
    assert float(d) == math.cos(x)
    assert d == math.cos(x)
    _, d = fad.linearize(lambda x: x * fad.sin(x), x)
    assert float(d) == pytest.approx(math.sin(x) + x * math.cos(x), rel=1e-14, abs=1e-14)


def test_value_and_derivative_of_a_vector_function_is_the_linear_map() -> None:
    W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    y, d = fad.value_and_derivative(lambda x: x @ W)(np.ones(3))
    close(y, [9.0, 12.0], EXACT[np.dtype(np.float64)])
    close(d @ np.array([1.0, 0.0, 0.0]), W[0], EXACT[np.dtype(np.float64)])
    close(np.array([0.0, 1.0]) @ d, W[:, 1], EXACT[np.dtype(np.float64)])
    close(np.asarray(d), W.T, EXACT[np.dtype(np.float64)], "dense Jacobian")
