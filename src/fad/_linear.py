"""Derivatives as linear maps: a small graph of linear nodes, pushed and pulled (layer 0).

Running a function on ``Dual`` values records, beside each primal result, a *linear node*:
how the result's tangent depends on the tangents of the computation's input leaves. The
nodes form a DAG whose roots are ``Input`` nodes of one ``Source`` (one call of a
transform, or one call of an ``Fn`` on a plain value). Two interpreters read that DAG:

* ``push_forward`` evaluates it from the inputs to the outputs (forward mode, JVP);
* ``pull_back`` applies each node's transpose from the outputs to the inputs
  (reverse mode, VJP), accumulating cotangents of shared nodes once per use.

``push_forward`` walks a topological order built with an explicit stack; ``pull_back``
visits the nodes a cotangent reaches, newest first (every node has its place in creation
order, and parents are made before their children). Both cost time linear in the number
of nodes, and no recursion grows with the depth of the computation.

Tangents and cotangents may carry leading *batch* axes (``batch + node.shape``): a matrix
of directions is pushed through at once, which is how Jacobians and Hessians are formed
without a Python-level pass per column. ``None`` is a symbolic zero, so untouched branches
cost nothing. Coefficients may themselves be ``Dual`` values of an outer transform: the
linear algebra here only uses operators and numpy functions that dispatch on them, so
derivatives of derivatives come out of the same code.
"""

from __future__ import annotations

import gc
import heapq
import importlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, final

import numpy as np

from ._errors import _CHECK_NANS, DomainError, nan_checks_enabled
from ._tree import Tree, flatten, leaf_tree, unflatten

__all__ = [
    "Input",
    "Linear",
    "Node",
    "Op",
    "Scale",
    "Source",
    "Outer",
    "Sparse",
    "Sum",
    "Tangent",
    "evaluate",
    "expand",
    "pull_back",
    "push_forward",
    "shape_of",
    "sum_to",
]

Shape = tuple[int, ...]

_tags = itertools.count(1)
# Every node's place in creation order: a topological order (parents come first).
creation = itertools.count()
# Off while a trace records one node per elementary operation.
_FUSE: ContextVar[bool] = ContextVar("fad_fuse", default=True)
# On while a pass is run again with every (co)tangent product checked (see ``product``).
_STRICT: ContextVar[bool] = ContextVar("fad_strict", default=False)
# On during an unchecked reverse pass, which runs under one np.errstate(invalid="ignore")
# instead of one per product. Code a pass runs (a checkpointed segment recomputed, a
# user's vjp rule) runs under it too: its primal warnings were given in the forward pass.
_QUIET: ContextVar[bool] = ContextVar("fad_quiet", default=False)


def shape_of(x: Any) -> Shape:
    """The shape of a number, array or ``Dual``; ``()`` for Python scalars."""
    if type(x) is np.ndarray:
        return x.shape  # type: ignore[no-any-return]
    s = getattr(x, "shape", None)
    return () if s is None else tuple(s)


def expand(t: Any, from_shape: Shape, to_ndim: int) -> Any:
    """Insert axes so a batched tangent of ``from_shape`` broadcasts to ``to_ndim`` dims.

    numpy aligns trailing axes, which is right without a batch; with leading batch axes
    the missing axes must go between the batch and the value's own axes.
    """
    extra = to_ndim - len(from_shape)
    if extra <= 0:
        return t
    ts = shape_of(t)
    nb = len(ts) - len(from_shape)
    if nb <= 0:
        return t
    return t.reshape(ts[:nb] + (1,) * extra + from_shape)


def sum_to(ct: Any, out_shape: Shape, shape: Shape) -> Any:
    """Reduce a (batched) cotangent of ``out_shape`` back to a broadcast operand's ``shape``."""
    if out_shape == shape:
        return ct
    cs = shape_of(ct)
    nb = len(cs) - len(out_shape)
    extra = len(out_shape) - len(shape)
    axes = tuple(range(nb, nb + extra)) + tuple(
        nb + extra + i for i, s in enumerate(shape) if s == 1 and out_shape[extra + i] != 1
    )
    if axes:
        ct = np.sum(ct, axis=axes)
    target = cs[:nb] + shape
    return ct if shape_of(ct) == target else np.reshape(ct, target)


class Node:
    """A linear map from the tangents of ``parents`` to a tangent of ``shape``.

    ``diag`` is the index of the single input leaf this node is elementwise in (its
    Jacobian is diagonal), or -1: ``np.asarray`` of an elementwise derivative reads it.
    """

    __slots__ = ("diag", "parents", "seq", "shape", "source")

    source: Source
    shape: Shape
    parents: tuple[Node, ...]
    diag: int
    seq: int  # ``next(creation)``: reverse mode visits nodes from the newest

    def forward(self, ts: list[Any]) -> Any:
        """Tangent of this node from its parents' tangents (``None`` is zero)."""
        raise NotImplementedError

    def forward_diag(self, ts: list[Any]) -> Any:
        """A cheaper ``forward`` when some tangents are ``Diag`` or ``Band``, or ``None``:
        make them dense."""
        return None

    def backward(self, ct: Any) -> Sequence[Any]:
        """Cotangents of the parents from this node's cotangent (``None`` is zero)."""
        raise NotImplementedError

    def work(self) -> int:
        """Multiply-adds per tangent through this node (``jacobian`` picks its mode by it)."""
        return math.prod(self.shape)

    def fill_backward(self, ct: Fill) -> Sequence[Any] | None:
        """A cheaper ``backward`` for a cotangent that is one number everywhere, or ``None``."""
        return None

    def diag_backward(self, ct: Diag) -> Sequence[Any] | None:
        """A cheaper ``backward`` for a batch of identity rows (``Diag``), or ``None``:
        make them dense."""
        return None

    def release(self) -> None:
        """Drop the values saved for the transpose: a gradient's one pass has used them."""

    @property
    def name(self) -> str:
        return type(self).__name__


@final
class Source:
    """The input of one differentiated call: a tag, the input tree and its leaf nodes.

    Tags increase with creation, which orders nested transforms: the later (inner) one
    is the higher level, so its ``Dual`` values wrap those of the enclosing one.
    """

    __slots__ = ("consumed", "eager", "inputs", "roots", "tag", "tree")

    def __init__(
        self, tree: Tree, leaves: Sequence[Any], tangents: Sequence[Any] | None = None
    ) -> None:
        self.tag = next(_tags)
        self.tree = tree
        self.consumed = False  # read once by a gradient, its saved values dropped
        if len(leaves) == 1:  # the common case, without a generator
            self.inputs: tuple[Input, ...] = (Input(self, 0, leaves[0]),)
        else:
            self.inputs = tuple([Input(self, i, leaf) for i, leaf in enumerate(leaves)])
        # Forward mode proper: with the input tangents known up front, every node is
        # evaluated as it is made and only its tangent is kept (see ``Tangent``).
        self.eager = tangents is not None
        self.roots: tuple[Node, ...] = self.inputs
        if tangents is not None:
            self.roots = tuple(
                Tangent(self, i.shape, t) for i, t in zip(self.inputs, tangents, strict=True)
            )


@final
class Input(Node):
    """The tangent of one input leaf: the identity map's root."""

    __slots__ = ("dtype", "index")

    def __init__(self, source: Source, index: int, value: Any) -> None:
        self.source = source
        self.seq = next(creation)
        self.index = index
        if type(value) is np.ndarray:
            self.shape = value.shape
            self.dtype = value.dtype
        else:
            self.shape = shape_of(value)
            self.dtype = np.dtype(np.float64) if type(value) is float else np.result_type(value)
        self.parents = ()
        self.diag = index


@final
class Tangent(Node):
    """A node of a forward-mode source: its tangent, already computed; no parents kept.

    So ``jvp`` and ``jacfwd`` run in one pass with memory that does not grow with the
    length of the computation (a 100,000-step loop keeps one tangent per live value).
    """

    __slots__ = ("tangent",)

    def __init__(self, source: Source, shape: Shape, tangent: Any) -> None:
        self.source = source
        self.seq = next(creation)
        self.shape = shape
        self.tangent = tangent
        self.parents = ()
        self.diag = -1

    @property
    def name(self) -> str:
        return "tangent"


@final
class Diag:
    """A batch of tangents, one per element of a value, each zero but at its element.

    Entry ``k`` of the batch (``shape = (d.size,) + d.shape``) is ``d`` at flat position
    ``k`` and 0 elsewhere: the identity's columns, scaled. ``jacfwd`` seeds it, and
    elementwise steps (``Scale``, ``Sum``) keep it in O(n) instead of O(n²) until a
    step that mixes elements needs it ``dense()`` — which is what makes a dense
    Hessian of an elementwise-heavy function cheap. A contiguous slice shifts it into a
    ``Band``. As a batch of cotangents it is the identity's rows, scaled: ``jacrev``
    seeds it, and elementwise steps and a matrix product's transpose (rows of the
    matrix, scaled) keep ``tanh(A @ x)``'s Jacobian O(size) per step too.
    """

    __slots__ = ("d",)

    def __init__(self, d: Any) -> None:
        self.d = d

    @property
    def shape(self) -> Shape:
        return (self.d.size, *self.d.shape)

    @property
    def dtype(self) -> Any:
        return self.d.dtype

    def dense(self) -> Any:
        n = self.d.size
        out = np.zeros((n, n), dtype=self.d.dtype)
        out.reshape(-1)[:: n + 1] = self.d.reshape(-1)
        return out.reshape(self.shape)


@final
class Band:
    """A batch of tangents made of shifted diagonals: ``jacfwd``'s identity after slicing.

    ``bands`` maps an offset ``o`` to an array ``d`` of the value's shape: entry ``k`` of
    the batch (``shape = (n,) + value_shape``) is ``d[j]`` at every flat position ``j``
    with ``k == j + o``, summed over the bands, and 0 elsewhere; positions whose
    ``j + o`` falls outside ``0 .. n-1`` belong to no entry (their ``d`` is ignored).
    ``x[1:]`` of the identity is one band at offset 1; ``x[:-1] * x[1:]`` two, and
    indexing's transpose puts them back at offsets -1 and 0. Contiguous slices, their
    transposes, reshapes, full sums, elementwise steps and sums keep it in
    O(bands x size) instead of O(n x size) until a step that mixes elements needs it
    ``dense()``: so the dense Hessian of a function of shifted products costs what its
    result costs. A ``Diag`` is the case of one band at offset 0 with ``n`` the size,
    and ``banded`` returns that case as a ``Diag``. Every ``d`` is a plain array.
    """

    __slots__ = ("bands", "n", "value_shape")

    def __init__(self, n: int, value_shape: Shape, bands: dict[int, Any]) -> None:
        self.n = n
        self.value_shape = value_shape
        self.bands = bands

    @property
    def shape(self) -> Shape:
        return (self.n, *self.value_shape)

    @property
    def dtype(self) -> Any:
        return np.result_type(*self.bands.values())

    def span(self, o: int) -> tuple[int, int]:
        """The flat positions ``lo .. hi-1`` of band ``o`` that fall in some entry."""
        m = math.prod(self.value_shape)
        return max(0, -o), max(0, min(m, self.n - o))

    def dense(self) -> Any:
        out = np.zeros(self.shape, dtype=self.dtype)
        self.add_into(out)
        return out

    def add_into(self, out: Any) -> None:
        """Add the bands into ``out``, a C-contiguous array of ``self.shape`` (ours)."""
        m = math.prod(self.value_shape)
        flat = out.reshape(-1)
        for o, d in self.bands.items():
            lo, hi = self.span(o)
            if lo < hi:  # entry (k, j) = (j + o, j) is at flat place o*m + j*(m + 1)
                start = o * m + lo * (m + 1)
                flat[start : start + (hi - lo - 1) * (m + 1) + 1 : m + 1] += d.reshape(-1)[lo:hi]

    def map(self, f: Callable[[Any], Any]) -> Band | None:
        """``f`` (an elementwise scaling) applied to every band, or ``None`` if one of
        the results is not a plain array."""
        bands = {}
        for o, d in self.bands.items():
            e = f(d)
            if type(e) is not np.ndarray or e.shape != self.value_shape:
                return None
            bands[o] = e
        return Band(self.n, self.value_shape, bands)

    def summed(self, out: Shape) -> Any:
        """The tangents of the sum of all elements: ``(n,) + out``, ``out`` of size 1."""
        r = np.zeros(self.n, dtype=self.dtype)
        for o, d in self.bands.items():
            lo, hi = self.span(o)
            r[lo + o : hi + o] += d.reshape(-1)[lo:hi]
        return r.reshape((self.n, *out))


def as_band(t: Diag | Band) -> Band | None:
    """A ``Diag`` as a ``Band`` (one band at offset 0); ``None`` if its ``d`` is not a
    plain array (a ``Dual`` of an enclosing transform)."""
    if type(t) is Band:
        return t
    d = t.d
    if type(d) is not np.ndarray:
        return None
    return Band(d.size, d.shape, {0: d})


def banded(n: int, value_shape: Shape, bands: dict[int, Any]) -> Diag | Band:
    """A ``Band``, or the ``Diag`` it is: one band at offset 0 and ``n`` the size."""
    if len(bands) == 1 and 0 in bands and n == math.prod(value_shape):
        return Diag(bands[0])
    return Band(n, value_shape, bands)


def flat_span(shape: Shape, index: Any) -> int | None:
    """Where ``v[index]`` starts among ``v``'s flat positions if it is a nonempty run of
    consecutive ones in order (``x[1:]``, ``x[2]``, ``m[1:3]``, ``m[2, 1:]``), else ``None``.

    ``v[index]`` element ``i`` (in C order) is then flat position ``start + i`` of ``v``.
    """
    parts = list(index) if isinstance(index, tuple) else [index]
    if any(p is Ellipsis for p in parts):
        if sum(p is Ellipsis for p in parts) > 1:
            return None
        k = parts.index(Ellipsis)
        parts[k : k + 1] = [slice(None)] * (len(shape) - len(parts) + 1)
    if len(parts) > len(shape):
        return None
    parts += [slice(None)] * (len(shape) - len(parts))
    start = 0
    stride = 1
    run = True  # every axis so far (from the last) is taken whole
    for p, dim in zip(reversed(parts), reversed(shape), strict=True):
        if isinstance(p, slice):
            a, b, step = p.indices(dim)
            count = len(range(a, b, step))
            if count == 0:
                return None
        elif isinstance(p, int | np.integer) and not isinstance(p, bool | np.bool_):
            a, count, step = int(p) + (dim if p < 0 else 0), 1, 1
        else:
            return None  # None (a new axis), arrays, masks
        if count > 1 and (step != 1 or not run):
            return None
        run = run and count == dim
        start += a * stride
        stride *= dim
    return start


def take_band(t: Diag | Band, src: Shape, index: Any, out: Shape) -> Band | Diag | None:
    """The tangents of ``v[index]`` from those of ``v`` (``src``), kept banded when the
    index takes a run of consecutive elements; ``None`` otherwise (made dense)."""
    start = flat_span(src, index)
    b = None if start is None else as_band(t)
    if b is None or start is None:
        return None
    m = math.prod(out)
    bands = {o + start: d.reshape(-1)[start : start + m].reshape(out) for o, d in b.bands.items()}
    return banded(b.n, out, bands)


def scatter_band(t: Diag | Band, src: Shape, index: Any, out: Shape) -> Band | Diag | None:
    """The tangents of zeros of ``src`` with ``v`` (``out``) added at ``index``, from those
    of ``v``: indexing's transpose, kept banded as ``take_band`` is."""
    start = flat_span(src, index)
    b = None if start is None else as_band(t)
    if b is None or start is None:
        return None
    m = math.prod(out)
    bands = {}
    for o, d in b.bands.items():
        e = np.zeros(src, dtype=d.dtype)
        e.reshape(-1)[start : start + m] = d.reshape(-1)
        bands[o - start] = e
    return banded(b.n, src, bands)


def reshape_band(t: Diag | Band, shape: Shape) -> Diag | Band | None:
    """The tangents of ``v.reshape(shape)``: the same bands, reshaped."""
    b = as_band(t)
    if b is None:
        return None
    return banded(b.n, shape, {o: d.reshape(shape) for o, d in b.bands.items()})


def undiag(t: Any) -> Any:
    """A tangent as an array: a ``Diag`` or ``Band`` made dense, anything else unchanged."""
    return t.dense() if type(t) is Diag or type(t) is Band else t


def _plain_coef(c: Any, ndim: int) -> bool:
    """Whether ``c`` scales a ``Diag``: a plain number or an unbatched plain array."""
    if type(c) is float or type(c) is int:
        return True
    return isinstance(c, np.ndarray | np.floating) and c.ndim <= ndim


def evaluate(node: Node) -> Tangent:
    """Collapse a freshly made node of a forward-mode source into its ``Tangent``.

    Its parents are ``Tangent`` nodes or, inside one primitive's linearisation, a few
    fresh nodes over them: this recursion is as deep as one primitive's rule, not as
    deep as the computation.
    """
    if type(node) is Tangent:
        return node
    ts = [evaluate(p).tangent for p in node.parents]
    return Tangent(node.source, node.shape, _forward(node, ts))


def _forward(node: Node, ts: list[Any]) -> Any:
    """``node.forward(ts)``, with ``Diag`` and ``Band`` tangents made dense for nodes that
    need it."""
    for t in ts:
        if type(t) is Band:
            return _forward_band(node, ts)
    if type(node) in _KEEPS_DIAG:  # they handle Diag themselves
        return node.forward(ts)
    if len(ts) == 1 and type(ts[0]) is Diag and type(node) is Op and node.on_diag is not None:
        t = node.on_diag(ts[0])
        if t is not None:
            return t
    if any(type(t) is Diag for t in ts):
        t = node.forward_diag(ts)
        if t is not None:
            return t
    return node.forward([undiag(t) for t in ts])


def _forward_band(node: Node, ts: list[Any]) -> Any:
    """``_forward`` when some tangents are ``Band``: kept banded where the node allows."""
    if type(node) is Sum:
        return node._forward_diag(ts)
    (t, *more) = ts
    r: Any = None
    if type(node) is Scale:
        if node.shape == node.parents[0].shape and _plain_coef(node.c, len(node.shape)):
            c, f = node.c, node.factor
            r = t.map(lambda d: scaled_product(d, c, f))
    elif type(node) is FromOutput:
        if node.summed:  # its parents are the terms of a sum: add them up first
            t = _forward(node.of, ts)
        coef = node.coef
        if type(t) is Band:
            r = t.map(lambda d: product(d, coef))
            return product(t.dense(), coef) if r is None else r
        if type(t) is Diag:
            return Diag(product(t.d, coef))
        return None if t is None else product(t, coef)
    elif type(node) is Op and node.on_diag is not None and not more:
        r = node.on_diag(t)
    elif type(node).forward_diag is not Node.forward_diag:
        r = node.forward_diag(ts)
    if r is not None:
        return r
    return _forward(node, [t.dense() if type(t) is Band else t for t in ts])


def times(t: Any, c: Any) -> Any:
    """``t * c`` where ``0 * inf`` is 0: a (co)tangent that is exactly zero adds nothing.

    A branch that ``where`` masked out sends back a zero cotangent; at the edge of its
    domain (``sqrt`` at 0, ``exp`` overflowing) its coefficient is infinite, and IEEE's
    ``0 * inf = nan`` would poison the gradient. Only products that came out nan are
    looked at, and only those with a zero factor are changed, so real nans stay.
    """
    if type(t) is float and type(c) is float:
        p = t * c
        return 0.0 if p != p and (t == 0.0 or c == 0.0) else p
    if type(c) is float and c != 0.0 and c - c == 0.0:
        return t * c  # a finite nonzero number: a nan in the product was in t already
    if type(t) is float and t != 0.0 and t - t == 0.0:
        return t * c
    if getattr(type(t), "__fad_leaf__", False) or getattr(type(c), "__fad_leaf__", False):
        return t * c  # Dual values of an enclosing transform
    with np.errstate(invalid="ignore"):
        r: Any = t * c
    if type(r) is np.ndarray:
        if r.dtype.kind != "f":
            return r
        total = _add_reduce(r, axis=None)  # nan iff r has one (or both infinities)
    elif isinstance(r, np.floating):
        total = r
    else:
        return r
    if total != total:
        fixed = np.where((np.asarray(t) == 0) | (np.asarray(c) == 0), 0.0, r)
        r = fixed.astype(np.result_type(r), copy=False)[()]
    return r


_add_reduce = np.add.reduce


def product(t: Any, c: Any) -> Any:
    """``t * c`` for a (co)tangent ``t`` in a pass: unchecked, unless the pass is strict.

    Checking each product for 0 * inf (``times``) costs a pass over it. A pass runs
    unchecked instead and its results are looked at once (``has_nan``): a nan that
    0 * inf made either reaches them or is dropped by a selection (``where``,
    indexing), which would drop the repaired 0 as well, since linear maps only add,
    scale and select. So results without nan are exact, and a pass whose results have
    a nan runs again under ``strictly()``, every product checked.
    """
    if _QUIET.get():  # inside an unchecked pass, which silenced numpy's invalid warnings
        return t * c
    if _STRICT.get() or nan_checks_enabled():
        return times(t, c)
    if type(t) is float and type(c) is float:
        return t * c
    with np.errstate(invalid="ignore"):
        return t * c


def _numpy_errors() -> tuple[ContextVar[Any], Callable[..., Any]] | None:
    """numpy's error-state context variable, which np.errstate sets, and the function
    deriving a state from the current one (numpy >= 2); ``None`` where they are not
    found (private API): ``_ignoring`` then takes np.errstate itself."""
    try:
        umath = importlib.import_module("numpy._core.umath")
    except ImportError:
        return None
    var = getattr(umath, "_extobj_contextvar", None)
    make = getattr(umath, "_make_extobj", None)
    if not isinstance(var, ContextVar) or not callable(make):
        return None
    try:  # the private API works as it does in numpy 2.0-2.4, or isn't used at all
        token = var.set(make(invalid="ignore"))
        try:
            works = np.geterr()["invalid"] == "ignore"
        finally:
            var.reset(token)
    except Exception:
        return None
    return (var, make) if works else None


_NP_ERRORS = _numpy_errors()
# Per setting (an np.errstate keyword): the last error state seen by ``_ignoring`` and
# the same with that setting "ignore" (numpy's states are immutable objects; keeping
# the first alive keeps its id unique).
_errors_cache: dict[str, tuple[Any, Any]] = {}


def _ignoring(setting: str) -> Any:
    """``np.errstate(**{setting: "ignore"}).__enter__()`` at a third of its cost (~10k CPU
    instructions) when numpy's state is a context variable: the derived state is made
    once per state seen, then only set. Returns what ``_restore_errors`` takes."""
    if _NP_ERRORS is None:
        state = np.errstate(**{setting: "ignore"})  # type: ignore[arg-type]
        state.__enter__()
        return state
    var, make = _NP_ERRORS
    current = var.get()
    seen, ignoring = _errors_cache.get(setting, (None, None))
    if seen is not current:
        ignoring = make(**{setting: "ignore"})  # the current state, with one change
        _errors_cache[setting] = (current, ignoring)
    return var.set(ignoring)


def _restore_errors(token: Any) -> None:
    """Undo ``_ignoring``."""
    if _NP_ERRORS is None:
        token.__exit__(None, None, None)
    else:
        _NP_ERRORS[0].reset(token)


# The cyclic garbage collector is paused while a graph is recorded or read (inline, in
# ``_core._trace_call`` and ``_pull_back_unchecked``: they wrap every transform call,
# however small). Recording makes objects by the thousand and keeps them all, so every
# generation-0 collection triggered on the way finds nothing to free, and the older ones
# walk the whole growing graph: 10 % of a 10,000-step loop's gradient, more at 100,000.
# fad's nodes hold no reference cycles; the collector runs again when the call ends (it
# is only re-enabled by the call that turned it off).


def strict() -> bool:
    """Whether products of this pass are checked one by one (see ``product``)."""
    return _STRICT.get() or nan_checks_enabled()


@contextmanager
def strictly() -> Iterator[None]:
    """Check every (co)tangent product in the block: the slower, repairing pass."""
    token = _STRICT.set(True)
    quiet = _QUIET.set(False)
    try:
        yield
    finally:
        _QUIET.reset(quiet)
        _STRICT.reset(token)


def has_nan(xs: Sequence[Any]) -> bool:
    """Whether plain numeric results of a pass contain nan (``Dual`` values are skipped)."""
    for x in xs:
        if type(x) is Band:
            if any(has_nan([d.reshape(-1)[slice(*x.span(o))]]) for o, d in x.bands.items()):
                return True
            continue
        if type(x) is Diag:
            x = x.d
        if type(x) is np.ndarray and x.dtype.kind == "f":
            if x.ndim != 1:
                x = x.reshape(-1)
            # Σx² is nan iff x has a nan (its terms are >= 0: no inf - inf), and a dot
            # product costs less than a sum (~5k CPU instructions against ~10k at 1,000).
            # Its squares, like a sum, may overflow: silently, they are not the results.
            errors = _ignoring("all")
            try:
                total = x.dot(x)
            finally:
                _restore_errors(errors)
            if total != total:
                return True
        elif type(x) is np.ndarray or isinstance(x, np.floating):
            if x.dtype.kind in "fc":
                total = _add_reduce(x, axis=None)  # nan iff x has one (or both infinities)
                if total != total:
                    return True
        elif type(x) is float and x != x:
            return True
    return False


@final
class Scale(Node):
    """``t -> factor * c * t`` with numpy broadcasting: the local derivative of most primitives.

    ``c`` is the coefficient (a number or an array) and ``factor`` a finite nonzero
    Python float kept apart from it: the scalar steps around an array coefficient
    (``-x``, ``100 * x``, the 2 of ``x ** 2``) then fuse into it for free, where
    multiplying them in would be a pass over the array. ``coef`` is their product.
    ``label`` names the primitive that made it (for errors and traces).
    """

    __slots__ = ("c", "factor", "label")

    def __init__(
        self, coef: Any, parent: Node, shape: Shape, label: str = "scale", factor: float = 1.0
    ) -> None:
        self.source = parent.source
        self.seq = next(creation)
        self.c = coef
        self.factor = factor
        self.parents = (parent,)
        self.shape = shape
        self.diag = parent.diag if shape == parent.shape else -1
        self.label = label

    @property
    def name(self) -> str:
        return self.label

    @property
    def coef(self) -> Any:
        """The whole coefficient, ``factor * c``."""
        return self.c if self.factor == 1.0 else times(self.c, self.factor)

    def forward(self, ts: list[Any]) -> Any:
        (t,) = ts
        if t is None:
            return None
        if type(t) is Diag:
            if self.shape == self.parents[0].shape and _plain_coef(self.c, len(self.shape)):
                return Diag(scaled_product(t.d, self.c, self.factor))
            t = t.dense()
        t = expand(t, self.parents[0].shape, len(self.shape))
        return scaled_product(t, self.c, self.factor)

    def backward(self, ct: Any) -> Sequence[Any]:
        c = scaled_product(ct, self.c, self.factor)
        shape = self.parents[0].shape
        return (c,) if shape == self.shape else (sum_to(c, self.shape, shape),)

    def fill_backward(self, ct: Fill) -> Sequence[Any] | None:
        c = self.c
        shape = self.shape
        if shape != self.parents[0].shape:
            return None  # broadcasting to undo
        if type(c) is np.ndarray:
            if c.shape != shape:
                return None
            if type(ct.value) is float:  # one pass: c * (value * factor)
                return (product(c, ct.value * self.factor),)
            return (scaled_product(ct.value, c, self.factor),)
        if not _is_number(c):
            return None  # a Dual of an enclosing transform
        return (Fill(scaled_product(ct.value, c, self.factor), shape),)

    def diag_backward(self, ct: Diag) -> Sequence[Any] | None:
        if self.shape != self.parents[0].shape or not _plain_coef(self.c, len(self.shape)):
            return None
        d = scaled_product(ct.d, self.c, self.factor)
        return (Diag(d),) if shape_of(d) == self.shape else None

    def release(self) -> None:
        self.c = None


def scaled_product(t: Any, c: Any, factor: float) -> Any:
    """``factor * c * t`` in one pass over arrays where it can be (see ``product``)."""
    if factor == 1.0:
        return product(t, c)
    if type(t) is float:
        return product(t * factor, c)
    if type(c) is float or type(c) is int:
        return product(t, c * factor)
    r = product(t, c)
    if type(r) is np.ndarray and r.dtype.kind in "fc":
        r *= factor  # a fresh product: ours to scale in place (np.multiply's out= costs more)
        return r
    return r * factor


def times_pair(c: Any, factor: float) -> tuple[Any, float]:
    """A coefficient ``factor * c`` given in two parts (``x ** 2``: ``2 * x``), for ``scale``.

    A plain pair, as cheap to make as a value can be: a partial returns it on every
    ``x ** 2``. Coefficients are numbers, arrays or ``Dual`` values, never tuples, so
    ``scale`` tells it apart by its type.
    """
    return (c, factor)


def _is_number(c: Any) -> bool:
    return type(c) is float or type(c) is int


def _fuse(c1: Any, f1: float, node: Scale | FromOutput) -> tuple[Any, float]:
    """The coefficient ``(c1, f1)`` applied after ``node``'s, as ``(c, factor)``."""
    c2, f2 = (node.c, node.factor) if type(node) is Scale else (node.coef, 1.0)
    if (type(c1) is float or type(c1) is int) and c1 == 1.0:  # _is_number, inline
        c = c2
    elif (type(c2) is float or type(c2) is int) and c2 == 1.0:
        c = c1
    else:
        c = times(c1, c2)
    f = f1 * f2
    if f == 0.0 or f - f != 0.0:  # under- or overflowed: multiply it in after all
        return times(times(c, f1), f2), 1.0
    return c, f


def scale(coef: Any, node: Node, shape: Shape, label: str = "scale") -> Node:
    """``Scale`` with chains of elementwise scalings fused into one coefficient.

    Fusing keeps an elementwise pipeline's derivative a single ``Scale`` of its input,
    so it costs one multiply per step and O(1) memory however deep the pipeline is.
    ``coef`` may be a pair ``(c, factor)`` (``times_pair``): its factor is kept apart
    from its array. ``None`` is the identity (a partial of ``+``): ``node`` itself,
    broadcast to ``shape`` if need be.
    """
    if coef is None:
        return node if node.shape == shape else Sum((node,), shape)
    # The coefficient as ``(c, factor)``: a finite nonzero number is all factor.
    t = type(coef)
    if t is tuple:
        c, f = coef
    elif (t is float or t is int) and coef != 0 and coef - coef == 0:
        c, f = 1.0, float(coef)
    else:
        c, f = coef, 1.0
    if (
        (type(node) is Scale or type(node) is FromOutput)
        and node.shape == shape
        and _FUSE.get()
        and not _CHECK_NANS.get()  # debug_nans names each primitive's adjoint
    ):
        inner = _scaled(node)
        if inner.shape == shape:
            c, f = _fuse(c, f, node)
            return Scale(c, inner, shape, _fused(label, node.label), f)
    return Scale(c, node, shape, label, f)


def _scaled(node: Scale | FromOutput) -> Node:
    """The node whose tangent a scaling node multiplies."""
    return node.parents[0] if type(node) is Scale else node.of


def _fused(label: str, inner: str) -> str:
    """The name of a fused chain, newest step first, cut short after about 80 characters
    (a 10,000-step chain must not build a 10,000-step string at every step)."""
    if len(inner) > 80:
        inner = inner[:80].rsplit(" . ", 1)[0] + " . ..."
    return f"{label} . {inner}"


def keeps_output(node: Node, y: Any) -> bool:
    """Whether an elementwise step on ``node`` with value ``y`` records ``FromOutput``.

    Not when forward mode evaluates it at once, nor when ``scale`` would fuse it into
    its parent's coefficient, nor for Python numbers (nothing to save).
    """
    if node.source.eager or type(y) is not np.ndarray or y.shape != node.shape:
        return False
    if (type(node) is Scale or type(node) is FromOutput) and _FUSE.get():
        return _scaled(node).shape != node.shape  # else ``scale`` fuses into it
    return True


# Arrays of fewer elements are multiplied into a new array: numpy's call with ``out=``
# costs more than the allocation it saves (a 64-vector of a loop's step).
IN_PLACE_MIN = 1024


@final
class FromOutput(Node):
    """``t -> rule(None, y) * t``: an elementwise derivative computed from the value.

    For rules that read only the primitive's value (``tanh``: 1 - y², ``sigmoid``:
    y(1 - y)), keeping ``y`` - which the next step of a loop keeps anyway - instead of a
    coefficient array saves an array per step of a recorded loop. The rule returns a new
    array for an array ``y``, so the reverse pass forms the product in it.
    """

    __slots__ = ("label", "of", "rule", "singular", "summed", "y")

    def __init__(
        self, rule: Callable[[Any, Any], Any], y: Any, parent: Node, label: str, singular: bool
    ) -> None:
        self.source = parent.source
        self.seq = next(creation)
        self.of = parent  # the node whose tangent is scaled
        # tanh(h @ W + x @ U + b): the sum's terms become this node's parents, so the
        # reverse pass hands the scaled cotangent straight to them (one node less per
        # step of a loop); forward mode still adds them up through the sum.
        self.summed = type(parent) is Sum and parent.flat
        self.parents = parent.parents if self.summed else (parent,)
        self.shape = parent.shape
        self.diag = parent.diag
        self.rule = rule
        self.y = y
        self.label = label
        self.singular = singular

    @property
    def name(self) -> str:
        return self.label

    @property
    def coef(self) -> Any:
        if not self.singular:
            return self.rule(None, self.y)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self.rule(None, self.y)

    def forward(self, ts: list[Any]) -> Any:
        t = self.of.forward(ts) if self.summed else ts[0]
        if type(t) is Diag:
            return Diag(product(t.d, self.coef))
        return None if t is None else product(t, self.coef)

    def backward(self, ct: Any) -> Sequence[Any]:
        if self.y.size < IN_PLACE_MIN:  # the common case of a loop's step: kept short
            c = product(ct, self.coef)
        else:
            c = self.coef
            if (
                type(c) is np.ndarray
                and type(ct) is np.ndarray
                and c.shape == ct.shape
                and c.dtype == ct.dtype
                and c.base is None
                and c is not self.y
                and _QUIET.get()
            ):
                # The rule made ``c`` for this call (see the class docstring): the product
                # goes into it, one new array instead of two. Only in an unchecked pass,
                # where ``product`` is a plain ``*`` too (a strict one reads both factors).
                np.multiply(ct, c, out=c)
            else:
                c = product(ct, c)
        return [c] * len(self.parents) if self.summed else (c,)

    def fill_backward(self, ct: Fill) -> Sequence[Any] | None:
        c = self.coef
        if shape_of(c) != self.shape:
            return None
        if not (_is_number(ct.value) and ct.value == 1.0):
            c = product(c, ct.value)
        return [c] * len(self.parents) if self.summed else (c,)

    def diag_backward(self, ct: Diag) -> Sequence[Any] | None:
        c = self.coef
        if type(c) is not np.ndarray or c.shape != self.shape:
            return None  # a Dual of an enclosing transform
        d = Diag(product(ct.d, c))
        return [d] * len(self.parents) if self.summed else (d,)

    def release(self) -> None:
        self.y = None


def sum_of(a: Node, b: Node, shape: Shape) -> Node:
    """``Sum((a, b))``, with the terms of a same-shape ``Sum`` operand taken in (up to 8).

    ``h @ W + x @ U + b`` then records one node, not two: one fewer step in every
    iteration of a loop's backward pass. Still right when the inner sum is used
    elsewhere too (its terms then get shares along both ways, as they should).
    """
    if type(a) is Sum and a.flat and a.shape == shape and len(a.parents) < 8:
        if type(b) is Sum and b.flat and b.shape == shape and len(b.parents) < 8:
            return Sum(a.parents + b.parents, shape)
        return Sum((*a.parents, b), shape)
    if type(b) is Sum and b.flat and b.shape == shape and len(b.parents) < 8:
        return Sum((a, *b.parents), shape)
    return Sum((a, b), shape)


@final
class Sum(Node):
    """``(t1, t2, ...) -> t1 + t2 + ...`` with broadcasting."""

    __slots__ = ("flat",)

    def __init__(self, parents: tuple[Node, ...], shape: Shape) -> None:
        self.source = parents[0].source
        self.seq = next(creation)
        self.parents = parents
        self.shape = shape
        if len(parents) == 2:  # ``a + b``: the common case, without the loop
            a, b = parents
            flat = a.shape == shape and b.shape == shape  # no broadcasting to undo
            d = a.diag if a.diag == b.diag else -1
        else:
            d = parents[0].diag
            flat = True
            for p in parents:  # a loop, not all(generator): this runs once per addition
                if p.shape != shape:
                    flat = False
                if p.diag != d:
                    d = -1
        self.flat = flat
        self.diag = d if flat else -1

    @property
    def name(self) -> str:
        return "add"

    def forward(self, ts: list[Any]) -> Any:
        if any(type(t) is Diag for t in ts):
            return self._forward_diag(ts)
        total = None
        owned = False  # whether total is a fresh sum of ours, to add the next terms into
        n = len(self.shape)
        for p, t in zip(self.parents, ts, strict=True):
            if t is not None:
                t = expand(t, p.shape, n)
                if total is None:
                    total = t
                elif (
                    owned
                    and type(t) is np.ndarray
                    and t.shape == total.shape
                    and np.result_type(total, t) == total.dtype
                ):
                    total += t
                else:
                    total = total + t
                    owned = type(total) is np.ndarray
        return total

    def _forward_diag(self, ts: list[Any]) -> Any:
        """The sum when some terms are ``Diag`` or ``Band``: their bands added up (a
        ``Diag`` or ``Band``), plus the other terms if there are any."""
        if not self.flat:
            return self.forward([undiag(t) for t in ts])
        bands: dict[int, Any] = {}
        n = 0
        rest: list[Any] = []
        for t in ts:
            if type(t) is Diag or type(t) is Band:
                b = as_band(t)
                if b is None:  # a Dual of an enclosing transform
                    return self.forward([undiag(t) for t in ts])
                n = b.n
                for o, d in b.bands.items():
                    e = bands.get(o)
                    bands[o] = d if e is None else e + d
                rest.append(None)
            else:
                rest.append(t)
        if any(type(d) is not np.ndarray for d in bands.values()):
            return self.forward([undiag(t) for t in ts])
        sum_ = banded(n, self.shape, bands)
        if all(t is None for t in rest):
            return sum_
        total = self.forward(rest)
        if type(total) is not np.ndarray or total.shape != sum_.shape:  # a Dual, or broadcast
            return self.forward([undiag(t) for t in ts])
        dt = np.result_type(total, *bands.values())
        if (
            total.base is not None
            or any(t is total for t in rest)
            or total.dtype != dt
            or not total.flags.c_contiguous
        ):
            total = np.array(total, dtype=dt, order="C")  # ours to add into
        as_band(sum_).add_into(total)  # type: ignore[union-attr]
        return total

    def backward(self, ct: Any) -> Sequence[Any]:
        if self.flat:
            return [ct] * len(self.parents)
        return [sum_to(ct, self.shape, p.shape) for p in self.parents]

    def fill_backward(self, ct: Fill) -> Sequence[Any] | None:
        return [ct] * len(self.parents) if self.flat else None

    def diag_backward(self, ct: Diag) -> Sequence[Any] | None:
        return [ct] * len(self.parents) if self.flat else None


# Node types that keep a ``Diag`` tangent diagonal (when shapes allow).
_KEEPS_DIAG = (Scale, Sum, FromOutput)


@final
class Op(Node):
    """A general linear map given by its JVP and VJP functions.

    ``jvp(*ts)`` maps the parents' tangents to this node's tangent and ``vjp(ct)`` returns
    the parents' cotangents. ``batched`` says the functions accept leading batch axes;
    otherwise a batch is looped over. A missing ``vjp`` makes reverse mode an error that
    names the operation.
    """

    __slots__ = ("batched", "jvp", "label", "on_diag", "vjp")

    def __init__(
        self,
        label: str,
        parents: tuple[Node, ...],
        shape: Shape,
        jvp: Callable[..., Any] | None,
        vjp: Callable[[Any], Sequence[Any]] | None,
        *,
        batched: bool = True,
        elementwise: bool = False,
        on_diag: Callable[[Diag | Band], Any] | None = None,
    ) -> None:
        self.source = parents[0].source
        self.seq = next(creation)
        self.label = label
        # The jvp of a single ``Diag`` or ``Band`` tangent if it has a cheap one; it may
        # return None for the tangent made dense.
        self.on_diag = on_diag
        self.parents = parents
        self.shape = shape
        self.jvp = jvp
        self.vjp = vjp
        self.batched = batched
        d = parents[0].diag
        ok = elementwise and all(p.diag == d and p.shape == shape for p in parents)
        self.diag = d if ok else -1

    @property
    def name(self) -> str:
        return self.label

    def forward(self, ts: list[Any]) -> Any:
        if all(t is None for t in ts):
            return None
        if self.jvp is None:
            raise NotImplementedError(f"{self.label} has no jvp rule: forward mode is unavailable")
        nb, like = _batch_of(ts, self.parents)
        ts = [
            np.zeros(nb + p.shape, dtype=np.result_type(like)) if t is None else t
            for t, p in zip(ts, self.parents, strict=True)
        ]
        if self.batched or not nb:
            return self.jvp(*ts)
        return _stack_looped(lambda *u: self.jvp(*u), ts, nb)  # type: ignore[misc]

    def release(self) -> None:
        self.jvp = self.vjp = self.on_diag = None  # closures over the primal values

    def backward(self, ct: Any) -> Sequence[Any]:
        if self.vjp is None:
            raise NotImplementedError(f"{self.label} has no vjp rule: reverse mode is unavailable")
        nb = shape_of(ct)[: len(shape_of(ct)) - len(self.shape)]
        if self.batched or not nb:
            return self.vjp(ct)
        rows = [self.vjp(c) for c in np.reshape(ct, (-1, *self.shape))]
        return [
            None
            if any(r[i] is None for r in rows)
            else np.reshape(np.stack([r[i] for r in rows]), nb + p.shape)
            for i, p in enumerate(self.parents)
        ]


def _batch_of(ts: list[Any], parents: tuple[Node, ...]) -> tuple[Shape, Any]:
    for t, p in zip(ts, parents, strict=True):
        if t is not None:
            s = shape_of(t)
            return s[: len(s) - len(p.shape)], t
    return (), 0.0


def _stack_looped(f: Callable[..., Any], ts: list[Any], nb: Shape) -> Any:
    n = math.prod(nb)
    flat = [np.reshape(t, (n, *shape_of(t)[len(nb) :])) for t in ts]
    out = np.stack([f(*(t[k] for t in flat)) for k in range(n)])
    return np.reshape(out, nb + shape_of(out)[1:])


def toposort(roots: Sequence[Node | None]) -> list[Node]:
    """Nodes reachable from ``roots``, parents before children, each once.

    An explicit stack, not recursion: a 100,000-step loop makes a 100,000-deep graph.
    """
    if len(roots) == 1 and roots[0] is not None:  # a chain (one parent each), quickly
        chain: list[Node] = []
        node = roots[0]
        while len(node.parents) == 1:
            chain.append(node)
            node = node.parents[0]
        if not node.parents:
            chain.append(node)
            chain.reverse()
            return chain
    order: list[Node] = []
    seen: set[Node] = set()  # nodes hash by identity
    stack: list[tuple[Node, bool]] = [(r, False) for r in roots if r is not None]
    pop, push = stack.pop, stack.append
    while stack:
        node, done = pop()
        if done:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            push((node, True))
            for p in node.parents:
                if p not in seen:
                    push((p, False))
    return order


def push_forward(outputs: Sequence[Node | None], tangents: Sequence[Any]) -> list[Any]:
    """Forward mode: the outputs' tangents given one tangent (or ``None``) per input leaf."""
    if strict():
        return _push_forward(outputs, tangents)
    result = _push_forward(outputs, tangents)
    if not has_nan(result):
        return result
    with strictly():
        return _push_forward(outputs, tangents)


def _push_forward(outputs: Sequence[Node | None], tangents: Sequence[Any]) -> list[Any]:
    memo: dict[int, Any] = {}
    for node in toposort(outputs):
        if type(node) is Input:
            memo[id(node)] = tangents[node.index]
        else:
            memo[id(node)] = _forward(node, [memo[id(p)] for p in node.parents])
    return [None if o is None else undiag(memo[id(o)]) for o in outputs]


class Lazy:
    """A cotangent kept in pieces until its node is reached, then made ``dense()``.

    Accumulating one into another merges the pieces (``merge``); a plain cotangent
    added to one goes to its ``base``. The accumulator owns the object.
    """

    __slots__ = ("base",)
    base: Any

    def dense(self) -> Any:
        raise NotImplementedError

    def merge(self, other: Any) -> None:
        raise NotImplementedError

    def add(self, ct: Any) -> None:
        """Add a plain cotangent (possibly a ``Dual`` of an enclosing transform)."""
        self.base = ct if self.base is None else self.base + ct


@final
class Sparse(Lazy):
    """A cotangent that is zero except at some indexed places (indexing's transpose).

    A loop that reads ``xs[i]`` for every ``i`` would otherwise add T full-size arrays
    of zeros into ``xs``'s cotangent, T**2 work: pieces are collected instead and
    written once, when ``xs``'s node is reached.
    """

    __slots__ = ("dtype", "pieces", "shape")

    def __init__(self, shape: Shape, dtype: Any, index: Any, value: Any) -> None:
        self.shape = shape
        self.dtype = dtype
        self.pieces: list[tuple[Any, Any]] = [(index, value)]
        self.base: Any = None

    def merge(self, other: Any) -> None:
        if type(other) is not Sparse:
            self.add(other.dense())
            return
        self.pieces.extend(other.pieces)
        if other.base is not None:
            self.add(other.base)

    def dense(self) -> Any:
        z = np.zeros(self.shape, dtype=self.dtype)
        for index, value in self.pieces:
            if type(index) is not slice and not is_basic(index):  # x[1:] without a call
                np.add.at(z, index, value)  # repeated indices accumulate
                continue
            view = z[index]
            if type(view) is np.ndarray:
                # Into the zeros too: two arrays cost less than ``value + 0.0`` (a Python
                # float) into the view, and give the same (-0.0 becomes 0.0).
                np.add(view, value, out=view)
            else:
                z[index] += value
        # The base may be a Dual of an enclosing transform: add it, don't write into it.
        return z if self.base is None else z + self.base


@final
class Outer(Lazy):
    """A cotangent that is a sum of outer products ``a_i ⊗ c_i``.

    It is a matrix's share of vector-matrix products (``h @ W`` at every step of a
    loop). The pairs are collected and summed by matrix products of up to ``CHUNK``
    pairs at once: a T-step loop costs T/CHUNK small GEMMs instead of T outer products
    and T additions of a full matrix, and keeps at most ``CHUNK`` pairs.
    """

    __slots__ = ("left", "owned", "right")
    CHUNK = 64

    def __init__(self, a: Any, c: Any) -> None:
        self.left = [a]
        self.right = [c]
        self.base: Any = None
        self.owned = False  # whether ``base`` is an array this object made

    def merge(self, other: Any) -> None:
        if type(other) is not Outer:
            self.add(other.dense())
            return
        self.left.extend(other.left)
        self.right.extend(other.right)
        if other.base is not None:
            self.add(other.base)
        if len(self.left) >= self.CHUNK:
            self.flush()

    def add(self, ct: Any) -> None:
        super().add(ct)
        self.owned = False

    def flush(self) -> None:
        """Sum the collected pairs into ``base`` (one matrix product)."""
        g = np.matmul(np.stack(self.left, axis=1), np.stack(self.right))
        self.left.clear()
        self.right.clear()
        if self.base is None:
            self.base = g
        elif self.owned and self.base.dtype == np.result_type(self.base, g):
            self.base += g
        else:
            self.base = self.base + g
        self.owned = type(self.base) is np.ndarray

    def dense(self) -> Any:
        if self.left:
            self.flush()
        return self.base


@final
class Fill(Lazy):
    """A cotangent that is one plain number everywhere: a full sum's transpose.

    Kept as the number while it goes through sums and scalings (``fill_backward``),
    so the gradient of ``sum(c * f(x))`` never builds an array of ones, and a scaling
    ``factor`` applies to the number instead of to an array. Any other node sees it as
    a read-only broadcast view (``dense``).
    """

    __slots__ = ("shape", "value")

    def __init__(self, value: Any, shape: Shape) -> None:
        self.value = value
        self.shape = shape
        self.base = None

    def dense(self) -> Any:
        return np.broadcast_to(np.asarray(self.value), self.shape)

    def full(self, dtype: Any) -> Any:
        """The cotangent as a fresh array (an input's gradient is the caller's to keep)."""
        if type(self.value) is not float or dtype.kind != "f":  # a float takes the array's
            dtype = np.result_type(self.value, dtype)
        out = np.empty(self.shape, dtype=dtype)
        out.fill(self.value)
        return out


def write_onto_zeros(z: Any, index: Any, value: Any) -> None:
    """``z[index] += value`` for fresh zeros and a basic index: written, not read.

    Adding ``0.0`` keeps what adding to the zeros did: ``-0.0`` becomes ``0.0``.
    """
    view = z[index]
    if type(view) is np.ndarray:
        np.add(value, 0.0, out=view)
    else:  # one element
        z[index] = value + 0.0


_BASIC = frozenset({int, slice, type(None), type(Ellipsis)})


def is_basic(index: Any) -> bool:
    """Whether ``index`` is basic indexing (a view that never repeats an element)."""
    t = type(index)
    if t in _BASIC:
        return True
    if t is not tuple:
        return isinstance(index, int | np.integer)
    return all(type(i) in _BASIC or isinstance(i, int | np.integer) for i in index)


def _accumulate(a: Any, b: Any) -> Any:
    """``a + b`` for cotangents, where either may be ``Lazy`` (owned by the accumulator)."""
    if type(a) is Diag and type(b) is Diag and a.d.shape == b.d.shape:
        return Diag(a.d + b.d)
    if type(a) is Fill or type(a) is Diag:
        a = a.dense()
    if type(b) is Fill or type(b) is Diag:
        b = b.dense()
    if not isinstance(a, Lazy):
        if not isinstance(b, Lazy):
            return a + b
        a, b = b, a
    if isinstance(b, Lazy):
        a.merge(b)
    else:
        a.add(b)
    return a


# ``Node.release``: what node classes that save no values for their transpose inherit.
_NOTHING_SAVED = Node.release


def pull_back(outputs: Sequence[Node | None], cts: Sequence[Any], n_inputs: int) -> list[Any]:
    """Reverse mode: one cotangent (or ``None``) per input leaf from the outputs' cotangents.

    Each node's transpose runs once, after all of its consumers have added their share.
    """
    if strict():
        return _pull_back(outputs, cts, n_inputs)
    result = _pull_back_unchecked(outputs, cts, n_inputs, consume=False)
    if not has_nan(result):
        return result
    with strictly():
        return _pull_back(outputs, cts, n_inputs)


def pull_back_once(
    source: Source, outputs: Sequence[Node | None], cts: Sequence[Any], n_inputs: int
) -> list[Any] | None:
    """``pull_back`` for a graph read only once (a gradient), dropping it on the way.

    Each node's saved values (coefficients, kept outputs, closures) are released as
    soon as its transpose has run, as torch frees a graph during ``backward()``: the
    arrays a large gradient keeps alive at once are then about those of the nodes not
    yet reached, not of the whole computation. The map can't be read again
    (``source.consumed``). Returns ``None`` where ``pull_back`` would redo the pass to
    repair a nan: the caller records the function again and pulls ``strictly()``.
    """
    source.consumed = True
    if _STRICT.get() or nan_checks_enabled():
        return _pull_back(outputs, cts, n_inputs, consume=True)
    result = _pull_back_unchecked(outputs, cts, n_inputs, consume=True)
    return None if has_nan(result) else result


def _pull_back_unchecked(
    outputs: Sequence[Node | None], cts: Sequence[Any], n_inputs: int, consume: bool
) -> list[Any]:
    """``_pull_back`` as an unchecked pass (``_QUIET``): numpy's invalid-value warnings
    off and the cyclic garbage collector paused (see the comment above ``strict``)."""
    quiet = _QUIET.set(True)
    errors = _ignoring("invalid")
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _pull_back(outputs, cts, n_inputs, consume)
    finally:
        if paused:
            gc.enable()
        _restore_errors(errors)
        _QUIET.reset(quiet)


def _pull_back(
    outputs: Sequence[Node | None], cts: Sequence[Any], n_inputs: int, consume: bool = False
) -> list[Any]:
    # Nodes are visited newest first (a heap on creation order, as torch's engine
    # does): a node's consumers have all added their shares before it runs, only nodes a
    # cotangent reaches are visited, and a loop's steps are transposed one after the
    # other, so the cotangents alive at once are those of about one step, not of every
    # side branch of every step.
    acc: dict[Node, Any] = {}  # nodes hash by identity: keys without id() calls
    heap: list[tuple[int, Node]] = []
    push, pop = heapq.heappush, heapq.heappop
    # zip(..., strict=) here and below would parse a keyword argument: ~1,500 CPU
    # instructions per call, once per node visited. The lengths agree by construction.
    for o, ct in zip(outputs, cts):  # noqa: B905
        if o is not None and ct is not None:
            if o in acc:
                acc[o] = _accumulate(acc[o], ct)
            else:
                acc[o] = ct
                push(heap, (-o.seq, o))
    result: list[Any] = [None] * n_inputs
    taken: set[int] = set()  # memory handed out already (see ``_owned``)
    check = nan_checks_enabled()
    ndarray = np.ndarray
    # A node's only parent that is newer than every pending node is the one the heap
    # would give next: it is taken at once (``follow``), without a push and a pop. Its
    # consumers are all newer still, so none of them is pending: its cotangent is whole.
    follow: Node | None = None
    while heap or follow is not None:  # the hot loop of reverse mode: arrays added inline
        if follow is None:
            node = pop(heap)[1]
        else:
            node, follow = follow, None
        ct = acc.pop(node)
        if type(node) is Input:
            if type(ct) is Fill and not check:
                result[node.index] = ct.full(node.dtype)
            elif type(ct) is Sparse or type(ct) is Diag:  # fresh arrays: nothing to check
                result[node.index] = ct.dense()
            else:
                result[node.index] = _owned(ct.dense() if isinstance(ct, Lazy) else ct, cts, taken)
            continue
        if type(ct) is ndarray:
            back = node.backward(ct)
        elif type(ct) is Diag:  # jacrev's identity rows, scaled
            rows = None if check else node.diag_backward(ct)
            if rows is None:
                ct = ct.dense()
                rows = node.backward(ct)
            back = rows
        elif not isinstance(ct, Lazy):
            back = node.backward(ct)
        elif type(ct) is Fill and not check and (filled := node.fill_backward(ct)) is not None:
            back = filled
        else:
            ct = ct.dense()
            back = node.backward(ct)
        if consume and type(node).release is not _NOTHING_SAVED:  # a call saved per node
            node.release()
        if check:
            _check_adjoint(node, ct, back)
        parents = node.parents
        for p, pct in zip(parents, back):  # noqa: B905  (one entry per parent)
            if pct is not None:
                old = acc.get(p)
                if old is None:
                    acc[p] = pct
                    if len(parents) == 1 and (not heap or p.seq > -heap[0][0]):
                        follow = p
                    else:
                        push(heap, (-p.seq, p))
                elif type(old) is ndarray and type(pct) is ndarray:
                    acc[p] = old + pct
                elif type(old) is type(pct) and (type(old) is Outer or type(old) is Sparse):
                    old.merge(pct)  # a weight's share of another step's product, or pieces
                else:
                    acc[p] = _accumulate(old, pct)
    return result


def _owned(ct: Any, given: Sequence[Any], taken: set[int]) -> Any:
    """A result the caller may write into: not a broadcast view, not a given cotangent,
    not another input's result (``x + y`` hands both the same array). ``taken`` holds
    the ids of the memory owners of the results so far."""
    if type(ct) is not np.ndarray:
        return ct
    owner = ct if ct.base is None else ct.base
    if (
        not ct.flags.writeable
        or id(owner) in taken
        or any(type(c) is np.ndarray and np.may_share_memory(ct, c) for c in given)
    ):
        ct = np.array(ct)
        owner = ct
    taken.add(id(owner))
    return ct


def _finite(x: Any) -> bool:
    while hasattr(x, "_value"):  # a Dual of an enclosing transform: check its primal
        x = x._value
    return bool(np.all(np.isfinite(x)))


def _check_adjoint(node: Node, ct: Any, back: Sequence[Any]) -> None:
    back = [b.dense() if isinstance(b, Lazy) else b for b in back]
    if _finite(ct) and not all(b is None or _finite(b) for b in back):
        raise DomainError(
            f"the adjoint of {node.name} turned a finite cotangent into nan or inf "
            f"(reverse pass); cotangent {ct!r}"
        )


class LinearMap:
    """A derivative: a linear map from input tangents to output tangents.

    ``d @ t`` is a Jacobian-vector product, ``u @ d`` a vector-Jacobian product and
    ``d.T`` the transpose. A scalar map behaves as a number (``float(d)``, ``d == 0.25``);
    ``np.asarray(d)`` is the per-element derivative of an elementwise map and the dense
    Jacobian (output shape, then input shape) otherwise. Nothing is materialised until
    asked for.
    """

    __slots__ = ()
    # numpy would evaluate `u @ d` as np.matmul(u, np.asarray(d)) and build the n x n
    # matrix; None makes ndarray defer to our __rmatmul__.
    __array_ufunc__ = None

    def __matmul__(self, t: Any) -> Any:
        raise NotImplementedError

    def __rmatmul__(self, ct: Any) -> Any:
        raise NotImplementedError

    @property
    def T(self) -> LinearMap:
        raise NotImplementedError

    def _dense(self) -> Any:
        raise NotImplementedError

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        return np.asarray(self._dense(), dtype=dtype)

    def __float__(self) -> float:
        return float(self._dense())

    def __format__(self, spec: str) -> str:
        return format(self._dense(), spec)

    def __eq__(self, other: object) -> Any:
        if isinstance(other, LinearMap):
            other = other._dense()
        return self._dense() == other

    __hash__ = None  # type: ignore[assignment]

    def __ne__(self, other: object) -> Any:
        return np.logical_not(self == other)

    def __lt__(self, other: Any) -> Any:
        return self._dense() < other

    def __le__(self, other: Any) -> Any:
        return self._dense() <= other

    def __gt__(self, other: Any) -> Any:
        return self._dense() > other

    def __ge__(self, other: Any) -> Any:
        return self._dense() >= other

    def __neg__(self) -> Any:
        return -self._dense()

    def __abs__(self) -> Any:
        return abs(self._dense())

    def __add__(self, other: Any) -> Any:
        return self._dense() + other

    __radd__ = __add__

    def __sub__(self, other: Any) -> Any:
        return self._dense() - other

    def __rsub__(self, other: Any) -> Any:
        return other - self._dense()

    def __mul__(self, other: Any) -> Any:
        return self._dense() * other

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Any:
        return self._dense() / other

    def __rtruediv__(self, other: Any) -> Any:
        return other / self._dense()


@final
class Linear(LinearMap):
    """The derivative of one call: input leaves of ``source`` to output leaves ``nodes``."""

    __slots__ = ("_dtypes", "_nodes", "_out_shapes", "_out_tree", "_source")

    def __init__(
        self,
        source: Source,
        nodes: Sequence[Node | None],
        out_tree: Tree,
        out_shapes: Sequence[Shape],
        out_dtypes: Sequence[Any],
    ) -> None:
        self._source = source
        self._nodes = tuple(nodes)
        self._out_tree = out_tree
        self._out_shapes = tuple(out_shapes)
        self._dtypes = tuple(out_dtypes)

    @property
    def in_shapes(self) -> tuple[Shape, ...]:
        return tuple(i.shape for i in self._source.inputs)

    @property
    def out_shapes(self) -> tuple[Shape, ...]:
        return self._out_shapes

    def __repr__(self) -> str:
        def fmt(tree: Tree, shapes: Sequence[Shape]) -> str:
            return str(unflatten(tree, [_ShapeRepr(s) for s in shapes]))

        ins = fmt(self._source.tree, self.in_shapes)
        outs = fmt(self._out_tree, self._out_shapes)
        if all(s == () for s in self.in_shapes + self._out_shapes) and len(self._nodes) == 1:
            return f"LinearMap({ins} -> {outs}: {self._dense()})"
        return f"LinearMap({ins} -> {outs})"

    def _flat(self, x: Any, tree: Tree, what: str) -> list[Any]:
        if tree.is_leaf:
            return [x]
        leaves, t = flatten(x)
        if t != tree:
            raise ValueError(f"{what} has structure {t}, expected {tree}")
        return leaves

    def _unconsumed(self) -> None:
        if self._source.consumed:
            raise RuntimeError(
                "this derivative was read once by a gradient, which freed its saved values "
                "on the way; take fad.linearize or fad.vjp to read a derivative more than once"
            )

    def __matmul__(self, t: Any) -> Any:
        self._unconsumed()
        ts = self._flat(t, self._source.tree, "tangent")
        ts = [_as_dtype(v, i.dtype) for v, i in zip(ts, self._source.inputs, strict=True)]
        out = push_forward(self._nodes, ts)
        nb = _batch(ts, self.in_shapes)
        out = [
            _zeros(nb + s, dt) if o is None else o
            for o, s, dt in zip(out, self._out_shapes, self._dtypes, strict=True)
        ]
        return unflatten(self._out_tree, out)

    def __rmatmul__(self, ct: Any) -> Any:
        self._unconsumed()
        cts = self._flat(ct, self._out_tree, "cotangent")
        cts = [_as_dtype(v, dt) for v, dt in zip(cts, self._dtypes, strict=True)]
        back = pull_back(self._nodes, cts, len(self._source.inputs))
        return self._inputs_tree(back, _batch(cts, self._out_shapes))

    def _inputs_tree(self, back: list[Any], nb: Shape) -> Any:
        if len(back) == 1 and self._source.tree.is_leaf and back[0] is not None:
            return _as_dtype(back[0], self._source.inputs[0].dtype)
        back = [
            _zeros(nb + i.shape, i.dtype) if b is None else _as_dtype(b, i.dtype)
            for b, i in zip(back, self._source.inputs, strict=True)
        ]
        return unflatten(self._source.tree, back)

    def gradient_once(self) -> Any:
        """``1.0 @ self`` for a scalar output, freeing the graph as it goes (a gradient).

        ``None`` if the gradient has a nan that may come from 0 * inf: the caller
        records the function again and pulls it ``strictly()`` (see ``pull_back_once``).
        """
        self._unconsumed()
        one = _as_dtype(1.0, self._dtypes[0])
        back = pull_back_once(self._source, self._nodes, [one], len(self._source.inputs))
        return None if back is None else self._inputs_tree(back, ())

    @property
    def T(self) -> LinearMap:
        return Transposed(self)

    def dense(self, mode: str = "auto") -> Any:
        """The Jacobian as arrays: an output tree of input trees of ``out + in`` shapes."""
        self._unconsumed()
        ins = self.in_shapes
        outs = self._out_shapes
        n_in = sum(math.prod(s) for s in ins)
        n_out = sum(math.prod(s) for s in outs)
        if mode == "auto":
            mode = self._cheaper_mode(n_in, n_out)
        blocks: list[list[Any]] = [[None] * len(ins) for _ in outs]
        if mode == "fwd":
            for i, inp in enumerate(self._source.inputs):
                n = math.prod(inp.shape)
                ts: list[Any] = [None] * len(ins)
                # The identity, kept diagonal through elementwise steps; a scalar input
                # needs no batch axis: its one direction is 1.
                one = np.ones(inp.shape, inp.dtype)
                ts[i] = one if inp.shape == () else Diag(one)
                res = push_forward(self._nodes, ts)
                for j, (r, s) in enumerate(zip(res, outs, strict=True)):
                    m = math.prod(s)
                    if r is None:
                        blocks[j][i] = _zeros(
                            s + inp.shape, np.result_type(inp.dtype, self._dtypes[j])
                        )
                    else:
                        blocks[j][i] = np.reshape(np.reshape(r, (n, m)).T, s + inp.shape)
        else:
            for j, (s, dt) in enumerate(zip(outs, self._dtypes, strict=True)):
                m = math.prod(s)
                cts: list[Any] = [None] * len(outs)
                # A scalar output (a gradient) needs no batch axis: one plain pull.
                # The identity's rows, kept diagonal through elementwise steps.
                cts[j] = np.ones((), dt) if s == () else Diag(np.ones(s, dtype=dt))
                back = pull_back(self._nodes, cts, len(ins))
                for i, (b, inp) in enumerate(zip(back, self._source.inputs, strict=True)):
                    if b is None:
                        blocks[j][i] = _zeros(s + inp.shape, np.result_type(inp.dtype, dt))
                    else:
                        blocks[j][i] = np.reshape(b, s + inp.shape)
        rows = [unflatten(self._source.tree, row) for row in blocks]
        return unflatten(self._out_tree, rows)

    def _cheaper_mode(self, n_in: int, n_out: int) -> str:
        """Forward or reverse, by the work each would do on the recorded graph.

        Forward mode pushes the identity of one input as a ``Diag``: O(size) through
        elementwise nodes, rows scaled at a matrix product, ``n_in`` columns after that.
        Reverse mode pulls the identity's rows the same way from a single output, then
        ``n_out`` rows through everything past them. Counting both (a node's work is its
        size, a product's its multiply-adds) picks reverse for tanh(A @ x) and forward for
        A @ sin(x) with 1000 inputs and 100 outputs or the other way round: starting from
        the elementwise end is cheaper than the sizes say. Ties go to the smaller side,
        as sizes alone decide.
        """
        by_size = "fwd" if n_in <= n_out else "rev"
        if len(self._source.inputs) != 1 or n_in * n_out <= 4096:
            return by_size  # small Jacobians: either mode is cheap, weighing them is not
        order = toposort(self._nodes)
        fwd = 0
        diag: set[Node] = {self._source.inputs[0]}  # nodes hash by identity
        for node in order:
            if type(node) is Input:
                continue
            work = node.work()
            fed = 0  # parents whose tangent is the identity, scaled
            for p in node.parents:
                if p in diag:
                    fed += 1
            if not fed:
                fwd += n_in * work
            elif (
                fed == len(node.parents)
                and type(node) in _KEEPS_DIAG
                and node.shape == node.parents[0].shape
            ):
                diag.add(node)
                fwd += work
            elif (type(node) is Op and node.on_diag is not None) or (
                type(node).forward_diag is not Node.forward_diag
            ):
                fwd += n_in * math.prod(node.shape)  # a cheap rule for the diagonal
            else:
                fwd += n_in * (n_in + work)  # the identity made dense first
        rev = self._reverse_work(order, n_out)
        if fwd == rev:
            return by_size
        return "fwd" if fwd < rev else "rev"

    def _reverse_work(self, order: list[Node], n_out: int) -> int:
        """Reverse mode's share of ``_cheaper_mode``, consumers before the nodes they use."""
        out = self._nodes[0] if len(self._nodes) == 1 else None
        diag: set[Node] = {out} if out is not None and out.shape != () else set()
        dense: set[Node] = set()  # nodes some consumer sends a dense cotangent
        rev = 0
        for node in reversed(order):
            if type(node) is Input:
                continue
            parents = node.parents
            if node in diag and node not in dense:
                if type(node) in _KEEPS_DIAG:
                    flat = True
                    for p in parents:
                        flat = flat and p.shape == node.shape
                    if flat:
                        rev += node.work()
                        diag.update(parents)
                        continue
                if type(node).diag_backward is not Node.diag_backward:  # rows, scaled
                    for p in parents:
                        rev += n_out * math.prod(p.shape)
                    dense.update(parents)
                    continue
            rev += n_out * node.work()
            dense.update(parents)
        return rev

    def _is_diagonal(self) -> bool:
        return (
            len(self._nodes) == 1
            and len(self._source.inputs) == 1
            and self._nodes[0] is not None
            and self._nodes[0].diag == 0
        )

    def _dense(self) -> Any:
        if self._is_diagonal():
            (inp,) = self._source.inputs
            node = self._nodes[0]
            if node is inp:
                return _ones(inp.shape, inp.dtype)
            if type(node) is Scale and node.parents[0] is inp:
                c = node.coef  # the derivative of an elementwise pipeline, already fused
                if type(c) is float or type(c) is int:
                    return times(_ones(inp.shape, inp.dtype), c)
                if shape_of(c) == inp.shape and type(c) is np.ndarray:
                    return c.copy() if c is node.c else c  # the caller owns what it gets
            return self @ _ones(inp.shape, inp.dtype)
        return self.dense()


@final
class Transposed(LinearMap):
    """The transpose of a linear map: ``d.T @ u == u @ d``."""

    __slots__ = ("_of",)

    def __init__(self, of: LinearMap) -> None:
        self._of = of

    def __repr__(self) -> str:
        return f"{self._of!r}.T"

    def __matmul__(self, u: Any) -> Any:
        return u @ self._of

    def __rmatmul__(self, t: Any) -> Any:
        return self._of @ t

    @property
    def T(self) -> LinearMap:
        return self._of

    def _dense(self) -> Any:
        d = self._of._dense()
        return np.transpose(d) if np.ndim(d) == 2 else d


class _ShapeRepr:
    __slots__ = ("shape",)

    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    def __repr__(self) -> str:
        return "float" if self.shape == () else "f" + str(list(self.shape))


def _batch(xs: Sequence[Any], shapes: Sequence[Shape]) -> Shape:
    for x, s in zip(xs, shapes, strict=True):
        if x is not None:
            xs_ = shape_of(x)
            return xs_[: len(xs_) - len(s)]
    return ()


def _as_dtype(x: Any, dtype: Any) -> Any:
    """Python scalars and arrays of another float type take the value's dtype.

    A Python float seed would otherwise turn a float32 gradient into float64 as soon
    as it meets a reshape or a reduction.
    """
    # ``is`` first: numpy's dtypes of a kind are one object, and ``==`` costs ~800
    # instructions (a gradient's seed and result pass here).
    if type(x) is float or type(x) is int:
        return x if dtype is _FLOAT64 or dtype == np.float64 else np.asarray(x, dtype=dtype)[()]
    if type(x) is np.ndarray or isinstance(x, np.floating):
        have = x.dtype
        if have is not dtype and have != dtype:
            return x.astype(dtype) if have.kind == "f" else x
    return x


_FLOAT64 = np.dtype(np.float64)


def _ones(shape: Shape, dtype: Any) -> Any:
    """Ones of the input's shape and dtype; a Python 1.0 for a float64 scalar."""
    if not shape and dtype == np.float64:
        return 1.0
    return np.ones(shape, dtype=dtype)[()]


def _zeros(shape: Shape, dtype: Any) -> Any:
    return np.zeros(shape, dtype=dtype)[()] if shape else np.zeros((), dtype=dtype)[()]


def single(source: Source, node: Node | None, value: Any) -> Linear:
    """The derivative map of a single-leaf result."""
    return Linear(source, (node,), leaf_tree(), (shape_of(value),), (np.result_type(value),))
