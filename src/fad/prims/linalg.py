"""Linear algebra: matmul and dot, and numpy's ``@`` on fad values (layer 2)."""

from __future__ import annotations

import math
from typing import Any, final

import numpy as np

from .. import _linear as lin
from .._core import (
    FUNCTIONS,
    UFUNCS,
    Configurable,
    Dual,
    Fn,
    call_kernel,
    defop,
    mk,
    multiply,
    shape_of,
)
from .._errors import nan_checks_enabled

Shape = tuple[int, ...]

__all__ = ["dot", "matmul", "matmul_values"]


def _arr(x: Any) -> Any:
    return x if type(x) is Dual else np.asarray(x)


def _swap(x: Any) -> Any:
    return np.swapaxes(x, -1, -2)


@final
class MatMul(lin.Node):
    """The derivative of ``a @ b``: ``ta @ b + a @ tb``; transposed, ``ct @ bᵀ`` and ``aᵀ @ ct``.

    A node class, not closures: a loop of matrix products records one small object per
    product. Tangents and cotangents may carry leading batch axes.
    """

    __slots__ = ("a", "b", "da", "db", "na", "nb")

    def __init__(self, a: Any, b: Any, an: lin.Node | None, bn: lin.Node | None, shape: Shape):
        if an is None or bn is None:
            only = an if bn is None else bn
            assert only is not None
            self.parents = (only,)
        else:
            self.parents = (an, bn)
        self.source = self.parents[0].source
        self.seq = next(lin.creation)
        self.shape = shape
        self.diag = -1
        self.a = a
        self.b = b
        self.na = len(shape_of(a))
        self.nb = len(shape_of(b))
        self.da = an is not None
        self.db = bn is not None

    @property
    def name(self) -> str:
        return "matmul"

    def forward(self, ts: list[Any]) -> Any:
        it = iter(ts)
        ta = next(it) if self.da else None
        tb = next(it) if self.db else None
        a, b = self.a, self.b
        na, nb_ = self.na, self.nb
        total: Any = None
        if ta is not None:
            if na == 1 and nb_ > 2:
                # numpy puts a 1-d left operand in a row; with a batch of them that
                # row must be explicit, below the matrix stack's own leading axes.
                batch = shape_of(ta)[:-1]
                row = np.reshape(ta, batch + (1,) * (nb_ - 2) + (1, shape_of(ta)[-1]))
                total = np.matmul(row, b)[..., 0, :]
            else:
                total = np.matmul(ta, b)
        if tb is not None:
            if nb_ == 1 and len(shape_of(tb)) > 1:
                # A batch of vectors times a matrix: one matmul, not B matrix-vector ones.
                if na == 1:
                    term = np.matmul(tb, a)
                elif na > 2:
                    term = np.moveaxis(np.matmul(a, _swap(tb)), -1, 0)
                else:
                    term = _swap(np.matmul(a, _swap(tb)))
            else:
                term = np.matmul(a, tb)
            total = term if total is None else total + term
        return total

    def work(self) -> int:
        return math.prod(self.shape) * shape_of(self.a)[-1]  # multiply-adds

    def forward_diag(self, ts: list[Any]) -> Any:
        # jacfwd of a layer: the identity's columns times a matrix is the matrix with its
        # rows scaled - O(n m), not the O(n² m) product of a dense identity.
        if len(ts) != 1 or type(ts[0]) is not lin.Diag or type(ts[0].d) is not np.ndarray:
            return None
        d = ts[0].d
        if self.da and self.na == 1 and self.nb == 2 and type(self.b) is np.ndarray:
            return d[:, None] * self.b  # row k: d[k] e_k @ b
        if self.db and self.na == 2 and self.nb == 1 and type(self.a) is np.ndarray:
            return (self.a * d).T  # row k: a @ (d[k] e_k)
        return None

    def diag_backward(self, ct: lin.Diag) -> list[Any] | None:
        # jacrev of a layer: the identity's rows times the matrix are its rows (or
        # columns), scaled - O(n m), not the O(n m²) product of a dense identity.
        d = ct.d
        if type(d) is not np.ndarray or len(self.parents) != 1:
            return None
        if self.db and self.na == 2 and self.nb == 1 and type(self.a) is np.ndarray:
            return [d[:, None] * self.a]  # row k: d[k] e_k @ a = d[k] a[k]
        if self.da and self.na == 1 and self.nb == 2 and type(self.b) is np.ndarray:
            return [(self.b * d).T]  # row k: a's cotangent d[k] b[:, k]
        return None

    def backward(self, ct: Any) -> list[Any]:
        a, b, na, nb_ = self.a, self.b, self.na, self.nb
        if na == 1 and nb_ == 2 and type(ct) is np.ndarray and ct.ndim == 1:
            # A vector times a matrix, one cotangent (a loop's h @ W): the common case.
            res = [np.matmul(ct, b.T)] if self.da else []
            if self.db:
                res.append(lin.Outer(a, ct) if type(a) is np.ndarray else a[:, None] * ct)
            return res
        batch = len(shape_of(ct)) - len(self.shape)
        # Operands of at most 2 dims are never broadcast by matmul: no sum_to needed.
        stacked = na > 2 or nb_ > 2
        res = []
        if self.da:
            if nb_ == 1:
                ga = _arr(ct)[..., None] * b
            elif na == 1 and nb_ > 2:
                ga = np.matmul(_arr(ct)[..., None, :], _swap(b))[..., 0, :]
            else:
                ga = np.matmul(ct, b.T if nb_ == 2 else _swap(b))
            if stacked:
                ga = lin.sum_to(ga, shape_of(ga)[batch:], shape_of(a))
            res.append(ga)
        if self.db:
            if na == 1 and nb_ == 2 and batch == 0 and _plain(a, ct):
                res.append(lin.Outer(a, ct))  # summed with the other steps' shares at once
                return res
            if nb_ == 1 and na == 2:
                gb = np.matmul(ct, a)  # (batch, n) @ (n, k): no (batch, n, k) temporary
            elif nb_ == 1:
                gb = _arr(ct)[..., None] * a
            elif na == 1:
                gb = a[:, None] * _arr(ct)[..., None, :]
            else:
                gb = np.matmul(_swap(a), ct)
            if stacked:
                gb = lin.sum_to(gb, shape_of(gb)[batch:], shape_of(b))
            res.append(gb)
        return res


def _plain(a: Any, ct: Any) -> bool:
    return type(a) is np.ndarray and type(ct) is np.ndarray


def _linearize(p: list[Any], y: Any, nodes: list[lin.Node | None]) -> lin.Node:
    av, bv = p
    an, bn = nodes
    return MatMul(av, bv, an, bn, shape_of(y))


_matmul = defop("matmul", np.matmul, _linearize)


def matmul_values(a: Any, b: Any, **kw: Any) -> Any:
    """``a @ b`` differentiated in both operands (numpy's matmul semantics)."""
    fast = _one_level(a, b)
    if fast is not None:  # the common case, without the general path's bookkeeping
        av, an, bv, bn = fast
        try:  # under debug_nans, call_kernel checks the result
            y = None if nan_checks_enabled() else np.matmul(av, bv)
        except ValueError:
            y = None  # call_kernel, below, raises it as a ShapeError naming the shapes
        if y is None:
            y = call_kernel("matmul", np.matmul, av, bv)
        return mk(y, MatMul(av, bv, an, bn, y.shape))
    try:
        return _matmul(a, b)
    except ValueError:
        if not shape_of(a) or not shape_of(b):
            raise ValueError("matmul: operands must be at least 1-d; use * for scalars") from None
        raise


def _array_operand(x: Any) -> tuple[Any, lin.Node | None] | None:
    """An array as (value, None), a ``Dual`` array as (value, node), else None."""
    if type(x) is np.ndarray:
        return x, None
    if type(x) is Dual and type(x._value) is np.ndarray and isinstance(x._node, lin.Node):
        return x._value, x._node
    return None


def _one_level(a: Any, b: Any) -> tuple[Any, Any, Any, Any] | None:
    """Values and nodes of operands that are arrays or ``Dual`` arrays of one level."""
    pa, pb = _array_operand(a), _array_operand(b)
    if pa is None or pb is None:
        return None
    (a, an), (b, bn) = pa, pb
    if an is None and bn is None:
        return None
    if an is not None and bn is not None and an.source is not bn.source:
        return None
    if a.ndim == 0 or b.ndim == 0:
        return None
    return a, an, b, bn


def _dot_values(a: Any, b: Any, **kw: Any) -> Any:
    if not shape_of(a) or not shape_of(b):
        return multiply.apply(a, b)
    if len(shape_of(b)) > 2:
        raise TypeError("fad's numpy.dot supports 1-d and 2-d operands; use matmul or @")
    return matmul_values(a, b)


def _show(w: Any) -> str:
    s = shape_of(w)
    return f"<{s[0]}>" if len(s) == 1 else f"<{'x'.join(map(str, s))}>"


def dot(w: Any, x: Any = None) -> Any:
    """``dot(w)`` is the function ``x -> x · w`` (``dot(w, x)`` applies it).

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> f = fad.dot(np.array([1.0, 2.0]))
        >>> print(f.value(np.array([3.0, 4.0])), fad.grad(f)(np.zeros(2)))
        11.0 [1. 2.]

    See also:
        matmul, sum
    """
    f: Fn[Any, Any] = Fn((Configurable(f"dot({_show(w)})", lambda v: _dot_values(v, w), {}),))
    return f if x is None else f(x)


def matmul(w: Any, x: Any = None) -> Any:
    """``matmul(W)`` is ``x -> x @ W``: rows as samples, so it maps a batch too.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> W = np.array([[1.0, 2.0], [3.0, 4.0]])
        >>> print(fad.matmul(W).value(np.array([1.0, 1.0])))
        [4. 6.]
        >>> print(fad.jacobian(fad.matmul(W))(np.zeros(2)))
        [[1. 3.]
         [2. 4.]]

    See also:
        dot
    """
    f: Fn[Any, Any] = Fn((Configurable(f"matmul({_show(w)})", lambda v: matmul_values(v, w), {}),))
    return f if x is None else f(x)


UFUNCS[np.matmul] = matmul_values  # a gufunc since numpy 2: dispatched as a ufunc
FUNCTIONS.update(
    {
        np.matmul: matmul_values,
        np.dot: _dot_values,
        np.inner: lambda a, b: _dot_values(a, b),
        np.vdot: lambda a, b: _dot_values(np.ravel(a), np.ravel(b)),
        np.outer: lambda a, b: np.ravel(a)[:, None] * np.ravel(b)[None, :],
    }
)
