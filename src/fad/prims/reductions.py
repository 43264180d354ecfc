"""Reductions: sum, mean, max, min, norm, logsumexp, softmax (layer 2).

``sum``, ``mean``, ``logsumexp`` and ``softmax`` are ``Fn`` values with an ``axis``
option: bare ``fad.sum`` reduces everything, ``fad.sum(axis=0)`` is the point-free
function and ``fad.sum(x, axis=0)`` applies it (``softmax`` works on axis -1 by default).
They are written with numpy functions, which dispatch on ``Dual`` values, so only
``sum`` (in the core) and ``norm`` carry derivative rules of their own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _linear as lin
from .._core import (
    FUNCTIONS,
    Configurable,
    Fn,
    _mean,
    defop,
    primal,
    reduce_sum,
    shape_of,
)
from .._core import reshape as _reshape

__all__ = ["logsumexp", "max", "mean", "min", "norm", "softmax", "sum"]


def _fn(label: str, impl: Any, doc: str, **options: Any) -> Fn[Any, Any]:
    f: Fn[Any, Any] = Fn((Configurable(label, impl, options),))
    _DOCS[label] = doc
    return f


_DOCS: dict[str, str] = {}


def _axes(axis: Any, nd: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(nd))
    return tuple(sorted(a % nd for a in (axis if isinstance(axis, tuple | list) else (axis,))))


def _drop(x: Any, axis: Any, keepdims: bool) -> Any:
    if keepdims:
        return x
    shape = shape_of(x)
    gone = set(_axes(axis, len(shape)))
    return _reshape(x, tuple(s for i, s in enumerate(shape) if i not in gone))


def _extreme(pick: Any) -> Any:
    def impl(x: Any, axis: Any = None, keepdims: bool = False, **kw: Any) -> Any:
        v = primal(x)
        y = pick(v, axis=axis, keepdims=True)
        if type(x) is not type(v) or x is not v:  # differentiated: spread over the ties
            hit = v == y
            w = hit / np.sum(hit, axis=axis, keepdims=True)
            picked = reduce_sum(x * w, axis, True)
            # The value is exactly the max; the derivative goes to the extreme entries.
            y = y + (picked - primal(picked))
        return _drop(y, axis, keepdims)

    return impl


def _logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # Shift by the max (a constant): exp never overflows, and lse(1000, 1000) = 1000 + log 2.
    m = np.max(primal(x), axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0).astype(m.dtype, copy=False)
    s = reduce_sum(np.exp(x - m), axis, True)
    return _drop(np.log(s) + m, axis, keepdims)


def _softmax(x: Any, axis: Any = -1) -> Any:
    m = np.max(primal(x), axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0).astype(m.dtype, copy=False)
    e = np.exp(x - m)
    return e / reduce_sum(e, axis, True)


def _norm(x: Any, **kw: Any) -> Any:
    """The Euclidean norm of all entries; its derivative at 0 is 0 (a subgradient)."""

    def lin_(p: list[Any], y: Any, nodes: list[lin.Node | None]) -> lin.Node:
        (v,) = p
        nd = len(shape_of(v))
        axes = tuple(range(-nd, 0))
        unit = v / y if primal(y) != 0 else 0.0 * v  # x / |x|, and 0 at the origin

        def fwd(t: Any) -> Any:
            return np.sum(t * unit, axis=axes) if nd else t * unit

        def back(ct: Any) -> tuple[Any]:
            return (np.reshape(ct, shape_of(ct) + (1,) * nd) * unit,)

        (node,) = nodes
        assert node is not None
        return lin.Op("norm", (node,), (), fwd, back)

    return defop("norm", lambda v: np.sqrt(np.sum(v * v)), lin_)(x)


sum = _fn(
    "sum", lambda x, axis=None, keepdims=False: reduce_sum(x, axis, keepdims),
    """Sum of the entries (over ``axis`` if given).

    >>> import fad
    >>> import numpy as np
    >>> print(fad.grad(fad.sum)(np.ones(3)), fad.sum(axis=0))
    [1. 1. 1.] sum(axis=0)
    """,
)  # fmt: skip

mean = _fn(
    "mean", _mean,
    """Mean of the entries (over ``axis`` if given).

    >>> import fad
    >>> import numpy as np
    >>> print(fad.grad(fad.mean)(np.ones(4)))
    [0.25 0.25 0.25 0.25]
    """,
)  # fmt: skip

max = _fn(
    "max", _extreme(np.max),
    """Largest entry; the derivative is shared equally among tied maxima (as in JAX).

    >>> import fad
    >>> import numpy as np
    >>> print(fad.grad(fad.max)(np.array([1.0, 3.0, 3.0])))
    [0.  0.5 0.5]
    """,
)  # fmt: skip

min = _fn(
    "min", _extreme(np.min),
    """Smallest entry; the derivative is shared equally among tied minima.

    >>> import fad
    >>> import numpy as np
    >>> print(fad.grad(fad.min)(np.array([1.0, 3.0])))
    [1. 0.]
    """,
)  # fmt: skip

logsumexp = _fn(
    "logsumexp", _logsumexp,
    """log(sum(exp(x))) computed stably (shifted by the max).

    >>> import fad
    >>> import numpy as np
    >>> print(fad.logsumexp.value(np.array([1000.0, 1000.0])))
    1000.6931471805599
    """,
)  # fmt: skip

softmax = _fn(
    "softmax", _softmax,
    """exp(x) / sum(exp(x)) along ``axis`` (default -1), with no overflow.

    >>> import fad
    >>> import numpy as np
    >>> print(fad.softmax.value(np.array([1000.0, 1000.0])))
    [0.5 0.5]
    """,
)  # fmt: skip

norm = _fn(
    "norm", _norm,
    """Euclidean norm of all entries; its gradient at 0 is 0 (documented subgradient).

    >>> import fad
    >>> import numpy as np
    >>> print(fad.grad(fad.norm)(np.array([3.0, 4.0])), fad.grad(fad.norm)(np.zeros(2)))
    [0.6 0.8] [0. 0.]
    """,
)  # fmt: skip

__test__ = _DOCS

FUNCTIONS.update(
    {
        np.max: _extreme(np.max),
        np.amax: _extreme(np.max),
        np.min: _extreme(np.min),
        np.amin: _extreme(np.min),
        np.linalg.norm: lambda x, ord=None, axis=None, keepdims=False: (
            _norm(x)
            if ord is None and axis is None and not keepdims
            else _unsupported("numpy.linalg.norm with ord/axis/keepdims")
        ),
    }
)


def _unsupported(what: str) -> Any:
    raise TypeError(f"fad has no derivative rule for {what}; use fad.norm or write it with fad.sum")
