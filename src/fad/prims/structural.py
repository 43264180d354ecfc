"""Structural operations pointed code needs: reshape, transpose, concatenate, stack,
where and stop_gradient (layer 2).

Each works on ``Dual`` values (differentiated) and on plain arrays (then it is numpy's
own operation and returns a plain array); called without its array argument it returns
the point-free ``Fn`` (``fad.reshape(shape=(2, 3))``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _linear as lin
from .._core import (
    _NO,
    FUNCTIONS,
    UFUNCS,
    Configurable,
    Dual,
    Fn,
    defop,
    dtype_of,
    getitem,
    primal,
    primal_tree,
    shape_of,
)
from .._core import reshape as _reshape
from .._core import transpose as _transpose

__all__ = ["concatenate", "reshape", "stack", "stop_gradient", "transpose", "where"]


def _curried(label: str, impl: Any, **options: Any) -> Fn[Any, Any]:
    return Fn((Configurable(label, impl, options),))


def reshape(x: Any = _NO, shape: Any = None) -> Any:
    """``x`` with a new shape (``-1`` infers one axis), like ``np.reshape``.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> print(fad.grad(lambda x: (fad.reshape(x, (2, 2)) ** 2).sum())(np.ones(4)))
        [2. 2. 2. 2.]
        >>> fad.reshape(shape=(2, 2))
        reshape(shape=(2, 2))

    See also:
        transpose
    """
    if x is _NO:
        return _curried("reshape", lambda v, shape: _reshape(v, _shape(shape)), shape=shape)
    return _reshape(x, _shape(shape))


def _shape(shape: Any) -> tuple[int, ...]:
    return tuple(shape) if isinstance(shape, tuple | list) else (int(shape),)


def transpose(x: Any = _NO, axes: Sequence[int] | None = None) -> Any:
    """Permute axes (reverse them by default), like ``np.transpose``.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> print(fad.transpose(np.arange(6.0).reshape(2, 3)).shape)
        (3, 2)

    See also:
        reshape
    """
    if x is _NO:
        return _curried("transpose", lambda v, axes: _transpose(v, axes), axes=axes)
    return _transpose(x, axes)


def _concatenate(xs: Sequence[Any], axis: int = 0) -> Any:
    xs = tuple(xs)
    if not xs:
        raise ValueError("concatenate needs at least one array")
    nd = len(shape_of(xs[0]))
    if nd == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    ax = axis % nd
    sizes = [shape_of(x)[ax] for x in xs]
    offsets = np.cumsum([0, *sizes])

    def lin_(p: list[Any], y: Any, nodes: list[lin.Node | None]) -> lin.Node:
        out = shape_of(y)
        parents = tuple(n for n in nodes if n is not None)
        where = [i for i, n in enumerate(nodes) if n is not None]
        neg = ax - nd

        def fwd(*ts: Any) -> Any:
            nb = shape_of(ts[0])[: len(shape_of(ts[0])) - len(parents[0].shape)]
            full = [np.zeros(nb + shape_of(q), dtype=dtype_of(ts[0])) for q in p]
            for i, t in zip(where, ts, strict=True):
                full[i] = t
            return np.concatenate(full, axis=neg)

        def back(ct: Any) -> list[Any]:
            nb = len(shape_of(ct)) - len(out)
            pieces = []
            for i in where:
                index = [slice(None)] * (nb + nd)
                index[nb + ax] = slice(int(offsets[i]), int(offsets[i + 1]))
                pieces.append(ct[tuple(index)])
            return pieces

        return lin.Op("concatenate", parents, out, fwd, back)

    return defop("concatenate", lambda *vs: np.concatenate(vs, axis=ax), lin_)(*xs)


def concatenate(xs: Any = _NO, axis: int = 0) -> Any:
    """Join arrays along an existing axis, like ``np.concatenate``.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> f = lambda a, b: (fad.concatenate((a, 2 * b)) ** 2).sum()
        >>> print(fad.grad(f, argnums=(0, 1))(np.ones(2), np.ones(1)))
        (array([2., 2.]), array([8.]))

    See also:
        stack
    """
    if xs is _NO:
        return _curried("concatenate", _concatenate, axis=axis)
    return _concatenate(xs, axis)


def _stack(xs: Sequence[Any], axis: int = 0) -> Any:
    xs = tuple(xs)
    if not xs:
        raise ValueError("stack needs at least one array")
    shape = shape_of(xs[0])
    for x in xs:
        if shape_of(x) != shape:
            raise ValueError(f"stack needs arrays of one shape, got {shape} and {shape_of(x)}")
    nd = len(shape) + 1
    ax = axis % nd
    neg = ax - nd  # counted from the end, so leading batch axes of tangents pass through

    def lin_(p: list[Any], y: Any, nodes: list[lin.Node | None]) -> lin.Node:
        # One node for the whole stack (a scan stacks one value per step).
        parents = tuple(n for n in nodes if n is not None)
        where = [i for i, n in enumerate(nodes) if n is not None]

        def fwd(*ts: Any) -> Any:
            batch = shape_of(ts[0])[: len(shape_of(ts[0])) - len(shape)]
            full: list[Any] = [np.zeros(batch + shape, dtype=dtype_of(ts[0]))] * len(p)
            for i, t in zip(where, ts, strict=True):
                full[i] = t
            return np.stack(full, axis=neg)

        def back(ct: Any) -> list[Any]:
            lead = (slice(None),) * (len(shape_of(ct)) - nd + ax)
            return [ct[(*lead, i)] for i in where]

        return lin.Op("stack", parents, shape_of(y), fwd, back)

    return defop("stack", lambda *vs: np.stack(vs, axis=ax), lin_)(*xs)


def stack(xs: Any = _NO, axis: int = 0) -> Any:
    """Join arrays of one shape along a new axis, like ``np.stack``.

    Examples:
        >>> import fad
        >>> print(fad.stack((1.0, 2.0)))
        [1. 2.]

    See also:
        concatenate
    """
    if xs is _NO:
        return _curried("stack", _stack, axis=axis)
    return _stack(xs, axis)


def where(cond: Any, a: Any, b: Any) -> Any:
    """Select ``a`` where ``cond`` holds and ``b`` elsewhere, like ``np.where``.

    The derivative *selects* (co)tangents instead of multiplying them by a 0/1 mask, so
    an unselected branch never leaks ``nan``: the gradient of
    ``where(x < 1, x, sqrt(x))`` at 0 is 1.

    Examples:
        >>> import fad
        >>> print(fad.grad(lambda x: fad.where(x < 1.0, x, fad.sqrt(x)))(0.0))
        1.0

    See also:
        clip, relu
    """
    mask = np.asarray(primal(cond), dtype=bool)

    def lin_(p: list[Any], y: Any, nodes: list[lin.Node | None]) -> lin.Node:
        out = shape_of(y)
        parents = tuple(n for n in nodes if n is not None)
        which = [i for i, n in enumerate(nodes) if n is not None]

        def pick(i: int, t: Any) -> Any:
            zero = np.zeros((), dtype=dtype_of(t))
            return np.where(mask, t, zero) if i == 0 else np.where(mask, zero, t)

        def fwd(*ts: Any) -> Any:
            total: Any = None
            for i, t, n in zip(which, ts, parents, strict=True):
                term = pick(i, lin.expand(t, n.shape, len(out)))
                total = term if total is None else total + term
            return total

        def back(ct: Any) -> list[Any]:
            return [
                lin.sum_to(pick(i, ct), out, n.shape) for i, n in zip(which, parents, strict=True)
            ]

        return lin.Op("where", parents, out, fwd, back)

    return defop("where", lambda u, v: np.where(mask, u, v), lin_)(a, b)


def stop_gradient(x: Any = _NO) -> Any:
    """The value of ``x`` with a zero derivative, at every level of nesting.

    Examples:
        >>> import fad
        >>> print(fad.grad(lambda x: x * fad.stop_gradient(x))(3.0))
        3.0

    See also:
        const
    """
    if x is _NO:
        return _curried("stop_gradient", primal_tree)
    return primal_tree(x)


def _np_where(cond: Any, a: Any = _NO, b: Any = _NO) -> Any:
    if a is _NO:
        return np.where(primal(cond))
    return where(cond, a, b)


def _squeeze(x: Any, axis: Any = None) -> Any:
    shape = shape_of(x)
    axes = (
        {i for i, s in enumerate(shape) if s == 1}
        if axis is None
        else {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    )
    return _reshape(x, tuple(s for i, s in enumerate(shape) if i not in axes))


def _expand_dims(x: Any, axis: Any) -> Any:
    return _reshape(x, np.expand_dims(np.empty(shape_of(x), dtype=np.int8), axis).shape)


def _moveaxis(x: Any, source: Any, destination: Any) -> Any:
    nd = len(shape_of(x))
    src = [s % nd for s in (source if isinstance(source, tuple | list) else [source])]
    dst = [
        d % nd for d in (destination if isinstance(destination, tuple | list) else [destination])
    ]
    rest = [a for a in range(nd) if a not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        rest.insert(d, s)
    return _transpose(x, tuple(rest))


def _like(fill: Any) -> Any:
    def impl(x: Any, *args: Any, **kwargs: Any) -> Any:
        return fill(primal(x), *args, **kwargs)

    return impl


FUNCTIONS.update(
    {
        np.concatenate: lambda xs, axis=0, **kw: _concatenate(xs, axis),
        np.stack: lambda xs, axis=0, **kw: _stack(xs, axis),
        np.where: _np_where,
        np.squeeze: _squeeze,
        np.expand_dims: _expand_dims,
        np.moveaxis: _moveaxis,
        np.swapaxes: lambda x, a, b: _transpose(x, _swap(len(shape_of(x)), a, b)),
        np.zeros_like: _like(np.zeros_like),
        np.ones_like: _like(np.ones_like),
        np.empty_like: _like(np.zeros_like),
        np.full_like: _like(np.full_like),
        np.atleast_1d: lambda x: x if len(shape_of(x)) >= 1 else _reshape(x, (1,)),
        np.ravel: lambda x, **kw: _reshape(x, (-1,) if shape_of(x) else (1,)),
        np.take: lambda x, idx, axis=None, **kw: getitem(
            x if axis is not None else _reshape(x, (-1,)),
            (slice(None),) * (axis % len(shape_of(x)) if axis is not None else 0) + (idx,),
        ),
        np.copy: lambda x, **kw: x,
        np.isfinite: lambda x: np.isfinite(primal(x)),
        np.isnan: lambda x: np.isnan(primal(x)),
        np.all: lambda x, *a, **kw: np.all(primal(x), *a, **kw),
        np.any: lambda x, *a, **kw: np.any(primal(x), *a, **kw),
        np.argmax: lambda x, *a, **kw: np.argmax(primal(x), *a, **kw),
        np.argmin: lambda x, *a, **kw: np.argmin(primal(x), *a, **kw),
        np.allclose: lambda a, b, *r, **kw: np.allclose(primal(a), primal(b), *r, **kw),
    }
)
UFUNCS[np.positive] = lambda x: x


def _swap(nd: int, a: int, b: int) -> tuple[int, ...]:
    axes = list(range(nd))
    axes[a % nd], axes[b % nd] = axes[b % nd], axes[a % nd]
    return tuple(axes)


del Dual
