"""Parameterised elementwise primitives, named by the call that builds them.

``add(1.0)`` prints as ``add(1.0)``, so a pipeline's repr is code that rebuilds it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._core import Fn
from ._declare import NONZERO, POSITIVE, REALS, Domain, elementwise

__all__ = ["add", "affine", "clip", "multiply", "power"]


def _num(c: Any) -> str:
    return repr(float(c)) if isinstance(c, int | float | np.number) else repr(c)


def add(c: float) -> Fn[Any, Any]:
    """x + c.

    Examples:
        >>> import fad
        >>> fad.add(1.0)
        add(1.0)
        >>> v, d = fad.add(1.0)(2.0)
        >>> print(v, float(d))
        3.0 1.0

    See also:
        multiply, affine
    """
    return elementwise(
        f"add({_num(c)})", lambda x: x + c, lambda x, y: None, REALS,
        fast=(lambda x: x + c, lambda x, y: None), register=False,
    )  # fmt: skip


def multiply(c: float) -> Fn[Any, Any]:
    """c * x.

    Examples:
        >>> import fad
        >>> fad.derivative(fad.multiply(-1.0))(3.0)
        -1.0

    See also:
        add, affine
    """
    return elementwise(
        f"multiply({_num(c)})", lambda x: x * c, lambda x, y: c, REALS,
        fast=(lambda x: x * c, lambda x, y: c), register=False,
    )  # fmt: skip


def affine(a: float, b: float) -> Fn[Any, Any]:
    """a * x + b.

    Examples:
        >>> import fad
        >>> v, d = fad.affine(2.0, 1.0)(3.0)
        >>> print(v, float(d))
        7.0 2.0

    See also:
        add, multiply
    """
    return elementwise(
        f"affine({_num(a)}, {_num(b)})", lambda x: a * x + b, lambda x, y: a, REALS,
        fast=(lambda x: a * x + b, lambda x, y: a), register=False,
    )  # fmt: skip


def power(k: float) -> Fn[Any, Any]:
    """x ** k; the domain is x > 0 unless k is an integer (x != 0 for negative ones).

    For an integer k >= 1 the derivative k x**(k-1) is exact at 0 too.

    Examples:
        >>> import fad
        >>> fad.derivative(fad.power(3))(2.0)
        12.0

    See also:
        square, sqrt, reciprocal
    """
    kf = float(k)
    if kf.is_integer():
        domain = REALS if kf >= 0 else NONZERO
        n = int(kf)

        def fast_value(x: float) -> float:
            return float(x**n)
    else:
        domain = POSITIVE

        def fast_value(x: float) -> float:
            return math.pow(x, kf)  # ValueError for x < 0: numpy's nan path takes over

    def rule(x: Any, y: Any) -> Any:
        if kf == 0.0:
            return 0.0 * x
        if kf == 1.0:
            return None
        if type(x) is float:  # Python's (-1.0) ** -0.5 is complex; numpy's is nan
            return kf * float(np.power(x, kf - 1.0))
        return kf * x ** (kf - 1.0)

    def fast_rule(x: float, y: float) -> Any:
        if kf == 0.0 or kf == 1.0:
            return rule(x, y)
        return kf * math.pow(x, kf - 1.0)  # ValueError off the domain: numpy's path

    return elementwise(
        f"power({_num(k)})", lambda x: np.power(x, kf),
        rule, domain, fast=(fast_value, fast_rule), register=False,
        singular=kf < 1.0 and kf != 0.0,
    )  # fmt: skip


def clip(lo: float, hi: float) -> Fn[Any, Any]:
    """x limited to [lo, hi].

    The derivative is 1 on the closed interval [lo, hi], corners included (as in
    PyTorch), and 0 outside it.

    Examples:
        >>> import fad
        >>> print(fad.clip(0.0, 1.0).value(2.0), fad.derivative(fad.clip(0.0, 1.0))(1.0))
        1.0 1.0

    See also:
        relu
    """

    def rule(x: Any, y: Any) -> Any:
        inside = (x >= lo) & (x <= hi)
        if isinstance(inside, bool):
            return 1.0 if inside else 0.0
        return np.where(inside, 1.0, 0.0).astype(np.result_type(y), copy=False)

    return elementwise(
        f"clip({_num(lo)}, {_num(hi)})", lambda x: np.clip(x, lo, hi), rule,
        Domain(kinks=(float(lo), float(hi))),
        fast=(lambda x: min(max(x, lo), hi), lambda x, y: 1.0 if lo <= x <= hi else 0.0),
        register=False,
    )  # fmt: skip
