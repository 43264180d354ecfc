"""Forward mode through slices: the identity's columns shifted (``Band``) stay exact.

``jacfwd`` pushes the identity as a diagonal; a contiguous slice shifts it, a product of
shifted slices sums shifted diagonals, and indexing's transpose (in a Hessian's inner
reverse pass) shifts them back. Every way through and out of that - elementwise steps,
sums with dense terms, reshapes, full and partial sums, slices that are not contiguous -
must give what reverse mode and finite differences give, in the input's precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

import fad
from _numeric import close, numerical_jacobian
from fad import _linear as lin

EXACT = {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-4, 1e-6)}
FINITE_DIFF = {np.dtype(np.float64): (1e-6, 1e-8)}
PROPERTY = settings(max_examples=60, deadline=None)

UNARY: list[Callable[[Any], Any]] = [
    lambda u: u,
    np.sin,
    lambda u: u * u,
    np.tanh,
    lambda u: 2.0 * u + 1.0,
]


@hs.composite
def shifted_programs(draw: hs.DrawFn) -> tuple[Callable[[Any], Any], int]:
    """y = sum_i g_i(x[a_i : a_i + m]) (* x[b_i : b_i + m]) over slices of one length,
    sometimes through a reshape, a scalar entry, a dense or a non-contiguous term."""
    n = draw(hs.integers(2, 9))
    m = draw(hs.integers(1, n))
    terms = [
        (
            draw(hs.integers(0, n - m)),
            draw(hs.integers(0, n - m)),
            draw(hs.integers(0, len(UNARY) - 1)),
            draw(hs.booleans()),
        )
        for _ in range(draw(hs.integers(1, 3)))
    ]
    extra = draw(hs.sampled_from(["none", "entry", "dense", "reversed", "reshape", "whole"]))
    mat = np.random.default_rng(n * 10 + m).normal(size=(m, n))

    def f(x: Any) -> Any:
        y: Any = 0.0
        for a, b, k, times in terms:
            u = UNARY[k](x[a : a + m])
            y = y + (u * x[b : b + m] if times else u)
        if extra == "entry":
            y = y * x[n - 1]
        elif extra == "dense":
            y = y + mat.astype(x.dtype) @ np.sin(x)
        elif extra == "reversed":
            y = y + x[::-1][:m] * x[:m]
        elif extra == "reshape":
            y = np.reshape(np.reshape(y, (m, 1)) * np.reshape(x[:m], (m, 1)), (m,))
        elif extra == "whole":
            y = y + np.sin(x[:])[:m]
        return y

    return f, n


def point(n: int, seed: int, dtype: Any = np.float64) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.5, 1.5, n).astype(dtype)


@PROPERTY
@given(shifted_programs(), hs.integers(0, 2**16), hs.sampled_from([np.float64, np.float32]))
def test_forward_jacobians_of_shifted_slices_agree_with_reverse_mode(
    prog: tuple[Callable[[Any], Any], int], seed: int, dtype: Any
) -> None:
    f, n = prog
    x = point(n, seed, dtype)
    expected = fad.jacrev(f)(x)
    for jac in (fad.jacfwd, fad.jacobian):
        j = jac(f)(x)
        assert j.dtype == expected.dtype == dtype, jac.__name__
        close(j, expected, EXACT[np.dtype(dtype)], jac.__name__)
    assert np.all(np.isfinite(fad.jacfwd(f)(x)))


@PROPERTY
@given(shifted_programs(), hs.integers(0, 2**16), hs.sampled_from([np.float64, np.float32]))
def test_hessians_of_shifted_products_agree_with_reverse_over_reverse(
    prog: tuple[Callable[[Any], Any], int], seed: int, dtype: Any
) -> None:
    # The inner reverse pass scatters the slices' cotangents back: shifted diagonals
    # shifted back, summed with the diagonal of the elementwise terms.
    f, n = prog

    def loss(x: Any) -> Any:
        y = f(x)
        return np.sum(y * y) + np.sum(np.sin(x[1:]) * x[:-1])

    x = point(n, seed, dtype)
    h = fad.hessian(loss)(x)
    assert h.dtype == dtype
    tols = EXACT[np.dtype(dtype)]
    close(h, fad.jacrev(fad.jacrev(loss))(x), tols, "jacrev(jacrev)")
    close(h, fad.jacfwd(fad.jacfwd(loss))(x), tols, "jacfwd(jacfwd)")
    close(fad.jacobian(fad.grad(loss))(x), h, tols, "jacobian(grad)")
    v = np.random.default_rng(seed + 1).normal(size=n).astype(dtype)
    close(fad.hvp(loss, x, v), h @ v, tols, "hvp")
    if dtype == np.float64:
        close(h, numerical_jacobian(fad.grad(loss), x), FINITE_DIFF[np.dtype(dtype)], "fd")


@settings(max_examples=200, deadline=None)
@given(hs.data())
def test_flat_span_finds_exactly_the_runs_of_consecutive_flat_positions(data: Any) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    taken = np.arange(int(np.prod(shape))).reshape(shape)[index]
    flat = np.ravel(taken)
    consecutive = flat.size > 0 and np.array_equal(flat, flat[0] + np.arange(flat.size))
    start = lin.flat_span(shape, index)
    if start is not None:
        assert consecutive and start == flat[0]
    elif consecutive and not (isinstance(index, tuple) and None in index) and index is not None:
        # Runs through a new axis are left dense; every other run is found.
        pytest.fail(f"missed the run at {flat[0]} of {shape}[{index!r}]")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_tridiagonal_hessian_of_a_chain_is_exact_and_kept_in_bands(dtype: Any) -> None:
    # The benchmark's function: its Hessian comes out of bands at offsets -1, 0, 1.
    def f(x: Any) -> Any:
        return np.sum(np.sin(x) * x**2) + np.sum(x[:-1] * x[1:])

    x = point(50, 7, dtype)
    d = x.astype(np.float64)
    expected = np.diag(-np.sin(d) * d**2 + 4 * d * np.cos(d) + 2 * np.sin(d))
    expected += np.diag(np.ones(49), 1) + np.diag(np.ones(49), -1)
    h = fad.hessian(f)(x)
    assert h.dtype == dtype
    close(h, expected, EXACT[np.dtype(dtype)])

    seen: list[Any] = []
    forward = lin._forward

    def spy(node: lin.Node, ts: list[Any]) -> Any:
        t = forward(node, ts)
        seen.append(t)
        return t

    lin._forward = spy  # type: ignore[assignment]
    try:
        fad.hessian(f)(x)
    finally:
        lin._forward = forward  # type: ignore[assignment]
    # No (n, n-1) or (n, n) tangent is formed on the way: only the answer is dense.
    assert all(np.ndim(t) <= 1 or type(t) in (lin.Diag, lin.Band) for t in seen)
    assert {o for t in seen if type(t) is lin.Band for o in t.bands} == {-1, 0, 1}


def test_bands_leave_no_nan_where_a_structural_zero_meets_an_infinite_slope() -> None:
    # sqrt at 0 has an infinite slope: the zeros beside it stay zeros (0 * inf is 0).
    x = np.array([1.0, 0.0, 4.0])
    with np.errstate(divide="ignore"):
        j = fad.jacfwd(lambda x: np.sqrt(x[1:]))(x)
        h = fad.hessian(lambda x: np.sum(np.sqrt(x[1:]) * x[:-1]))(x)
    np.testing.assert_array_equal(j, [[0.0, np.inf, 0.0], [0.0, 0.0, 0.25]])
    np.testing.assert_array_equal(h, [[0.0, np.inf, 0.0], [np.inf, -np.inf, 0.25], [0, 0.25, 0]])


def test_sums_of_dense_tangents_do_not_write_into_their_terms() -> None:
    # A sum of three dense tangents adds the third into the first sum, never into a term.
    a = np.random.default_rng(0).normal(size=(4, 4))
    x = np.linspace(0.1, 1.0, 4)
    f = lambda x: a @ x + np.sin(a @ x) + x[::-1]  # noqa: E731
    expected = fad.jacrev(f)(x)
    _, d = fad.linearize(f, x)
    t = np.eye(4)
    before = t.copy()
    close(fad.jacfwd(f)(x), expected, EXACT[np.dtype(np.float64)])
    close(d @ t, t @ expected.T, EXACT[np.dtype(np.float64)])  # a batch of tangents
    np.testing.assert_array_equal(t, before)


RECORDED: dict[str, Callable[[Any], Any]] = {
    "a kept output times a slice": lambda x: np.tanh(x[1:]) * x[:-1],
    "a kept output of a sum of slices": lambda x: np.tanh(x[1:] + x[:-1]),
    "a fused chain of a sum of slices": lambda x: 1.0 / (1.0 + np.exp(-(x[1:] + 2.0 * x[:-1]))),
    "a slice of a matrix's rows": lambda x: np.sin(np.reshape(x, (3, 2))[1:]) * 3.0,
    "an entry, broadcast": lambda x: x[2] * np.cos(x),
    "a full sum of slices": lambda x: np.sum(x[2:] * x[:-2], keepdims=True) + x[:1],
    "a partial sum of slices": lambda x: np.sum(np.reshape(x[:4] * x[2:], (2, 2)), axis=0),
}


@pytest.mark.parametrize("name", RECORDED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_recorded_derivative_read_forward_through_slices_equals_reverse(
    name: str, dtype: Any
) -> None:
    # linearize records the graph (tanh keeps its output); reading it forward pushes the
    # identity through the record, bands and all.
    x = np.linspace(-1.0, 1.2, 6).astype(dtype)
    _, d = fad.linearize(RECORDED[name], x)
    fwd, rev = d.dense("fwd"), d.dense("rev")
    assert fwd.dtype == rev.dtype == dtype
    close(fwd, rev, EXACT[np.dtype(dtype)], name)
