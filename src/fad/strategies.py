"""Hypothesis strategies for differentiable functions and points in their domains.

``pipelines()`` draws random well-typed compositions of fad's primitives: every
registered elementwise primitive (``fad.primitive(...)`` registers one, so a user's
primitive takes part the moment it exists), the parameterised ones with drawn parameters
(``add(1.5)``, ``power(-1.0)``, ``clip(-0.5, 1.0)``) and pointwise arithmetic between
functions (``(sin >> exp) + cos``, ``2.0 / tanh``). ``points(f)`` draws points where every
step of ``f`` receives a value inside its primitive's domain, away from its kinks, with
all intermediate values moderate (``|v| <= 1000``) and varying slowly with the input,
so nothing overflows and finite differences are meaningful. Both shrink to readable
counterexamples: a failing pipeline becomes a short one of the simplest primitives that
still fails, printed as code (``multiply(-1.0) >> exp >> add(1.0) >> reciprocal``), and
a point a short number.

How domains propagate: every drawn pipeline is evaluated, as it is built, on a fixed
grid of a few hundred probe inputs; a step is only added if enough probes stay valid
(``sin >> log`` keeps the probes where ``sin(x) > 0``). ``points(f)`` draws from the
valid probes, or a free float checked the same way, so for elementwise functions it
never filters and never trips hypothesis' health checks.

Needs the ``test`` extra (``pip install "fad[test]"``), which brings hypothesis.

Examples:
    >>> import fad
    >>> from hypothesis import given, settings, strategies as hs
    >>> from fad import laws, strategies as st
    >>> @settings(max_examples=20, deadline=None)
    ... @given(st.pipelines(max_depth=3), hs.data())
    ... def test_chain_rule(f, data):
    ...     laws.check_chain_rule(f, fad.sin, data.draw(st.points(f)))
    >>> test_chain_rule()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

try:
    from hypothesis import assume
    from hypothesis import strategies as hs
    from hypothesis.extra import numpy as hnp
except ImportError as e:  # pragma: no cover (the extra is installed for the tests)
    raise ImportError(
        "fad.strategies needs hypothesis, which comes with the `test` extra: "
        'pip install "fad[test]"'
    ) from e

from . import prims as fad_prims
from ._core import Const, Fn, Pointwise, Step, as_fn, pipe
from ._tree import flatten
from .prims import _declare
from .prims._declare import Domain, Elementwise
from .prims.parametric import add, affine, clip, multiply, power

__all__ = ["arrays", "compositions", "pipelines", "points"]

Vec = NDArray[np.float64]
Mask = NDArray[np.bool_]

# Intermediate values stay within this bound: exp of them stays finite in float32.
BOUND: Final = 1e3
# Distance kept from domain edges, kinks and zero denominators, relative to 1 + |edge|.
MARGIN: Final = 0.02
# A step is only added to a pipeline if at least this many probes stay valid.
MIN_VALID: Final = 6
# Points are drawn freely from [-LIMIT, LIMIT]; probes reach further (up to BOUND).
LIMIT: Final = 4.0

# Probe inputs: short numbers first (what shrinking lands on), then a grid offset from
# round numbers (so kinks at 0, 1, ... are not hit exactly), then wider magnitudes for
# domains such as log >> log >> add(-1.0) >> log (x > e ** e).
_NICE: Final = (
    1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1.5, -1.5, 0.25, -0.25, 3.0, -3.0, 0.75, -0.75,
    2.5, -2.5, 3.5, -3.5, 0.1, -0.1, 4.0, -4.0,
)  # fmt: skip
_PROBES: Final[Vec] = np.concatenate(
    [
        np.array(_NICE),
        np.linspace(-LIMIT, LIMIT, 321)[:-1] + 0.00613,
        np.geomspace(4.5, 200.0, 40),
        -np.geomspace(4.5, 200.0, 40),
    ]
)


# ------------------------------------------------------------------ domain tracking


def _inside(domain: Domain, x: Vec) -> Mask:
    """Where ``x`` is inside ``domain`` with a margin from its edges and kinks."""
    ok = np.isfinite(x)
    if domain.lo > -math.inf:
        ok &= x >= domain.lo + MARGIN * (1.0 + abs(domain.lo))
    if domain.hi < math.inf:
        ok &= x <= domain.hi - MARGIN * (1.0 + abs(domain.hi))
    if domain.nonzero:
        ok &= np.abs(x) >= MARGIN
    for k in domain.kinks:
        ok &= np.abs(x - k) >= MARGIN * (1.0 + abs(k))
    return ok


def _moderate(y: Any, like: Vec) -> tuple[Vec, Mask]:
    y = np.broadcast_to(np.asarray(y, dtype=np.float64), like.shape)
    return y, np.isfinite(y) & (np.abs(y) <= BOUND)


def walk(f: Fn[Any, Any], x: Vec) -> tuple[Vec, Mask]:
    """Evaluate ``f`` on a vector of scalar inputs, marking where it stays well-behaved.

    An input is valid when every primitive step receives a value inside its domain (away
    from edges and kinks), no denominator is near zero, no non-integer power sees a
    non-positive base, and every intermediate value is finite and moderate. Steps fad
    does not know the domain of (pointed functions, general primitives) only need finite,
    moderate values; they are evaluated probe by probe if they do not vectorise.
    """
    ok = np.isfinite(x)
    for step in f.steps:
        x, valid = _step(step, x)
        ok &= valid
    return x, ok


def _step(step: Step, x: Vec) -> tuple[Vec, Mask]:
    with np.errstate(all="ignore"):
        if isinstance(step, Elementwise):
            inside = _inside(step.domain, x)
            y, ok = _moderate(step.kernel(x), x)
            return y, ok & inside
        if isinstance(step, Const):
            return _moderate(step.c, x)
        if isinstance(step, Pointwise):
            a, oka = walk(step.f, x)
            b, okb = walk(step.g, x)
            y, ok = _moderate(step.op.kernel(a, b), x)
            ok &= oka & okb & _operands_ok(step.op.symbol, a, b)
            return y, ok
        return _generic(step, x)


def _operands_ok(symbol: str, a: Vec, b: Vec) -> Mask:
    if symbol == "/":
        return np.abs(b) >= MARGIN * (1.0 + np.abs(a))
    if symbol == "**":
        integer = np.equal(np.round(b), b)
        positive = a >= MARGIN
        nonzero = np.abs(a) >= MARGIN
        return np.where(integer, np.where(b < 0, nonzero, True), positive)
    return np.ones(a.shape, dtype=bool)


def _generic(step: Step, x: Vec) -> tuple[Vec, Mask]:
    try:
        y = np.asarray(step.value(x), dtype=np.float64)
        if y.shape == x.shape:
            return _moderate(y, x)
    except Exception:  # any failure: try the probes one by one
        pass
    ys = np.full(x.shape, np.nan)
    for i, v in enumerate(x):
        try:
            yi = np.asarray(step.value(float(v)), dtype=np.float64)
        except Exception:  # outside the step's domain
            continue
        if yi.size == 1:
            ys[i] = float(yi.reshape(()))
    return _moderate(ys, x)


def _valid(f: Fn[Any, Any], x: Vec) -> Mask:
    return walk(f, x)[1]


def _stages(f: Fn[Any, Any], x: Vec) -> tuple[list[Vec], Mask]:
    """Like ``walk``, but the value after every step of ``f``, not only the last."""
    ok = np.isfinite(x)
    values = []
    for step in f.steps:
        x, valid = _step(step, x)
        ok &= valid
        values.append(x)
    return values, ok


def _smooth(f: Fn[Any, Any], x: Vec) -> Mask:
    """Where ``f`` is inside its domain and varies slowly enough to difference.

    A point where ``sin`` receives a value changing ten thousand times faster than ``x``
    is inside every domain, but its derivatives are out of reach of finite differences
    (and of float32). The slopes are estimated from the values alone, never from the
    derivative rules under test: ``|v'| <= 1e4`` and ``|v''| <= 1e6`` for the value
    ``v`` after every step of ``f``, not only the last. So a point of ``f >> g >> h``
    is a fair point for ``f >> g`` too (the chain rule and associativity are checked
    there), even where ``h`` is flat and hides how fast ``f >> g`` varies.
    """
    ys, ok = _stages(f, x)
    d1 = 1e-6 * np.maximum(1.0, np.abs(x))
    (ups, ok_up), (downs, ok_down) = _stages(f, x + d1), _stages(f, x - d1)
    ok &= ok_up & ok_down
    with np.errstate(all="ignore"):
        for up, down in zip(ups, downs, strict=True):
            ok &= np.abs(up - down) / (2.0 * d1) <= 1e4
    # Curvature at two spacings: an oscillation about as fast as one could alias away.
    for d2 in (1e-5, 1e-3):
        (ups, ok_up), (downs, ok_down) = _stages(f, x + d2), _stages(f, x - d2)
        ok &= ok_up & ok_down
        with np.errstate(all="ignore"):
            for y, up, down in zip(ys, ups, downs, strict=True):
                ok &= np.abs(up - 2.0 * y + down) / (d2 * d2) <= 1e6
    return np.asarray(ok)


# ------------------------------------------------------------------------ pipelines


@dataclass(frozen=True)
class Family:
    """A parameterised primitive: how to draw its parameters and build it."""

    name: str
    build: Callable[..., Fn[Any, Any]]
    params: hs.SearchStrategy[tuple[float, ...]]


def _coef(lo: float, hi: float) -> hs.SearchStrategy[float]:
    """Short decimals: a shrunk counterexample reads ``add(1.5)``, not ``add(1.4999...)``."""
    return hs.floats(lo, hi, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 2))


def _scale() -> hs.SearchStrategy[float]:
    """A nonzero factor: multiplying by 0 would hide every derivative upstream of it.

    Short numbers first, so a counterexample shrinks to ``multiply(1.0)``.
    """
    free = _coef(-3.0, 3.0).filter(lambda v: abs(v) >= 0.1)
    return hs.one_of(hs.sampled_from((1.0, -1.0, 2.0, 0.5, -2.0, -0.5, 3.0, 1.5)), free)


# No 0.0: a constant would hide the derivative of everything before it.
_POWERS: Final = (2.0, 3.0, -1.0, 0.5, -2.0, 1.5, 4.0, 1.0, -0.5)

FAMILIES: Final[tuple[Family, ...]] = (
    Family("multiply", multiply, hs.tuples(_scale())),
    Family("add", add, hs.tuples(_coef(-3.0, 3.0))),
    Family("power", power, hs.tuples(hs.sampled_from(_POWERS))),
    Family("affine", affine, hs.tuples(_scale(), _coef(-3.0, 3.0))),
    Family(
        "clip",
        lambda lo, width: clip(lo, round(lo + width, 2)),
        hs.tuples(_coef(-3.0, 2.0), _coef(0.5, 3.0)),
    ),
)
_FACTORIES: Final = {fam.build: fam for fam in FAMILIES} | {clip: FAMILIES[-1]}


@dataclass(frozen=True)
class _Context:
    named: tuple[Fn[Any, Any], ...]  # the primitives under test: half of the draws
    others: tuple[Fn[Any, Any], ...]  # fad's own, when user primitives are declared
    families: tuple[Family, ...]
    arithmetic: bool
    shape: tuple[int, ...]


@dataclass
class _State:
    """The images of the probes under the pipeline so far, and which are still valid."""

    values: Vec
    ok: Mask

    def then(self, f: Fn[Any, Any]) -> _State | None:
        """The state after ``f``, or ``None`` if too few probes would survive it."""
        y, valid = walk(f, self.values)
        ok = self.ok & valid
        return _State(y, ok) if int(ok.sum()) >= MIN_VALID else None


Draw = Callable[[hs.SearchStrategy[Any]], Any]
Kind = Callable[[Draw, _Context, _State, int, int], "tuple[Fn[Any, Any], _State] | None"]


def _kind_named(
    draw: Draw, ctx: _Context, state: _State, depth: int, nest: int
) -> tuple[Fn[Any, Any], _State] | None:
    """A registered primitive; if no probe would survive it, the next one that some do.

    When users have declared primitives, half of the draws take one of theirs (and
    shrinking goes to them): they are what is being tested. The index is drawn among
    all primitives, not among the feasible ones, so a drawn primitive stays the same
    when the shrinker deletes the steps before it.
    """
    group = ctx.named
    if ctx.others and (not group or draw(hs.booleans())):
        group = ctx.others
    if not group:
        return None
    k = draw(hs.integers(0, len(group) - 1))
    for p in (*group[k:], *group[:k], *ctx.named, *ctx.others):
        s = state.then(p)
        if s is not None:
            return p, s
    return None


def _kind_family(
    draw: Draw, ctx: _Context, state: _State, depth: int, nest: int
) -> tuple[Fn[Any, Any], _State] | None:
    """A parameterised primitive with drawn parameters."""
    if not ctx.families:
        return None
    fam = draw(hs.sampled_from(ctx.families))
    f = fam.build(*draw(fam.params))
    s = state.then(f)
    return None if s is None else (f, s)


_BINARY: Final = ("+", "*", "-", "/")
_WITH_NUMBER: Final = ("c + f", "c * f", "f - c", "c / f", "f ** k", "-f")


def _kind_binary(
    draw: Draw, ctx: _Context, state: _State, depth: int, nest: int
) -> tuple[Fn[Any, Any], _State] | None:
    """Arithmetic between two pipelines of the current value: ``(f + g)``, ``(f / g)``."""
    if not ctx.arithmetic or nest >= 2:
        return None
    sub = max(1, depth // 2)
    op = draw(hs.sampled_from(_BINARY))
    f, _ = draw(_chain(ctx, state, sub, nest + 1))
    g, _ = draw(_chain(ctx, state, sub, nest + 1))
    if op in "-/" and repr(f) == repr(g):
        return None  # f - f and f / f are constants: they would hide f's derivative
    h = {"+": f + g, "*": f * g, "-": f - g, "/": f / g}[op]
    s = state.then(h)
    return None if s is None else (h, s)


def _kind_number(
    draw: Draw, ctx: _Context, state: _State, depth: int, nest: int
) -> tuple[Fn[Any, Any], _State] | None:
    """Arithmetic between a pipeline and a number: ``(2.0 / tanh)``, ``(exp ** 2.0)``."""
    if not ctx.arithmetic or nest >= 2:
        return None
    form = draw(hs.sampled_from(_WITH_NUMBER))
    f, _ = draw(_chain(ctx, state, max(1, depth // 2), nest + 1))
    c = draw(_scale() if form in ("c * f", "c / f") else _coef(-3.0, 3.0))
    if form == "c + f":
        h = c + f
    elif form == "c * f":
        h = c * f
    elif form == "f - c":
        h = f - c
    elif form == "c / f":
        h = c / f
    elif form == "f ** k":
        h = f ** draw(hs.sampled_from((2.0, 3.0, -1.0, 0.5)))
    else:
        h = -f
    s = state.then(h)
    return None if s is None else (h, s)


# The kinds of step a pipeline is built from, simplest first (shrinking goes left).
# Vector primitives, fork and par add kinds here; a kind returns None when it cannot
# extend the current pipeline (no probes would survive), and the step is skipped.
KINDS: Final[tuple[Kind, ...]] = (_kind_named, _kind_family, _kind_binary, _kind_number)


@hs.composite
def _chain(
    draw: Draw, ctx: _Context, state: _State, depth: int, nest: int
) -> tuple[Fn[Any, Any], _State]:
    steps: list[Fn[Any, Any]] = []
    for i in range(depth):
        # Hypothesis shrinks booleans to False: a failing pipeline loses its tail.
        if i and not draw(hs.booleans()):
            break
        kind = draw(hs.sampled_from(KINDS))
        made = kind(draw, ctx, state, depth, nest)
        if made is not None:
            steps.append(made[0])
            state = made[1]
    if not steps:
        made = _kind_named(draw, ctx, state, depth, nest)
        if made is not None:
            steps.append(made[0])
            state = made[1]
    return pipe(*steps), state


def pipelines(
    max_depth: int = 4,
    prims: Sequence[Fn[Any, Any] | Callable[..., Fn[Any, Any]]] | None = None,
    shape: tuple[int, ...] = (),
    *,
    arithmetic: bool = True,
) -> hs.SearchStrategy[Fn[Any, Any]]:
    """Random well-typed compositions of primitives, with a point inside their domain.

    Each pipeline has at most ``max_depth`` steps; a step is a primitive, a
    parameterised primitive with drawn parameters, or arithmetic between shorter
    pipelines of the same input (nested at most twice). Steps that would leave no
    point inside every primitive's domain are never chosen (``log >> log`` needs
    ``x > 1``, which is fine; ``neg >> exp >> neg >> log`` has no point and is not drawn).

    Args:
        max_depth: the most steps in the top-level chain.
        prims: the primitives to draw from: ``Fn`` values, and the factories
            ``fad.add``, ``fad.multiply``, ``fad.power``, ``fad.affine``, ``fad.clip``
            for parameterised ones. By default every registered primitive (built-in or
            added with ``fad.primitive``) and every factory, read when drawing. Half
            of the primitive steps take one that is not fad's own, if there are any:
            a user's primitives are what is being tested, and shrinking goes to them.
        shape: the input shape the pipelines are for (all primitives so far are
            elementwise, so any shape works; vector primitives will use it).
        arithmetic: whether to combine pipelines with ``+ - * /`` and numbers.

    Returns:
        A strategy of ``fad.Fn`` values; draw a point with ``points(f)``.

    Examples:
        >>> from hypothesis import given, settings
        >>> import fad
        >>> from fad import strategies as st
        >>> @settings(max_examples=10)
        ... @given(st.pipelines(max_depth=3))
        ... def test_is_fn(f):
        ...     assert isinstance(f, fad.Fn)
        >>> test_is_fn()

    See also:
        points, fad.laws
    """
    parts = _parts(1, max_depth, prims, shape, arithmetic)

    # A composite, not compositions(1).map(...): hypothesis prints a mapped value as
    # the mapping applied to its input, and the counterexample should read as code.
    @hs.composite
    def one(draw: Draw) -> Fn[Any, Any]:
        return parts(draw)[0]

    return one()


def _builtin(p: Fn[Any, Any]) -> bool:
    """Whether ``p`` is one of fad's own primitives (exported by ``fad.prims``)."""
    return getattr(fad_prims, repr(p), None) is p


def compositions(
    n: int = 2,
    max_depth: int = 2,
    prims: Sequence[Fn[Any, Any] | Callable[..., Fn[Any, Any]]] | None = None,
    shape: tuple[int, ...] = (),
    *,
    arithmetic: bool = True,
) -> hs.SearchStrategy[tuple[Fn[Any, Any], ...]]:
    """``n`` pipelines that compose: ``f1 >> f2 >> ...`` has points in its domain.

    Each pipeline is drawn where the previous ones leave the probes, so ``g`` in
    ``(f, g)`` only gets primitives whose domain contains values of ``f``. This is what
    ``laws.check_chain_rule(f, g, x)`` and ``laws.check_associativity(f, g, h, x)``
    need; draw ``x`` with ``points(f1 >> f2 >> ...)``.

    Args:
        n: how many pipelines.
        max_depth: the most steps in each.
        prims: as for ``pipelines``.
        shape: as for ``pipelines``.
        arithmetic: as for ``pipelines``.

    Returns:
        A strategy of ``n``-tuples of ``fad.Fn`` values.

    Examples:
        >>> from hypothesis import given, settings, strategies as hs
        >>> from fad import laws, strategies as st
        >>> @settings(max_examples=10, deadline=None)
        ... @given(st.compositions(2), hs.data())
        ... def test_chain_rule(fg, data):
        ...     f, g = fg
        ...     laws.check_chain_rule(f, g, data.draw(st.points(f >> g)))
        >>> test_chain_rule()

    See also:
        pipelines, points
    """
    parts = _parts(n, max_depth, prims, shape, arithmetic)

    @hs.composite
    def many(draw: Draw) -> tuple[Fn[Any, Any], ...]:
        return parts(draw)

    return many()


def _parts(
    n: int,
    max_depth: int,
    prims: Sequence[Fn[Any, Any] | Callable[..., Fn[Any, Any]]] | None,
    shape: tuple[int, ...],
    arithmetic: bool,
) -> Callable[[Draw], tuple[Fn[Any, Any], ...]]:
    """How to draw ``n`` composable pipelines, the arguments checked once."""
    if max_depth < 1 or n < 1:
        raise ValueError(f"n and max_depth must be at least 1, got {n} and {max_depth}")
    named_given: tuple[Fn[Any, Any], ...] | None = None
    families: tuple[Family, ...] = FAMILIES
    if prims is not None:
        named_list: list[Fn[Any, Any]] = []
        fam_list: list[Family] = []
        for p in prims:
            if isinstance(p, Fn):
                named_list.append(p)
            elif p in _FACTORIES:
                fam_list.append(_FACTORIES[p])
            else:
                raise TypeError(
                    f"pipelines(prims=...) takes Fn values and the factories add, multiply, "
                    f"power, affine, clip; got {p!r}"
                )
        named_given, families = tuple(named_list), tuple(fam_list)
    shape = tuple(shape)

    def draw_parts(draw: Draw) -> tuple[Fn[Any, Any], ...]:
        # The registry is read when drawing, so primitives declared later take part.
        pool = named_given if named_given is not None else tuple(_declare.REGISTRY.values())
        named = tuple(p for p in pool if not _builtin(p))
        others = tuple(p for p in pool if _builtin(p))
        ctx = _Context(named, others, families, arithmetic, shape)
        state = _State(_PROBES.copy(), np.ones(_PROBES.shape, dtype=bool))
        parts: list[Fn[Any, Any]] = []
        for _ in range(n):
            f, state = draw(_chain(ctx, state, max_depth, 0))
            parts.append(f)
        return tuple(parts)

    return draw_parts


# --------------------------------------------------------------------------- points


def _kinks_and_edges(f: Fn[Any, Any]) -> list[float]:
    """Kinks and finite domain edges of every primitive in ``f``, and 0."""
    found: list[float] = [0.0]
    stack = [f]
    while stack:
        g = stack.pop()
        for step in g.steps:
            if isinstance(step, Elementwise):
                d = step.domain
                found.extend(d.kinks)
                found.extend(v for v in (d.lo, d.hi) if math.isfinite(v))
            elif isinstance(step, Pointwise):
                stack.extend((step.f, step.g))
    return sorted(set(found), key=lambda v: (abs(v), v))


def points(
    f: Callable[[Any], Any],
    shape: tuple[int, ...] = (),
    dtype: Any = np.float64,
    *,
    special: bool = False,
) -> hs.SearchStrategy[Any]:
    """Points inside ``f``'s domain: every step gets a valid, moderate input.

    Scalars are Python floats for float64 (so the scalar fast path is exercised) and
    ``np.float32`` for float32; with a ``shape`` they are arrays. The points are drawn
    from probes that satisfy every primitive's domain (with a margin from its edges and
    kinks) or freely from [-4, 4] and checked, so nothing is filtered away. Where ``f``
    or any of its steps varies fast (``|v'| > 1e4`` or ``|v''| > 1e6`` for the value
    ``v`` after a step, estimated from values alone) no point is drawn if there are
    others: finite differences could not follow it, in ``f`` or in the ``f1 >> f2``
    that a chain-rule check of ``f = f1 >> f2 >> f3`` differentiates. With
    ``special=True`` kinks, domain edges and 0 are drawn too (no margin): the places
    where ``laws.check_modes_agree`` compares nan, inf and signed zeros.

    Args:
        f: an ``Fn`` (or a pointed function, whose domain is found by evaluating it).
        shape: ``()`` for scalars, else the array shape.
        dtype: ``np.float64`` or ``np.float32``.
        special: also draw kinks, domain edges and zero.

    Returns:
        A strategy of points.

    Raises:
        ValueError: when no probe in [-200, 200] lies in ``f``'s domain.

    Examples:
        >>> import fad
        >>> from fad import strategies as st
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=20)
        ... @given(st.points(fad.sin >> fad.log))
        ... def test_sin_is_positive(x):
        ...     assert fad.sin.value(x) > 0
        >>> test_sin_is_positive()

    See also:
        pipelines, arrays
    """
    fn = as_fn(f)
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"points are floating point; got dtype {dt}")
    shape = tuple(shape)
    cast: Callable[[float], Any] = float if dt == np.float64 else dt.type
    grid = _PROBES.astype(dt).astype(np.float64)
    # Smooth points if there are any; else any inside the domain.
    test = _smooth if np.any(_smooth(fn, grid)) else _valid
    # Each probe once, in probe order (short numbers first).
    probes = list(dict.fromkeys(float(v) for v in grid[test(fn, grid)]))
    if not probes:
        raise ValueError(
            f"points: no input in [-200, 200] keeps every step of {fn!r} inside its domain"
        )

    def nearest(x: float) -> float:
        return min(probes, key=lambda p: abs(p - x))

    def ok(x: float) -> bool:
        return bool(test(fn, np.array([float(dt.type(x))]))[0])

    free = hs.floats(-LIMIT, LIMIT, allow_nan=False, allow_infinity=False, width=dt.itemsize * 8)
    checked = free.map(lambda x: x if ok(x) else nearest(x))
    scalar: hs.SearchStrategy[float] = hs.one_of(hs.sampled_from(probes), checked)
    if special:
        edges = [float(dt.type(v)) for v in _kinks_and_edges(fn)]
        scalar = hs.one_of(scalar, hs.sampled_from(edges))
    if shape == ():
        return scalar.map(cast)
    n = math.prod(shape)

    def to_array(xs: list[float]) -> Any:
        return np.array(xs, dtype=dt).reshape(shape)

    arrays_ = hs.lists(scalar, min_size=n, max_size=n).map(to_array)
    if fn.elementwise:
        return arrays_

    def whole_ok(x: Any) -> Any:
        with np.errstate(all="ignore"):
            try:
                y = fn.value(x)
            except Exception:  # outside the domain
                assume(False)
        leaves = [np.asarray(v, dtype=np.float64) for v in flatten(y)[0]]
        assume(all(np.all(np.isfinite(v) & (np.abs(v) <= BOUND)) for v in leaves))
        return x

    return arrays_.map(whole_ok)


def arrays(shape: tuple[int, ...] = (3,), dtype: Any = np.float64) -> hs.SearchStrategy[Any]:
    """Arrays of moderate finite values in [-4, 4], of the given shape and dtype.

    Examples:
        >>> import numpy as np
        >>> from fad import strategies as st
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5)
        ... @given(st.arrays((2, 3), np.float32))
        ... def test_shape(x):
        ...     assert x.shape == (2, 3) and x.dtype == np.float32
        >>> test_shape()

    See also:
        points
    """
    dt = np.dtype(dtype)
    elements = hs.floats(
        -LIMIT, LIMIT, allow_nan=False, allow_infinity=False, width=dt.itemsize * 8
    )
    return hnp.arrays(dt, tuple(shape), elements=elements)
