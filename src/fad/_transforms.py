"""Transforms: derivative, grad, jvp, vjp, Jacobians, Hessians (layer 4).

Each transform runs the function once on ``Dual`` values of a fresh source (linearise),
then reads the recorded linear map forward (``d @ t``) or transposed (``ct @ d``).
Conventions follow JAX: ``argnums``, ``has_aux``, a Jacobian's shape is the output's
followed by the input's, a pullback returns one cotangent per primal argument.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _linear as lin
from ._core import (
    Fn,
    check_leaf,
    dtype_of,
    primal_tree,
    shape_of,
    trace_call,
)
from ._linear import Linear, Tangent
from ._tree import flatten, unflatten

__all__ = [
    "derivative",
    "grad",
    "hessian",
    "hvp",
    "jacfwd",
    "jacobian",
    "jacrev",
    "jvp",
    "linearize",
    "value_and_derivative",
    "value_and_grad",
    "vjp",
]

Argnums = int | Sequence[int]


def _name(f: Any) -> str:
    return repr(f) if isinstance(f, Fn) else getattr(f, "__name__", repr(f))


def _select(
    args: tuple[Any, ...], argnums: Argnums
) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    """The differentiated arguments and how to put traced ones back among the rest."""
    if type(argnums) is int and 0 <= argnums < len(args):  # the common case, quickly
        n = argnums
        return args[n], lambda traced: (*args[:n], traced, *args[n + 1 :])
    if not args:
        raise TypeError("the function must be called with at least one argument")
    many = not isinstance(argnums, int)
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not -len(args) <= n < len(args):
            raise ValueError(f"argnums {argnums} out of range for {len(args)} arguments")
    nums = tuple(n % len(args) for n in nums)
    x = tuple(args[n] for n in nums) if many else args[nums[0]]

    def rebuild(traced: Any) -> tuple[Any, ...]:
        new = list(args)
        for n, t in zip(nums, traced if many else (traced,), strict=True):
            new[n] = t
        return tuple(new)

    return x, rebuild


class _Named:
    """Names ``f`` in an error message, formatting its repr only then."""

    __slots__ = ("f",)

    def __init__(self, f: Any) -> None:
        self.f = f

    def __repr__(self) -> str:
        return _name(self.f)


class _Aux:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Any = None


def _trace(
    f: Callable[..., Any],
    args: tuple[Any, ...],
    argnums: Argnums,
    has_aux: bool,
    tangents: Sequence[Any] | None = None,
) -> tuple[Any, Linear, Any]:
    """Linearise ``f`` at ``args`` with respect to ``args[argnums]``.

    Returns the primal output, the derivative as a ``Linear`` map and the aux value.
    With ``tangents`` (one per input leaf) it runs forward mode instead: the map's
    nodes are then ``Tangent`` values, read with ``_tangents``.
    """
    if len(args) == 1 and argnums == 0 and not has_aux:  # f takes the traced value itself
        source, (tree, pairs) = trace_call(f, args[0], _Named(f), tangents)
        if tree.is_leaf:  # one result: the common case, without the lists
            ((y, node),) = pairs
            return y, Linear(source, (node,), tree, (shape_of(y),), (dtype_of(y),)), None
    else:
        aux = _Aux()
        x, rebuild = _select(args, argnums)

        def call(traced: Any) -> Any:
            out = f(*rebuild(traced))
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError(f"{_name(f)} has has_aux=True but did not return (out, aux)")
                out, aux.value = out
            return out

        source, (tree, pairs) = trace_call(call, x, _Named(f), tangents)
    primals = [p for p, _ in pairs]
    d = Linear(
        source,
        [n for _, n in pairs],
        tree,
        [shape_of(p) for p in primals],
        [dtype_of(p) for p in primals],
    )
    return unflatten(tree, primals), d, primal_tree(aux.value) if has_aux else None


def _pythonic(x: Any, like: Any) -> Any:
    """A 0-d float64 result for a Python float input comes back as a Python float."""
    if (
        type(like) is float
        and isinstance(x, np.floating | np.ndarray)
        and x.shape == ()
        and x.dtype == np.float64
    ):
        return float(x)
    return x


def _pythonic_tree(x: Any, like: Any) -> Any:
    if type(like) is float:
        return _pythonic(x, like)
    if type(like) is np.ndarray:
        return x
    xs, tree = flatten(x)
    ls, ltree = flatten(like)
    if tree != ltree:
        return x
    return unflatten(tree, [_pythonic(a, b) for a, b in zip(xs, ls, strict=True)])


def value_and_grad(
    f: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """``f``'s value and gradient at once (reverse mode).

    ``f`` must return a scalar; the gradient has the structure of ``args[argnums]``
    (a tuple of them when ``argnums`` is a tuple). With ``has_aux=True``, ``f`` returns
    ``(out, aux)`` and the result is ``((out, aux), grad)``.

    Examples:
        >>> import fad
        >>> v, g = fad.value_and_grad(lambda x: x * x)(3.0)
        >>> print(v, g)
        9.0 6.0

    See also:
        grad, vjp
    """

    scalar = isinstance(f, Fn) and f.has_scalar and argnums == 0 and not has_aux

    def vg(*args: Any) -> Any:
        if scalar and len(args) == 1 and type(args[0]) is float:
            try:  # an elementwise pipeline at a Python float: math alone, no graph
                return f.scalar(args[0])  # type: ignore[attr-defined]
            except (OverflowError, ValueError, ZeroDivisionError):
                pass
        out, d, aux = _trace(f, args, argnums, has_aux)
        shapes = d.out_shapes
        if len(shapes) != 1 or shapes[0] != ():
            shown = shapes[0] if len(shapes) == 1 else shapes
            raise TypeError(
                f"grad of {_name(f)} needs a scalar output, got shape {shown}; "
                "use fad.jacobian or fad.vjp for non-scalar outputs"
            )
        g = d.gradient_once()
        if g is None:  # a nan, maybe 0 * inf: record again, check every product
            out, d, aux = _trace(f, args, argnums, has_aux)
            with lin.strictly():
                g = 1.0 @ d
        x = args[argnums] if isinstance(argnums, int) else _select(args, argnums)[0]
        g = _pythonic_tree(g, x)
        return ((out, aux), g) if has_aux else (out, g)

    return vg


def grad(f: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The gradient of a scalar function (reverse mode), in the structure of its input.

    Examples:
        >>> import fad
        >>> from fad import fst, snd
        >>> from fad.prims import log, sin
        >>> f = (fst >> log) + fst * snd - (snd >> sin)
        >>> fad.grad(f)((2.0, 5.0))
        (5.5, 1.7163378145367738)
        >>> fad.grad(lambda x1, x2: fad.log(x1) + x1 * x2 - fad.sin(x2), argnums=(0, 1))(2.0, 5.0)
        (5.5, 1.7163378145367738)

    See also:
        value_and_grad, jacrev, vjp
    """
    vg = value_and_grad(f, argnums, has_aux)

    def g(*args: Any) -> Any:
        res, gr = vg(*args)
        return (gr, res[1]) if has_aux else gr

    return g


def linearize(f: Callable[..., Any], x: Any) -> tuple[Any, Linear]:
    """``(f(x), d)`` with ``d`` the derivative at ``x`` as a linear map.

    ``d @ t`` pushes a tangent forward, ``u @ d`` pulls a cotangent back and ``d.T`` is
    the transpose (``d.T @ u == u @ d``).

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> y, d = fad.linearize(fad.sin, np.zeros(3))
        >>> print(d @ np.ones(3), np.ones(3) @ d)
        [1. 1. 1.] [1. 1. 1.]

    See also:
        jvp, vjp
    """
    out, d, _ = _trace(f, (x,), 0, False)
    return out, d


def jvp(f: Callable[..., Any], x: Any, v: Any) -> tuple[Any, Any]:
    """``(f(x), J v)``: push the tangent ``v`` forward through ``f`` at ``x``.

    Examples:
        >>> import fad
        >>> print(fad.jvp(fad.square, 3.0, 1.0))
        (9.0, 6.0)

    See also:
        linearize, vjp, hvp
    """
    leaves, tree = flatten(x)
    vs, vtree = flatten(v)
    if vtree != tree:
        raise ValueError(f"jvp: the tangent's structure {vtree} differs from the point's {tree}")
    vs = [lin._as_dtype(t, dtype_of(p)) for t, p in zip(vs, leaves, strict=True)]
    out, d, _ = _trace(f, (x,), 0, False, vs)
    return out, _pythonic_tree(_tangents(d, ()), out)


def _tangents(d: Linear, batch: tuple[int, ...]) -> Any:
    """The output tangents of a forward-mode trace, zeros where nothing depended."""
    outs = [
        lin.undiag(n.tangent)
        if type(n) is Tangent and n.tangent is not None
        else lin._zeros(batch + s, dt)
        for n, s, dt in zip(d._nodes, d.out_shapes, d._dtypes, strict=True)
    ]
    return unflatten(d._out_tree, outs)


def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any:
    """``(f(*primals), pullback)``; ``pullback(ct)`` is a tuple with one cotangent per primal.

    Examples:
        >>> import fad
        >>> y, pullback = fad.vjp(fad.square, 3.0)
        >>> print(y, pullback(1.0))
        9.0 (6.0,)

    See also:
        grad, jvp, linearize
    """
    out, d, aux = _trace(f, primals, tuple(range(len(primals))), has_aux)

    def pullback(ct: Any) -> tuple[Any, ...]:
        return tuple(_pythonic_tree(ct @ d, primals))

    return (out, pullback, aux) if has_aux else (out, pullback)


def value_and_derivative(f: Callable[..., Any]) -> Callable[[Any], tuple[Any, Any]]:
    """``x -> (f(x), f'(x))``.

    For scalar and elementwise functions the derivative is a number or the array of
    per-element derivatives (the input's shape), computed vectorised. For any other
    function it is the derivative as a linear map.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> v, d = fad.value_and_derivative(fad.square)(np.array([1.0, 2.0]))
        >>> print(v, d)
        [1. 4.] [2. 4.]

    See also:
        derivative, linearize
    """

    def vd(x: Any) -> tuple[Any, Any]:
        if isinstance(f, Fn) and f.elementwise and f.steps:
            if type(x) is float and f.has_scalar:
                try:
                    return f.scalar(x)
                except (OverflowError, ValueError, ZeroDivisionError):
                    pass
            if type(x) is np.ndarray and x.dtype.kind == "f":
                y, dy = f.ew(x)
                if np.shape(dy) != x.shape:  # a constant slope: an array the caller owns
                    dy = np.full(x.shape, dy, dtype=np.result_type(y))
                return y, dy
        out, d, _ = _trace(f, (x,), 0, False)
        if d._is_diagonal() or (d.in_shapes == ((),) and d.out_shapes == ((),)):
            (inp,) = d._source.inputs
            return out, _pythonic(d @ _ones(inp.shape, inp.dtype), x)
        return out, d

    return vd


def _ones(shape: tuple[int, ...], dtype: Any) -> Any:
    if shape == () and dtype == np.float64:
        return 1.0
    return np.ones(shape, dtype=dtype)


def derivative(f: Callable[..., Any]) -> Callable[[Any], Any]:
    """The derivative of a scalar or elementwise function, itself differentiable.

    Examples:
        >>> import fad
        >>> fad.derivative(fad.sin)(0.0)
        1.0
        >>> fad.derivative(fad.derivative(fad.sin))(0.0)
        -0.0

    See also:
        value_and_derivative, grad
    """
    vd = value_and_derivative(f)
    return lambda x: vd(x)[1]


def _jac(mode: str) -> Callable[..., Callable[..., Any]]:
    def transform(
        f: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False
    ) -> Callable[..., Any]:
        def jac(*args: Any) -> Any:
            x, _ = _select(args, argnums)
            leaves = [check_leaf(v, _Named(f)) for v in flatten(x)[0]]
            sizes = [math.prod(shape_of(v)) for v in leaves]
            if mode == "fwd":
                return _jacfwd(f, args, argnums, has_aux, leaves, sizes)
            # jacobian records once, then reads the record in the cheaper direction.
            _, d, aux = _trace(f, args, argnums, has_aux)
            j = d.dense(mode)
            return (j, aux) if has_aux else j

        return jac

    return transform


def _jacfwd(
    f: Callable[..., Any],
    args: tuple[Any, ...],
    argnums: Argnums,
    has_aux: bool,
    leaves: list[Any],
    sizes: list[int],
) -> Any:
    """Forward mode with the identity's columns pushed as one batch of tangents."""
    n = sum(sizes)
    starts = [0, *itertools.accumulate(sizes)]
    tangents: list[Any] = []
    if len(leaves) == 1:  # the identity, kept diagonal through elementwise steps
        tangents.append(lin.Diag(np.ones(shape_of(leaves[0]), dtype=dtype_of(leaves[0]))))
    else:
        for v, k, a in zip(leaves, sizes, starts[:-1], strict=True):
            t = np.zeros((n, k), dtype=dtype_of(v))
            t[a : a + k] = np.eye(k, dtype=t.dtype)
            tangents.append(t.reshape((n, *shape_of(v))))
    _, d, aux = _trace(f, args, argnums, has_aux, tangents)
    outs = flatten(_tangents(d, (n,)))[0]
    rows = []
    for o, s in zip(outs, d.out_shapes, strict=True):
        m = math.prod(s)
        blocks = [
            np.reshape(np.reshape(o[a : a + k], (k, m)).T, s + shape_of(v))
            for v, k, a in zip(leaves, sizes, starts[:-1], strict=True)
        ]
        rows.append(unflatten(d._source.tree, blocks))
    j = unflatten(d._out_tree, rows)
    return (j, aux) if has_aux else j


jacfwd = _jac("fwd")
jacfwd.__name__ = "jacfwd"
jacfwd.__doc__ = """The Jacobian by forward mode: one batched push of the identity's columns.

    Its shape is the output's followed by the input's.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> print(fad.jacfwd(fad.sin)(np.zeros(2)))
        [[1. 0.]
         [0. 1.]]

    See also:
        jacrev, jacobian, hessian
    """
jacrev = _jac("rev")
jacrev.__name__ = "jacrev"
jacrev.__doc__ = """The Jacobian by reverse mode: one batched pull of the identity's rows.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> print(fad.jacrev(lambda x: x.sum())(np.ones(3)))
        [1. 1. 1.]

    See also:
        jacfwd, jacobian, grad
    """
jacobian = _jac("auto")
jacobian.__name__ = "jacobian"
jacobian.__doc__ = """The Jacobian, by the cheaper mode: forward when inputs are fewer than outputs.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> print(fad.jacobian(lambda x: x * x)(np.array([1.0, 2.0])))
        [[2. 0.]
         [0. 4.]]

    See also:
        jacfwd, jacrev
    """


def hessian(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Hessian of a scalar function: ``jacfwd(jacrev(f))``.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> print(fad.hessian(lambda x: (x * x * x).sum())(np.array([1.0, 2.0])))
        [[ 6.  0.]
         [ 0. 12.]]

    See also:
        hvp, jacfwd, jacrev
    """
    return jacfwd(jacrev(f, argnums), argnums)


def hvp(f: Callable[..., Any], x: Any, v: Any) -> Any:
    """The Hessian-vector product H v, forward over reverse: no dense Hessian is formed.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> print(fad.hvp(lambda x: (x * x * x).sum(), np.array([1.0, 2.0]), np.ones(2)))
        [ 6. 12.]

    See also:
        hessian, jvp, grad
    """
    return jvp(grad(f), x, v)[1]
