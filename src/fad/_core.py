"""The AD monad: ``Dual`` values, differentiable functions ``Fn``, ``unit`` and ``bind``.

A ``Dual`` is a primal value together with a *linear node* (see ``_linear``): how its
tangent depends on the tangents of the input of the call that produced it. Primitives act
on ``Dual`` values by computing their value and recording their local linear map; calling
an ``Fn`` on a ``Dual`` therefore *is* ``bind``, the chain rule.

Nesting works by levels (JAX's idea, ``ad``'s brands): every differentiated call owns a
``Source`` whose tag orders it among the others. When values of several tags meet, the
highest tag is differentiated and the others are constants *at that level*, their own
derivative machinery left intact underneath, so ``d/dx [x * d/dy (x + y)]`` keeps x's and
y's perturbations apart. The active tags live in a ``ContextVar``, never a module-level
stack, so transforms are thread-safe.
"""

from __future__ import annotations

import functools
import gc
import inspect
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Generic, TypeVar, final, overload

import numpy as np

from . import _linear as lin
from ._errors import _CHECK_NANS, DomainError, MixedInputsError, ShapeError, nan_checks_enabled
from ._linear import Node, Scale, Source, scale, shape_of
from ._tree import Tree, flatten, leaf_tree, unflatten

__all__ = [
    "Dual",
    "Fn",
    "Configurable",
    "Step",
    "call_kernel",
    "defop",
    "dtype_of",
    "mk",
    "primal",
    "scale",
    "shape_of",
    "bind",
    "comp",
    "const",
    "identity",
    "pipe",
    "unit",
]

A = TypeVar("A", contravariant=True)
B = TypeVar("B", covariant=True)
C = TypeVar("C")
T = TypeVar("T")

Shape = tuple[int, ...]

# Tags of the calls being differentiated right now, in this thread or task.
_ACTIVE: ContextVar[frozenset[int]] = ContextVar("fad_active", default=frozenset())
# Set while a lifted (pointed) function is evaluated for its value alone.
_VALUE_ONLY: ContextVar[bool] = ContextVar("fad_value_only", default=False)


@contextmanager
def active(tag: int) -> Iterator[None]:
    """Mark ``tag`` as being differentiated while the block runs."""
    token = _ACTIVE.set(_ACTIVE.get() | {tag})
    try:
        yield
    finally:
        _ACTIVE.reset(token)


@contextmanager
def value_only() -> Iterator[None]:
    """Evaluate primitives on plain values without building derivatives."""
    token = _VALUE_ONLY.set(True)
    try:
        yield
    finally:
        _VALUE_ONLY.reset(token)


# ---------------------------------------------------------------------------- Dual


@final
class Packed:
    """The derivative of a structured (pytree) result: one node per output leaf."""

    __slots__ = ("nodes", "source", "tree")

    def __init__(self, source: Source, tree: Tree, nodes: Sequence[Node | None]) -> None:
        self.source = source
        self.tree = tree
        self.nodes = tuple(nodes)


@final
class Dual(Generic[B]):
    """A value together with its derivative: the monad's ``M b``.

    ``m.value`` is the primal value and ``m.deriv`` the derivative, a linear map from the
    input's tangents to the value's tangents (a number for scalar functions, see
    ``LinearMap``). A ``Dual`` is immutable and unpacks as ``(value, deriv)``. Arithmetic,
    indexing and numpy functions on it are differentiated (define-by-run).

    Examples:
        >>> import fad
        >>> m = fad.bind(fad.unit(0.0), fad.exp)
        >>> value, deriv = m
        >>> print(value, float(deriv))
        1.0 1.0

    See also:
        unit, bind, Fn
    """

    __slots__ = ("_node", "_value")
    __fad_leaf__ = True  # a pytree leaf, whatever it holds

    _value: Any
    _node: Node | Packed

    def __init__(self, value: Any, node: Node | Packed) -> None:
        self._value = value
        self._node = node

    @property
    def value(self) -> B:
        """The primal value."""
        return self._value  # type: ignore[no-any-return]

    @property
    def deriv(self) -> lin.LinearMap:
        """The derivative: a linear map from input tangents to tangents of ``value``."""
        node = self._node
        if type(node) is Packed:
            shapes = [shape_of(v) for v in flatten(self._value)[0]]
            dtypes = [dtype_of(v) for v in flatten(self._value)[0]]
            return lin.Linear(node.source, node.nodes, node.tree, shapes, dtypes)
        return lin.single(node.source, node, self._value)

    def __iter__(self) -> Iterator[Any]:
        yield self._value
        yield self.deriv

    def __repr__(self) -> str:
        return f"Dual({self._value!r}, {self.deriv!r})"

    # -- array-like attributes, read from the primal
    @property
    def shape(self) -> Shape:
        return shape_of(self._value)

    @property
    def ndim(self) -> int:
        return len(shape_of(self._value))

    @property
    def size(self) -> int:
        return math.prod(shape_of(self._value))

    @property
    def dtype(self) -> np.dtype[Any]:
        return dtype_of(self._value)

    def __len__(self) -> int:
        s = shape_of(self._value)
        if not s:
            raise TypeError("len() of a 0-d value")
        return s[0]

    # -- arithmetic (differentiated)
    def __add__(self, other: Any) -> Any:
        if type(other) is Dual:  # the sum of two arrays of one level: no partials to form
            a, b = self._node, other._node
            if (
                a.source is b.source
                and type(self._value) is np.ndarray
                and type(other._value) is np.ndarray
                and isinstance(a, Node)
                and isinstance(b, Node)
                and self._value.shape == other._value.shape
                and not _CHECK_NANS.get()
            ):
                return mk(self._value + other._value, lin.sum_of(a, b, a.shape))
        return add.apply(self, other)

    def __radd__(self, other: Any) -> Any:
        return add.apply(other, self)

    def __sub__(self, other: Any) -> Any:
        return subtract.apply(self, other)

    def __rsub__(self, other: Any) -> Any:
        return subtract.apply(other, self)

    def __mul__(self, other: Any) -> Any:
        return multiply.apply(self, other)

    def __rmul__(self, other: Any) -> Any:
        return multiply.apply(other, self)

    def __truediv__(self, other: Any) -> Any:
        return divide.apply(self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return divide.apply(other, self)

    def __pow__(self, other: Any) -> Any:
        return power.apply(self, other)

    def __rpow__(self, other: Any) -> Any:
        return power.apply(other, self)

    def __neg__(self) -> Any:
        return multiply.apply(-1.0, self)

    def __pos__(self) -> Any:
        return self

    def __matmul__(self, other: Any) -> Any:
        return FUNCTIONS[np.matmul](self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return FUNCTIONS[np.matmul](other, self)

    def __abs__(self) -> Any:
        return UFUNCS[np.absolute](self)

    # -- comparisons read primal values
    def __lt__(self, other: Any) -> Any:
        return primal(self) < primal(other)

    def __le__(self, other: Any) -> Any:
        return primal(self) <= primal(other)

    def __gt__(self, other: Any) -> Any:
        return primal(self) > primal(other)

    def __ge__(self, other: Any) -> Any:
        return primal(self) >= primal(other)

    def __bool__(self) -> bool:
        return bool(primal(self))

    # -- conversions that would silently drop the derivative are refused
    def __float__(self) -> float:
        raise TypeError(
            "float() of a value being differentiated would drop its derivative; "
            "use fad.stop_gradient(x) for a constant, or keep computing with fad values"
        )

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        raise TypeError(
            "converting a value being differentiated to a plain numpy array (np.asarray, "
            "or writing it into an array: a[i] = x) would drop its derivative; use numpy "
            "functions on it directly, fad.stack/fad.concatenate/fad.where to build new "
            "values, or fad.stop_gradient(x) for a constant"
        )

    # -- structure
    def __getitem__(self, index: Any) -> Any:
        v = self._value
        if type(v) is np.ndarray and (type(index) is slice or type(index) is int):
            node = self._node  # the common case, as ``getitem``'s, without its checks
            if isinstance(node, Node) and not _CHECK_NANS.get():
                y = v[index]
                return mk(y, Index(node, index, y.shape if type(y) is np.ndarray else ()))
        return getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        raise TypeError(
            "fad values are immutable: `x[i] = v` would corrupt the recorded derivative; "
            "build a new value instead, e.g. fad.where(mask, v, x) or fad.concatenate"
        )

    def reshape(self, *shape: Any) -> Any:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return reshape(self, tuple(shape))

    def transpose(self, *axes: Any) -> Any:
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], tuple | list)):
            axes = () if axes[0] is None else tuple(axes[0])
        return transpose(self, tuple(axes) or None)

    @property
    def T(self) -> Any:
        return transpose(self, None)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Any:
        return reduce_sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Any:
        return FUNCTIONS[np.mean](self, axis=axis, keepdims=keepdims)

    def dot(self, other: Any) -> Any:
        return FUNCTIONS[np.dot](self, other)

    # -- numpy protocols: untouched numpy code is differentiated
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method != "__call__" or "out" in kwargs:
            what = (
                f"{ufunc.__name__}.{method}"
                if method != "__call__"
                else f"{ufunc.__name__}(out=...)"
            )
            raise TypeError(
                f"numpy.{what} writes in place or reduces in a way fad cannot differentiate; "
                "use the functional form (e.g. fad.sum, or a new array instead of out=)"
            )
        impl = UFUNCS.get(ufunc)
        if impl is None:
            if ufunc in NONDIFF_UFUNCS:
                return ufunc(*(primal(x) for x in inputs), **kwargs)
            raise TypeError(
                f"fad has no derivative rule for numpy.{ufunc.__name__}; "
                f"define one with fad.primitive(..., deriv=...) and call it instead"
            )
        if kwargs:
            kwargs.pop("dtype", None)
            kwargs.pop("casting", None)
            if kwargs:
                raise TypeError(f"numpy.{ufunc.__name__}: fad does not support {sorted(kwargs)}")
        return impl(*inputs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        impl = FUNCTIONS.get(func)
        if impl is None:
            raise TypeError(
                f"fad has no derivative rule for numpy.{func.__name__}; "
                "define one with fad.primitive(..., jvp=..., vjp=...) and call it instead"
            )
        return impl(*args, **kwargs)


_new = object.__new__


def mk(value: Any, node: Node | Packed) -> Dual[Any]:
    """Build a ``Dual`` without the constructor's call overhead (hot path)."""
    if node.source.eager and type(node) is not Packed and type(node) is not lin.Tangent:
        node = lin.evaluate(node)
    d = _new(Dual)
    d._value = value  # plain slot stores: cheaper than the slots' __set__ or __init__
    d._node = node
    return d


# numpy ufuncs and functions that dispatch on Dual values; filled by fad.prims.
UFUNCS: dict[Any, Callable[..., Any]] = {}
FUNCTIONS: dict[Any, Callable[..., Any]] = {
    np.shape: lambda x: shape_of(x),
    np.ndim: lambda x: len(shape_of(x)),
    np.size: lambda x: math.prod(shape_of(x)),
    np.result_type: lambda *xs: np.result_type(*(primal(x) for x in xs)),
}
# ufuncs whose derivative is zero wherever it exists: evaluated on primal values.
NONDIFF_UFUNCS = frozenset(
    {
        np.sign, np.heaviside, np.floor, np.ceil, np.trunc, np.rint, np.isnan, np.isinf,
        np.isfinite, np.signbit, np.greater, np.greater_equal, np.less, np.less_equal,
        np.equal, np.not_equal, np.logical_and, np.logical_or, np.logical_not,
        np.logical_xor, np.floor_divide, np.remainder,
    }
)  # fmt: skip


def primal(x: Any) -> Any:
    """Strip every level of ``Dual`` from ``x``: the plain value underneath."""
    while type(x) is Dual:
        x = x._value
    return x


def dtype_of(x: Any) -> np.dtype[Any]:
    """The dtype of a number, array or ``Dual``."""
    dt = getattr(x, "dtype", None)
    return np.result_type(x) if dt is None else dt


def tag_of(x: Any) -> int:
    """The level of a value: its source's tag, or 0 for a plain value."""
    return x._node.source.tag if type(x) is Dual else 0


def _strip_inactive(x: Any, act: frozenset[int]) -> Any:
    while type(x) is Dual and x._node.source.tag not in act:
        x = x._value
    return x


def _align(args: Sequence[Any], name: str) -> tuple[list[Any], int]:
    """Bring the operands of one primitive to a common level.

    Operands of different tags meet only under a transform, where those that don't belong
    to an active one are constants. Outside every transform they would mix derivatives
    with respect to different inputs, which is refused.
    """
    act = _ACTIVE.get()
    if not act:
        raise MixedInputsError(
            f"{name} received Dual values that differentiate different inputs; "
            "a pointed function of several inputs needs fad.lift(f) or a transform "
            "such as fad.grad(f, argnums=(0, 1))"
        )
    out = [_strip_inactive(a, act) for a in args]
    return out, max(tag_of(a) for a in out)


def top_level(args: Sequence[Any], name: str) -> tuple[list[Any], int]:
    """The operands and the highest tag among them (0 when all are plain)."""
    top = 0
    mixed = False
    for a in args:
        if type(a) is Dual:
            t = a._node.source.tag
            if top and t != top:
                mixed = True
            top = max(top, t)
    if mixed:
        return _align(args, name)
    return list(args), top


def split(args: Sequence[Any], top: int) -> tuple[list[Any], list[Node | None]]:
    """Primals and nodes of the operands at level ``top`` (others are constants)."""
    primals: list[Any] = []
    nodes: list[Node | None] = []
    for a in args:
        if type(a) is Dual and a._node.source.tag == top:
            node = a._node
            if type(node) is Packed:
                raise TypeError("a structured Dual (a tuple of results) cannot be used as an array")
            primals.append(a._value)
            nodes.append(node)
        else:
            primals.append(a)
            nodes.append(None)
    return primals, nodes


def call_kernel(name: str, kernel: Callable[..., Any], *args: Any) -> Any:
    """Run a primitive's kernel; under ``debug_nans`` raise at the first nan or inf.

    numpy's complaint about operands that don't fit becomes a ``ShapeError`` naming the
    primitive and every operand's shape.
    """
    try:
        if not nan_checks_enabled():
            return kernel(*args)
        with np.errstate(all="ignore"):
            y = kernel(*args)
    except ValueError as e:
        if isinstance(e, ShapeError) or not any(np.ndim(primal(a)) for a in args):
            raise
        shapes = " and ".join(str(shape_of(a)) for a in args)
        raise ShapeError(f"{name} received shapes {shapes}: {e}") from None
    if all(np.all(np.isfinite(primal(x))) for x in args) and not np.all(np.isfinite(primal(y))):
        shown = args[0] if len(args) == 1 else tuple(args)
        raise DomainError(f"{name} produced nan or inf from finite input {shown!r}")
    return y


# ------------------------------------------------------------------ binary arithmetic

Partial = Callable[[Any, Any, Any], Any]

_SCALAR_OPS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": math.pow,  # not float.__pow__: (-8.0) ** (1/3) is complex in Python
}


@final
class Binary:
    """An elementwise operation of two broadcasting operands and its two partials.

    A partial ``(a, b, y) -> coefficient`` returns ``None`` for an identity coefficient,
    so ``a + b`` records no multiplication at all.
    """

    __slots__ = ("array_kernel", "da", "db", "kernel", "name", "singular", "symbol")

    def __init__(
        self,
        name: str,
        symbol: str,
        kernel: Callable[[Any, Any], Any],
        da: Partial,
        db: Partial,
        singular: bool = False,
        array_kernel: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        self.singular = singular
        self.name = name
        self.symbol = symbol
        self.kernel = kernel
        # The kernel where an operand is an array (``kernel`` itself unless told).
        self.array_kernel = kernel if array_kernel is None else array_kernel
        self.da = da
        self.db = db

    def __repr__(self) -> str:
        return self.name

    def apply(self, a: Any, b: Any) -> Any:
        # The common case first, in as few steps as can be: the operands are values of
        # one call, or one of them is a constant (a number or a plain array).
        if type(a) is Dual:
            an: Any = a._node
            if type(b) is Dual:
                bn: Any = b._node
                if an.source is not bn.source:  # two levels: the higher one is differentiated
                    return self._levels(a, b)
                av, bv = a._value, b._value
            else:
                av, bv, bn = a._value, b, None
                # An array and a number: no shapes to check, a partial that can't warn.
                if (
                    (type(b) is float or type(b) is int)
                    and type(av) is np.ndarray
                    and not self.singular
                    and type(an) is not Packed
                    and not _CHECK_NANS.get()
                ):
                    y = self.array_kernel(av, b)
                    return mk(y, scale(self.da(av, b, y), an, y.shape, self.name))
        elif type(b) is Dual:
            av, an, bv, bn = a, None, b._value, b._node
            if (  # the same way for a number and an array
                (type(a) is float or type(a) is int)
                and type(bv) is np.ndarray
                and not self.singular
                and type(bn) is not Packed
                and not _CHECK_NANS.get()
            ):
                y = self.array_kernel(a, bv)
                return mk(y, scale(self.db(a, bv, y), bn, y.shape, self.name))
        else:
            return self._plain(a, b)
        return self._linearize(av, an, bv, bn)

    def _levels(self, a: Dual[Any], b: Dual[Any]) -> Any:
        """Operands of two tags: the higher level is differentiated, the other is constant."""
        (a, b), _ = _align((a, b), self.name)
        ta, tb = tag_of(a), tag_of(b)
        # Operands below the top level are constants here; their own levels live on
        # inside the primal computation.
        if ta > tb:
            return self._linearize(a._value, a._node, b, None)
        if ta < tb:
            return self._linearize(a, None, b._value, b._node)
        if ta:
            return self._linearize(a._value, a._node, b._value, b._node)
        return self._plain(a, b)

    def _linearize(self, av: Any, an: Any, bv: Any, bn: Any) -> Any:
        """The value and the node of the operation on primals ``av``, ``bv``, whose nodes
        at this level are ``an`` and ``bn`` (``None`` for a constant)."""
        if type(an) is Packed or type(bn) is Packed:
            raise TypeError("a structured Dual (a tuple of results) cannot be used as an array")
        if type(av) is Dual or type(bv) is Dual:  # values of enclosing transforms
            y = self.apply(av, bv)
        elif (type(av) is np.ndarray or type(bv) is np.ndarray) and not _CHECK_NANS.get():
            try:
                y = self.array_kernel(av, bv)
            except ValueError:
                y = call_kernel(self.name, self.kernel, av, bv)  # raises the named ShapeError
        else:
            y = self._plain(av, bv)
        shape = y.shape if type(y) is np.ndarray else shape_of(y)
        name = self.name
        if self.singular:  # a rule may divide by zero at the domain's edge: no warning
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                ca = None if an is None else self.da(av, bv, y)
                cb = None if bn is None else self.db(av, bv, y)
        else:
            ca = None if an is None else self.da(av, bv, y)
            cb = None if bn is None else self.db(av, bv, y)
        if an is None:
            node = scale(cb, bn, shape, name)
        else:
            node = scale(ca, an, shape, name)
            if bn is not None:
                node = lin.sum_of(node, scale(cb, bn, shape, name), shape)
        return mk(y, node)

    def _plain(self, a: Any, b: Any) -> Any:
        if (type(a) is float or type(a) is int) and (type(b) is float or type(b) is int):
            op = _SCALAR_OPS.get(self.symbol)
            if op is not None:
                try:
                    return op(a, b)
                except (OverflowError, ValueError, ZeroDivisionError):
                    pass  # math raises where numpy returns inf or nan
        if _CHECK_NANS.get():
            return call_kernel(self.name, self.kernel, a, b)
        try:
            return self.kernel(a, b)
        except ValueError:
            return call_kernel(self.name, self.kernel, a, b)  # raises the named ShapeError


def _pow_da(a: Any, b: Any, y: Any) -> Any:
    if type(b) is float or type(b) is int or (type(b) is not Dual and np.ndim(b) == 0):
        b = float(b)
        if b == 0.0:
            return 0.0 * a
        if b == 1.0:
            return None
        if b == 2.0:
            return (a, 2.0)  # lin.times_pair, inline: the 2 is kept apart, no pass over the array
        if type(a) is float:  # Python raises on 0.0 ** -0.5; numpy says inf
            with np.errstate(divide="ignore", invalid="ignore"):
                return b * float(np.float64(a) ** (b - 1.0))
        if b > 1.0:  # no division by zero, so no warning the function itself didn't give
            return lin.times_pair(a ** (b - 1.0), b)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return b * a ** (b - 1.0)  # infinite at a = 0 (the domain's edge)
    # An array of exponents: where one is 0 the power is constant, so its slope is 0
    # (b * a**(b-1) would say 0 * inf at a = 0).
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return where_nonzero(b, b * a ** (b - 1.0))


def where_nonzero(b: Any, c: Any) -> Any:
    """``c`` where ``b != 0``, else 0 (a selection, so 0 * inf never happens)."""
    mask = np.asarray(primal(b)) != 0
    if mask.all():
        return c
    return FUNCTIONS[np.where](mask, c, 0.0)


def _pow_db(a: Any, b: Any, y: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # log(0) = -inf
        return UFUNCS[np.log](a) * y


add = Binary("add", "+", np.add, lambda a, b, y: None, lambda a, b, y: None)
subtract = Binary("subtract", "-", np.subtract, lambda a, b, y: None, lambda a, b, y: -1.0)
multiply = Binary("multiply", "*", np.multiply, lambda a, b, y: b, lambda a, b, y: a)


def _over(a: Any, b: Any) -> Any:
    """``a / b`` with numpy's inf and nan for Python floats (Python raises on b = 0)."""
    if type(b) is float and b == 0.0 and (type(a) is float or type(a) is int):
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.float64(a) / b)
    return a / b


divide = Binary(
    "divide", "/", np.true_divide, lambda a, b, y: _over(1.0, b), lambda a, b, y: _over(-y, b), True
)


def _power(a: Any, b: Any) -> Any:
    """``np.power``, through numpy's ``**`` for an array base (see ``power``)."""
    if type(a) is np.ndarray:
        return a**b
    return np.power(a, b)


# With an array operand, ``**`` itself: numpy's operator squares for ``x ** 2``, twice as
# fast as ``np.power(x, 2)`` at 1,000 elements (same values); Python's ``**`` on two
# Python floats would differ (``(-8.0) ** (1 / 3)`` is complex), hence ``_power``. The
# partials silence themselves.
power = Binary("power", "**", _power, _pow_da, _pow_db, array_kernel=operator.pow)


def _select_first(a: Any, b: Any, y: Any) -> Any:
    """1 where ``a`` was chosen (``y == a``), else 0: ties go to the first operand."""
    hit = primal(y) == primal(a)
    if isinstance(hit, bool | np.bool_) and np.ndim(hit) == 0:
        return 1.0 if hit else 0.0
    return hit.astype(dtype_of(y))


def _select_second(a: Any, b: Any, y: Any) -> Any:
    hit = primal(y) != primal(a)
    if isinstance(hit, bool | np.bool_) and np.ndim(hit) == 0:
        return 1.0 if hit else 0.0
    return hit.astype(dtype_of(y))


maximum = Binary("maximum", "max", np.maximum, _select_first, _select_second)
minimum = Binary("minimum", "min", np.minimum, _select_first, _select_second)

for _ufunc, _op in (
    (np.maximum, maximum),
    (np.minimum, minimum),
    (np.fmax, maximum),
    (np.fmin, minimum),
    (np.add, add),
    (np.subtract, subtract),
    (np.multiply, multiply),
    (np.true_divide, divide),
    (np.power, power),
):
    UFUNCS[_ufunc] = _op.apply
UFUNCS[np.negative] = lambda x: multiply.apply(-1.0, x)

UFUNCS[np.positive] = lambda x: x

# ------------------------------------------------------------- general linear ops

Linearize = Callable[[list[Any], Any, list["Node | None"]], "Node | None"]


def defop(name: str, kernel: Callable[..., Any], linearize: Linearize) -> Callable[..., Any]:
    """Make a primitive of several operands from its kernel and its linearisation.

    ``linearize(primals, y, nodes)`` returns the node of the result, where ``nodes`` has
    ``None`` for constant operands. Keyword options go to the kernel and are closed over
    by ``linearize``'s caller, so this only handles positional operands.
    """

    return functools.partial(_apply_op, name, kernel, linearize)


def _apply_op(name: str, kernel: Callable[..., Any], linearize: Linearize, *args: Any) -> Any:
    # A module-level function, not a closure calling itself: a self-referencing closure
    # per primitive call would leave a reference cycle per call for the collector.
    args_, top = top_level(args, name)
    if top == 0:
        return call_kernel(name, kernel, *args_)
    primals, nodes = split(args_, top)
    if Dual in map(type, primals):  # values of enclosing transforms
        y = _apply_op(name, kernel, linearize, *primals)
    else:
        y = call_kernel(name, kernel, *primals)
    if type(y) is Dual and y._node.source.tag >= top:
        raise TypeError(
            f"{name} closes over a value that the same transform differentiates, so "
            "its rule would miss that dependence; pass the value as an argument"
        )
    node = linearize(primals, y, nodes)
    return y if node is None else mk(y, node)


def _one(nodes: list[Node | None]) -> tuple[Node]:
    """The single parent of a unary op (which only linearises with a Dual operand)."""
    (node,) = nodes
    assert node is not None
    return (node,)


def _batch(t: Any, shape: Shape) -> Shape:
    s = shape_of(t)
    return s[: len(s) - len(shape)]


def reshape(x: Any, shape: Shape) -> Any:
    """``np.reshape`` differentiated; works on leading batch axes of tangents."""
    shape = tuple(np.empty(shape_of(primal(x)), dtype=np.int8).reshape(shape).shape)
    return _reshape(x, shape)


def _reshape(x: Any, shape: Shape) -> Any:
    def lin_(p: list[Any], y: Any, n: list[Node | None]) -> Node:
        src = shape_of(p[0])
        return lin.Op(
            "reshape",
            _one(n),
            shape,
            lambda t: np.reshape(t, _batch(t, src) + shape),
            lambda ct: (np.reshape(ct, _batch(ct, shape) + src),),
            on_diag=lambda t: lin.reshape_band(t, shape),
        )

    return defop("reshape", lambda v: np.reshape(v, shape), lin_)(x)


def transpose(x: Any, axes: Sequence[int] | None) -> Any:
    """``np.transpose`` differentiated."""
    nd = len(shape_of(x))
    perm = tuple(range(nd))[::-1] if axes is None else tuple(a % nd for a in axes)
    inv = tuple(np.argsort(perm))

    def lin_(p: list[Any], y: Any, n: list[Node | None]) -> Node:
        def move(t: Any, order: Sequence[int]) -> Any:
            nb = len(shape_of(t)) - nd
            return np.transpose(t, tuple(range(nb)) + tuple(nb + a for a in order))

        return lin.Op(
            "transpose", _one(n), shape_of(y), lambda t: move(t, perm), lambda ct: (move(ct, inv),)
        )

    return defop("transpose", lambda v: np.transpose(v, perm), lin_)(x)


def _axes(axis: Any, nd: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(nd))
    if isinstance(axis, int | np.integer):
        axis = (axis,)
    return tuple(sorted(int(a) % nd for a in axis))


def reduce_sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``np.sum`` differentiated (axes counted from the end, so batches pass through)."""
    if type(x) is Dual:  # the common case first, without the general primitive's dispatch
        v = x._value
        if (
            type(v) is np.ndarray
            and isinstance(x._node, Node)
            and v.dtype.kind in "fc"
            and not _CHECK_NANS.get()
        ):
            axes = _ALL_AXES[v.ndim] if axis is None and v.ndim < 8 else _axes(axis, v.ndim)
            y = _add_reduce(v, axis=axes, keepdims=keepdims)  # an array or a numpy scalar
            return mk(y, ReduceSum(x._node, axes, keepdims, y.shape))
    axes = _axes(axis, len(shape_of(x)))

    def lin_(p: list[Any], y: Any, n: list[Node | None]) -> Node:
        return ReduceSum(_one(n)[0], axes, keepdims, shape_of(y))

    return defop("sum", lambda v: np.sum(v, axis=axes, keepdims=keepdims), lin_)(x)


_add_reduce: Any = np.add.reduce
_ALL_AXES = [tuple(range(n)) for n in range(8)]


@final
class ReduceSum(Node):
    """The derivative of ``np.sum`` over ``axes``: tangents summed, cotangents broadcast."""

    __slots__ = ("axes", "keepdims")

    def __init__(self, parent: Node, axes: tuple[int, ...], keepdims: bool, out: Shape) -> None:
        self.source = parent.source
        self.seq = next(lin.creation)
        self.parents = (parent,)
        self.shape = out
        self.diag = -1
        self.axes = axes
        self.keepdims = keepdims

    @property
    def name(self) -> str:
        return "sum"

    def forward(self, ts: list[Any]) -> Any:
        (t,) = ts
        if t is None:
            return None
        nd = len(self.parents[0].shape)  # axes from the end: batches pass through
        return np.sum(t, axis=tuple(a - nd for a in self.axes), keepdims=self.keepdims)

    def forward_diag(self, ts: list[Any]) -> Any:
        (t,) = ts
        if type(t) is not lin.Diag and type(t) is not lin.Band:
            return None
        if len(self.axes) < len(self.parents[0].shape):
            return self.forward([t.dense()])
        if type(t) is lin.Band:
            return t.summed(self.shape)  # entry k sums its bands' values at k
        return np.reshape(t.d, (t.d.size, *self.shape))  # entry k sums to d[k]

    def backward(self, ct: Any) -> Sequence[Any]:
        src, out = self.parents[0].shape, self.shape
        if type(ct) is float and not out:  # a gradient's seed
            return (lin.Fill(ct, src),)
        plain = type(ct) is not Dual and len(shape_of(ct)) == len(out)
        if plain and len(self.axes) == len(src):  # the sum of every element: one number
            ct = np.reshape(ct, ())[()]  # a 0-d or all-ones array: its one number
            return (lin.Fill(ct, src),)
        kept = tuple(1 if i in self.axes else s for i, s in enumerate(src))
        if plain:
            return (np.broadcast_to(np.reshape(ct, kept), src),)
        nb = _batch(ct, out)
        return (broadcast_to(np.reshape(ct, nb + kept), nb + src),)


def broadcast_to(x: Any, shape: Shape) -> Any:
    """``np.broadcast_to`` differentiated (its transpose sums back)."""
    shape = tuple(shape)

    def lin_(p: list[Any], y: Any, n: list[Node | None]) -> Node:
        src = shape_of(p[0])

        def fwd(t: Any) -> Any:
            nb = _batch(t, src)
            return np.broadcast_to(lin.expand(t, src, len(shape)), nb + shape)

        return lin.Op("broadcast_to", _one(n), shape, fwd, lambda ct: (lin.sum_to(ct, shape, src),))

    return defop("broadcast_to", lambda v: np.broadcast_to(v, shape), lin_)(x)


def _batched_index(index: Any, nb: int) -> Any:
    if not isinstance(index, tuple):
        index = (index,)
    return (slice(None),) * nb + index


def getitem(x: Any, index: Any) -> Any:
    """Indexing and slicing differentiated; repeated integer indices accumulate."""
    if type(index) is Dual:
        index = primal(index)
    if isinstance(index, tuple):
        index = tuple(primal(i) for i in index)
    if (
        type(x) is Dual
        and type(x._value) is np.ndarray
        and isinstance(x._node, Node)
        and not nan_checks_enabled()
    ):  # the common case: one level, without the general primitive's dispatch
        y = x._value[index]
        return mk(y, Index(x._node, index, shape_of(y)))

    def lin_(p: list[Any], y: Any, n: list[Node | None]) -> Node:
        return Index(_one(n)[0], index, shape_of(y))

    return defop("getitem", lambda v: v[index], lin_)(x)


@final
class Index(Node):
    """The derivative of ``v[index]``: tangents indexed, cotangents put back at ``index``.

    A node class, not closures: ``x[1:] - x[:-1]`` records two small objects. The
    transpose is a ``Sparse`` cotangent, written once at ``v``'s node however many
    pieces reach it; a contiguous slice keeps ``jacfwd``'s identity banded.
    """

    __slots__ = ("index",)

    def __init__(self, parent: Node, index: Any, out: Shape) -> None:
        self.source = parent.source
        self.seq = next(lin.creation)
        self.parents = (parent,)
        self.shape = out
        self.diag = -1
        self.index = index

    @property
    def name(self) -> str:
        return "getitem"

    def forward(self, ts: list[Any]) -> Any:
        (t,) = ts
        if t is None:
            return None
        return t[_batched_index(self.index, len(shape_of(t)) - len(self.parents[0].shape))]

    def forward_diag(self, ts: list[Any]) -> Any:
        (t,) = ts
        if type(t) is not lin.Diag and type(t) is not lin.Band:
            return None
        return lin.take_band(t, self.parents[0].shape, self.index, self.shape)

    def backward(self, ct: Any) -> Sequence[Any]:
        src, out, index = self.parents[0].shape, self.shape, self.index
        if type(ct) is Dual:  # a cotangent that is itself differentiated: a real op
            return (scatter_add(ct, index, src, out),)
        if type(ct) is np.ndarray and ct.ndim == len(out):  # no batch: the common case
            return (lin.Sparse(src, ct.dtype, index, ct),)
        nb = shape_of(ct)[: len(shape_of(ct)) - len(out)]
        return (lin.Sparse(nb + src, dtype_of(ct), _batched_index(index, len(nb)), ct),)

    def fill_backward(self, ct: lin.Fill) -> Sequence[Any]:
        value = ct.value  # one number everywhere: it is written at index, not broadcast
        return (lin.Sparse(self.parents[0].shape, dtype_of(value), self.index, value),)


def scatter_add(ct: Any, index: Any, shape: Shape, out: Shape) -> Any:
    """Zeros of ``batch + shape`` with ``ct`` added at ``index``: indexing's transpose."""

    def kernel(c: Any) -> Any:
        nb = len(shape_of(c)) - len(out)
        z = np.zeros(shape_of(c)[:nb] + shape, dtype=dtype_of(c))
        where = _batched_index(index, nb)
        if lin.is_basic(where):
            lin.write_onto_zeros(z, where, c)  # a basic index never repeats
        else:
            np.add.at(z, where, c)
        return z

    def lin_(p: list[Any], y: Any, n: list[Node | None]) -> Node:
        return lin.Op(
            "scatter_add",
            _one(n),
            shape_of(y),
            lambda t: scatter_add(t, index, shape, out),
            lambda c: (c[_batched_index(index, len(shape_of(c)) - len(shape))],),
            on_diag=lambda t: lin.scatter_band(t, shape, index, out),
        )

    return defop("scatter_add", kernel, lin_)(ct)


def _np_reshape(x: Any, shape: Any = None, **kw: Any) -> Any:
    shape = kw.get("newshape", shape)
    return reshape(x, tuple(shape) if isinstance(shape, tuple | list) else (int(shape),))


FUNCTIONS[np.reshape] = _np_reshape
FUNCTIONS[np.transpose] = lambda x, axes=None: transpose(x, axes)


def _np_sum(
    x: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any
) -> Any:
    return reduce_sum(x, axis, keepdims)


FUNCTIONS[np.sum] = _np_sum
FUNCTIONS[np.broadcast_to] = lambda x, shape, **kw: broadcast_to(x, tuple(np.atleast_1d(shape)))


def _mean(x: Any, axis: Any = None, keepdims: bool = False, **kw: Any) -> Any:
    nd = len(shape_of(x))
    n = math.prod(shape_of(x)[a] for a in _axes(axis, nd))
    return reduce_sum(x, axis, keepdims) * (1.0 / n) if n else reduce_sum(x, axis, keepdims) / n


FUNCTIONS[np.mean] = _mean

# ---------------------------------------------------------------------------- steps


class Step:
    """One stage of a pipeline. ``run`` differentiates (on Dual values), ``value`` doesn't.

    Elementwise steps also give ``ew(x) -> (y, dy/dx)`` over numpy values and, when they
    can, ``scalar(x)`` with ``math`` on Python floats: the fast paths of whole pipelines.
    """

    __slots__ = ()
    elementwise: bool = False
    has_scalar: bool = False

    def run(self, x: Any) -> Any:
        raise NotImplementedError

    def value(self, x: Any) -> Any:
        return self.run(x)

    def ew(self, x: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def scalar(self, x: float) -> tuple[float, float]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__.lower()


_NO: Any = object()  # "no argument": fad.sum(axis=0) curries, fad.sum(x, axis=0) applies


@final
class Configurable(Step):
    """A primitive written as a function of values and keyword options.

    The function is plain numpy code (``np.sum``, ``np.exp``, operators...): on plain
    values it computes the value, on ``Dual`` values numpy dispatches each operation to
    fad, so its derivative (of any order) needs no rule of its own.
    """

    __slots__ = ("impl", "label", "options")

    def __init__(self, label: str, impl: Callable[..., Any], options: dict[str, Any]) -> None:
        self.label = label
        self.impl = impl
        self.options = options

    def run(self, x: Any) -> Any:
        return self.impl(x, **self.options)

    def configure(self, **options: Any) -> Configurable:
        return Configurable(self.label, self.impl, {**self.options, **options})

    def __repr__(self) -> str:
        if not self.options:
            return self.label
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{self.label}({args})"


@final
class Const(Step):
    """``x -> c``: a constant function (derivative zero)."""

    __slots__ = ("c",)
    elementwise = True
    has_scalar = True

    def __init__(self, c: Any) -> None:
        self.c = c

    def run(self, x: Any) -> Any:
        return self.c

    def ew(self, x: Any) -> tuple[Any, Any]:
        return self.c, 0.0

    def scalar(self, x: float) -> tuple[float, float]:
        return self.c, 0.0

    def __repr__(self) -> str:
        c = self.c
        if isinstance(c, np.ndarray) and c.size > 4:
            return f"const(<{'x'.join(map(str, c.shape))}>)"
        return f"const({c!r})"


@final
class Pointwise(Step):
    """``x -> op(f(x), g(x))``: arithmetic between functions (``f + g``, ``2 * f``)."""

    __slots__ = ("elementwise", "f", "g", "has_scalar", "op")

    def __init__(self, op: Binary, f: Fn[Any, Any], g: Fn[Any, Any]) -> None:
        self.op = op
        self.f = f
        self.g = g
        self.elementwise = f.elementwise and g.elementwise
        self.has_scalar = f.has_scalar and g.has_scalar and op is not power

    def run(self, x: Any) -> Any:
        return self.op.apply(self.f.run(x), self.g.run(x))

    def value(self, x: Any) -> Any:
        return self.op.kernel(self.f.value(x), self.g.value(x))

    def ew(self, x: Any) -> tuple[Any, Any]:
        a, da = self.f.ew(x)
        b, db = self.g.ew(x)
        y = self.op.kernel(a, b)
        return y, _combine(self.op, a, b, y, da, db)

    def scalar(self, x: float) -> tuple[float, float]:
        a, da = self.f.scalar(x)
        b, db = self.g.scalar(x)
        y = _SCALAR_OPS[self.op.symbol](a, b)
        return y, _combine(self.op, a, b, y, da, db)

    def __repr__(self) -> str:
        return f"({_operand(self.f)} {self.op.symbol} {_operand(self.g)})"


def _combine(op: Binary, a: Any, b: Any, y: Any, da: Any, db: Any) -> Any:
    """The derivative of ``op(f, g)`` from ``f' = da`` and ``g' = db`` (chain rule).

    A side whose derivative is exactly 0 (a constant) is skipped, so ``f ** 2`` never
    evaluates ``log(f)``, the exponent's partial.
    """
    total: Any = None
    for side, d in ((op.da, da), (op.db, db)):
        if type(d) is float and d == 0.0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            c = side(a, b, y)
        if type(c) is tuple:  # a ``times_pair``
            c = lin.times(*c)
        term = d if c is None else lin.times(c, d)
        total = term if total is None else total + term
    return 0.0 if total is None else total


def _operand(f: Fn[Any, Any]) -> str:
    if len(f.steps) == 1 and type(f.steps[0]) is Const:
        r = repr(f.steps[0])
        return r[len("const(") : -1]
    r = repr(f)
    return f"({r})" if len(f.steps) > 1 else r


@final
class Lifted(Step):
    """A pointed Python function used as a pipeline step (``fad.lift``)."""

    __slots__ = ("f", "spread")

    def __init__(self, f: Callable[..., Any]) -> None:
        self.f = f
        self.spread = _positional_arity(f) > 1

    def run(self, x: Any) -> Any:
        if self.spread and isinstance(x, tuple | list):
            return self.f(*x)
        return self.f(x)

    def value(self, x: Any) -> Any:
        with value_only():
            return primal_tree(self.run(x))

    def __repr__(self) -> str:
        return f"lift({getattr(self.f, '__name__', repr(self.f))})"


def _positional_arity(f: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def primal_tree(x: Any) -> Any:
    """``primal`` of every leaf of a pytree (a Dual with a structured value included)."""
    if type(x) is Dual:
        return primal_tree(x._value) if type(x._node) is Packed else primal(x)
    leaves, tree = flatten(x)
    if tree.is_leaf:
        return x
    return unflatten(tree, [primal_tree(v) for v in leaves])


# ------------------------------------------------------------------------------- Fn


@final
class Fn(Generic[A, B]):
    """A differentiable function ``a -> M b``: a flat pipeline of steps.

    Calling it on a plain value returns a ``Dual`` (value and derivative); calling it on a
    ``Dual`` binds it. ``f.value(x)`` computes the primal alone. ``f >> g`` and
    ``comp``/``pipe`` concatenate step tuples, so depth costs nothing and never recurses;
    ``f + g``, ``f * g``, ``2 * f``, ``f ** k``... are pointwise arithmetic.

    Examples:
        >>> from fad.prims import add, exp, multiply, reciprocal
        >>> sigmoid = multiply(-1.0) >> exp >> add(1.0) >> reciprocal
        >>> sigmoid
        multiply(-1.0) >> exp >> add(1.0) >> reciprocal
        >>> v, d = sigmoid(0.0)
        >>> print(v, float(d))
        0.5 0.25

    See also:
        comp, pipe, bind, lift
    """

    __slots__ = ("elementwise", "has_scalar", "steps")

    def __init__(self, steps: Sequence[Step] = ()) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)
        self.elementwise: bool = all(s.elementwise for s in self.steps)
        self.has_scalar: bool = self.elementwise and all(s.has_scalar for s in self.steps)

    # -- evaluation
    def __call__(self, x: Any = _NO, /, **options: Any) -> Any:
        if options or x is _NO:
            f = self.configure(**options)
            return f if x is _NO else f(x)
        if type(x) is float and self.has_scalar:
            try:
                y, d = self.scalar(x)
            except (OverflowError, ValueError, ZeroDivisionError):
                pass  # math raises where numpy gives inf or nan: take the numpy path
            else:
                if _VALUE_ONLY.get():
                    return y
                source = Source(leaf_tree(), (x,))
                return mk(y, Scale(d, source.inputs[0], ()))
        if contains_dual(x):
            return self.run(unpack(x))
        if _VALUE_ONLY.get():
            return self.value(x)
        return call_plain(self, x)

    def configure(self, **options: Any) -> Fn[A, B]:
        """The same primitive with options set: ``fad.sum(axis=0)``, toolz-style currying."""
        if len(self.steps) != 1 or not isinstance(self.steps[0], Configurable):
            raise TypeError(f"{self!r} takes one argument and no options")
        return Fn((self.steps[0].configure(**options),))

    def run(self, x: Any) -> Any:
        """Apply the steps to values that may be ``Dual`` (no packaging)."""
        i = 0
        try:
            for i, step in enumerate(self.steps):  # noqa: B007  (read in the handler)
                x = step.run(x)
        except (ValueError, TypeError, ArithmeticError) as e:
            if len(self.steps) > 1:
                e.add_note(f"in step {i + 1} ({self.steps[i]!r}) of {self!r}")
            raise
        return x

    def value(self, x: Any) -> Any:
        """The primal value alone: no derivative work.

        Examples:
            >>> import fad
            >>> print(fad.exp.value(0.0))
            1.0
        """
        for step in self.steps:
            x = step.value(x)
        return x

    def ew(self, x: Any) -> tuple[Any, Any]:
        """Value and per-element derivative of an elementwise pipeline (numpy values)."""
        d: Any = 1.0
        owned = False  # whether d is a temporary of ours, safe to multiply in place
        for step in self.steps:
            x, dd = step.ew(x)
            if type(dd) is float and dd == 1.0:
                continue
            if type(d) is float and d == 1.0:
                d = dd  # may alias a value (exp's rule returns y): not owned
            elif owned and (np.ndim(dd) == 0 or np.shape(dd) == d.shape):
                np.multiply(d, dd, out=d)
            else:
                d = d * dd
                owned = type(d) is np.ndarray
        return x, d

    def scalar(self, x: float) -> tuple[float, float]:
        """Value and derivative of an elementwise pipeline at a Python float (``math``)."""
        d = 1.0
        for step in self.steps:
            x, dd = step.scalar(x)
            d *= dd
        return x, d

    # -- composition
    @overload
    def __rshift__(self, g: Fn[B, C]) -> Fn[A, C]: ...
    @overload
    def __rshift__(self, g: Callable[[Any], Any]) -> Fn[A, Any]: ...
    def __rshift__(self, g: Any) -> Fn[A, Any]:
        """``f >> g``: first ``f``, then ``g`` (one flat pipeline)."""
        return Fn(self.steps + as_fn(g).steps)

    def __rrshift__(self, f: Callable[[Any], Any]) -> Fn[Any, B]:
        return Fn(as_fn(f).steps + self.steps)

    # -- pointwise arithmetic
    def _pointwise(self, op: Binary, other: Any, flip: bool = False) -> Fn[Any, Any]:
        if isinstance(other, Fn):
            g = other
        elif is_number(other) or type(other) is Dual:  # a value: the constant function
            g = const(other)
        else:
            g = as_fn(other)
        f, g = (g, self) if flip else (self, g)
        return Fn((Pointwise(op, f, g),))

    def __add__(self, other: Any) -> Fn[Any, Any]:
        return self._pointwise(add, other)

    def __radd__(self, other: Any) -> Fn[Any, Any]:
        return self._pointwise(add, other, flip=True)

    def __sub__(self, other: Any) -> Fn[Any, Any]:
        return self._pointwise(subtract, other)

    def __rsub__(self, other: Any) -> Fn[Any, Any]:
        return self._pointwise(subtract, other, flip=True)

    def __mul__(self, other: Any) -> Fn[Any, Any]:
        return self._pointwise(multiply, other)

    def __rmul__(self, other: Any) -> Fn[Any, Any]:
        return self._pointwise(multiply, other, flip=True)

    def __truediv__(self, other: Any) -> Fn[Any, Any]:
        return self._pointwise(divide, other)

    def __rtruediv__(self, other: Any) -> Fn[Any, Any]:
        return self._pointwise(divide, other, flip=True)

    def __pow__(self, k: Any) -> Fn[Any, Any]:
        return self._pointwise(power, k)

    def __neg__(self) -> Fn[Any, Any]:
        return self._pointwise(multiply, -1.0, flip=True)

    def __repr__(self) -> str:
        if not self.steps:
            return "identity"
        return " >> ".join(repr(s) for s in self.steps)


def is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.number | np.ndarray) and not isinstance(x, bool)


def as_fn(f: Any) -> Fn[Any, Any]:
    """An ``Fn`` as it is; a Python function lifted (pointed style)."""
    if isinstance(f, Fn):
        return f
    if callable(f):
        return Fn((Lifted(f),))
    raise TypeError(f"expected an Fn or a function, got {type(f).__name__}")


def contains_dual(x: Any) -> bool:
    t = type(x)
    if t is Dual:
        return True
    if t is float or t is np.ndarray or t is int:
        return False
    return any(type(v) is Dual for v in flatten(x)[0])


def unpack(x: Any) -> Any:
    """Open structured ``Dual`` values into pytrees of leaf ``Dual`` values."""
    if type(x) is Dual:
        node = x._node
        if type(node) is not Packed:
            return x
        leaves = flatten(x._value)[0]
        return unflatten(
            node.tree,
            [v if n is None else mk(v, n) for v, n in zip(leaves, node.nodes, strict=True)],
        )
    leaves, tree = flatten(x)
    if tree.is_leaf:
        return x
    return unflatten(tree, [unpack(v) for v in leaves])


_REAL_KINDS = frozenset("fiu")


def check_leaf(x: Any, where: object) -> Any:
    """Validate one input leaf: a real number or array. Integers become float64."""
    t = type(x)
    if t is float or t is Dual or (t is np.ndarray and x.dtype.kind == "f"):
        return x
    if t is int:
        return float(x)
    if isinstance(x, np.ndarray | np.number):
        kind = x.dtype.kind
        if kind == "f":
            return x
        if kind in "iu":
            return x.astype(np.float64)
    elif isinstance(x, int | float) and not isinstance(x, bool):
        return float(x)
    raise TypeError(
        f"{where!r} received {type(x).__name__} {x!r}: fad differentiates real numbers, "
        "arrays of them and tuples, lists and dicts of those"
    )


def trace_call(
    f: Callable[[Any], Any], x: Any, where: object, tangents: Sequence[Any] | None = None
) -> tuple[Source, Any]:
    """Run ``f`` on ``x`` made of fresh ``Dual`` leaves of a new source.

    Returns the source and the result, whose leaves are already split into
    ``(primal, node)`` pairs relative to the source. Given one tangent per input leaf,
    the source is forward-mode: the result's nodes are ``Tangent`` values, computed
    with unchecked products; if one has a nan, ``f`` runs again with checked ones (see
    ``fad._linear.product``), so its side effects may then happen twice.
    """
    if tangents is None or lin.strict():
        return _trace_call(f, x, where, tangents)
    source, (tree, pairs) = _trace_call(f, x, where, tangents)
    if not lin.has_nan([n.tangent for _, n in pairs if type(n) is lin.Tangent]):
        return source, (tree, pairs)
    with lin.strictly():
        return _trace_call(f, x, where, tangents)


def _trace_call(
    f: Callable[[Any], Any], x: Any, where: object, tangents: Sequence[Any] | None
) -> tuple[Source, Any]:
    if type(x) is np.ndarray and x.dtype.kind == "f":  # one float array: the common case
        leaves, tree = [x], leaf_tree()
    else:
        leaves, tree = flatten(x)
        leaves = [check_leaf(v, where) for v in leaves]
    source = Source(tree, leaves, tangents)
    if tree.is_leaf:
        arg: Any = mk(leaves[0], source.roots[0])
    else:
        arg = unflatten(tree, [mk(v, node) for v, node in zip(leaves, source.roots, strict=True)])
    act = _ACTIVE.get() | {source.tag}
    # ``active`` inline, and the collector paused (see ``_linear``'s note above ``strict``).
    token = _ACTIVE.set(act)
    collect = gc.isenabled()
    if collect:
        gc.disable()
    try:
        out = f(arg)
        if type(out) is Dual and out._node.source is source and type(out._node) is not Packed:
            return source, (leaf_tree(), [(out._value, out._node)])  # a result of this call
        out_leaves, out_tree = flatten(unpack(out))
        pairs = [leaf_at(v, source.tag, act) for v in out_leaves]
    finally:
        if collect:
            gc.enable()
        _ACTIVE.reset(token)
    return source, (out_tree, pairs)


def leaf_at(v: Any, tag: int, act: frozenset[int]) -> tuple[Any, Node | None]:
    """Split an output leaf into its primal and its node at level ``tag``."""
    if type(v) is Dual and v._node.source.tag == tag and type(v._node) is not Packed:
        return v._value, v._node  # the common case: a result of this very call
    v = _strip_inactive(v, act)
    if type(v) is Dual and v._node.source.tag == tag:
        node = v._node
        if type(node) is Packed:
            raise TypeError("nested structured Dual in an output")
        return v._value, node
    return v, None


def package(source: Source, out_tree: Tree, pairs: Sequence[tuple[Any, Node | None]]) -> Dual[Any]:
    """One ``Dual`` for a call's whole result, structured or not."""
    if out_tree.is_leaf and pairs[0][1] is not None:
        return mk(pairs[0][0], pairs[0][1])
    value = unflatten(out_tree, [p for p, _ in pairs])
    return mk(value, Packed(source, out_tree, [n for _, n in pairs]))


def call_plain(f: Fn[Any, Any], x: Any) -> Dual[Any]:
    """``f(x)`` for a plain ``x``: differentiate with respect to ``x``."""
    if f.elementwise and f.steps:
        leaf = check_leaf(x, f) if not isinstance(x, tuple | list | dict) else None
        if type(leaf) is np.ndarray or isinstance(leaf, np.floating):
            y, d = f.ew(leaf)
            source = Source(leaf_tree(), (leaf,))
            inp = source.inputs[0]
            return mk(y, inp if type(d) is float and d == 1.0 else Scale(d, inp, inp.shape))
    source, (tree, pairs) = trace_call(f.run, x, f)
    return package(source, tree, pairs)


# --------------------------------------------------------------- the monad's surface


def unit(x: T) -> Dual[T]:
    """Put a plain value into the monad, with the identity derivative.

    Examples:
        >>> import fad
        >>> value, deriv = fad.unit(3.0)
        >>> print(value, float(deriv))
        3.0 1.0

    See also:
        bind, Dual
    """
    if contains_dual(x):
        # Inside bind, unit is the identity function: the chain rule composes nothing,
        # so bind(m, unit) is m, derivative included (the right identity law).
        return x  # type: ignore[return-value]
    leaves, tree = flatten(x)
    leaves = [check_leaf(v, "unit") for v in leaves]
    source = Source(tree, leaves)
    if tree.is_leaf:
        return mk(leaves[0], source.inputs[0])
    return mk(unflatten(tree, leaves), Packed(source, tree, source.inputs))


def bind(m: Dual[A], f: Fn[A, C] | Callable[[Any], Any]) -> Dual[C]:
    """Feed ``m`` to ``f`` and compose the derivatives: the chain rule.

    ``bind(m, f)`` is ``f(m)``; a function that returns plain values or a structure of
    ``Dual`` values is packaged back into one ``Dual`` with respect to ``m``'s input.

    Examples:
        >>> import fad
        >>> from fad.prims import multiply, exp
        >>> m = fad.bind(fad.bind(fad.unit(0.0), multiply(-1.0)), exp)
        >>> print(m.value, float(m.deriv))
        1.0 -1.0

    See also:
        unit, comp
    """
    if type(m) is not Dual:
        raise TypeError(f"bind expects a Dual (see fad.unit), got {type(m).__name__}")
    out = f(m)
    if type(out) is Dual:
        return out
    node = m._node
    source = node.source
    leaves, tree = flatten(unpack(out))
    act = _ACTIVE.get() | {source.tag}
    return package(source, tree, [leaf_at(v, source.tag, act) for v in leaves])


identity: Fn[Any, Any] = Fn(())


def const(c: Any) -> Fn[Any, Any]:
    """The constant function ``x -> c``; its derivative is zero.

    Examples:
        >>> import fad
        >>> print(fad.const(2.0).value(5.0))
        2.0

    See also:
        identity
    """
    return Fn((Const(c),))


@overload
def comp() -> Fn[Any, Any]: ...
@overload
def comp(f: Fn[A, B], /) -> Fn[A, B]: ...
@overload
def comp(*fs: Fn[Any, Any] | Callable[[Any], Any]) -> Fn[Any, Any]: ...


def comp(*fs: Any) -> Fn[Any, Any]:
    """Compose differentiable functions right to left, like ``toolz.compose``.

    ``comp(f, g, h)(x)`` is ``f(g(h(x)))`` with the chain rule applied; ``comp()`` is
    ``identity``. The result is one flat pipeline, so depth never recurses.

    Examples:
        >>> import fad
        >>> from fad.prims import add, exp, multiply, reciprocal
        >>> sigmoid = fad.comp(reciprocal, add(1.0), exp, multiply(-1.0))
        >>> sigmoid
        multiply(-1.0) >> exp >> add(1.0) >> reciprocal
        >>> value, deriv = sigmoid(0.0)
        >>> print(value, float(deriv))
        0.5 0.25

    See also:
        pipe, identity, Fn.__rshift__
    """
    return pipe(*reversed(fs))


def pipe(*fs: Any) -> Fn[Any, Any]:
    """Compose differentiable functions left to right: ``pipe(f, g)`` is ``f >> g``.

    Unlike ``toolz.pipe`` it takes no data argument: it returns the composed ``Fn``.

    Examples:
        >>> import fad
        >>> from fad.prims import sin, square
        >>> f = fad.pipe(sin, square)
        >>> f
        sin >> square
        >>> print(round(f.value(1.0), 6))
        0.708073

    See also:
        comp, Fn.__rshift__
    """
    steps: list[Step] = []
    for f in fs:
        steps.extend(as_fn(f).steps)
    return Fn(steps)
