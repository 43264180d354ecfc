"""Higher-order blocks: values against Python loops, derivatives against finite
differences and across modes, currying, closures, long loops and checkpointing."""

from __future__ import annotations

import contextlib
import io
import re
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import fad
from fad import laws
from fad._blocks import _row_ndim

SETTINGS = settings(max_examples=20, deadline=None)


def arrays(draw: Any, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray[Any, Any]:
    seed = draw(hs.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).uniform(-scale, scale, shape)


@hs.composite
def recurrences(draw: Any) -> dict[str, Any]:
    """A small tanh recurrence: carry (d,), rows (k,), and its weights; length 0 to 5."""
    t = draw(hs.integers(0, 5))
    d = draw(hs.integers(1, 3))
    k = draw(hs.integers(1, 3))
    return {
        "init": arrays(draw, (d,)),
        "xs": arrays(draw, (t, k)),
        "W": arrays(draw, (d, d), 0.8),
        "U": arrays(draw, (k, d), 0.8),
    }


def cell(W: Any, U: Any) -> Any:
    """The pointed step ``(h, x) -> tanh(h W + x U)``, closing over ``W`` and ``U``."""
    return lambda h, x: np.tanh(h @ W + x @ U)


def python_fold(step: Any, init: Any, xs: Any) -> Any:
    carry = init
    for x in xs:
        carry = step(carry, x)
    return carry


# ------------------------------------------------------------------------------ fold


@SETTINGS
@given(recurrences())
def test_fold_equals_a_python_loop(r: dict[str, Any]) -> None:
    expected = python_fold(cell(r["W"], r["U"]), r["init"], r["xs"])
    got = fad.fold(cell(r["W"], r["U"]), r["init"], r["xs"])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(fad.fold(cell(r["W"], r["U"]))((r["init"], r["xs"])).value, expected)


@SETTINGS
@given(recurrences())
def test_fold_derivatives_in_init_xs_and_closed_over_weights(r: dict[str, Any]) -> None:
    def f(args: Any) -> Any:
        init, xs, W, U = args
        return fad.fold(cell(W, U), init, xs)

    point = (r["init"], r["xs"], r["W"], r["U"])
    laws.check_finite_differences(f, point)
    laws.check_modes_agree(f, point)


@SETTINGS
@given(recurrences())
def test_fold_with_a_point_free_step(r: dict[str, Any]) -> None:
    step = fad.lift(lambda h, x: h @ r["W"] + x @ r["U"]) >> fad.tanh
    expected = python_fold(cell(r["W"], r["U"]), r["init"], r["xs"])
    np.testing.assert_allclose(fad.fold(step, r["init"], r["xs"]), expected, rtol=1e-12)
    pair = fad.fst >> fad.matmul(r["W"])
    point_free = (pair + (fad.snd >> fad.matmul(r["U"]))) >> fad.tanh
    np.testing.assert_allclose(fad.fold(point_free, r["init"], r["xs"]), expected, rtol=1e-12)
    laws.check_finite_differences(lambda a: fad.fold(point_free, *a), (r["init"], r["xs"]))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_every_block_at_lengths_zero_one_and_two(n: int) -> None:
    rng = np.random.default_rng(n)
    xs, ys, w = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)), rng.normal(size=2)

    def blocks(p: Any) -> Any:
        w, xs, ys = p
        return (
            fad.fold(lambda c, x: np.tanh(c * w + x), w, xs),
            fad.scan(lambda c, x: (c * x, np.sum(c * w)), w, xs),
            fad.map(lambda x: np.sin(x) * w, xs),
            fad.zip_with(lambda x, y: np.sum(x * y * w), xs, ys),
            fad.unfold(lambda s: (s * 0.5, s + w), w, n),
        )

    fold_, (carry, sums), mapped, zipped, unfolded = blocks((w, xs, ys))
    assert carry.shape == (2,) and sums.shape == (n,)
    assert mapped.shape == (n, 2) and zipped.shape == (n,)
    assert unfolded.shape == (n, 2)
    np.testing.assert_allclose(fold_, python_fold(lambda c, x: np.tanh(c * w + x), w, xs))
    laws.check_finite_differences(blocks, (w, xs, ys))
    laws.check_modes_agree(blocks, (w, xs, ys))


def test_fold_of_length_zero_is_init_with_the_identity_derivative() -> None:
    assert fad.fold(lambda c, x: c * x, 2.0, np.zeros(0)) == 2.0
    assert fad.grad(lambda c: fad.fold(lambda c, x: c * x, c, np.zeros(0)))(2.0) == 1.0


def test_fold_carries_a_pytree_and_reads_a_tuple_of_arrays() -> None:
    xs = (np.arange(4.0), np.ones((4, 2)))

    def step(carry: Any, x: Any) -> Any:
        total, vec = carry
        a, b = x
        return total + a, vec * a + b

    def f(init: Any) -> Any:
        total, vec = fad.fold(step, init, xs)
        return total + np.sum(vec)

    point = (1.0, np.array([0.5, -0.5]))
    total, vec = fad.fold(step, point, xs)
    assert total == 7.0
    np.testing.assert_array_equal(vec, [16.0, 16.0])
    laws.check_finite_differences(f, point)
    laws.check_modes_agree(f, point)


def test_nested_derivatives_through_a_fold() -> None:
    xs = np.zeros(4)

    def power4(a: Any) -> Any:
        return fad.fold(lambda c, x: c * a + x, 1.0, xs)  # a ** 4

    assert fad.derivative(power4)(2.0) == 32.0
    assert fad.derivative(fad.derivative(power4))(2.0) == 48.0
    # The loop closes over a value of the outer transform: perturbations stay apart.
    f = fad.derivative(
        lambda x: x * fad.derivative(lambda y: fad.fold(lambda c, _: c + y, x, xs))(1.0)
    )
    assert f(1.0) == 4.0


def test_a_fold_of_100_000_steps_in_reverse_mode() -> None:
    n = 100_000
    xs = np.random.default_rng(0).uniform(-1.0, 1.0, n)
    a = 0.999
    g = fad.grad(lambda a: fad.fold(lambda c, x: c * a + x, 0.0, xs))(a)
    # By hand: c_t = sum_s a ** (t - 1 - s) x_s, so
    # dc_n/da = sum_s (n - 1 - s) a ** (n - 2 - s) x_s.
    k = np.arange(n)[::-1]
    expected = np.sum(np.where(k > 0, k * a ** np.maximum(k - 1, 0), 0.0) * xs)
    np.testing.assert_allclose(g, expected, rtol=1e-9)


# ------------------------------------------------------------------------------ scan


def python_scan(step: Any, init: Any, xs: Any) -> tuple[Any, list[Any]]:
    carry, ys = init, []
    for x in xs:
        carry, y = step(carry, x)
        ys.append(y)
    return carry, ys


@SETTINGS
@given(recurrences())
def test_scan_equals_a_python_loop(r: dict[str, Any]) -> None:
    W, U = r["W"], r["U"]

    def step(h: Any, x: Any) -> Any:
        h = np.tanh(h @ W + x @ U)
        return h, (h, np.sum(h))

    carry, (hs_, sums) = fad.scan(step, r["init"], r["xs"])
    c, ys = python_scan(step, r["init"], r["xs"])
    t, d = len(r["xs"]), len(r["init"])
    assert hs_.shape == (t, d) and sums.shape == (t,)
    np.testing.assert_allclose(carry, c, rtol=1e-12)
    if t:
        np.testing.assert_allclose(hs_, np.stack([y[0] for y in ys]), rtol=1e-12)
        np.testing.assert_allclose(sums, np.stack([y[1] for y in ys]), rtol=1e-12)


@SETTINGS
@given(recurrences())
def test_scan_derivatives(r: dict[str, Any]) -> None:
    def f(args: Any) -> Any:
        init, xs, W, U = args
        h = cell(W, U)
        carry, ys = fad.scan(lambda c, x: (h(c, x), h(c, x) * 2.0), init, xs)
        return carry, ys

    point = (r["init"], r["xs"], r["W"], r["U"])
    laws.check_finite_differences(f, point)
    laws.check_modes_agree(f, point)


# ---------------------------------------------------------------------------- unfold


@SETTINGS
@given(hs.integers(0, 6), hs.floats(-1.0, 1.0), hs.floats(-1.0, 1.0))
def test_unfold_equals_a_python_loop_and_differentiates(n: int, a: float, s0: float) -> None:
    def step(s: Any) -> Any:
        return np.sin(a * s + 1.0), s * s

    ys = fad.unfold(step, s0, n)
    state, expected = s0, []
    for _ in range(n):
        state, y = step(state)
        expected.append(y)
    assert ys.shape == (n,)
    np.testing.assert_allclose(ys, np.array(expected), rtol=1e-12)

    def f(p: Any) -> Any:
        return fad.unfold(lambda s: (np.sin(p[0] * s + 1.0), s * s), p[1], n)

    laws.check_finite_differences(f, (a, s0))


def test_unfold_curries_on_the_count() -> None:
    powers = fad.unfold(lambda s: (2.0 * s, s), n=4)
    assert repr(powers) == "unfold(<lambda>, n=4)"
    np.testing.assert_array_equal(fad.jacobian(powers)(1.0), [1.0, 2.0, 4.0, 8.0])
    np.testing.assert_array_equal(
        fad.unfold(lambda s: (2.0 * s, s))((1.0, 3)).value, [1.0, 2.0, 4.0]
    )
    with pytest.raises(ValueError, match="whole number"):
        fad.unfold(lambda s: (s, s), 1.0, 2.5)


# ------------------------------------------------------------------------------- map

W23 = np.arange(6.0).reshape(2, 3) / 6.0
ROW_WISE = [
    fad.tanh,
    fad.matmul(W23) >> fad.tanh,
    fad.matmul(W23) >> fad.softmax,
    fad.sin * fad.cos + 1.0,
    fad.dot(np.array([1.0, -2.0])) >> fad.exp,
    fad.sum(axis=-1),
    fad.logsumexp(axis=-1),
    fad.fork(fad.tanh, fad.matmul(W23)),
]
LOOPED = [
    fad.sum,  # reduces the whole row: fine per row, wrong over a batch
    fad.lift(lambda x: x[0] * x[1]),
    fad.const(2.0),
    fad.transpose(),  # reverses a row's axes: over a batch, the batch axis would move
    fad.dot(np.array([1.0, -2.0])) * fad.sin,  # a scalar per row times a vector per row
    fad.reshape(shape=(-1,)),
]


@pytest.mark.parametrize("f", ROW_WISE, ids=repr)
def test_map_runs_row_wise_functions_on_the_whole_batch(f: fad.Fn[Any, Any]) -> None:
    assert _row_ndim(f, 1) is not None


@pytest.mark.parametrize("f", LOOPED, ids=repr)
def test_map_loops_over_what_it_cannot_prove_row_wise(f: fad.Fn[Any, Any]) -> None:
    assert _row_ndim(f, 1) is None
    assert _row_ndim(fad.matmul(np.ones((2, 2, 2))), 1) is None  # numpy batches matrices
    assert _row_ndim(fad.matmul(W23), 0) is None  # a scalar row has no matmul


@pytest.mark.parametrize("f", ROW_WISE + LOOPED, ids=repr)
@settings(max_examples=5, deadline=None)
@given(data=hs.data())
def test_map_equals_stacking_the_rows(f: fad.Fn[Any, Any], data: Any) -> None:
    xs = arrays(data.draw, (data.draw(hs.integers(0, 4)), 2))
    got = fad.lift(fad.map(f)).value(xs)
    rows = [f.value(x) for x in xs]
    if not rows:
        assert all(np.shape(v)[0] == 0 for v in fad._tree.flatten(got)[0])
        return
    columns = zip(*(fad._tree.flatten(r)[0] for r in rows), strict=True)
    for g, column in zip(fad._tree.flatten(got)[0], columns, strict=True):
        np.testing.assert_allclose(g, np.stack(column), rtol=1e-12)
    if len(xs):
        laws.check_finite_differences(fad.map(f), xs)
        laws.check_modes_agree(fad.map(f), xs)


def test_map_differentiates_closed_over_weights_in_both_paths() -> None:
    xs = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])

    def vectorised(W: Any) -> Any:
        return fad.map(fad.matmul(W) >> fad.tanh, xs)

    def looped(W: Any) -> Any:
        return fad.map(lambda x: np.tanh(x @ W), xs)

    W = W23 - 0.4
    np.testing.assert_allclose(fad.jacrev(vectorised)(W), fad.jacrev(looped)(W), rtol=1e-12)
    laws.check_finite_differences(looped, W)


# -------------------------------------------------------------------------- zip_with


@SETTINGS
@given(hs.data())
def test_zip_with_equals_a_python_loop(data: Any) -> None:
    n = data.draw(hs.integers(0, 4))
    xs, ys = arrays(data.draw, (n, 3)), arrays(data.draw, (n, 3))
    for f in (lambda x, y: np.sum(x * np.sin(y)), fad.fst * (fad.snd >> fad.sin)):
        got = fad.zip_with(f, xs, ys)
        want = [fad.lift(f).value((x, y)) for x, y in zip(xs, ys, strict=True)]
        assert got.shape[0] == n
        if n:
            np.testing.assert_allclose(got, np.stack(want), rtol=1e-12)
            laws.check_finite_differences(fad.zip_with(f), (xs, ys))
    assert _row_ndim(fad.fst * (fad.snd >> fad.sin), (1, 1)) == 1
    assert _row_ndim(fad.fst * 2.0, (1, 1)) == 1


# -------------------------------------------------------------------------- currying


def test_curried_blocks_agree_and_compose() -> None:
    xs = np.array([[1.0, 2.0], [3.0, 4.0]])
    init = np.array([0.5, -0.5])

    def step(c: Any, x: Any) -> Any:
        return np.tanh(c + x)

    full = fad.fold(step, init, xs)
    for g in (fad.fold(step)((init, xs)), fad.fold(step, init)(xs), fad.fold(step, xs=xs)(init)):
        np.testing.assert_allclose(g.value, full)
    # A pipeline: rows are scaled, folded, then summed; its gradient is xs's shape.
    pipeline = fad.multiply(2.0) >> fad.fold(step, init) >> fad.sum
    assert repr(pipeline) == "multiply(2.0) >> fold(step, init=<2>) >> sum"
    assert fad.grad(pipeline)(xs).shape == xs.shape
    laws.check_finite_differences(pipeline, xs)
    assert repr(fad.scan(step)) == "scan(step)"
    assert repr(fad.zip_with(fad.fst * fad.snd, ys=xs)) == "zip_with((fst * snd), ys=<2x2>)"
    assert repr(fad.map(fad.tanh)) == "map(tanh)"


def test_blocks_explain_bad_input() -> None:
    with pytest.raises(fad.ShapeError, match="leading axis"):
        fad.fold(lambda c, x: c + x, 0.0, 1.0)
    with pytest.raises(fad.ShapeError, match="different lengths"):
        fad.fold(lambda c, x: c, 0.0, (np.zeros(2), np.zeros(3)))
    with pytest.raises(TypeError, match=r"pair \(carry, y\)"):
        fad.scan(lambda c, x: c, 0.0, np.zeros(2))
    with pytest.raises(TypeError, match=r"expects a pair \(init, xs\)"):
        fad.fold(lambda c, x: c).value(np.zeros(2))


# ---------------------------------------------------------------------- checkpointing


def rnn_loss(params: Any, xs: Any, every: Any) -> Any:
    W, U, h0 = params

    def step(h: Any, x: Any) -> Any:
        h = np.tanh(h @ W + x @ U)
        return h, np.sum(h * h)

    h, ys = fad.scan(step, h0, xs, checkpoint=every)
    return np.sum(ys) + np.sum(h)


@pytest.mark.parametrize("every", [True, 1, 3, 50])
def test_checkpointing_gives_the_same_gradient(every: Any) -> None:
    rng = np.random.default_rng(1)
    params = (rng.normal(0, 0.5, (4, 4)), rng.normal(0, 0.5, (3, 4)), rng.normal(size=4))
    xs = rng.normal(size=(11, 3))
    want = fad.grad(rnn_loss, argnums=(0, 1))(params, xs, False)
    got = fad.grad(rnn_loss, argnums=(0, 1))(params, xs, every)
    for a, b in zip(fad._tree.flatten(want)[0], fad._tree.flatten(got)[0], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def test_checkpointing_in_forward_mode_and_nested() -> None:
    rng = np.random.default_rng(2)
    params = (rng.normal(0, 0.5, (3, 3)), rng.normal(0, 0.5, (2, 3)), rng.normal(size=3))
    xs = rng.normal(size=(7, 2))
    for every in (False, True):
        f = fad.lift(lambda h0: rnn_loss((params[0], params[1], h0), xs, every))  # noqa: B023
        t = rng.normal(size=3)
        _, d = fad.linearize(f, params[2])
        np.testing.assert_allclose(d @ t, fad.jvp(f, params[2], t)[1], rtol=1e-12)
        np.testing.assert_allclose(fad.grad(f)(params[2]) @ t, d @ t, rtol=1e-12)
        laws.check_modes_agree(f, params[2])
    plain = fad.hessian(lambda h0: rnn_loss((params[0], params[1], h0), xs, False))(params[2])
    ck = fad.hessian(lambda h0: rnn_loss((params[0], params[1], h0), xs, True))(params[2])
    np.testing.assert_allclose(ck, plain, rtol=1e-12)


def test_checkpoint_recomputes_a_function_of_several_outputs_and_closures() -> None:
    def f(p: Any) -> Any:
        a, b = p
        W = a * 2.0  # a closed-over value with a history of its own
        g = fad.checkpoint(lambda x: (np.sin(x * W), np.cos(x) * b))
        u, v = g(np.array([0.5, 1.5]) * b)
        return np.sum(u) + np.sum(v * v)

    point = (np.array([0.3, -0.2]), 0.7)
    laws.check_finite_differences(f, point)
    laws.check_modes_agree(f, point)
    assert repr(fad.checkpoint(fad.sin)) == "checkpoint(sin)"


def test_checkpointing_keeps_a_fraction_of_the_memory() -> None:
    xs = np.random.default_rng(3).normal(size=(4_000, 8))
    W = np.eye(8) * 0.5

    def peak(every: Any) -> int:
        def loss(W: Any) -> Any:
            return np.sum(fad.fold(lambda h, x: np.tanh(h @ W + x), xs[0], xs, checkpoint=every))

        tracemalloc.start()
        try:
            fad.grad(loss)(W)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak(True) * 5 < peak(False)


# ----------------------------------------------------------------------------- docs


def test_the_blocks_page_runs_as_written() -> None:
    """Every ```python block of docs/blocks.md, run in order, prints what its comments say."""
    page = Path(__file__).resolve().parent.parent / "docs" / "blocks.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text("utf-8"), re.DOTALL | re.M)
    assert blocks
    expected: list[str] = []
    for block in blocks:
        printing = False
        for line in block.splitlines():
            if printing and line.startswith("# "):
                expected.append(line[2:])
            else:
                printing = line.startswith("print(")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("\n".join(blocks), str(page), "exec"), {})
    assert out.getvalue().splitlines() == expected
