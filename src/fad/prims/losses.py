"""Losses: mean squared error and cross-entropy from logits (layer 2)."""

from __future__ import annotations

from typing import Any, final

import numpy as np

from .. import _linear as lin
from .._core import Configurable, Dual, Fn, _mean, getitem, mk, shape_of
from .._errors import nan_checks_enabled
from .reductions import _logsumexp

__all__ = ["cross_entropy", "mse"]


def mse(target: Any) -> Fn[Any, Any]:
    """``x -> mean((x - target) ** 2)``.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> loss = fad.mse(np.array([1.0, 2.0]))
        >>> print(loss.value(np.array([1.0, 4.0])), fad.grad(loss)(np.array([1.0, 4.0])))
        2.0 [0. 2.]

    See also:
        cross_entropy
    """
    t = np.asarray(target)

    def impl(x: Any) -> Any:
        d = x - t
        return _mean(d * d)

    return Fn((Configurable("mse(target)", impl, {}),))


def cross_entropy(labels: Any) -> Fn[Any, Any]:
    """``logits -> mean over the batch of -log softmax(logits)[label]``.

    Takes logits of shape ``(batch, classes)`` (or ``(classes,)``) and integer labels of
    shape ``(batch,)`` (or a scalar). Computed from logits with a stable log-sum-exp,
    never through a separate softmax. A batch of plain float logits records one node,
    whose transpose is ``(softmax - one_hot) / batch``; other logits (a derivative of
    a derivative, a single sample) go through logsumexp and indexing.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> loss = fad.cross_entropy(np.array([0]))
        >>> print(round(loss.value(np.array([[0.0, 0.0]])), 6))
        0.693147
        >>> print(fad.grad(loss)(np.array([[0.0, 0.0]])))
        [[-0.5  0.5]]

    See also:
        logsumexp, softmax, mse
    """
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy needs integer class labels, got dtype {y.dtype}")

    def impl(logits: Any) -> Any:
        fast = _batch_of_logits(logits, y)
        if fast is not None:
            return fast
        lse = _logsumexp(logits, axis=-1)
        if len(shape_of(logits)) == 1:
            return lse - getitem(logits, int(y))
        picked = getitem(logits, (np.arange(shape_of(logits)[0]), y))
        return _mean(lse - picked)

    return Fn((Configurable("cross_entropy(labels)", impl, {}),))


def _batch_of_logits(logits: Any, labels: Any) -> Any:
    """Cross-entropy of a batch of plain float logits, with one node; else ``None``.

    Plain means a numpy array or a ``Dual`` of one (one level of differentiation, so
    the derivative's coefficients can be plain numbers). The same numpy steps as the
    general path give the same value; rows with a nan or an infinite maximum go that
    way too, as does ``debug_nans`` (which checks every step).
    """
    node: lin.Node | None = None
    z = logits
    if type(logits) is Dual:
        z = logits._value
        if not isinstance(logits._node, lin.Node):
            return None
        node = logits._node
    if (
        type(z) is not np.ndarray
        or z.ndim != 2
        or z.dtype.kind != "f"
        or z.size == 0
        or labels.shape != z.shape[:1]
        or nan_checks_enabled()
    ):
        return None
    m = np.max(z, axis=-1, keepdims=True)
    if not np.isfinite(m).all():
        return None
    rows = np.arange(z.shape[0])
    e = np.exp(z - m)
    s = np.sum(e, axis=-1, keepdims=True)
    lse = np.reshape(np.log(s) + m, rows.shape)
    loss = np.sum(lse - z[rows, labels]) * (1.0 / z.shape[0])
    return loss if node is None else mk(loss, CrossEntropy(node, e, s, rows, labels))


@final
class CrossEntropy(lin.Node):
    """The derivative of a batch's mean cross-entropy in its logits ``z``.

    With ``p = softmax(z)`` (kept as ``e / s``) it is ``t -> mean(sum(p t, -1) - t[label])``,
    transposed ``ct -> ct (p - one_hot(labels)) / batch``: one pass over the logits'
    shape each way, as hand-written backpropagation does.
    """

    __slots__ = ("e", "labels", "rows", "s")

    def __init__(self, parent: lin.Node, e: Any, s: Any, rows: Any, labels: Any) -> None:
        self.source = parent.source
        self.seq = next(lin.creation)
        self.parents = (parent,)
        self.shape = ()
        self.diag = -1
        self.e = e
        self.s = s
        self.rows = rows
        self.labels = labels

    @property
    def name(self) -> str:
        return "cross_entropy"

    def work(self) -> int:
        return int(self.e.size)

    def forward(self, ts: list[Any]) -> Any:
        (t,) = ts
        if t is None:
            return None
        per_row = np.sum(t * (self.e / self.s), axis=-1) - t[..., self.rows, self.labels]
        return lin.product(np.sum(per_row, axis=-1), 1.0 / len(self.rows))

    def backward(self, ct: Any) -> list[Any]:
        g = self.e / self.s  # fresh: the gradient is formed in it
        g[self.rows, self.labels] -= 1.0
        plain = type(ct) is float or (isinstance(ct, np.floating) and ct.dtype == g.dtype)
        if plain and ct - ct == 0.0:  # finite: no 0 * inf to look after
            g *= ct * (1.0 / len(self.rows))
            return [g]
        nb = shape_of(ct)  # a batch of cotangents: one (p - one_hot) for each
        c = np.reshape(ct, (*nb, 1, 1)) if nb else ct
        return [lin.product(lin.product(g, c), 1.0 / len(self.rows))]
