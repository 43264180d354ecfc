"""The error function for numpy arrays, without scipy.

The kernel is W. J. Cody's rational Chebyshev approximation, in the form of his
SPECFUN routine ``CALERF`` (netlib.org/specfun/erf):

    W. J. Cody, "Rational Chebyshev approximations for the error function",
    Mathematics of Computation 23 (1969), 631-637.

``erf`` is approximated directly for ``|x| <= 0.46875``; beyond that ``erfc`` is
approximated as ``exp(-x**2)`` times a rational function (in ``|x|`` up to 4, in
``1 / x**2`` after), and ``erf = 1 - erfc``. Each region is evaluated on just the
elements that fall in it, so no element passes through a formula outside its range.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["erf"]

Array = NDArray[np.floating[Any]]
Num = float | Array

# Cody's coefficients, to the 18 digits he published; Python rounds each to a double.
# A, B: erf(x) = x * A(x**2) / B(x**2) for |x| <= 0.46875.
_A: Final = (
    3.16112374387056560e00,
    1.13864154151050156e02,
    3.77485237685302021e02,
    3.20937758913846947e03,
    1.85777706184603153e-1,
)
_B: Final = (
    2.36012909523441209e01,
    2.44024637934444173e02,
    1.28261652607737228e03,
    2.84423683343917062e03,
)
# C, D: erfc(y) = exp(-y**2) * C(y) / D(y) for 0.46875 < y <= 4.
_C: Final = (
    5.64188496988670089e-1,
    8.88314979438837594e00,
    6.61191906371416295e01,
    2.98635138197400131e02,
    8.81952221241769090e02,
    1.71204761263407058e03,
    2.05107837782607147e03,
    1.23033935479799725e03,
    2.15311535474403846e-8,
)
_D: Final = (
    1.57449261107098347e01,
    1.17693950891312499e02,
    5.37181101862009858e02,
    1.62138957456669019e03,
    3.29079923573345963e03,
    4.36261909014324716e03,
    3.43936767414372164e03,
    1.23033935480374942e03,
)
# P, Q: erfc(y) = exp(-y**2) / y * (1/sqrt(pi) - z * P(z) / Q(z)), z = 1 / y**2, y > 4.
_P: Final = (
    3.05326634961232344e-1,
    3.60344899949804439e-1,
    1.25781726111229246e-1,
    1.60837851487422766e-2,
    6.58749161529837803e-4,
    1.63153871373020978e-2,
)
_Q: Final = (
    2.56852019228982242e00,
    1.87295284992346047e00,
    5.27905102951428412e-1,
    6.05183413124413191e-2,
    2.33520497626869185e-3,
)
_ONE_OVER_SQRT_PI: Final = 5.6418958354775628695e-1

# Cody's switch from erf's own expansion to 1 - erfc.
_THRESH: Final = 0.46875
# erfc(6) < 2.2e-17, under half an ulp of 1.0, so erf(x) rounds to +-1 for |x| >= 6;
# stopping here also keeps 1 / x**2 and exp(-x**2) far from underflow.
_XBIG: Final = 6.0
# exp(-(k / 16)**2) for the k = trunc(16 |x|) that reach _exp_minus_square.
_EXP_MINUS_SIXTEENTHS_SQUARED: Final = np.exp(-np.square(np.arange(16 * int(_XBIG)) / 16.0))
# Elements per block: big enough to amortise numpy's per-call cost, small enough that
# a block's temporaries stay in cache (fastest of 2**11, 2**13, 2**15, 2**17 and one
# block of 10**6, timed on 10**6 points).
_BLOCK: Final = 32768


def erf(x: Num) -> Num:
    """The error function, ``2 / sqrt(pi)`` times the integral of ``exp(-t**2)`` on [0, x].

    A Python float gives a Python float, from ``math.erf``. An array gives a new array of
    the same shape and dtype (float32 stays float32; the arithmetic is float64, cast
    back), a numpy scalar a numpy scalar of its type; the input is never written to.
    ``erf(+-inf)`` is ``+-1``, ``erf(-0.0)`` is ``-0.0``, nan stays nan, and no input
    raises a numpy floating-point warning.

    Against ``math.erf`` on float64 the relative error is below 7e-16 wherever the
    result is a normal float, and under 1e-323 absolute where it is subnormal: measured
    on 6 * 10**7 points, uniform on [-7, 7], log-uniform in ``|x|`` from 1e-300 to 10,
    and dense around the region boundaries 0.46875, 4 and 6. Float32 results matched
    ``math.erf`` rounded to float32 on all of 10**6 points.

    Args:
        x: A float, or a float64 or float32 array of any shape.

    Returns:
        ``erf(x)``, of the same type, shape and dtype as ``x``.

    Examples:
        >>> print(erf(0.5))
        0.5204998778130465
        >>> print(erf(np.array([-np.inf, 0.0, 1.0])))
        [-1.          0.          0.84270079]

    See also:
        math.erf
    """
    if isinstance(x, np.ndarray | np.generic):
        a = np.asarray(x)
        dtype = a.dtype if a.dtype.kind == "f" else np.dtype(np.float64)
        # astype copies, so the blocks below may overwrite this fresh float64 buffer.
        flat = a.astype(np.float64).ravel()
        # Underflow is no error here: for tiny x, x**2, x * 2/sqrt(pi) and its cast to
        # float32 round to zero or a subnormal, as in math.erf. Nothing can overflow.
        with np.errstate(under="ignore"):
            # Blocks, not one pass: on 10**6 points a single pass's temporaries are fresh
            # pages from the OS on every call, and faulting them in took as long as the
            # arithmetic; a block's temporaries are reused and stay in cache.
            for start in range(0, flat.size, _BLOCK):
                _erf_block(flat[start : start + _BLOCK])
            y = flat.reshape(a.shape).astype(dtype, copy=False)
        return y[()] if isinstance(x, np.generic) else y
    return math.erf(x)


def _erf_block(x: NDArray[np.float64]) -> None:
    """Overwrite the 1-d float64 array ``x`` with ``erf(x)``, by Cody's ``CALERF``.

    Each region gathers its own elements, so no element meets a formula outside its
    range (no 1 / x**2 at 0, no inf - inf); nan belongs to no region and stays nan.
    """
    y = np.abs(x)
    small = np.flatnonzero(y <= _THRESH)
    middle = np.flatnonzero((y > _THRESH) & (y <= 4.0))
    tail = np.flatnonzero((y > 4.0) & (y < _XBIG))
    huge = np.flatnonzero(y >= _XBIG)

    if small.size:
        yi = y[small]
        # x times the ratio, so the sign of -0.0 survives.
        x[small] *= _rational(yi * yi, _A, _B)

    if middle.size:
        yi = y[middle]
        erfc = _rational(yi, _C, _D)
        erfc *= _exp_minus_square(yi)
        x[middle] = _one_minus(erfc, x[middle])

    if tail.size:
        yi = y[tail]
        z = np.reciprocal(yi * yi)
        erfc = _rational(z, _P, _Q)
        erfc *= -z
        erfc += _ONE_OVER_SQRT_PI
        erfc /= yi
        erfc *= _exp_minus_square(yi)
        x[tail] = _one_minus(erfc, x[tail])

    x[huge] = np.copysign(1.0, x[huge])


def _rational(
    t: NDArray[np.float64], a: tuple[float, ...], b: tuple[float, ...]
) -> NDArray[np.float64]:
    """``a(t) / b(t)`` in Cody's layout: ``a[-1]`` leads ``a``, ``b`` is monic, by Horner.

    ``a`` has one coefficient more than ``b``; ``a[-2]`` and ``b[-1]`` are the constant
    terms, the rest run from the highest power down.
    """
    num = t * a[-1]
    den = t.copy()
    for ai, bi in zip(a[:-2], b[:-1], strict=True):
        num += ai
        num *= t
        den += bi
        den *= t
    num += a[-2]
    den += b[-1]
    num /= den
    return num


def _one_minus(erfc: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``copysign(1 - erfc, x)``, as Cody rounds it: ``(0.5 - erfc) + 0.5``."""
    np.subtract(0.5, erfc, out=erfc)
    erfc += 0.5
    return np.copysign(erfc, x, out=erfc)


def _exp_minus_square(y: NDArray[np.float64]) -> NDArray[np.float64]:
    """``exp(-y**2)`` for ``0 <= y < 6``, without the rounding error of ``y**2``.

    exp magnifies an error in its argument by the argument's size, up to 36 here. Cody's
    remedy: split ``y`` at ``s``, ``y`` cut to a multiple of 1/16, whose square is
    exact, so ``exp(-y**2) = exp(-s**2) * exp(-(y - s) * (y + s))`` with a small second
    argument. ``exp(-s**2)`` takes only 96 values, so it is read from a table.
    """
    k = (y * 16.0).astype(np.intp)
    s = k / 16.0
    rest = y - s
    rest *= y + s
    np.negative(rest, out=rest)
    np.exp(rest, out=rest)
    rest *= _EXP_MINUS_SIXTEENTHS_SQUARED[k]
    return rest
