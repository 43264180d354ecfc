"""Losses: mean squared error and cross-entropy from logits (layer 2)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core import Configurable, Fn, _mean, getitem, shape_of
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
    never through a separate softmax.

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
        lse = _logsumexp(logits, axis=-1)
        if len(shape_of(logits)) == 1:
            return lse - getitem(logits, int(y))
        picked = getitem(logits, (np.arange(shape_of(logits)[0]), y))
        return _mean(lse - picked)

    return Fn((Configurable("cross_entropy(labels)", impl, {}),))
