"""In-place kernels for fad's primitives: each value and rule spelled as numpy ufuncs.

Every entry rewrites one declaration of ``fad.prims`` (kernel and rule) as ufunc calls
the planner can run into its own buffers, *in the same floating-point operations* as the
declaration, so a compiled kernel and direct evaluation agree to the last bit or so
(``tests/test_kernel.py`` checks each entry against its record). Built-in primitives are
recognised by identity, never by name alone, so a user primitive that happens to be called
``"exp"`` still runs its own kernel.

A primitive this table does not know (a user's ``fad.primitive``) is not refused: its
record's kernel and rule run as they are, allocating one chunk-sized array per call; the
rest of the pipeline stays fused around it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, final

import numpy as np

from ..prims import elementwise as ew
from ..prims import parametric as pm
from ..prims._declare import Elementwise
from ._ir import ONE, Builder, Term, Value

__all__ = ["Spec", "lookup"]

ValueFn = Callable[[Builder, Value], Value]
RuleFn = Callable[[Builder, Value, Value], Term]


@final
@dataclass(frozen=True, slots=True)
class Spec:
    """How to plan one primitive: its value and its rule (``dy/dx`` as a term)."""

    value: ValueFn
    rule: RuleFn
    fused: bool  # False: the record's own (allocating) kernel or rule runs somewhere


def _neg_abs(b: Builder, x: Value) -> Value:
    # -|x| in one op: copysign(x, -1) is exactly -np.abs(x) (and a pass cheaper).
    return b.ufunc(np.copysign, x, -1.0)


def _sigmoid(b: Builder, x: Value) -> Value:
    # The declaration computes where(x >= 0, 1 / (1 + e), e / (1 + e)) with e = exp(-|x|).
    # The numerator is max(e, [x >= 0]): 1 for x >= 0 (e <= 1), e otherwise; heaviside
    # gives [x >= 0] as a float and keeps nan, so this is the same division, no mask.
    e = b.ufunc(np.exp, _neg_abs(b, x))
    numerator = b.ufunc(np.maximum, e, b.ufunc(np.heaviside, x, 1.0))
    return b.ufunc(np.divide, numerator, b.ufunc(np.add, e, 1.0))


def _softplus(b: Builder, x: Value) -> Value:
    # max(x, 0) + log1p(exp(-|x|)); its rule, sigmoid(x), reuses the same exp(-|x|).
    e = b.ufunc(np.exp, _neg_abs(b, x))
    return b.ufunc(np.add, b.ufunc(np.maximum, x, 0.0), b.ufunc(np.log1p, e))


def _scaled(b: Builder, k: float, v: Value) -> Term:
    """The term ``k * v``."""
    t = b.term(v)
    return Term(k * t.coef, t.node)


def _unary(f: np.ufunc) -> ValueFn:
    return lambda b, x: b.ufunc(f, x)


_TWO_OVER_SQRT_PI: Final = 2.0 / math.sqrt(math.pi)

# name -> (value, rule); the rules read as the declarations in fad/prims/elementwise.py.
_BUILTIN: Final[dict[str, tuple[ValueFn | None, RuleFn]]] = {
    "exp": (_unary(np.exp), lambda b, x, y: b.term(y)),
    "log": (_unary(np.log), lambda b, x, y: b.term(b.ufunc(np.divide, 1.0, x))),
    "sin": (_unary(np.sin), lambda b, x, y: b.term(b.ufunc(np.cos, x))),
    "cos": (_unary(np.cos), lambda b, x, y: _scaled(b, -1.0, b.ufunc(np.sin, x))),
    "tan": (_unary(np.tan), lambda b, x, y: b.term(b.ufunc(np.add, b.mul(y, y), 1.0))),
    "tanh": (_unary(np.tanh), lambda b, x, y: b.term(b.ufunc(np.subtract, 1.0, b.mul(y, y)))),
    "sigmoid": (_sigmoid, lambda b, x, y: b.term(b.mul(y, b.ufunc(np.subtract, 1.0, y)))),
    "softplus": (_softplus, lambda b, x, y: b.term(_sigmoid(b, x))),
    "relu": (
        lambda b, x: b.ufunc(np.maximum, x, 0.0),
        lambda b, x, y: b.term(b.ufunc(np.heaviside, x, 0.0)),
    ),
    "abs": (_unary(np.absolute), lambda b, x, y: b.term(b.ufunc(np.sign, x))),
    "sqrt": (_unary(np.sqrt), lambda b, x, y: b.term(b.ufunc(np.divide, 0.5, y))),
    "square": (_unary(np.square), lambda b, x, y: _scaled(b, 2.0, x)),
    # 1 / x by np.divide: the same correctly rounded quotient as np.reciprocal, faster.
    "reciprocal": (
        lambda b, x: b.ufunc(np.divide, 1.0, x),
        lambda b, x, y: _scaled(b, -1.0, b.mul(y, y)),
    ),
    "neg": (_unary(np.negative), lambda b, x, y: Term(-1.0)),
    "log1p": (
        _unary(np.log1p),
        lambda b, x, y: b.term(b.ufunc(np.divide, 1.0, b.ufunc(np.add, x, 1.0))),
    ),
    # exp(x), as the primitive declares it: y + 1 cancels where expm1(x) is near -1.
    "expm1": (_unary(np.expm1), lambda b, x, y: b.term(b.ufunc(np.exp, x))),
    # erf's value is a rational approximation (fad/prims/_erf.py): its own kernel runs.
    "erf": (
        None,
        lambda b, x, y: _scaled(
            b, _TWO_OVER_SQRT_PI, b.ufunc(np.exp, b.ufunc(np.negative, b.mul(x, x)))
        ),
    ),
}


def _builtin_steps() -> dict[int, str]:
    """id of each built-in primitive's record -> its name (recognition by identity)."""
    out: dict[int, str] = {}
    for name in _BUILTIN:
        fn = getattr(ew, name, None)
        if fn is not None and len(fn.steps) == 1:
            out[id(fn.steps[0])] = name
    return out


_BUILTIN_IDS: Final = _builtin_steps()


# --------------------------------------------------------------- parameterised families
#
# add(c), multiply(c)... build a new record per call, so identity can't recognise them.
# Their kernels are closures of one code object per family: that object identifies the
# family, and the closure holds its parameters by name. If the declarations change shape
# the lookup fails and the record's own kernel runs (correct, slower); a test notices.


def _closure(f: Callable[..., Any]) -> dict[str, Any]:
    cells = f.__closure__ or ()
    out: dict[str, Any] = {}
    for name, cell in zip(f.__code__.co_freevars, cells, strict=True):
        with contextlib.suppress(ValueError):  # unbound: power's n for a non-integer k
            out[name] = cell.cell_contents
    return out


def _power_value(b: Builder, x: Value, k: float) -> Value:
    # numpy's fast paths for scalar exponents, as `x ** k` takes them.
    if k == 2.0:
        return b.ufunc(np.square, x)
    if k == 1.0:
        return b.ufunc(np.positive, x)
    if k == 0.5:
        return b.ufunc(np.sqrt, x)
    if k == -1.0:
        return b.ufunc(np.divide, 1.0, x)
    return b.ufunc(np.power, x, k)


def _power(p: dict[str, Any]) -> Spec | None:
    k = float(p["kf"])

    def value(b: Builder, x: Value) -> Value:
        if k.is_integer():
            return _power_value(b, x, k)
        return b.ufunc(np.power, x, k)

    def rule(b: Builder, x: Value, y: Value) -> Term:
        if k == 0.0:
            return Term(0.0)
        if k == 1.0:
            return ONE
        return _scaled(b, k, _power_value(b, x, k - 1.0))

    return Spec(value, rule, fused=True)


def _clip(p: dict[str, Any]) -> Spec:
    lo, hi = p["lo"], p["hi"]

    def value(b: Builder, x: Value) -> Value:
        return b.ufunc(np.minimum, b.ufunc(np.maximum, x, lo), hi)

    def rule(b: Builder, x: Value, y: Value) -> Term:
        # (x >= lo) & (x <= hi) is exactly x == clip(x): False at nan, as declared.
        return b.term(b.ufunc(np.equal, x, y))

    return Spec(value, rule, fused=True)


_FAMILIES: Final[dict[str, Callable[[dict[str, Any]], Spec | None]]] = {
    "add": lambda p: Spec(lambda b, x: b.ufunc(np.add, x, p["c"]), lambda b, x, y: ONE, True),
    "multiply": lambda p: Spec(
        lambda b, x: b.ufunc(np.multiply, x, p["c"]), lambda b, x, y: Term(p["c"]), True
    ),
    "affine": lambda p: Spec(
        lambda b, x: b.ufunc(np.add, b.ufunc(np.multiply, p["a"], x), p["b"]),
        lambda b, x, y: Term(p["a"]),
        True,
    ),
    "power": _power,
    "clip": _clip,
}


def _family_codes() -> dict[int, str]:
    samples = {
        "add": pm.add(1.0),
        "multiply": pm.multiply(2.0),
        "affine": pm.affine(2.0, 1.0),
        "power": pm.power(3.0),
        "clip": pm.clip(0.0, 1.0),
    }
    out: dict[int, str] = {}
    for name, fn in samples.items():
        step = fn.steps[0]
        if isinstance(step, Elementwise):
            out[id(step.kernel.__code__)] = name
    return out


_FAMILY_CODES: Final = _family_codes()
_SCALAR_TYPES: Final = (int, float, np.floating, np.integer)


def _family(step: Elementwise) -> Spec | None:
    code = getattr(step.kernel, "__code__", None)
    name = _FAMILY_CODES.get(id(code)) if code is not None else None
    if name is None:
        return None
    params = _closure(step.kernel)
    if not all(isinstance(v, _SCALAR_TYPES) and not isinstance(v, bool) for v in params.values()):
        return None  # an array parameter: the record's kernel broadcasts it
    try:
        return _FAMILIES[name](params)
    except KeyError:
        return None


# ---------------------------------------------------------------------------- lookup


def _fallback(step: Elementwise, value: ValueFn | None) -> Spec:
    kernel, rule, name = step.kernel, step.rule, step.name

    def rule_or_one(x: Any, y: Any) -> Any:
        d = rule(x, y)
        return 1.0 if d is None else d

    def plan_value(b: Builder, x: Value) -> Value:
        return b.call(kernel, name, x)

    def plan_rule(b: Builder, x: Value, y: Value) -> Term:
        return b.term(b.call(rule_or_one, f"{name}'", x, y))

    return Spec(value or plan_value, plan_rule, fused=False)


def lookup(step: Elementwise) -> Spec:
    """The plan of an elementwise record: in place when known, else its own functions."""
    name = _BUILTIN_IDS.get(id(step))
    if name is not None:
        value, rule = _BUILTIN[name]
        if value is None:
            kernel, label = step.kernel, step.name
            return Spec(lambda b, x: b.call(kernel, label, x), rule, fused=False)
        return Spec(value, rule, fused=True)
    spec = _family(step)
    if spec is not None:
        return spec
    return _fallback(step, None)
