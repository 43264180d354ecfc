"""cross_entropy's one-node path for a batch of plain logits, against the general path.

A batch of plain float logits records a single ``CrossEntropy`` node whose transpose is
``(softmax - one_hot) / batch``; everything else (nested derivatives, a nan or infinite
row, ``debug_nans``, one sample) goes through logsumexp and indexing. The general path
is the reference: the same loss written with ``fad.logsumexp`` and indexing by hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import fad
from _numeric import close

PROPERTY = settings(max_examples=40, deadline=None)
TIGHT = (1e-12, 1e-14)


def general(labels: np.ndarray) -> Any:
    """The loss through the general path: logsumexp minus the picked logit, averaged."""
    rows = np.arange(len(labels))
    return lambda z: np.mean(fad.logsumexp(z, axis=-1) - z[rows, labels])


@hs.composite
def batches(draw: Any, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Logits (batch, classes) with large and -inf entries (every row keeps a finite one)."""
    n, c = draw(hs.integers(1, 6)), draw(hs.integers(1, 5))
    rng = np.random.default_rng(draw(hs.integers(0, 2**32 - 1)))
    scale = draw(hs.sampled_from([1.0, 30.0, 1e4]))
    z = rng.normal(size=(n, c)) * scale
    if c > 1 and draw(hs.booleans()):
        z[rng.random((n, c)) < 0.3] = -np.inf
        z[np.arange(n), rng.integers(0, c, n)] = rng.normal(size=n)
    labels = rng.integers(-c, c, n)  # negative labels index from the end, as numpy does
    return z.astype(dtype), labels


def node_of(labels: np.ndarray, z: np.ndarray) -> str:
    _, d = fad.linearize(fad.cross_entropy(labels), z)
    return str(d._nodes[0].name)


@PROPERTY
@given(batches())
def test_one_node_path_agrees_with_the_general_path(batch: Any) -> None:
    z, labels = batch
    loss = fad.cross_entropy(labels)
    assert node_of(labels, z) == "cross_entropy"  # the path under test
    value, g = fad.value_and_grad(loss)(z)
    ref_value, ref_g = fad.value_and_grad(general(labels))(z)
    assert value == ref_value and loss.value(z) == ref_value  # the same numpy steps
    assert type(value) is type(ref_value)
    close(g, ref_g, TIGHT, "gradient")
    assert g.flags.writeable and g.flags.owndata and not np.shares_memory(g, z)
    close(fad.jacfwd(loss)(z), ref_g, TIGHT, "jacfwd")
    close(fad.jvp(loss, z, np.ones_like(z))[1], np.sum(ref_g), TIGHT, "jvp")
    _, d = fad.linearize(loss, z)
    t = np.cos(np.arange(z.size)).reshape(z.shape)
    close(d @ t, np.sum(ref_g * t), TIGHT, "d @ t")
    close(2.5 @ d, 2.5 * ref_g, TIGHT, "u @ d")


@PROPERTY
@given(batches())
def test_a_batch_of_cotangents_and_of_tangents(batch: Any) -> None:
    """jacrev pulls a batch of cotangents through the node, jacfwd a batch of tangents."""
    z, labels = batch
    w = np.array([1.0, -3.0, 0.5])
    both = lambda v: fad.cross_entropy(labels)(v) * w  # noqa: E731
    expected = fad.jacrev(lambda v: general(labels)(v) * w)(z)
    close(fad.jacrev(both)(z), expected, TIGHT, "jacrev")
    close(fad.jacfwd(both)(z), expected, TIGHT, "jacfwd")


@PROPERTY
@given(batches(np.float32))
def test_float32_logits_give_float32(batch: Any) -> None:
    z, labels = batch
    value, g = fad.value_and_grad(fad.cross_entropy(labels))(z)
    assert np.asarray(value).dtype == np.float32 and g.dtype == np.float32
    ref_value, ref_g = fad.value_and_grad(general(labels))(z)
    assert value == ref_value
    close(g, ref_g, (1e-5, 1e-6), "float32 gradient")


def test_second_derivatives_go_through_the_general_path() -> None:
    """Inside an outer transform the logits are not plain: the Hessian is still exact."""
    rng = np.random.default_rng(3)
    z, labels = rng.normal(size=(3, 4)), np.array([0, 3, 1])
    h = fad.hessian(fad.cross_entropy(labels))(z)
    p = np.exp(z) / np.sum(np.exp(z), axis=1, keepdims=True)
    expected = np.zeros((3, 4, 3, 4))
    for i in range(3):
        expected[i, :, i, :] = (np.diag(p[i]) - np.outer(p[i], p[i])) / 3
    close(h, expected, TIGHT, "hessian")
    # and with respect to weights in front of the logits (reverse over reverse)
    x = rng.normal(size=(3, 2))

    def loss(w: Any) -> Any:
        return fad.cross_entropy(labels)(x @ w)

    def ref(w: Any) -> Any:
        return general(labels)(x @ w)

    w = rng.normal(size=(2, 4))
    close(fad.hessian(loss)(w), fad.hessian(ref)(w), TIGHT, "hessian in the weights")


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_rows_with_an_infinite_or_nan_maximum_go_the_general_way(bad: float) -> None:
    z = np.array([[0.0, 1.0, -1.0], [bad, 0.0, 2.0]])
    labels = np.array([1, 2])
    assert node_of(labels, z) != "cross_entropy"
    with np.errstate(all="ignore"):
        value, g = fad.value_and_grad(fad.cross_entropy(labels))(z)
        ref_value, ref_g = fad.value_and_grad(general(labels))(z)
    np.testing.assert_array_equal(value, ref_value)
    np.testing.assert_array_equal(g, ref_g)


def test_other_shapes_and_debug_nans_go_the_general_way() -> None:
    z = np.array([[0.0, 1.0, -1.0], [0.5, 0.0, 2.0]])
    assert node_of(np.array(1), z) != "cross_entropy"  # one label for every row
    assert node_of(np.array(2), z[0]) != "cross_entropy"  # a single sample
    assert node_of(np.array([0, 1]), z.astype(np.float32)) == "cross_entropy"
    with fad.debug_nans():
        g = fad.grad(fad.cross_entropy(np.array([0, 2])))(z)
    close(g, fad.grad(general(np.array([0, 2])))(z), TIGHT, "under debug_nans")


def test_the_caller_s_arrays_are_left_alone() -> None:
    z = np.array([[0.0, 1.0, -1.0], [0.5, 0.0, 2.0]])
    labels = np.array([0, 2])
    z0, labels0 = z.copy(), labels.copy()
    _, pullback = fad.vjp(fad.cross_entropy(labels), z)
    first = pullback(1.0)[0]
    second = pullback(1.0)[0]
    assert first is not second and not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(labels, labels0)
