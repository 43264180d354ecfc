"""Linear algebra: matmul and dot, and numpy's ``@`` on fad values (layer 2)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _linear as lin
from .._core import FUNCTIONS, UFUNCS, Configurable, Dual, Fn, defop, multiply, shape_of

__all__ = ["dot", "matmul", "matmul_values"]


def _arr(x: Any) -> Any:
    return x if type(x) is Dual else np.asarray(x)


def _swap(x: Any) -> Any:
    return np.swapaxes(x, -1, -2)


def matmul_values(a: Any, b: Any) -> Any:
    """``a @ b`` differentiated in both operands (numpy's matmul semantics)."""

    def lin_(p: list[Any], y: Any, nodes: list[lin.Node | None]) -> lin.Node:
        av, bv = p
        an, bn = nodes
        a1 = len(shape_of(av)) == 1
        b1 = len(shape_of(bv)) == 1
        out = shape_of(y)
        parents = tuple(n for n in nodes if n is not None)

        def fwd(*ts: Any) -> Any:
            it = iter(ts)
            total: Any = None
            if an is not None:
                ta = next(it)
                if a1 and len(shape_of(bv)) > 2:
                    # numpy puts a 1-d left operand in a row; with a batch of them that
                    # row must be explicit, below the matrix stack's own leading axes.
                    nb = shape_of(ta)[:-1]
                    row = np.reshape(
                        ta, nb + (1,) * (len(shape_of(bv)) - 2) + (1, shape_of(ta)[-1])
                    )
                    total = np.matmul(row, bv)[..., 0, :]
                else:
                    total = np.matmul(ta, bv)
            if bn is not None:
                tb = next(it)
                batched = len(shape_of(tb)) > len(shape_of(bv))
                if b1 and batched:
                    # A batch of vectors times a matrix: one matmul, not B matrix-vector ones.
                    term = (
                        np.matmul(tb, av) if a1 else np.swapaxes(np.matmul(av, _swap(tb)), -1, -2)
                    )
                    if not a1 and len(shape_of(av)) > 2:
                        term = np.moveaxis(np.matmul(av, _swap(tb)), -1, 0)
                else:
                    term = np.matmul(av, tb)
                total = term if total is None else total + term
            return total

        def back(ct: Any) -> list[Any]:
            nb = len(shape_of(ct)) - len(out)
            res = []
            if an is not None:
                if b1:
                    ga = _arr(ct)[..., None] * bv
                elif a1 and len(shape_of(bv)) > 2:
                    ga = np.matmul(_arr(ct)[..., None, :], _swap(bv))[..., 0, :]
                else:
                    ga = np.matmul(ct, _swap(bv))
                res.append(lin.sum_to(ga, shape_of(ga)[nb:], shape_of(av)))
            if bn is not None:
                if b1 and len(shape_of(av)) == 2:
                    gb = np.matmul(ct, av)  # (batch, n) @ (n, k): no (batch, n, k) temporary
                elif b1:
                    gb = _arr(ct)[..., None] * av
                elif a1:
                    gb = av[:, None] * _arr(ct)[..., None, :]
                else:
                    gb = np.matmul(_swap(av), ct)
                res.append(lin.sum_to(gb, shape_of(gb)[nb:], shape_of(bv)))
            return res

        return lin.Op("matmul", parents, out, fwd, back)

    if not shape_of(a) or not shape_of(b):
        raise ValueError("matmul: operands must be at least 1-d; use * for scalars")
    return defop("matmul", np.matmul, lin_)(a, b)


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
        np.matmul: lambda a, b, **kw: matmul_values(a, b),
        np.dot: _dot_values,
        np.inner: lambda a, b: _dot_values(a, b),
        np.vdot: lambda a, b: _dot_values(np.ravel(a), np.ravel(b)),
        np.outer: lambda a, b: np.ravel(a)[:, None] * np.ravel(b)[None, :],
    }
)
