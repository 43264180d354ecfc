"""Elementwise primitives: each is one declaration, kernel beside derivative rule.

Rules take ``(x, y)`` with ``y`` the output, so ``exp``, ``tanh``, ``sigmoid`` and
``sqrt`` reuse it. Each has a ``math`` version for Python floats (the fast path).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._core import UFUNCS
from .._linear import IN_PLACE_MIN
from ._declare import NONZERO, POSITIVE, REALS, Domain, elementwise, interval
from ._erf import erf as _erf_kernel

__all__ = [
    "abs", "cos", "erf", "exp", "expm1", "log", "log1p", "neg", "reciprocal", "relu",
    "sigmoid", "sin", "softplus", "sqrt", "square", "tan", "tanh",
]  # fmt: skip

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _sigmoid(x: Any) -> Any:
    # For x < 0 use e / (1 + e) with e = exp(x): 1 / (1 + exp(-x)) overflows at x = -1000.
    e = np.exp(-np.abs(x))
    y = np.where(np.asarray(x) >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return y[()] if y.ndim == 0 and not isinstance(x, np.ndarray) else y


def _sigmoid_math(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _tanh_slope(x: Any, y: Any) -> Any:
    """1 - y² (``x`` unused), formed in one new array when ``y`` is a large array."""
    c = y * y
    if type(c) is not np.ndarray or c.size < IN_PLACE_MIN:
        return 1.0 - c
    return np.subtract(1.0, c, out=c)


def _sigmoid_slope(x: Any, y: Any) -> Any:
    """y (1 - y) (``x`` unused), formed in one new array when ``y`` is a large array."""
    c = 1.0 - y
    if type(c) is np.ndarray and c.size >= IN_PLACE_MIN:
        return np.multiply(y, c, out=c)
    return y * c


def _softplus(x: Any) -> Any:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never overflows, exact in both tails.
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _softplus_math(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-math.fabs(x)))


exp = elementwise(
    "exp", np.exp, lambda x, y: y, REALS, ufunc=np.exp,
    fast=(math.exp, lambda x, y: y),
    doc="""e ** x; the derivative is the value itself.

    >>> import fad
    >>> fad.derivative(fad.exp)(0.0)
    1.0
    """,
)  # fmt: skip

log = elementwise(
    "log", np.log, lambda x, y: 1.0 / x, POSITIVE, ufunc=np.log, singular=True,
    fast=(math.log, lambda x, y: 1.0 / x),
    doc="""Natural logarithm, for x > 0 (numpy's nan and -inf outside).

    >>> import fad
    >>> fad.derivative(fad.log)(2.0)
    0.5
    """,
)  # fmt: skip

sin = elementwise(
    "sin", np.sin, lambda x, y: np.cos(x), REALS, ufunc=np.sin,
    fast=(math.sin, lambda x, y: math.cos(x)),
    doc="""Sine; the derivative is ``cos``.

    >>> import fad
    >>> fad.derivative(fad.sin)(0.0)
    1.0
    """,
)  # fmt: skip

cos = elementwise(
    "cos", np.cos, lambda x, y: -np.sin(x), REALS, ufunc=np.cos,
    fast=(math.cos, lambda x, y: -math.sin(x)),
    doc="""Cosine; the derivative is ``-sin``.

    >>> import fad
    >>> fad.derivative(fad.cos)(0.0)
    -0.0
    """,
)  # fmt: skip

tan = elementwise(
    "tan", np.tan, lambda x, y: 1.0 + y * y, interval(-math.pi / 2, math.pi / 2), ufunc=np.tan,
    fast=(math.tan, lambda x, y: 1.0 + y * y),
    doc="""Tangent; the derivative is 1 + tan(x)**2. Domain: the principal branch.

    >>> import fad
    >>> fad.derivative(fad.tan)(0.0)
    1.0
    """,
)  # fmt: skip

tanh = elementwise(
    "tanh", np.tanh, _tanh_slope, REALS, ufunc=np.tanh, reads_x=False,
    fast=(math.tanh, lambda x, y: 1.0 - y * y),
    doc="""Hyperbolic tangent; the derivative 1 - tanh(x)**2 reuses the value.

    >>> import fad
    >>> fad.derivative(fad.tanh)(0.0)
    1.0
    """,
)  # fmt: skip

sigmoid = elementwise(
    "sigmoid", _sigmoid, _sigmoid_slope, REALS, reads_x=False,
    fast=(_sigmoid_math, lambda x, y: y * (1.0 - y)),
    doc="""The logistic function 1 / (1 + e**-x), stable for large |x|.

    ``sigmoid(1000.0)`` is 1.0 and ``sigmoid(-1000.0)`` is 0.0, with no overflow.

    >>> import fad
    >>> v, d = fad.sigmoid(0.0)
    >>> print(v, float(d))
    0.5 0.25
    """,
)  # fmt: skip

softplus = elementwise(
    "softplus", _softplus, lambda x, y: sigmoid.steps[0].run(x), REALS,
    fast=(_softplus_math, lambda x, y: _sigmoid_math(x)),
    doc="""log(1 + e**x), stable in both tails; the derivative is ``sigmoid``.

    >>> import fad
    >>> print(fad.softplus.value(-1000.0), fad.softplus.value(1000.0))
    0.0 1000.0
    """,
)  # fmt: skip

relu = elementwise(
    "relu", lambda x: np.maximum(x, 0.0), lambda x, y: np.heaviside(x, 0.0),
    Domain(kinks=(0.0,)),
    fast=(lambda x: max(x, 0.0), lambda x, y: 1.0 if x > 0 else 0.0),
    doc="""max(x, 0). At the kink x = 0 the derivative is 0, as in JAX and PyTorch.

    >>> import fad
    >>> fad.derivative(fad.relu)(0.0)
    0.0
    """,
)  # fmt: skip

abs = elementwise(
    "abs", np.abs, lambda x, y: np.sign(x), Domain(kinks=(0.0,)), ufunc=np.absolute,
    fast=(math.fabs, lambda x, y: math.copysign(1.0, x) if x != 0 else 0.0),
    doc="""|x|. At the kink x = 0 the derivative is 0 (``sign(0)``), as in JAX and PyTorch.

    >>> import fad
    >>> fad.derivative(fad.abs)(-3.0)
    -1.0
    """,
)  # fmt: skip

sqrt = elementwise(
    "sqrt", np.sqrt, lambda x, y: 0.5 / y, POSITIVE, ufunc=np.sqrt, singular=True, reads_x=False,
    fast=(math.sqrt, lambda x, y: 0.5 / y),
    doc="""Square root, for x > 0 (at 0 the derivative is inf, as in numpy).

    >>> import fad
    >>> fad.derivative(fad.sqrt)(4.0)
    0.25
    """,
)  # fmt: skip

square = elementwise(
    "square", np.square, lambda x, y: 2.0 * x, REALS, ufunc=np.square,
    fast=(lambda x: x * x, lambda x, y: 2.0 * x),
    doc="""x ** 2.

    >>> import fad
    >>> fad.derivative(fad.square)(3.0)
    6.0
    """,
)  # fmt: skip

reciprocal = elementwise(
    "reciprocal", np.reciprocal, lambda x, y: -y * y, NONZERO, ufunc=np.reciprocal,
    singular=True, reads_x=False,
    fast=(lambda x: 1.0 / x, lambda x, y: -y * y),
    doc="""1 / x; the derivative -1/x**2 reuses the value.

    >>> import fad
    >>> fad.derivative(fad.reciprocal)(2.0)
    -0.25
    """,
)  # fmt: skip

neg = elementwise(
    "neg", np.negative, lambda x, y: -1.0, REALS,
    fast=(lambda x: -x, lambda x, y: -1.0),
    doc="""-x.

    >>> import fad
    >>> fad.derivative(fad.neg)(5.0)
    -1.0
    """,
)  # fmt: skip

log1p = elementwise(
    "log1p", np.log1p, lambda x, y: 1.0 / (1.0 + x), Domain(lo=-1.0), ufunc=np.log1p, singular=True,
    fast=(math.log1p, lambda x, y: 1.0 / (1.0 + x)),
    doc="""log(1 + x), accurate for tiny x; for x > -1.

    >>> import fad
    >>> print(fad.log1p.value(1e-20))
    1e-20
    """,
)  # fmt: skip

expm1 = elementwise(
    "expm1", np.expm1, lambda x, y: np.exp(x), REALS, ufunc=np.expm1,
    fast=(math.expm1, lambda x, y: math.exp(x)),
    doc="""e**x - 1, accurate for tiny x; the derivative is e**x, computed from x: from the
    value, expm1(x) + 1 cancels where expm1(x) is near -1 (at x = -16 in float32 it is off
    by 6 %).

    >>> import fad
    >>> print(fad.expm1.value(1e-20))
    1e-20
    """,
)  # fmt: skip

erf = elementwise(
    "erf", _erf_kernel, lambda x, y: _TWO_OVER_SQRT_PI * exp.steps[0].run(-(x * x)), REALS,
    fast=(math.erf, lambda x, y: _TWO_OVER_SQRT_PI * math.exp(-x * x)),
    doc="""The error function (vectorised, without scipy); derivative 2/sqrt(pi) e**(-x**2).

    >>> import fad
    >>> print(round(fad.erf.value(0.5), 12))
    0.520499877813
    """,
)  # fmt: skip

UFUNCS[np.negative] = neg.steps[0].run

# The declarations' docstrings run as doctests (they live on records, not functions).
__test__ = {name: f.steps[0].doc for name, f in globals().copy().items() if name in __all__}
