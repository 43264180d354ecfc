"""Higher-order blocks: map, fold, scan, unfold, zip_with and checkpointing (layer 4).

A block runs a step function many times. The step is an ``Fn`` or a pointed Python
function; on ``Dual`` values each run records into the caller's graph, so a block is
differentiable in its initial value, its data and whatever the step closes over, in both
modes and nested, with no rule of its own. Loops are Python ``for`` loops over the leading
axis, never recursion: the record of a 100,000-step fold is 100,000 steps long and the
reverse pass walks it with the core's explicit stack.

Called with fewer arguments a block is an ``Fn`` (toolz-style currying) that composes with
``>>``: ``fold(step)`` maps ``(init, xs)`` to the final carry, ``fold(step, init)`` maps
``xs``. The curried forms are ``Fn`` values of one step of the classes below.

``checkpoint(f)`` records one node for a whole call of ``f`` and recomputes ``f`` in the
backward pass; ``fold``/``scan`` with ``checkpoint=True`` use it on segments of about
√T steps, so reverse mode keeps √T carries instead of T steps of intermediates.
"""

from __future__ import annotations

import builtins
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, final, overload

import numpy as np

from . import _linear as lin
from ._core import (
    _ACTIVE,
    _NO,
    _VALUE_ONLY,
    Configurable,
    Const,
    Dual,
    Fn,
    Pointwise,
    Step,
    active,
    as_fn,
    contains_dual,
    dtype_of,
    mk,
    primal,
    primal_tree,
    shape_of,
    tag_of,
    unpack,
)
from ._errors import ShapeError
from ._structure import Fork, Par, Proj
from ._tree import Tree, flatten, unflatten
from .prims import concatenate, stack

__all__ = ["checkpoint", "fold", "map", "scan", "unfold", "zip_with"]

StepFn = Callable[..., Any]

# ------------------------------------------------------------------ pytrees of rows


def _leaves(xs: Any, who: str) -> tuple[list[Any], Tree, int]:
    """The leaves of ``xs``, its tree, and the common length of their leading axes."""
    leaves, tree = flatten(unpack(xs))
    n = -1
    for v in leaves:
        s = shape_of(v)
        if not s:
            raise ShapeError(
                f"{who} runs over the leading axis of xs, but received a 0-d value {v!r}; "
                "pass an array (np.asarray(xs)) or a tuple of arrays of one length"
            )
        if n >= 0 and s[0] != n:
            raise ShapeError(f"{who}: the arrays in xs have different lengths ({n} and {s[0]})")
        n = s[0]
    if n < 0:
        raise ShapeError(f"{who} needs xs with at least one array, got {xs!r}")
    return leaves, tree, n


def _rows(leaves: list[Any], tree: Tree) -> Iterator[Any]:
    """The rows ``xs[i]`` in order, as tuples of leaves' rows for a pytree."""
    if tree.is_leaf:
        return _leaf_rows(leaves[0])
    its = [_leaf_rows(v) for v in leaves]
    return (unflatten(tree, row) for row in zip(*its, strict=True))


def _leaf_rows(v: Any) -> Iterator[Any]:
    """A plain array is iterated as views; a ``Dual`` is indexed (a node per row)."""
    return iter(v) if type(v) is np.ndarray else (v[i] for i in range(len(v)))


def _segment(leaves: list[Any], tree: Tree, a: int, b: int) -> Any:
    return unflatten(tree, [v[a:b] for v in leaves])


def _stack(rows: Sequence[Any], like: Any = None) -> Any:
    """Stack a list of pytrees leaf by leaf along a new leading axis.

    ``like`` is a row computed without differentiation, whose structure, shapes and dtypes
    give an empty result its ``(0, ...)`` shapes.
    """
    if not rows:
        leaves, tree = flatten(like)
        return unflatten(tree, [np.zeros((0, *shape_of(v)), dtype_of(v)) for v in leaves])
    first, tree = flatten(rows[0])
    if tree.is_leaf:
        return _stack_leaf(rows)
    columns: list[list[Any]] = [[] for _ in first]
    for r in rows:
        leaves, t = flatten(r)
        if t != tree:
            raise ValueError(
                f"the step returned {t} after {tree}: every y must share one structure"
            )
        for c, v in zip(columns, leaves, strict=True):
            c.append(v)
    return unflatten(tree, [_stack_leaf(c) for c in columns])


def _stack_leaf(column: Sequence[Any]) -> Any:
    if any(type(v) is Dual for v in column):
        return stack(column)
    return np.stack(column)


def _probe(f: Fn[Any, Any], x: Any) -> Any:
    """``f``'s value at ``x`` for its shapes alone (what an empty block would return)."""
    with np.errstate(all="ignore"):
        return f.value(x)


def _zeros_row(leaves: list[Any], tree: Tree) -> Any:
    return unflatten(tree, [np.zeros(shape_of(v)[1:], dtype_of(v)) for v in leaves])


# ---------------------------------------------------------------------- the loops
#
# Each loop has two modes: ``diff`` runs the step with ``Fn.run`` on values that may be
# ``Dual`` (the graph is recorded as the Python code runs), otherwise ``Fn.value``
# computes primal values alone.


def _open(v: Any) -> Any:
    """A structured ``Dual`` (an ``Fn`` called on plain values returns one) as a pytree.

    Otherwise a pointed step unpacking its carry ``a, b = carry`` would get the
    ``(value, deriv)`` of a ``Dual`` instead.
    """
    return unpack(v) if type(v) is Dual else v


def _pair(out: Any, who: str) -> tuple[Any, Any]:
    if type(out) is Dual:
        out = unpack(out)
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise TypeError(f"the step of {who} must return a pair (carry, y), got {out!r}")
    carry, y = out
    # Most steps return plain arrays or leaf Duals: only structured ones need opening.
    return (
        _open(carry) if type(carry) is Dual else carry,
        _open(y) if type(y) is Dual else y,
    )


def _fold(f: Fn[Any, Any], init: Any, xs: Any, every: int, diff: bool) -> Any:
    leaves, tree, n = _leaves(xs, "fold")
    if diff and every and n > 0:
        return _segmented(f, init, leaves, tree, n, every, with_ys=False)[0]
    call = f.run if diff else f.value
    carry = init
    # A loop, not recursion: a 100,000-step fold must not reach the recursion limit.
    for x in _rows(leaves, tree):
        carry = _open(call((carry, x)))
    return carry


def _scan(f: Fn[Any, Any], init: Any, xs: Any, every: int, diff: bool) -> Any:
    leaves, tree, n = _leaves(xs, "scan")
    if n == 0:
        _, y = _pair(_probe(f, (primal_tree(init), _zeros_row(leaves, tree))), "scan")
        return init, _stack([], y)
    if diff and every:
        return _segmented(f, init, leaves, tree, n, every, with_ys=True)
    call = f.run if diff else f.value
    carry = init
    ys = []
    for x in _rows(leaves, tree):
        carry, y = _pair(call((carry, x)), "scan")
        ys.append(y)
    return carry, _stack(ys)


def _unfold(f: Fn[Any, Any], init: Any, n: Any, every: int, diff: bool) -> Any:
    count = _count(n)
    if count == 0:
        return _stack([], _pair(_probe(f, primal_tree(init)), "unfold")[1])
    call = f.run if diff else f.value
    state = init
    ys = []
    for _ in range(count):
        state, y = _pair(call(state), "unfold")
        ys.append(y)
    return _stack(ys)


def _count(n: Any) -> int:
    v = primal(n)
    if isinstance(v, bool) or not float(v).is_integer() or v < 0:
        raise ValueError(f"unfold needs a whole number of steps n >= 0, got {v!r}")
    return int(v)


def _map(f: Fn[Any, Any], xs: Any, diff: bool) -> Any:
    leaves, tree, n = _leaves(xs, "map")
    desc = unflatten(tree, [len(shape_of(v)) - 1 for v in leaves])
    if _row_ndim(f, desc) is not None:
        # Row-wise by construction (see _row_ndim): one call on the whole batch.
        return f.run(unflatten(tree, leaves)) if diff else f.value(unflatten(tree, leaves))
    if n == 0:
        return _stack([], _probe(f, _zeros_row(leaves, tree)))
    call = f.run if diff else f.value
    return _stack([_open(call(x)) for x in _rows(leaves, tree)])


def _zip_with(f: Fn[Any, Any], xs: Any, ys: Any, every: int, diff: bool) -> Any:
    return _map(f, (xs, ys), diff)


# --------------------------------------------------- which steps map a batch row-wise

_AXIS_REDUCTIONS: Final = frozenset({"sum", "mean", "max", "min", "logsumexp"})
Desc = Any  # a row's ndim (int), a tuple of descs, or _Scalar for a constant operand


@final
class _Scalar:
    """A constant operand of ``ndim`` dimensions, broadcast against every row alike."""

    __slots__ = ("ndim",)

    def __init__(self, ndim: int) -> None:
        self.ndim = ndim


def _row_ndim(f: Fn[Any, Any], desc: Desc) -> Desc | None:
    """The per-row ndim of ``f``'s output if applying ``f`` to a whole batch is the same as
    applying it row by row and stacking, else ``None`` (then ``map`` loops).

    ``desc`` gives the rows' ndim (a tuple of them for a tuple of arrays). Proven row-wise:
    elementwise primitives (which keep each row's shape); ``matmul(W)``/``dot(w)`` with a
    1-d or 2-d operand on rows of at least one dimension; ``sum``, ``mean``, ``max``,
    ``min``, ``logsumexp`` with negative axes and ``softmax`` on its last axes; arithmetic
    between row-wise functions whose rows have one ndim (or with constants of no more
    dimensions); ``fst``/``snd``/``proj(i)`` of tuples, ``fork`` and ``par``. A pipeline
    is row-wise when every step is.
    """
    for step in f.steps:
        desc = _step_row_ndim(step, desc)
        if desc is None or type(desc) is _Scalar:
            return None
    return desc


def _step_row_ndim(step: Step, d: Desc) -> Desc | None:
    t = type(step)
    if t is Fork:
        outs = tuple(_row_ndim(g, d) for g in step.fs)  # type: ignore[attr-defined]
        return None if any(o is None for o in outs) else outs
    if t is Par:
        fs = step.fs  # type: ignore[attr-defined]
        if type(d) is not tuple or len(d) != len(fs):
            return None
        outs = tuple(_row_ndim(g, di) for g, di in zip(fs, d, strict=True))
        return None if any(o is None for o in outs) else outs
    if t is Pointwise:
        return _pointwise_row_ndim(step, d)  # type: ignore[arg-type]
    if t is Const:
        return _Scalar(np.ndim(step.c))  # type: ignore[attr-defined]
    if type(d) is tuple:
        index = step.index if t is Proj else None  # type: ignore[attr-defined]
        if type(index) is int and -len(d) <= index < len(d):
            return d[index]
        return None
    if type(d) is not int:
        return None
    if step.elementwise:
        return d
    if t is Configurable:
        return _configurable_row_ndim(step, d)  # type: ignore[arg-type]
    return None


def _pointwise_row_ndim(step: Pointwise, d: Desc) -> Desc | None:
    a = _side(step.f, d)
    b = _side(step.g, d)
    if a is None or b is None:
        return None
    if type(a) is _Scalar and type(b) is _Scalar:
        return _Scalar(builtins.max(a.ndim, b.ndim))
    if type(a) is _Scalar:
        return b if type(b) is int and a.ndim <= b else None
    if type(b) is _Scalar:
        return a if type(a) is int and b.ndim <= a else None
    return a if type(a) is int and a == b else None


def _side(f: Fn[Any, Any], d: Desc) -> Desc | None:
    for step in f.steps:
        d = _step_row_ndim(step, d)
        if d is None:
            return None
    return d


def _configurable_row_ndim(step: Configurable, d: int) -> int | None:
    label = step.label
    if label.startswith(("matmul(<", "dot(<")) and label.endswith(">)") and d >= 1:
        # The operand's shape is printed as <3x4>: its ndim decides what a row becomes.
        dims = label[label.index("<") + 1 : -2]
        w = 0 if not dims else dims.count("x") + 1
        return {0: d, 1: d - 1, 2: d}.get(w)
    axis = step.options.get("axis", -1 if label == "softmax" else None)
    if label not in _AXIS_REDUCTIONS and label != "softmax":
        return None
    axes = axis if isinstance(axis, tuple | list) else (axis,)
    if not all(type(a) is int and -d <= a < 0 for a in axes) or len(set(axes)) != len(axes):
        return None
    if label == "softmax" or step.options.get("keepdims", False):
        return d
    return d - len(axes)


# ---------------------------------------------------------------------- block steps


def _show(v: Any) -> str:
    if isinstance(v, tuple | list):
        inner = ", ".join(_show(x) for x in v)
        return f"({inner},)" if type(v) is tuple and len(v) == 1 else f"({inner})"
    s = shape_of(v)
    if not s:
        return repr(primal(v))
    return f"<{'x'.join(str(k) for k in s)}>"


Loop = Callable[[Fn[Any, Any], Any, Any, int, bool], Any]
_LOOPS: dict[str, Loop] = {"fold": _fold, "scan": _scan, "unfold": _unfold, "zip_with": _zip_with}
_ARGS: dict[str, tuple[str, str]] = {
    "fold": ("init", "xs"),
    "scan": ("init", "xs"),
    "unfold": ("init", "n"),
    "zip_with": ("xs", "ys"),
}


@final
class Block(Step):
    """A block of two arguments (``fold``, ``scan``, ``unfold``, ``zip_with``) as a step.

    Either argument may be bound; the step's input supplies the others: the pair of both,
    or the one left unbound.
    """

    __slots__ = ("every", "f", "first", "kind", "second")

    def __init__(
        self, kind: str, f: Fn[Any, Any], first: Any = _NO, second: Any = _NO, every: int = 0
    ) -> None:
        self.kind = kind
        self.f = f
        self.first = first
        self.second = second
        self.every = every

    def _args(self, x: Any) -> tuple[Any, Any]:
        if self.first is _NO and self.second is _NO:
            if not (isinstance(x, tuple | list) and len(x) == 2):
                a, b = _ARGS[self.kind]
                raise TypeError(f"{self!r} expects a pair ({a}, {b}), got {x!r}")
            return x[0], x[1]
        if self.first is _NO:
            return x, self.second
        return self.first, x

    def run(self, x: Any) -> Any:
        a, b = self._args(x)
        return _LOOPS[self.kind](self.f, a, b, self.every, True)

    def value(self, x: Any) -> Any:
        a, b = self._args(x)
        return _LOOPS[self.kind](self.f, primal_tree(a), primal_tree(b), self.every, False)

    def __repr__(self) -> str:
        names = _ARGS[self.kind]
        parts = [_name(self.f)]
        for name, v in zip(names, (self.first, self.second), strict=True):
            if v is not _NO:
                parts.append(f"{name}={_show(v)}")
        if self.every:
            parts.append(f"checkpoint={self.every if self.every > 0 else True}")
        return f"{self.kind}({', '.join(parts)})"


@final
class Map(Step):
    """``xs -> stack(f(x) for x in xs)``: vectorised when ``f`` is row-wise."""

    __slots__ = ("f",)

    def __init__(self, f: Fn[Any, Any]) -> None:
        self.f = f

    def run(self, x: Any) -> Any:
        return _map(self.f, x, True)

    def value(self, x: Any) -> Any:
        return _map(self.f, primal_tree(x), False)

    def __repr__(self) -> str:
        return f"map({_name(self.f)})"


def _name(f: Fn[Any, Any]) -> str:
    if len(f.steps) == 1:
        r = repr(f)
        # A pointed function reads better by its name than as lift(name).
        return r[5:-1] if r.startswith("lift(") else r
    return repr(f)


def _apply(step: Step, args: Any) -> Any:
    """A fully applied block: define-by-run on fad values, values alone on plain ones.

    Inside a transform, or given ``Dual`` values, the loop runs on the values as given, so
    a step closing over the transform's values records into its graph at its own level.
    On plain values outside every transform it computes the plain result, as numpy code
    would: a pointed loss calling ``scan`` is then an ordinary function too. (The curried
    ``Fn`` called on plain values gives the ``Dual`` with respect to them.)
    """
    if _VALUE_ONLY.get() or not (_ACTIVE.get() or contains_dual(args)):
        return step.value(args)
    return step.run(unpack(args))


def _every(checkpoint: bool | int) -> int:
    """The segment length a ``checkpoint=`` option asks for: 0 (none), -1 (√T) or k."""
    if checkpoint is True:
        return -1
    if checkpoint is False or checkpoint is None:
        return 0
    if isinstance(checkpoint, int) and checkpoint >= 1:
        return checkpoint
    raise ValueError(f"checkpoint must be True, False or a segment length >= 1, got {checkpoint!r}")


def _block(kind: str, f: StepFn, first: Any, second: Any, checkpoint: bool | int = False) -> Any:
    fn = as_fn(f)
    every = _every(checkpoint)
    if first is _NO or second is _NO:
        return Fn((Block(kind, fn, first, second, every),))
    if kind == "unfold":  # a count is no input to differentiate
        return _apply(Block(kind, fn, second=second), first)
    return _apply(Block(kind, fn, every=every), (first, second))


# ------------------------------------------------------------------------ public API


@overload
def map(f: StepFn) -> Fn[Any, Any]: ...
@overload
def map(f: StepFn, xs: Any) -> Any: ...


def map(f: StepFn, xs: Any = _NO) -> Any:
    """Apply ``f`` to every row of ``xs`` (its leading axis) and stack the results.

    ``map(f)`` is the ``Fn`` ``xs -> stack([f(x) for x in xs])``; ``map(f, xs)`` applies
    it. ``xs`` is an array or a tuple (any pytree) of arrays of one length, whose rows are
    then tuples. When ``f`` provably acts row by row (elementwise primitives, ``matmul(W)``,
    ``dot(w)``, reductions over negative axes, arithmetic, ``fork``/``par``/projections of
    those) it runs once on the whole batch; any other ``f``, including every pointed
    Python function, runs in a Python loop over the rows. Both give the same values and
    derivatives, in both modes.

    Args:
        f: the function of one row, an ``Fn`` or a Python function.
        xs: the batch; omit it for the curried ``Fn``.

    Returns:
        An ``Fn`` of the batch, or the stacked results.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> layer = fad.map(fad.matmul(np.eye(2)) >> fad.tanh)   # vectorised
        >>> print(layer.value(np.zeros((3, 2))).shape)
        (3, 2)
        >>> print(fad.map(lambda x: x[0] * x[1]).value(np.array([[1.0, 2.0], [3.0, 4.0]])))
        [ 2. 12.]
        >>> print(fad.grad(lambda w: fad.map(lambda x: x @ w, np.eye(2)).sum())(np.ones(2)))
        [1. 1.]

    See also:
        zip_with, scan, fad.stack
    """
    step = Map(as_fn(f))
    return Fn((step,)) if xs is _NO else _apply(step, xs)


@overload
def fold(step: StepFn, *, checkpoint: bool | int = ...) -> Fn[Any, Any]: ...
@overload
def fold(step: StepFn, *, xs: Any, checkpoint: bool | int = ...) -> Fn[Any, Any]: ...
@overload
def fold(step: StepFn, init: Any, xs: Any = ..., *, checkpoint: bool | int = ...) -> Any: ...


def fold(step: StepFn, init: Any = _NO, xs: Any = _NO, *, checkpoint: bool | int = False) -> Any:
    """Left fold: ``carry = step(carry, x)`` for every row ``x`` of ``xs``, from ``init``.

    The result is differentiable in ``init``, in ``xs`` and in every fad value ``step``
    closes over, in forward and reverse mode and nested. ``step`` is a pointed function
    ``step(carry, x)`` or an ``Fn`` of the pair ``(carry, x)``; the carry may be any
    pytree. ``xs`` is an array or a pytree of arrays of one length; with length 0 the
    result is ``init``. Curried: ``fold(step)`` is the ``Fn`` of ``(init, xs)``,
    ``fold(step, init)`` the ``Fn`` of ``xs`` and ``fold(step, xs=xs)`` that of ``init``.
    Fully applied to plain values outside any transform, a block returns the plain
    result, as numpy code would (the curried ``Fn`` gives a ``Dual`` there); inside a
    transform, or on ``Dual`` values, it records.

    Reverse mode records every step (memory linear in the length, no recursion).
    ``checkpoint=True`` records one node per segment of about √T steps instead and
    recomputes each segment in the backward pass (``checkpoint=k``: segments of k steps);
    see ``checkpoint``.

    Args:
        step: ``(carry, x) -> carry``.
        init: the initial carry.
        xs: the rows to fold over (leading axis).
        checkpoint: recompute segments in the backward pass instead of storing them.

    Returns:
        The final carry, or a curried ``Fn`` when arguments are left out.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> xs = np.array([1.0, 2.0, 3.0])
        >>> print(fad.fold(lambda c, x: c * x, 1.0, xs))
        6.0
        >>> fad.grad(lambda a: fad.fold(lambda c, x: a * c + x, 0.0, xs))(2.0)   # a² + 2a + 3
        6.0
        >>> print(fad.fold(fad.lift(lambda c, x: c + x), xs=xs).value(10.0))
        16.0

    See also:
        scan, unfold, checkpoint
    """
    return _block("fold", step, init, xs, checkpoint)


@overload
def scan(step: StepFn, *, checkpoint: bool | int = ...) -> Fn[Any, Any]: ...
@overload
def scan(step: StepFn, *, xs: Any, checkpoint: bool | int = ...) -> Fn[Any, Any]: ...
@overload
def scan(step: StepFn, init: Any, xs: Any = ..., *, checkpoint: bool | int = ...) -> Any: ...


def scan(step: StepFn, init: Any = _NO, xs: Any = _NO, *, checkpoint: bool | int = False) -> Any:
    """A fold that also emits a value per step: ``carry, y = step(carry, x)``.

    Returns ``(carry, ys)`` with the ``y``s (arrays or pytrees of them) stacked along a new
    leading axis; with length 0, ``ys`` has length 0 and the shapes of the ``y`` that
    ``step`` would return. Differentiation, currying and ``checkpoint=`` are as for
    ``fold``.

    Args:
        step: ``(carry, x) -> (carry, y)``.
        init: the initial carry.
        xs: the rows to scan (leading axis).
        checkpoint: recompute segments in the backward pass instead of storing them.

    Returns:
        ``(carry, ys)``, or a curried ``Fn`` when arguments are left out.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> def running_sum(c, x):
        ...     return c + x, c + x
        >>> carry, ys = fad.scan(running_sum, 0.0, np.array([1.0, 2.0, 3.0]))
        >>> print(carry, ys)
        6.0 [1. 3. 6.]

    See also:
        fold, unfold
    """
    return _block("scan", step, init, xs, checkpoint)


@overload
def unfold(step: StepFn, *, n: int) -> Fn[Any, Any]: ...
@overload
def unfold(step: StepFn) -> Fn[Any, Any]: ...
@overload
def unfold(step: StepFn, init: Any, n: int = ...) -> Any: ...


def unfold(step: StepFn, init: Any = _NO, n: Any = _NO) -> Any:
    """Generate ``n`` values from a state: ``state, y = step(state)``, ``n`` times.

    Returns the ``y``s stacked along a new leading axis (length 0 for ``n = 0``),
    differentiable in ``init`` and in what ``step`` closes over. Curried:
    ``unfold(step, n=10)`` is the ``Fn`` of ``init``, ``unfold(step)`` that of
    ``(init, n)``.

    Args:
        step: ``state -> (state, y)``.
        init: the initial state.
        n: the number of steps.

    Returns:
        The stacked ``y``s, or a curried ``Fn``.

    Examples:
        >>> import fad
        >>> powers = fad.unfold(lambda s: (2.0 * s, s), n=4)
        >>> print(powers.value(1.0))
        [1. 2. 4. 8.]
        >>> print(fad.jacobian(powers)(1.0))
        [1. 2. 4. 8.]

    See also:
        scan, fold
    """
    return _block("unfold", step, init, n)


@overload
def zip_with(f: StepFn) -> Fn[Any, Any]: ...
@overload
def zip_with(f: StepFn, xs: Any, ys: Any = ...) -> Any: ...
@overload
def zip_with(f: StepFn, *, ys: Any) -> Fn[Any, Any]: ...


def zip_with(f: StepFn, xs: Any = _NO, ys: Any = _NO) -> Any:
    """``stack([f(x, y) for x, y in zip(xs, ys)])`` over the leading axes.

    ``f`` is a pointed ``f(x, y)`` or an ``Fn`` of the pair; it runs on the whole batch at
    once when it provably acts row by row (``fst * snd``, elementwise arithmetic...), in a
    loop otherwise, as for ``map``. Curried: ``zip_with(f)`` is the ``Fn`` of ``(xs, ys)``,
    ``zip_with(f, xs)`` that of ``ys`` and ``zip_with(f, ys=ys)`` that of ``xs``.

    Args:
        f: ``(x, y) -> z``.
        xs: the first rows.
        ys: the second rows, as many as ``xs``.

    Returns:
        The stacked results, or a curried ``Fn``.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> xs, ys = np.array([1.0, 2.0]), np.array([3.0, 4.0])
        >>> print(fad.zip_with(fad.fst * fad.snd).value((xs, ys)))
        [3. 8.]
        >>> print(fad.zip_with(lambda x, y: x @ y, np.eye(2), np.ones((2, 2))))
        [1. 1.]

    See also:
        map
    """
    return _block("zip_with", f, xs, ys)


# -------------------------------------------------------------------- checkpointing


@final
class Checkpoint(Step):
    """``f`` with one recorded node whose (co)tangent maps recompute ``f``."""

    __slots__ = ("f",)

    def __init__(self, f: Fn[Any, Any]) -> None:
        self.f = f

    def run(self, x: Any) -> Any:
        return _remat(self.f, x)

    def value(self, x: Any) -> Any:
        return self.f.value(x)

    def __repr__(self) -> str:
        return f"checkpoint({_name(self.f)})"


def checkpoint(f: StepFn) -> Fn[Any, Any]:
    """``f`` with the same values and derivatives, recomputed instead of stored.

    Reverse mode normally keeps every intermediate of ``f`` until the backward pass. A
    checkpointed ``f`` keeps only its inputs: the forward pass evaluates ``f``, records a
    single node, and drops ``f``'s own record; the backward (or forward-mode) pass runs
    ``f`` again on those inputs and pulls the cotangent through the fresh record. Values
    ``f`` closes over are differentiated too: the node's backward pass reaches the inputs
    of the enclosing transform through them (walking their history again each time).
    Under nested transforms (values of several levels meeting in ``f``) ``f`` is recorded
    as usual, without recomputation: correct, with no saving.

    ``fold(step, init, xs, checkpoint=True)`` applies it to segments of √T steps.

    Examples:
        >>> import fad
        >>> f = fad.checkpoint(lambda x: fad.sin(x) * x)
        >>> print(round(fad.grad(f)(1.0), 6))
        1.381773

    See also:
        fold, scan, vjp
    """
    return Fn((Checkpoint(as_fn(f)),))


def _remat(f: Fn[Any, Any], x: Any) -> Any:
    """Run ``f`` on ``x`` recorded, then replace its record by one ``_RematNode``."""
    x = unpack(x)
    out = unpack(f.run(x))  # the forward pass, recorded; the record is dropped below
    ins, tree = flatten(x)
    outs, otree = flatten(out)
    act = _ACTIVE.get() | {tag_of(v) for v in ins}
    ins = [_strip(v, act) for v in ins]
    outs = [_strip(v, act) for v in outs]
    tags = {tag_of(v) for v in (*ins, *outs)} - {0}
    if len(tags) != 1 or any(type(v) is Dual and type(v._value) is Dual for v in (*ins, *outs)):
        return out  # nothing to differentiate, or several levels: keep the record
    level = next(v for v in (*ins, *outs) if type(v) is Dual)
    source = level._node.source
    if source.eager:
        return out  # forward mode proper keeps tangents only: nothing to save
    in_nodes = [_node(v) for v in ins]
    in_values = [primal(v) for v in ins]
    dep = [i for i, v in enumerate(outs) if type(v) is Dual]
    values = [primal(v) for v in outs]
    if not dep:
        return unflatten(otree, values)
    node = _RematNode(f, source, tree, in_values, in_nodes, otree, values, dep)
    result: list[Any] = list(values)
    if len(dep) == 1:
        result[dep[0]] = mk(values[dep[0]], node)
    else:
        for i, (a, b) in zip(dep, node.spans, strict=True):
            result[i] = mk(values[i], _unpacked(node, a, b, shape_of(values[i])))
    return unflatten(otree, result)


def _node(v: Any) -> lin.Node | None:
    """The node of a leaf ``Dual`` (``unpack`` has opened structured ones), or ``None``."""
    if type(v) is not Dual:
        return None
    node = v._node
    assert isinstance(node, lin.Node)
    return node


def _strip(v: Any, act: frozenset[int]) -> Any:
    while type(v) is Dual and v._node.source.tag not in act:
        v = v._value
    return v


@final
class _RematNode(lin.Node):
    """The derivative of one checkpointed call, recomputed whenever it is applied.

    Parents are the nodes of the differentiated inputs, then every input leaf of the
    enclosing transform (what closed-over values may depend on). A recomputation runs
    ``f`` on fresh input nodes (``Input`` nodes numbered after the source's own) and reads
    the fresh record with the core's ``push_forward``/``pull_back``. With several
    differentiated outputs the node's tangent is their concatenation, flattened.
    """

    __slots__ = ("dep", "f", "holes", "in_nodes", "in_values", "shapes", "spans", "tree")

    def __init__(
        self,
        f: Fn[Any, Any],
        source: lin.Source,
        tree: Tree,
        in_values: list[Any],
        in_nodes: list[lin.Node | None],
        out: Tree,
        values: list[Any],
        dep: list[int],
    ) -> None:
        self.source = source
        self.seq = next(lin.creation)
        self.f = f
        self.tree = tree
        self.in_values = in_values
        self.in_nodes = in_nodes
        self.dep = dep  # which output leaves are differentiated
        self.shapes = [shape_of(values[i]) for i in dep]
        given = tuple(n for n in in_nodes if n is not None)
        self.parents = given + source.inputs
        self.holes = len(given)
        sizes = [math.prod(s) for s in self.shapes]
        ends = np.cumsum([0, *sizes]).tolist()
        self.spans = list(itertools.pairwise(ends))
        self.shape = self.shapes[0] if len(dep) == 1 else (ends[-1],)
        self.diag = -1

    @property
    def name(self) -> str:
        return f"checkpoint({_name(self.f)})"

    def _replay(self) -> list[lin.Node | None]:
        """Run ``f`` again on fresh input nodes: the nodes of its differentiated outputs."""
        first = len(self.source.inputs)
        leaves = []
        k = first
        for v, n in zip(self.in_values, self.in_nodes, strict=True):
            if n is None:
                leaves.append(v)
            else:
                leaves.append(mk(v, lin.Input(self.source, k, v)))
                k += 1
        with active(self.source.tag):
            out = unpack(self.f.run(unflatten(self.tree, leaves)))
            act = _ACTIVE.get()
            outs = [_strip(v, act) for v in flatten(out)[0]]
        return [_node(outs[i]) for i in self.dep]

    def forward(self, ts: list[Any]) -> Any:
        if all(t is None for t in ts):
            return None
        nodes = self._replay()
        # Input nodes are numbered: the source's own first, then the fresh ones.
        outs = lin.push_forward(nodes, [*ts[self.holes :], *ts[: self.holes]])
        if len(self.dep) == 1:
            return outs[0]
        t, p = next((t, p) for t, p in zip(ts, self.parents, strict=True) if t is not None)
        nb = shape_of(t)[: len(shape_of(t)) - len(p.shape)]
        flat = np.zeros((*nb, self.shape[0]), dtype=dtype_of(t))
        for o, (a, b) in zip(outs, self.spans, strict=True):
            if o is not None:
                flat[..., a:b] = np.reshape(o, (*nb, b - a))
        return flat

    def backward(self, ct: Any) -> Sequence[Any]:
        nodes = self._replay()
        first = len(self.source.inputs)
        if len(self.dep) == 1:
            cts = [ct]
        else:
            nb = shape_of(ct)[:-1]
            cts = [
                np.reshape(ct[..., a:b], nb + s)
                for (a, b), s in zip(self.spans, self.shapes, strict=True)
            ]
        live = [(n, c) for n, c in zip(nodes, cts, strict=True) if n is not None]
        back = lin.pull_back([n for n, _ in live], [c for _, c in live], first + self.holes)
        return [*back[first:], *back[:first]]


def _unpacked(node: _RematNode, a: int, b: int, shape: tuple[int, ...]) -> lin.Node:
    """One output leaf of a checkpointed call: a slice of the node's flat tangent."""
    total = node.shape[0]

    def fwd(t: Any) -> Any:
        nb = shape_of(t)[:-1]
        return np.reshape(t[..., a:b], (*nb, *shape))

    def back(ct: Any) -> tuple[Any]:
        nb = shape_of(ct)[: len(shape_of(ct)) - len(shape)]
        flat = np.zeros((*nb, total), dtype=dtype_of(ct))
        flat[..., a:b] = np.reshape(ct, (*nb, b - a))
        return (flat,)

    return lin.Op("checkpoint output", (node,), shape, fwd, back)


def _segmented(
    f: Fn[Any, Any],
    init: Any,
    leaves: list[Any],
    tree: Tree,
    n: int,
    every: int,
    with_ys: bool,
) -> tuple[Any, Any]:
    """A fold or scan as checkpointed segments of ``every`` steps (-1: about √n)."""
    k = every if every > 0 else builtins.max(1, math.isqrt(n - 1) + 1)
    seg = _scan_segment if with_ys else _fold_segment
    body: Fn[Any, Any] = Fn((Checkpoint(as_fn(lambda carry, xs: seg(f, carry, xs))),))
    carry = init
    pieces = []
    for a in range(0, n, k):
        out = body.run((carry, _segment(leaves, tree, a, builtins.min(n, a + k))))
        if with_ys:
            carry, ys = out
            pieces.append(ys)
        else:
            carry = out
    if not with_ys:
        return carry, None
    return carry, _concat(pieces)


def _fold_segment(f: Fn[Any, Any], carry: Any, xs: Any) -> Any:
    leaves, tree = flatten(xs)
    for x in _rows(leaves, tree):
        carry = _open(f.run((carry, x)))
    return carry


def _scan_segment(f: Fn[Any, Any], carry: Any, xs: Any) -> Any:
    leaves, tree = flatten(xs)
    ys = []
    for x in _rows(leaves, tree):
        carry, y = _pair(f.run((carry, x)), "scan")
        ys.append(y)
    return carry, _stack(ys)


def _concat(pieces: list[Any]) -> Any:
    first, tree = flatten(pieces[0])
    columns = [[flatten(p)[0][j] for p in pieces] for j in range(len(first))]
    return unflatten(
        tree,
        [concatenate(c) if any(type(v) is Dual for v in c) else np.concatenate(c) for c in columns],
    )
