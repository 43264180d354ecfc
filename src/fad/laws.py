"""The laws every differentiable function obeys, as checks you run on your own functions.

Each ``check_*`` takes the function(s), a point (a float, an array or a tuple/list/dict of
them) and optional directions, and raises ``AssertionError`` when the law fails. The
message names the function (its repr: ``sin >> log``), the point, both sides of the law
and the error against the tolerance, so a failure found by hypothesis reads as a bug
report.

Functions may be ``fad.Fn`` values or pointed Python functions (``lambda x: fad.sin(x) *
x``); a pointed function of several arguments is called with the items of a tuple point,
as ``fad.lift`` does. Random directions come from fixed seeds, so a check is
deterministic (hypothesis replays failures).

Tolerances. Every check takes ``rtol=`` and ``atol=``; the defaults depend on the
precision of the point (float32 if any leaf is float32 or narrower) and on the law:

===========================  ===================  ===================
law                          float64 rtol, atol   float32 rtol, atol
===========================  ===================  ===================
monad laws, chain rule,      1e-9, 1e-10          1e-4, 1e-5
jvp/vjp, modes agree
finite differences           1e-6, 1e-9           2e-3, 1e-5
finite differences, order 2  1e-6, 1e-9           2e-3, 1e-4
===========================  ===================  ===================

An entry passes when ``|a - b| <= atol + rtol * scale``, where ``scale`` is
``max(|a|, |b|)``, or for an inner product (``<u, J v>``) the sum of its terms'
magnitudes. nan and inf must match exactly (inf with its sign).

Both sides of an algebraic law compute the same terms in different orders, so where the
terms cancel their difference is rounding, however small the tolerance. Such a
difference is recognised by changing the precision: recomputed in float32, rounding
grows about 10**8 times; recomputed in float64, float32 rounding shrinks as much. A true
violation is the same size in both precisions, and is reported.

Finite differences are computed in float64, also for float32 functions: central
differences along a direction with Ridders' extrapolation, in tables started from
steps 512 times apart, a table counting only where the next smaller one and the best
estimate of the smaller ones agree with it (a pole, a fast oscillation or a clip's flat
part within the largest steps is outgrown),
and the estimate with the smallest error estimate kept, entry by entry. That estimate
includes the rounding of the function's values, measured from their jitter, and is
added to the tolerance, as is the change that rounding the point to its precision makes
in the derivative (``rtol * |f''| * |x|``), so a correct derivative is not reported
wrong. A float32 derivative that misses is excused only if float64 meets the
differences and the float32 error is erratic from point to point, as rounding is.

Examples:
    >>> import fad
    >>> from fad import laws
    >>> laws.check_finite_differences(fad.sin >> fad.exp, 0.5)
    >>> wrong = fad.primitive(np.sin, jvp=lambda x, t: np.sin(x) * t,  # d sin is cos
    ...                       vjp=lambda x, ct: ct * np.sin(x), name="wrong_sin")
    >>> laws.check_finite_differences(wrong, 1.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: finite differences: the derivative of wrong_sin is wrong at x = 1.0
    ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ._core import Dual, Fn, as_fn, bind, pipe, unit
from ._transforms import grad, hvp, jvp, linearize, vjp
from ._tree import flatten, unflatten
from .prims._declare import Elementwise

__all__ = [
    "check_associativity",
    "check_chain_rule",
    "check_finite_differences",
    "check_jvp_vjp",
    "check_left_identity",
    "check_modes_agree",
    "check_right_identity",
]

Vec = NDArray[np.float64]
Mask = NDArray[np.bool_]
Diff = Callable[[float], tuple[Vec, Vec]]  # h -> (difference quotient, its rounding bound)

# (rtol, atol) by kind of law and working precision (bits of the point).
_ALGEBRA: Final = {64: (1e-9, 1e-10), 32: (1e-4, 1e-5)}
_FD: Final = {64: (1e-6, 1e-9), 32: (2e-3, 1e-5)}
# Second derivatives in float32 round more in absolute terms: they come from products
# of first derivatives that each carry float32 rounding, and often nearly cancel.
_FD2: Final = {64: (1e-6, 1e-9), 32: (2e-3, 1e-4)}
# A difference is rounding if changing the precision scales it by at least this much
# (the ratio of the two machine epsilons is about 5e8).
_ROUNDING_RATIO: Final = 1e4

# Ridders' extrapolation: each step divides h by _CON; _NTAB steps in a table; tables
# start at h0, h0 / 8, h0 / 64 and h0 / 512.
_CON: Final = 1.6
# A function value's rounding error, relative to its size (a few ulps, generously).
_EPS_ROUND: Final = 16 * float(np.finfo(np.float64).eps)
_NTAB: Final = 6
_STARTS: Final = (1.0, 1 / 8, 1 / 64, 1 / 512)
# Jacobian entries compared by check_modes_agree: every input (output) up to this many,
# a fixed sample beyond.
_MAX_BASIS: Final = 24


# ------------------------------------------------------------------------ the laws


def check_left_identity(
    f: Callable[[Any], Any], x: Any, *, rtol: float | None = None, atol: float | None = None
) -> None:
    """Check ``bind(unit(x), f) == f(x)``: values and derivatives.

    Derivatives are compared by applying both linear maps to a random tangent
    (``d @ t``) and a random cotangent (``u @ d``); values must have the same dtype.

    Args:
        f: an ``Fn`` or a pointed Python function.
        x: the point.
        rtol: relative tolerance (default by precision, see the module docstring).
        atol: absolute tolerance.

    Raises:
        AssertionError: when the two sides differ, showing both.

    Examples:
        >>> import fad
        >>> from fad import laws
        >>> laws.check_left_identity(fad.sin >> fad.log, 1.0)

    See also:
        check_right_identity, check_associativity
    """
    fn = _fn(f)

    def sides(x: Any) -> list[_Pair]:
        return _dual_pairs(x, ("bind(unit(x), f)", bind(unit(x), fn)), ("f(x)", fn(x)))

    _check("left identity", f"for f = {_name(f)}", x, sides, _tols(x, _ALGEBRA, rtol, atol),
           signed_zero=_is_chain(fn))  # fmt: skip


def check_right_identity(
    f: Callable[[Any], Any], x: Any, *, rtol: float | None = None, atol: float | None = None
) -> None:
    """Check ``bind(m, unit) == m`` for ``m = f(x)``: values and derivatives.

    Args:
        f: an ``Fn`` or a pointed Python function; ``m`` is ``f(x)``.
        x: the point.
        rtol: relative tolerance.
        atol: absolute tolerance.

    Raises:
        AssertionError: when ``bind(m, unit)`` is not ``m``.

    Examples:
        >>> import fad
        >>> from fad import laws
        >>> laws.check_right_identity(fad.exp, 0.5)

    See also:
        check_left_identity
    """
    fn = _fn(f)

    def sides(x: Any) -> list[_Pair]:
        m = fn(x)
        return _dual_pairs(x, ("bind(m, unit)", bind(m, unit)), ("m", m))

    _check("right identity", f"for m = ({_name(f)})(x)", x, sides,
           _tols(x, _ALGEBRA, rtol, atol), signed_zero=_is_chain(fn))  # fmt: skip


def check_associativity(
    f: Callable[[Any], Any],
    g: Callable[[Any], Any],
    h: Callable[[Any], Any],
    x: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Check that ``f >> g >> h`` means one thing however it is bracketed.

    With ``m = f(x)``: ``bind(bind(m, g), h) == bind(m, lambda y: bind(g(y), h))``, and
    both equal ``((f >> g) >> h)(x)`` and ``(f >> (g >> h))(x)``.

    Args:
        f: the first function.
        g: the second.
        h: the third.
        x: the point.
        rtol: relative tolerance.
        atol: absolute tolerance.

    Raises:
        AssertionError: naming the bracketing that disagrees.

    Examples:
        >>> import fad
        >>> from fad import laws
        >>> laws.check_associativity(fad.sin, fad.exp, fad.log, 0.5)

    See also:
        check_chain_rule
    """
    fn, gn, hn = _fn(f), _fn(g), _fn(h)

    def sides(x: Any) -> list[_Pair]:
        m = fn(x)
        left: tuple[str, Any] = ("bind(bind(m, g), h)", bind(bind(m, gn), hn))
        return [
            *_dual_pairs(x, left, ("bind(m, y -> bind(g(y), h))",
                                   bind(m, lambda y: bind(bind(y, gn), hn)))),
            *_dual_pairs(x, left, ("((f >> g) >> h)(x)", pipe(pipe(fn, gn), hn)(x))),
            *_dual_pairs(x, left, ("(f >> (g >> h))(x)", pipe(fn, pipe(gn, hn))(x))),
        ]  # fmt: skip

    where = f"for f = {_name(f)}, g = {_name(g)}, h = {_name(h)}"
    _check("associativity", where, x, sides, _tols(x, _ALGEBRA, rtol, atol),
           signed_zero=_is_chain(fn, gn, hn))  # fmt: skip


def check_chain_rule(
    f: Callable[[Any], Any],
    g: Callable[[Any], Any],
    x: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Check ``D(f >> g)(x) == Dg(f(x)) . Df(x)``, forward and reverse.

    The composite is linearised once; ``f`` at ``x`` and ``g`` at ``f(x)`` separately.
    Both sides are applied to a random tangent (``d @ t``) and pulled back from a random
    cotangent (``u @ d``).

    Args:
        f: the inner function.
        g: the outer function.
        x: the point.
        rtol: relative tolerance.
        atol: absolute tolerance.

    Raises:
        AssertionError: when the composite's derivative is not the composition.

    Examples:
        >>> import fad
        >>> from fad import laws
        >>> laws.check_chain_rule(fad.sin, fad.exp, 0.5)

    See also:
        check_associativity, check_finite_differences
    """
    fn, gn = _fn(f), _fn(g)

    def sides(x: Any) -> list[_Pair]:
        y, df = linearize(fn, x)
        z, dg = linearize(gn, y)
        w, dfg = linearize(pipe(fn, gn), x)
        t = _random_like(x, 1)
        u = _random_like(w, 2)
        return [
            _Pair("(f >> g)(x)", w, "g(f(x))", z),
            _Pair("D(f >> g)(x) @ t", dfg @ t, "Dg(f(x)) @ (Df(x) @ t)", dg @ (df @ t),
                  f"t = {_fmt(t)}"),
            _Pair("u @ D(f >> g)(x)", u @ dfg, "(u @ Dg(f(x))) @ Df(x)", (u @ dg) @ df,
                  f"u = {_fmt(u)}"),
        ]  # fmt: skip

    _check("chain rule", f"for f = {_name(f)}, g = {_name(g)}", x, sides,
           _tols(x, _ALGEBRA, rtol, atol), signed_zero=_is_chain(fn, gn))  # fmt: skip


def check_jvp_vjp(
    f: Callable[[Any], Any],
    x: Any,
    t: Any = None,
    ct: Any = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Check that reverse mode is the transpose of forward mode: ``<u, J t> == <Jᵀ u, t>``.

    ``J t`` comes from ``fad.jvp`` and ``Jᵀ u`` from ``fad.vjp``'s pullback. The two inner
    products are compared relative to the sum of the magnitudes of their terms. Where
    a derivative is nan or inf there is nothing to compare (``check_modes_agree``
    compares those patterns).

    Args:
        f: the function.
        x: the point.
        t: a tangent shaped like ``x`` (random when ``None``).
        ct: a cotangent shaped like ``f(x)`` (random when ``None``).
        rtol: relative tolerance.
        atol: absolute tolerance.

    Raises:
        AssertionError: when the pullback is not the transpose of the pushforward.

    Examples:
        >>> import fad
        >>> import numpy as np
        >>> from fad import laws
        >>> laws.check_jvp_vjp(fad.sin >> fad.exp, np.array([0.5, 1.0]))

    See also:
        check_modes_agree
    """
    fn = _fn(f)
    given_t, given_ct = t, ct

    def sides(x: Any) -> list[_Pair]:
        t = _random_like(x, 1) if given_t is None else _like(given_t, x)
        y, jt = jvp(fn, x, t)
        u = _random_like(y, 2) if given_ct is None else _like(given_ct, y)
        (uj,) = vjp(fn, x)[1](u)
        a, b = _vec(u) * _vec(jt), _vec(uj) * _vec(t)
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            return []
        scale = float(np.sum(np.abs(a)) + np.sum(np.abs(b)))
        extra = (f"t = {_fmt(t)}\n  u = {_fmt(u)}\n  J t (forward)   = {_fmt(jt)}"
                 f"\n  u @ J (reverse) = {_fmt(uj)}")  # fmt: skip
        return [_Pair("<u, J t>", float(np.sum(a)), "<u @ J, t>", float(np.sum(b)), extra,
                      scale=scale)]  # fmt: skip

    _check("jvp/vjp", f"(reverse mode is not the transpose of forward mode) for f = {_name(f)}",
           x, sides, _tols(x, _ALGEBRA, rtol, atol))  # fmt: skip


def check_finite_differences(
    f: Callable[[Any], Any],
    x: Any,
    order: int = 1,
    *,
    t: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Check the derivative against finite differences of the values, in float64.

    ``order=1`` compares the forward derivative ``J t`` with central differences of
    ``f`` along ``t`` (Ridders' extrapolation, its error estimate added to the
    tolerance), and reverse mode through ``<u J, t>``. ``order=2`` checks
    Hessian-vector products of ``s(x) = <u, f(x)>``: ``fad.hvp`` against finite
    differences of ``fad.grad(s)``, and ``<w, H t>`` against mixed second differences of
    the values alone, so a wrong first-order rule is caught at order 2 too.

    Args:
        f: the function.
        x: the point, inside the function's domain and away from kinks.
        order: 1 (Jacobian-vector products) or 2 (Hessian-vector products).
        t: the direction (random when ``None``).
        rtol: relative tolerance.
        atol: absolute tolerance.

    Raises:
        AssertionError: naming the mode that disagrees with the finite differences.
        ValueError: when ``f`` is not finite at ``x``, so there is nothing to compare.

    Examples:
        >>> import fad
        >>> from fad import laws
        >>> laws.check_finite_differences(fad.tanh >> fad.square, 0.3)
        >>> laws.check_finite_differences(fad.tanh >> fad.square, 0.3, order=2)

    See also:
        check_modes_agree, check_jvp_vjp
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    fn = _fn(f)
    r, a = _tols(x, _FD if order == 1 else _FD2, rtol, atol)
    t = _random_like(x, 1) if t is None else _like(t, x)
    with np.errstate(all="ignore"):
        if order == 1:
            _fd_first(f, fn, x, t, r, a)
        else:
            _fd_second(f, fn, x, t, r, a)


def check_modes_agree(
    f: Callable[[Any], Any],
    x: Any,
    order: int = 1,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Check that forward and reverse mode give the same derivative, special values too.

    ``order=1`` compares Jacobian entries computed by forward mode (``d @ e_j``) and by
    reverse mode (``e_i @ d``): all of them for small functions, a fixed sample for large
    ones. nan and inf must appear in the same entries (inf with the same sign; nan in
    one mode against an inf in the other is ∞ - ∞ summed in two orders, and agrees;
    outputs whose value is inf or nan have no derivative to agree on), and the
    tangents' dtypes must be the output's and the cotangents' the input's. Zeros must
    have the same sign where that sign is determined: in the derivative of one scalar
    with respect to another through a chain of primitives, a product of local
    derivatives (``fad.cos`` at 0 is -0.0 both ways). Off the diagonal a zero's sign only
    records which structural zero was multiplied by what, and after a sum
    ``0 * (a + b)`` and ``0 * a + 0 * b`` legitimately differ.

    ``order=2`` compares Hessian-vector products of ``s(x) = <u, f(x)>`` by
    forward-over-reverse (``fad.hvp``), reverse-over-forward and reverse-over-reverse,
    and ``<w, H t>`` by forward-over-forward.

    Args:
        f: the function.
        x: the point (kinks and domain edges are fair game here).
        order: 1 or 2.
        rtol: relative tolerance.
        atol: absolute tolerance.

    Raises:
        AssertionError: naming the entry where the modes disagree.

    Examples:
        >>> import fad
        >>> from fad import laws
        >>> laws.check_modes_agree(fad.cos, 0.0)
        >>> laws.check_modes_agree(fad.sin >> fad.exp, 0.5, order=2)

    See also:
        check_jvp_vjp, check_finite_differences
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    fn = _fn(f)
    tols = _tols(x, _ALGEBRA, rtol, atol)
    if order == 1:
        _check("modes agree", f"(forward and reverse mode disagree) for f = {_name(f)}", x,
               lambda x: _modes_first(fn, x), tols)  # fmt: skip
    else:
        _check("modes agree (order 2)", f"for f = {_name(f)}", x,
               lambda x: _modes_second(fn, x), tols)  # fmt: skip


# ------------------------------------------------------ comparing the sides of a law


@dataclass
class _Pair:
    """Two sides of a law to compare entry by entry, with how to describe them."""

    left: str
    lv: Any
    right: str
    rv: Any
    extra: str = ""
    scale: float | None = None  # an inner product: compare relative to its terms
    signed: Mask | bool | None = None  # where zeros must agree in sign (None: the law's)
    exact: bool = False  # dtypes and such: no tolerance, no rounding excuse
    # The sides sum the same infinite terms in different orders: ∞ - ∞ is nan one way
    # and ±∞ the other (forward's a·(b - c), reverse's a·b - a·c), so nan against an
    # infinity agrees; against a finite number it does not.
    reordered: bool = False
    # Entries not compared: derivatives of outputs whose value is inf or nan, where the
    # two orders can differ more (forward's (a - b)·∞ with a - b = 0 is 0 by the 0·∞
    # convention, reverse's a·∞ - b·∞ is nan) and no answer is the derivative.
    skip: Mask | None = None


def _check(
    law: str,
    where: str,
    x: Any,
    sides: Callable[[Any], list[_Pair]],
    tols: tuple[float, float],
    *,
    signed_zero: bool = False,
) -> None:
    """Compare every pair of sides at ``x``; excuse differences that are rounding.

    A difference beyond the tolerance is rounding when the same comparison at the
    other precision (float32 for a float64 point, float64 for a float32 one) scales it
    by ``_ROUNDING_RATIO`` or more in the direction rounding would.
    """
    with np.errstate(all="ignore"):
        pairs = sides(x)
    other: list[_Pair] | None = None
    for k, pair in enumerate(pairs):
        excused: set[int] = set()
        while (problem := _problem(pair, tols, signed_zero, excused)) is not None:
            message, index, rounding = problem
            if rounding:
                if other is None:
                    other = _at_other_precision(x, sides)
                if other and k < len(other) and _is_rounding(pair, other[k], index, _bits(x)):
                    excused.add(index)
                    continue
            raise AssertionError(
                f"{law} fails {where} at x = {_fmt(x)}"
                + (f"\n  {pair.extra}" if pair.extra else "")
                + f"\n  {pair.left} = {_fmt(pair.lv)}\n  {pair.right} = {_fmt(pair.rv)}"
                + f"\n  {message}"
            )


def _at_other_precision(x: Any, sides: Callable[[Any], list[_Pair]]) -> list[_Pair] | None:
    try:
        with np.errstate(all="ignore"):
            return sides(_cast(x, np.float32 if _bits(x) == 64 else np.float64))
    except Exception:  # the other precision may overflow or fail: then no excuse
        return None


def _is_rounding(pair: _Pair, alt: _Pair, index: int, bits: int) -> bool:
    try:
        d = abs(float(_vec(pair.lv)[index] - _vec(pair.rv)[index]))
        d_alt = abs(float(_vec(alt.lv)[index] - _vec(alt.rv)[index]))
    except (AssertionError, IndexError, ValueError):
        return False
    if not (np.isfinite(d) and np.isfinite(d_alt)):
        return False
    if bits == 64:  # float32 rounding must be much larger
        return d_alt >= _ROUNDING_RATIO * d
    return d_alt * _ROUNDING_RATIO <= d  # float64 rounding must be much smaller


def _problem(
    pair: _Pair, tols: tuple[float, float], signed_zero: bool, excused: set[int]
) -> tuple[str, int, bool] | None:
    """The first entry, not excused, where the sides differ: (message, index, only size?)."""
    for side, v in ((pair.left, pair.lv), (pair.right, pair.rv)):
        if any(isinstance(leaf, Dual) for leaf in _leaves(v)):
            return f"{side} should be a plain value but is a Dual: {v!r}", 0, False
    if pair.exact:
        return None if pair.lv == pair.rv else ("they differ", 0, False)
    lt, rt = flatten(pair.lv)[1], flatten(pair.rv)[1]
    if lt != rt or _size(pair.lv) != _size(pair.rv):
        return "they have different structures or sizes", 0, False
    p, q = _vec(pair.lv), _vec(pair.rv)
    signed = pair.signed if pair.signed is not None else signed_zero
    sig = np.asarray(signed, dtype=bool)
    signs = sig.ravel() if sig.size == p.size else np.broadcast_to(sig, p.shape)
    r, a = tols

    def at(k: int) -> str:
        return f" (entry {k} of {p.size})" if p.size > 1 else ""

    skip = None if pair.skip is None else np.asarray(pair.skip, dtype=bool).ravel()
    for k in map(int, np.flatnonzero((p != q) | (np.signbit(p) != np.signbit(q)))):
        if k in excused or (skip is not None and skip[k]):
            continue
        pk, qk = float(p[k]), float(q[k])
        if np.isnan(pk) or np.isnan(qk):
            if np.isnan(pk) and np.isnan(qk):
                continue
            if pair.reordered and (np.isinf(pk) or np.isinf(qk)):
                continue
            return f"nan on one side only{at(k)}", k, False
        if np.isinf(pk) or np.isinf(qk):
            return f"inf on one side only, or of opposite signs{at(k)}", k, False
        if pk == 0 and qk == 0:
            if signs[k]:
                return f"zeros of opposite sign{at(k)}", k, False
            continue
        err = abs(pk - qk)
        scale = max(abs(pk), abs(qk)) if pair.scale is None else pair.scale
        tol = a + r * scale
        if not err <= tol:
            msg = f"|difference| = {err:.3g} > tolerance {tol:.3g}{at(k)} (rtol={r:g}, atol={a:g})"
            return msg, k, True
    return None


def _dual_pairs(x: Any, lhs: tuple[str, Any], rhs: tuple[str, Any]) -> list[_Pair]:
    """The pairs that say two ``Dual`` values agree: values, dtypes, ``d @ t``, ``u @ d``."""
    (ln, lm), (rn, rm) = lhs, rhs
    for side, m in ((ln, lm), (rn, rm)):
        if not isinstance(m, Dual):
            return [_Pair(side, m, "a Dual", "-", f"{side} is not a Dual", exact=True)]
    ldt = [str(np.result_type(v)) for v in _leaves(lm.value)]
    rdt = [str(np.result_type(v)) for v in _leaves(rm.value)]
    t = _random_like(x, 1)
    u = _random_like(rm.value, 2)
    return [
        _Pair(f"{ln}.value", lm.value, f"{rn}.value", rm.value),
        _Pair(f"{ln}.value's dtypes", ldt, f"{rn}.value's dtypes", rdt, exact=True),
        _Pair(f"{ln}.deriv @ t", lm.deriv @ t, f"{rn}.deriv @ t", rm.deriv @ t,
              f"t = {_fmt(t)}"),
        _Pair(f"u @ {ln}.deriv", u @ lm.deriv, f"u @ {rn}.deriv", u @ rm.deriv,
              f"u = {_fmt(u)}"),
    ]  # fmt: skip


# ------------------------------------------------------------------- modes agree


def _modes_first(fn: Fn[Any, Any], x: Any) -> list[_Pair]:
    y, d = linearize(fn, x)
    n_in, n_out = _size(x), _size(y)
    cols, rows = _sample(n_in), _sample(n_out)
    fwd_t = [d @ _basis(x, j) for j in cols]
    rev_t = [_basis(y, i) @ d for i in rows]
    fwd = np.array([[_vec(v)[i] for v in fwd_t] for i in rows]).reshape(len(rows), len(cols))
    rev = np.array([[_vec(v)[j] for j in cols] for v in rev_t]).reshape(len(rows), len(cols))
    # Signed zeros where determined: see check_modes_agree's docstring.
    chain = _is_chain(fn)
    diagonal = fn.elementwise and len(_leaves(x)) == 1 and n_in == n_out
    signed = np.array([[chain and (n_in == n_out == 1 or (diagonal and i == j)) for j in cols]
                       for i in rows], dtype=bool).reshape(fwd.shape)  # fmt: skip
    entries = f"Jacobian entries [outputs {rows}, inputs {cols}]"
    with np.errstate(invalid="ignore"):
        blown = ~np.isfinite(_vec(y)[rows] if rows else np.zeros(0))
    skip = np.repeat(blown, len(cols)).reshape(fwd.shape) if blown.any() else None
    dts = (
        _dtypes(fwd_t[:1]) + _dtypes(rev_t[:1]),
        (_dtypes([y]) if cols else []) + (_dtypes([x]) if rows else []),
    )
    return [
        _Pair("forward (d @ e_j)[i]", fwd, "reverse (e_i @ d)[j]", rev, entries, signed=signed,
              reordered=True, skip=skip),
        _Pair("dtypes of forward tangents and reverse cotangents", dts[0],
              "dtypes of the output and the input", dts[1], exact=True),
    ]  # fmt: skip


def _modes_second(fn: Fn[Any, Any], x: Any) -> list[_Pair]:
    with np.errstate(invalid="ignore"):
        if not np.all(np.isfinite(_vec(fn.value(x)))):
            return []  # s(x) is not finite: no second derivative to agree on (see skip)
    t = _random_like(x, 1)
    w = _random_like(x, 3)
    u = _random_like(fn.value(x), 2)
    s = _scalarize(fn, u)

    def rev_over_fwd(z: Any) -> Any:
        return jvp(s, z, t)[1]

    def rev_over_rev(z: Any) -> Any:
        return _inner(grad(s)(z), t)

    fr = hvp(s, x, t)
    ff = jvp(rev_over_fwd, x, w)[1]
    wfr = _vec(w) * _vec(fr)
    extra = f"s(x) = <u, f(x)>, u = {_fmt(u)}, t = {_fmt(t)}, w = {_fmt(w)}"
    return [
        _Pair("forward over reverse H t", fr, "reverse over forward H t",
              grad(rev_over_fwd)(x), extra, reordered=True),
        _Pair("forward over reverse H t", fr, "reverse over reverse H t",
              grad(rev_over_rev)(x), extra, reordered=True),
        _Pair("<w, forward over reverse H t>", float(np.sum(wfr)),
              "forward over forward <w, H t>", ff, extra,
              scale=float(np.sum(np.abs(wfr))) + abs(float(_vec(ff).sum())), reordered=True),
    ]  # fmt: skip


def _sample(n: int) -> list[int]:
    """All indices up to _MAX_BASIS, else a fixed, spread-out sample."""
    if n <= _MAX_BASIS:
        return list(range(n))
    rng = np.random.default_rng(n)
    return sorted({0, n - 1, *map(int, rng.choice(n, _MAX_BASIS - 2, replace=False))})


def _dtypes(trees: list[Any]) -> list[str]:
    return [str(np.result_type(v)) for tree in trees for v in _leaves(tree)]


# --------------------------------------------------------------- finite differences


def _fd_first(f: Any, fn: Fn[Any, Any], x: Any, t: Any, r: float, a: float) -> None:
    x64 = _cast(x, np.float64)
    y0 = _vec(fn.value(x64))
    if not np.any(np.isfinite(y0)) and y0.size:
        raise ValueError(f"{_name(f)} is not finite at x = {_fmt(x)}: nothing to compare")

    @_or_nan(y0.size)
    def along(s: float) -> Vec:
        return _vec(fn.value(_axpy(x64, s, t)))

    fd, err, curv = _directional(along, y0, x, t)
    y = fn.value(x)
    checked = np.isfinite(y0) & np.isfinite(fd)

    def forward(x: Any, t: Any) -> Vec:
        return _vec(linearize(fn, x)[1] @ t)

    ad = forward(x, t)
    tol = a + r * (np.abs(fd) + curv) + 4.0 * err
    bad = checked & ~(np.abs(ad - fd) <= tol)
    if np.any(bad) and _bits(x) == 32:
        bad &= ~_float32_rounding(forward, x, t, ad, fd, tol)
    if np.any(bad):
        raise AssertionError(
            _header("finite differences", "the derivative of", f, x, "is wrong")
            + f"\n  direction t = {_fmt(t)}"
            + _worst(ad, fd, tol, bad, "forward J t", "finite differences")
            + f"\n  (rtol={r:g}, atol={a:g}; finite-difference error estimate "
            + f"{float(err[bad].max()):.3g})"
        )
    # Reverse mode against the same differences: <u J, t> == <u, J t>, over the entries
    # where the differences are defined.
    u = np.where(checked, _vec(_random_like(y, 2)), 0.0)

    def reverse(x: Any, t: Any) -> Vec:
        y, d = linearize(fn, x)
        return np.array([np.sum(_vec(_unvec(u, y) @ d) * _vec(t))])

    lhs = reverse(x, t)
    rhs = np.array([np.sum(u * np.where(checked, fd, 0.0))])
    scale = float(np.sum(np.abs(u) * np.where(checked, np.abs(fd) + curv, 0.0)))
    tol1 = a + r * scale + 4.0 * float(np.sum(np.abs(u) * np.where(checked, err, 0.0)))
    wrong = not abs(lhs[0] - rhs[0]) <= tol1
    if wrong and _bits(x) == 32:
        wrong = not _float32_rounding(reverse, x, t, lhs, rhs, np.array([tol1]))[0]
    if wrong:
        raise AssertionError(
            _header("finite differences", "reverse mode of", f, x, "is wrong")
            + f"\n  t = {_fmt(t)}\n  u = {_fmt(_unvec(u, y))}"
            + f"\n  <u @ J, t> (reverse)          = {float(lhs[0])!r}"
            + f"\n  <u, J t> (finite differences) = {float(rhs[0])!r}"
            + f"\n  |difference| = {abs(lhs[0] - rhs[0]):.3g} > tolerance {tol1:.3g}"
            + f" (rtol={r:g}, atol={a:g})"
        )


def _float32_rounding(
    compute: Callable[[Any, Any], Vec], x: Any, t: Any, ad: Vec, fd: Vec, tol: Vec
) -> Mask:
    """Where a float32 derivative's miss of the finite differences is float32 rounding.

    Where terms cancel, a float32 derivative carries rounding far above ``rtol`` times
    its size. Such an entry is excused when the same computation in float64 meets the
    finite differences, and its float32 error ``D`` is erratic: at nearby float32
    points ``D`` changes by as much as it is. A float32-only bug, in contrast, errs
    consistently (the derivative's own change cancels, as both precisions follow it).
    """
    x64, t64 = _cast(x, np.float64), _cast(t, np.float64)
    with np.errstate(all="ignore"):
        ad64 = compute(x64, t64)
        right64 = np.abs(ad64 - fd) <= tol
        if not np.any(right64):
            return right64  # wrong in float64 too: not a matter of rounding
        err = ad - ad64
        spread = np.zeros_like(err)
        for delta in (1e-3, -1e-3, 3e-3, -3e-3):
            xk = _cast(_shifted(x64, delta), np.float32)
            try:
                dk = compute(xk, t) - compute(_cast(xk, np.float64), t64)
            except (ArithmeticError, ValueError):
                continue
            spread = np.fmax(spread, np.abs(dk - err))
    return np.asarray(right64 & (np.abs(err) <= tol + 4.0 * spread))


def _shifted(x: Any, delta: float) -> Any:
    """``x`` moved by ``delta`` times its scale, leaf by leaf (float64)."""
    leaves, tree = flatten(x)
    out = [np.asarray(v, np.float64) + delta * np.maximum(1.0, np.abs(v)) for v in leaves]
    return unflatten(tree, [o[()] for o in out])


def _fd_second(f: Any, fn: Fn[Any, Any], x: Any, t: Any, r: float, a: float) -> None:
    w = _random_like(x, 3)
    x64 = _cast(x, np.float64)
    u = _random_like(fn.value(x), 2)
    s, s64 = _scalarize(fn, u), _scalarize(fn, _cast(u, np.float64))
    h_ad = _vec(hvp(s, x, t))
    if not np.all(np.isfinite(h_ad)):
        raise ValueError(f"the Hessian of {_name(f)} is not finite at x = {_fmt(x)}")
    where = f"\n  s(x) = <u, f(x)> with u = {_fmt(u)}; t = {_fmt(t)}"

    # H t against finite differences of the (float64) gradient along t.
    g0 = _vec(grad(s64)(x64))

    @_or_nan(g0.size)
    def grad_along(step: float) -> Vec:
        return _vec(grad(s64)(_axpy(x64, step, t)))

    fd, err, curv = _directional(grad_along, g0, x, t)
    tol = a + r * (np.abs(fd) + curv) + 4.0 * err
    bad = np.isfinite(fd) & ~(np.abs(h_ad - fd) <= tol)

    def hessian_vector(x: Any, t: Any) -> Vec:
        return _vec(hvp(_scalarize(fn, _like(u, x)), x, t))

    if np.any(bad) and _bits(x) == 32:
        bad &= ~_float32_rounding(hessian_vector, x, t, h_ad, fd, tol)
    if np.any(bad):
        raise AssertionError(
            _header("finite differences (order 2)", "the Hessian-vector product of", f, x,
                    "is wrong") + where
            + _worst(h_ad, fd, tol, bad, "fad.hvp(s, x, t)", "differences of grad(s)")
            + f"\n  (rtol={r:g}, atol={a:g})"
        )  # fmt: skip

    # <w, H t> against mixed second differences of the values alone.
    s_noise = np.zeros(1)

    def mixed(h: float) -> tuple[Vec, Vec]:
        corners = [_s_at(s64, x64, t, w, a_, b_) for a_, b_ in ((h, h), (h, -h), (-h, h), (-h, -h))]
        total = corners[0] - corners[1] - corners[2] + corners[3]
        size = sum(abs(c) for c in corners)
        rounding = _EPS_ROUND * size + 4.0 * float(s_noise[0])
        return np.array([total / (4.0 * h * h)]), np.array([rounding / (4.0 * h * h)])

    h0 = _first_step(mixed, _start_step(x, t, w))
    s_noise = _noise(
        lambda d: np.array([_s_at(s64, x64, t, w, d, d)]),
        np.array([_s_at(s64, x64, t, w, 0.0, 0.0)]),
        h0,
    )
    fd2, err2, _ = _ridders(mixed, h0)
    lhs = float(np.sum(_vec(w) * h_ad))
    rhs = float(fd2[0])
    scale = float(np.sum(np.abs(_vec(w) * h_ad))) + abs(rhs)
    tol2 = a + r * scale + 4.0 * float(err2[0])
    wrong = bool(np.isfinite(rhs)) and not abs(lhs - rhs) <= tol2
    if wrong and _bits(x) == 32:

        def w_hessian_t(x: Any, t: Any) -> Vec:
            return np.array([np.sum(_vec(w) * hessian_vector(x, t))])

        wrong = not _float32_rounding(
            w_hessian_t, x, t, np.array([lhs]), np.array([rhs]), np.array([tol2])
        )[0]
    if wrong:
        raise AssertionError(
            _header("finite differences (order 2)", "the second derivative of", f, x,
                    "is wrong") + where + f"; w = {_fmt(w)}"
            + f"\n  <w, fad.hvp(s, x, t)>                   = {lhs!r}"
            + f"\n  mixed second difference of s along t, w = {rhs!r}"
            + f"\n  |difference| = {abs(lhs - rhs):.3g} > tolerance {tol2:.3g}"
            + f" (rtol={r:g}, atol={a:g})"
        )  # fmt: skip


def _noise(fun: Callable[[float], Vec], f0: Vec, h0: float) -> Vec:
    """How far a computed function's rounding reaches: its jitter between close points.

    Cancellation can make a computation's rounding far more than an ulp of its value
    (``1 - tanh(x)**2`` where ``tanh(x)`` is nearly 1), and finite differences over a
    step ``h`` carry that jitter divided by ``h``. Fourth differences at the smallest
    steps the tables use show it: the smooth part is ``h**4`` times the fourth
    derivative there, small, while rounding of size ``e`` gives up to ``16 e``.
    """
    estimates = []
    for factor in _STARTS[-2:]:
        h = h0 * factor / _CON ** (_NTAB - 1)
        d4 = fun(2 * h) - 4 * fun(h) + 6 * f0 - 4 * fun(-h) + fun(-2 * h)
        estimates.append(np.where(np.isfinite(d4), np.abs(d4) / 6.0, 0.0))
    # The smaller of two spacings 8 times apart: rounding shows alike in both, while
    # the function's own variation, 8**4 times larger at the wider one, is left out.
    return np.asarray(np.fmin(*estimates))


def _s_at(s: Callable[[Any], Any], x: Any, t: Any, w: Any, a: float, b: float) -> float:
    """``s(x + a t + b w)``, nan where that raises (the corner left the domain)."""
    try:
        return float(_vec(s(_axpy(_axpy(x, a, t), b, w))).sum())
    except (ArithmeticError, ValueError):
        return float("nan")


def _or_nan(size: int) -> Callable[[Callable[[float], Vec]], Callable[[float], Vec]]:
    """Make an evaluation off the point return nan instead of raising.

    A step may leave the domain (``sqrt`` of a negative number); what numpy makes nan,
    Python floats can raise (``ZeroDivisionError``). Ridders' method skips nan.
    """

    def wrap(evaluate: Callable[[float], Vec]) -> Callable[[float], Vec]:
        def safe(s: float) -> Vec:
            try:
                return evaluate(s)
            except (ArithmeticError, ValueError):
                return np.full(size, np.nan)

        return safe

    return wrap


def _start_step(x: Any, *dirs: Any) -> float:
    """A first step: moving the point by about a tenth, whatever its size.

    Not scaled by ``x``: a periodic function far from 0 (``sin`` at 100) varies on the
    same scale as near it, and one coordinate near a pole must not inherit a large
    step from another far away. Smaller starting steps follow (``_STARTS``). Not exactly
    a tenth: a round step could land a perturbed point on a kink or a domain edge.
    """
    tmax = max(float(np.max(np.abs(_vec(d)), initial=0.0)) for d in dirs)
    return 0.0937 / tmax if tmax > 0 else 0.0937


def _first_step(diff: Diff, h0: float) -> float:
    """Shrink ``h0`` until ``diff(h0)`` is finite (the point may be near a domain edge)."""
    for _ in range(30):
        if np.all(np.isfinite(diff(h0)[0])):
            break
        h0 /= 4.0
    return h0


def _directional(along: Callable[[float], Vec], y0: Vec, x: Any, t: Any) -> tuple[Vec, Vec, Vec]:
    """The derivative of ``along`` at 0, its error estimate, and a rounding allowance.

    The allowance is ``|d²/ds²| * |x| / |t|``: how much the derivative moves when ``x`` is
    rounded to its precision, per unit of ``rtol``.
    """
    finite0 = np.isfinite(y0)
    noise = np.zeros_like(y0)

    def central(h: float) -> tuple[Vec, Vec]:
        up, down = along(h), along(-h)
        c = np.where(finite0, (up - down) / (2.0 * h), 0.0)
        size = np.abs(up) + np.abs(down) + 2.0 * np.abs(np.where(finite0, y0, 0.0))
        return c, (_EPS_ROUND * size + 2.0 * noise) / (2.0 * h)

    h0 = _first_step(central, _start_step(x, t))
    noise = _noise(along, y0, h0)
    fd, err, h_best = _ridders(central, h0)
    fd = np.where(finite0, fd, np.nan)
    # The second derivative from the table that won each entry, a few steps in.
    second = np.zeros_like(y0)
    for factor in _STARTS:
        hm = h0 * factor / _CON**4
        d2 = np.abs((along(hm) - 2.0 * y0 + along(-hm)) / (hm * hm))
        second = np.where(h_best == h0 * factor, d2, second)
    xscale = max([1.0, *(float(np.max(np.abs(v), initial=0.0)) for v in _leaves64(x))])
    tscale = float(np.max(np.abs(_vec(t)), initial=0.0)) or 1.0
    curv = np.where(np.isfinite(second), second * xscale / tscale, 0.0)
    return fd, err, curv


def _ridders(diff: Diff, h0: float) -> tuple[Vec, Vec, Vec]:
    """Ridders' extrapolation of ``diff(h)`` to ``h = 0``, entry by entry.

    ``diff(h)`` returns a difference quotient, whose error expands in even powers of
    ``h`` (central differences), and a bound on its rounding error. An estimate's error
    is the disagreement of neighbouring extrapolations plus their rounding bound, which
    grows as ``h`` shrinks: otherwise tiny steps, where every difference rounds to the
    same number, would look exact. (Numerical Recipes, 3rd ed., section 5.7.)

    One table can be fooled by a step too large for the point: a pole or a fast
    oscillation nearby, or a flat region reached on both sides (``clip``), which looks
    exact. So tables start at each of ``_STARTS`` times ``h0``, and a table's estimate
    only counts where the next smaller table agrees with it, and so does the best
    counted estimate of the smaller tables (a table with a large error agrees with
    anything, so it cannot vouch alone for a confident one above it). Returns, per entry, the
    counted estimate with the smallest error, that error, and the step its table
    started from; entries never finite come back nan with error inf.
    """
    tables = [_ridders_table(diff, h0 * factor) for factor in _STARTS]
    best = np.full_like(tables[0][0], np.nan)
    err = np.full_like(tables[0][0], np.inf)
    start = np.full_like(tables[0][0], h0)
    # From the smallest steps up: a table counts where it agrees with the next smaller
    # one and that one counts. Two large steps can agree on the wrong regime (both
    # reach the flat part beyond a clip); the chain must reach down to steps that see
    # the point's own neighbourhood.
    counts = np.ones(best.shape, dtype=bool)
    for k in reversed(range(len(tables))):
        est, e = tables[k]
        if k + 1 < len(tables):
            nxt, e_nxt = tables[k + 1]
            counts = counts & _agree(est, e, nxt, e_nxt)
            # ...and with the best estimate of the smaller steps: a table whose error
            # is large agrees with anything, so the chain alone would let a wrong,
            # confident estimate at large steps through (a fast oscillation).
            counts = counts & (~np.isfinite(err) | _agree(est, e, best, err))
        better = counts & (e < err)
        best = np.where(better, est, best)
        err = np.where(better, e, err)
        start = np.where(better, h0 * _STARTS[k], start)
    return best, err, start


def _agree(a: Vec, ea: Vec, b: Vec, eb: Vec) -> Mask:
    """Whether two estimates with errors ``ea`` and ``eb`` are consistent."""
    slack = 2.0 * (ea + eb) + 1e-9 * np.maximum(np.abs(a), np.abs(b))
    return np.asarray(np.abs(a - b) <= slack)


def _ridders_table(diff: Diff, h: float) -> tuple[Vec, Vec]:
    """One Ridders table from step ``h`` down: the best estimate and its error, per entry.

    Only the last two rows compete: an extrapolation there has its table's smallest
    steps in it. (Three equal differences at the largest steps, all reaching the flat
    part beyond a clip, would otherwise win with an error of exactly zero.)
    """
    con2 = _CON * _CON
    best: Vec | None = None
    err: Vec | None = None
    prev: list[tuple[Vec, Vec]] = []
    for i in range(_NTAB):
        row = [diff(h)]
        if best is None or err is None:
            best = np.full_like(row[0][0], np.nan)
            err = np.full_like(row[0][0], np.inf)
        fac = con2
        for j in range(1, len(prev) + 1):
            (a_row, n_row), (a_prev, n_prev) = row[j - 1], prev[j - 1]
            aj = (a_row * fac - a_prev) / (fac - 1.0)
            nj = (n_row * fac + n_prev) / (fac - 1.0)
            fac *= con2
            errt = np.maximum(np.abs(aj - a_row), np.abs(aj - a_prev)) + nj
            better = (errt < err) & (i >= _NTAB - 2)
            best = np.where(better, aj, best)
            err = np.where(better, errt, err)
            row.append((aj, nj))
        prev = row
        h /= _CON
    assert best is not None and err is not None
    return best, err


# ------------------------------------------------------------------------ helpers


def _is_chain(*fs: Fn[Any, Any]) -> bool:
    """Whether every function is a chain of elementwise primitives (no sums inside)."""
    return all(isinstance(step, Elementwise) for f in fs for step in f.steps)


def _fn(f: Any) -> Fn[Any, Any]:
    if not callable(f):
        raise TypeError(f"expected an Fn or a function, got {type(f).__name__} {f!r}")
    return as_fn(f)


def _name(f: Any) -> str:
    if isinstance(f, Fn):
        return repr(f)
    return getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f)


def _leaves(x: Any) -> list[Any]:
    return flatten(x)[0]


def _bits(x: Any) -> int:
    """The working precision of a point: 32 if any leaf is float32 or narrower."""
    for v in _leaves(x):
        dt = getattr(v, "dtype", None)
        if dt is not None and dt.kind == "f" and dt.itemsize <= 4:
            return 32
    return 64


def _tols(
    x: Any, table: dict[int, tuple[float, float]], rtol: float | None, atol: float | None
) -> tuple[float, float]:
    r, a = table[_bits(x)]
    return (r if rtol is None else rtol), (a if atol is None else atol)


def _cast(x: Any, dtype: Any) -> Any:
    """``x`` with every leaf in ``dtype``; a Python float stays one for float64."""
    leaves, tree = flatten(x)
    dt = np.dtype(dtype)
    out = [
        v if type(v) is float and dt == np.float64 else np.asarray(v, dtype=dt)[()] for v in leaves
    ]
    return unflatten(tree, out)


def _like(v: Any, x: Any) -> Any:
    """A given direction in the precision of the point ``x`` (for the other-precision pass)."""
    return _cast(v, np.float32 if _bits(x) == 32 else np.float64)


def _leaves64(x: Any) -> list[Vec]:
    return [np.asarray(v, np.float64) for v in _leaves(x)]


def _vec(x: Any) -> Vec:
    """All leaves of a tree, raveled into one float64 vector."""
    leaves = _leaves(x)
    if any(isinstance(v, Dual) for v in leaves):
        raise AssertionError(f"expected plain values, got a Dual: {x!r}")
    if not leaves:
        return np.zeros(0)
    return np.concatenate([np.ravel(_real(v)) for v in leaves])


def _real(v: Any) -> Vec:
    """A leaf as float64; a complex number (a real function has none) becomes nan."""
    a = np.asarray(v)
    if a.dtype.kind == "c":
        return np.where(a.imag == 0, a.real, np.nan)
    return np.asarray(a, dtype=np.float64)


def _unvec(v: Vec, like: Any) -> Any:
    """A tree shaped and typed like ``like`` from a flat vector (inverse of ``_vec``)."""
    leaves, tree = flatten(like)
    out: list[Any] = []
    k = 0
    for leaf in leaves:
        n = int(np.size(leaf))
        part = v[k : k + n]
        k += n
        if type(leaf) is float:
            out.append(float(part[0]))
        else:
            out.append(part.astype(_float_dtype(leaf)).reshape(np.shape(leaf))[()])
    return unflatten(tree, out)


def _float_dtype(v: Any) -> np.dtype[Any]:
    dt = np.result_type(v)
    return dt if dt.kind == "f" else np.dtype(np.float64)


def _size(x: Any) -> int:
    return sum(int(np.size(v)) for v in _leaves(x))


def _axpy(x: Any, s: float, t: Any) -> Any:
    """``x + s t`` leaf by leaf, in float64."""
    xs, tree = flatten(x)
    ts = _leaves(t)
    out = []
    for v, d in zip(xs, ts, strict=True):
        z = np.asarray(v, np.float64) + s * np.asarray(d, np.float64)
        out.append(float(z) if type(v) is float else z[()])
    return unflatten(tree, out)


def _random_like(x: Any, seed: int) -> Any:
    """A tree shaped and typed like ``x`` with standard normal entries (reproducible).

    Fixed seeds keep a check deterministic, which hypothesis needs to replay a failure.
    """
    leaves = _leaves(x)
    rng = np.random.default_rng(seed)
    return _unvec(rng.standard_normal(_size(x)), x) if leaves else x


def _basis(x: Any, k: int) -> Any:
    """The ``k``-th standard basis vector in the structure and dtypes of ``x``."""
    e = np.zeros(_size(x))
    e[k] = 1.0
    return _unvec(e, x)


def _inner(a: Any, b: Any) -> Any:
    """``<a, b>`` summed over all leaves; ``a`` may hold ``Dual`` values (pointed)."""
    total: Any = 0.0
    for p, q in zip(_leaves(a), _leaves(b), strict=True):
        total = total + np.sum(p * q)
    return total


def _scalarize(fn: Fn[Any, Any], u: Any) -> Callable[[Any], Any]:
    """``x -> <u, f(x)>``: a scalar function whose Hessian is ``sum_i u_i H_i``."""

    def s(x: Any) -> Any:
        plain = not any(isinstance(v, Dual) for v in _leaves(x))
        return _inner(fn.value(x) if plain else fn(x), u)

    return s


def _fmt(v: Any) -> str:
    """A compact rendering of a number, array or tree, with its dtype unless float64."""
    leaves, tree = flatten(v)
    if tree.is_leaf:
        if isinstance(v, Dual | str):
            return repr(v)
        a = np.asarray(v)
        if a.dtype.kind not in "fiub":
            return repr(v)
        if a.ndim == 0:
            s = repr(float(a)) if a.dtype.kind == "f" else repr(v)
            return s if a.dtype == np.float64 or type(v) is float else f"{s} ({a.dtype})"
        body = np.array2string(a, precision=8, threshold=12, edgeitems=3, separator=", ")
        return f"{body} ({a.dtype}, shape {a.shape})" if a.dtype != np.float64 else body
    return repr(unflatten(tree, [_Raw(_fmt(leaf)) for leaf in leaves]))


class _Raw:
    __slots__ = ("s",)

    def __init__(self, s: str) -> None:
        self.s = s

    def __repr__(self) -> str:
        return self.s


def _header(law: str, what: str, f: Any, x: Any, tail: str = "") -> str:
    tail = f" {tail}" if tail else ""
    return f"{law}: {what} {_name(f)}{tail} at x = {_fmt(x)}"


def _worst(ad: Vec, fd: Vec, tol: Vec, bad: Mask, ad_name: str, fd_name: str) -> str:
    idx = np.flatnonzero(bad)
    worst = int(idx[np.argmax(np.abs(ad - fd)[idx] / np.maximum(tol[idx], 1e-300))])
    where = f" [entry {worst} of {ad.size}]" if ad.size > 1 else ""
    many = f"; {idx.size} of {ad.size} entries wrong" if ad.size > 1 else ""
    return (
        f"\n  {ad_name:<24}= {float(ad[worst])!r}{where}"
        f"\n  {fd_name:<24}= {float(fd[worst])!r}"
        f"\n  |difference| = {abs(ad[worst] - fd[worst]):.3g} > tolerance {tol[worst]:.3g}{many}"
    )
