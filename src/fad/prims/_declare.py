"""How a primitive is declared: one record, read by every mode (layer 2).

An elementwise primitive is its name, its numpy kernel, its derivative rule and its
domain, with optional ``math`` versions for the Python-float fast path. Forward mode,
reverse mode, the fast paths, the kernel planner, ``fad.strategies`` (the domain) and
traces (the name) all read this one record, as every mode of Haskell's ``ad`` reads
``instances.h``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

import numpy as np

from .. import _linear as lin
from .._core import (
    UFUNCS,
    Dual,
    Fn,
    Step,
    call_kernel,
    defop,
    dtype_of,
    mk,
    primal,
    scale,
    shape_of,
    trace_call,
)

__all__ = [
    "NONNEGATIVE",
    "NONZERO",
    "POSITIVE",
    "REALS",
    "REGISTRY",
    "Domain",
    "Elementwise",
    "elementwise",
    "interval",
    "primitive",
]

Rule = Callable[[Any, Any], Any]


@final
@dataclass(frozen=True, slots=True)
class Domain:
    """Where a primitive's derivative rule holds: an interval, minus zero and kinks.

    ``kinks`` are points where the function is not differentiable (``relu`` at 0); the
    rule there follows a stated convention, and finite differences are not expected to
    agree, so the test strategies keep away from them.

    Examples:
        >>> POSITIVE.contains(2.0), POSITIVE.contains(0.0)
        (True, False)
    """

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = True
    hi_open: bool = True
    nonzero: bool = False
    kinks: tuple[float, ...] = ()

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies in the domain (kinks included: they are in the domain)."""
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return bool(above and below and not (self.nonzero and x == 0))

    def __and__(self, other: Domain) -> Domain:
        lo, lo_open = max((self.lo, not self.lo_open), (other.lo, not other.lo_open))
        hi, hi_open = min((self.hi, self.hi_open), (other.hi, other.hi_open))
        return Domain(lo, hi, not lo_open, hi_open, self.nonzero or other.nonzero,
                      tuple(sorted(set(self.kinks + other.kinks))))  # fmt: skip


REALS: Final = Domain()
POSITIVE: Final = Domain(lo=0.0)
NONNEGATIVE: Final = Domain(lo=0.0, lo_open=False)
NONZERO: Final = Domain(nonzero=True)


def interval(lo: float, hi: float, *, closed: bool = False) -> Domain:
    """The interval (lo, hi), or [lo, hi] when ``closed``."""
    return Domain(lo, hi, not closed, not closed)


@final
class Elementwise(Step):
    """An elementwise primitive: ``y = kernel(x)`` with ``dy/dx = rule(x, y)``.

    The rule sees the output too, so ``exp`` and ``tanh`` reuse it. A rule returning
    ``None`` means the identity (``add(c)``). Rules are written with numpy functions and
    operators, which dispatch on ``Dual`` values: that is what makes second and higher
    derivatives come out of the same rule.
    """

    __slots__ = (
        "doc", "domain", "fast_rule", "fast_value", "has_scalar", "kernel", "name", "reads_x",
        "rule", "singular",
    )  # fmt: skip
    elementwise = True

    def __init__(
        self,
        name: str,
        kernel: Callable[[Any], Any],
        rule: Rule,
        domain: Domain = REALS,
        *,
        fast: tuple[Callable[[float], float], Callable[[float, float], Any]] | None = None,
        doc: str = "",
        singular: bool = False,
        reads_x: bool = True,
    ) -> None:
        self.name = name
        self.singular = singular
        self.reads_x = reads_x
        self.kernel = kernel
        self.rule = rule
        self.domain = domain
        self.fast_value: Callable[[float], float] | None = None
        self.fast_rule: Callable[[float, float], Any] | None = None
        if fast is not None:
            self.fast_value, self.fast_rule = fast
        self.has_scalar = fast is not None
        self.doc = doc

    def __repr__(self) -> str:
        return self.name

    def run(self, x: Any) -> Any:
        if type(x) is not Dual:
            return self.value(x)
        node = x._node
        if type(node) is not lin.Input and not isinstance(node, lin.Node):
            raise TypeError(f"{self.name} expects an array, got a structured value")
        v = x._value
        y = self.run(v)
        if type(v) is float and self.fast_rule is not None:
            try:
                c = self.fast_rule(v, y)
            except (OverflowError, ValueError, ZeroDivisionError):
                with np.errstate(all="ignore"):  # numpy's inf or nan, as a Python float
                    c = float(self.rule(np.float64(v), np.float64(y)))
        elif not self.reads_x and lin.keeps_output(node, y):
            c = _LATER  # computed from y when a pass needs it: y is usually kept anyway
        elif self.singular:  # the rule divides by zero at the domain's edge: no warning
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                c = self.rule(v, y)
        else:
            c = self.rule(v, y)
        shape = shape_of(y)
        if c is _LATER:
            return mk(y, lin.FromOutput(self.rule, y, node, self.name, self.singular))
        return mk(y, scale(c, node, shape, self.name))  # c is None for the identity

    def value(self, x: Any) -> Any:
        if type(x) is float and self.fast_value is not None:
            try:
                return self.fast_value(x)
            except (OverflowError, ValueError, ZeroDivisionError):
                pass  # math raises where numpy returns inf or nan
        return call_kernel(self.name, self.kernel, x)

    def ew(self, x: Any) -> tuple[Any, Any]:
        y = call_kernel(self.name, self.kernel, x)
        d = self.rule(x, y)
        return y, (1.0 if d is None else d)

    def scalar(self, x: float) -> tuple[float, float]:
        y = self.fast_value(x)  # type: ignore[misc]
        d = self.fast_rule(x, y)  # type: ignore[misc]
        return y, (1.0 if d is None else d)


_LATER = object()  # a coefficient left to be computed from the output

# Every named elementwise primitive, built-in or declared by a user: the test
# strategies draw from it, so a new primitive is tested the moment it exists.
REGISTRY: dict[str, Fn[Any, Any]] = {}


def elementwise(
    name: str,
    kernel: Callable[[Any], Any],
    rule: Rule,
    domain: Domain = REALS,
    *,
    fast: tuple[Callable[[float], float], Callable[[float, float], Any]] | None = None,
    doc: str = "",
    ufunc: Any = None,
    register: bool = True,
    singular: bool = False,
    reads_x: bool = True,
) -> Fn[Any, Any]:
    """Declare an elementwise primitive and return it as a one-step ``Fn``.

    ``ufunc`` makes numpy's function of that name dispatch to it on ``Dual`` values.
    ``singular`` marks a rule that is infinite at the edge of its domain (``sqrt`` at 0):
    it is computed without numpy's divide-by-zero warning, which the function itself
    never gave. ``reads_x=False`` says the rule reads only the value ``y`` (it is then
    called with ``x=None``): a recorded derivative keeps ``y``, which the next step
    usually keeps anyway, instead of a coefficient array of its own. Such a rule must
    return a new array for an array ``y`` (not ``y``, a view or a kept constant): the
    reverse pass multiplies the cotangent into it.
    """
    step = Elementwise(
        name, kernel, rule, domain, fast=fast, doc=doc, singular=singular, reads_x=reads_x
    )
    fn: Fn[Any, Any] = Fn((step,))
    if register:
        REGISTRY[name] = fn
    if ufunc is not None:
        UFUNCS[ufunc] = step.run
    return fn


def declaration(f: Fn[Any, Any]) -> Elementwise:
    """The record behind a one-step elementwise ``Fn``."""
    (step,) = f.steps
    if not isinstance(step, Elementwise):
        raise TypeError(f"{f!r} is not an elementwise primitive")
    return step


@final
class General(Step):
    """A primitive given by its value and ``jvp``/``vjp`` rules (any shapes)."""

    __slots__ = ("apply", "jvp", "kernel", "name", "vjp")

    def __init__(
        self,
        name: str,
        kernel: Callable[..., Any],
        jvp: Callable[[Any, Any], Any] | None,
        vjp: Callable[[Any, Any], Any] | None,
    ) -> None:
        self.name = name
        self.kernel = kernel
        self.jvp = jvp
        self.vjp = vjp
        self.apply = defop(name, self._kernel, self._linearize)

    def __repr__(self) -> str:
        return self.name

    def _kernel(self, *args: Any) -> Any:
        return self.kernel(args if len(args) > 1 else args[0])

    def _linearize(self, primals: list[Any], y: Any, nodes: list[lin.Node | None]) -> lin.Node:
        many = len(primals) > 1
        x = tuple(primals) if many else primals[0]
        parents = tuple(n for n in nodes if n is not None)
        where = [i for i, n in enumerate(nodes) if n is not None]
        jvp, vjp, name = self.jvp, self.vjp, self.name

        def fwd(*ts: Any) -> Any:
            full: list[Any] = [np.zeros_like(primal(p), dtype=dtype_of(p)) for p in primals]
            for i, t in zip(where, ts, strict=True):
                full[i] = t
            t = tuple(full) if many else full[0]
            if jvp is not None:
                return jvp(x, t)
            # J t from the vjp alone: ct -> ct J is linear, and its transpose is J.
            assert vjp is not None  # a primitive has at least one rule
            vjp_ = vjp
            zero = np.zeros_like(primal(y), dtype=dtype_of(y))
            return _transposed(name, "forward", lambda ct: vjp_(x, ct), zero, t)

        def back(ct: Any) -> Sequence[Any]:
            if vjp is not None:
                cts = vjp(x, ct)
            else:  # ct J from the jvp alone, by transposing the linear map t -> J t
                assert jvp is not None
                jvp_ = jvp
                zero = tuple(np.zeros_like(primal(p), dtype=dtype_of(p)) for p in primals)
                at = zero if many else zero[0]
                cts = _transposed(name, "reverse", lambda t: jvp_(x, t), at, ct)
            cts = tuple(cts) if many else (cts,)
            return [cts[i] for i in where]

        return lin.Op(name, parents, shape_of(y), fwd, back, batched=False)

    def run(self, x: Any) -> Any:
        if isinstance(x, tuple | list):
            return self.apply(*x)
        return self.apply(x)

    def value(self, x: Any) -> Any:
        return self.kernel(x)


def _transposed(name: str, mode: str, linear: Callable[[Any], Any], at: Any, v: Any) -> Any:
    """Apply the transpose of the linear function ``linear`` (traced at ``at``) to ``v``."""
    try:
        source, (tree, pairs) = trace_call(linear, at, name)
    except TypeError as e:
        rule = "vjp" if mode == "reverse" else "jvp"
        raise NotImplementedError(
            f"{name} has no {rule} rule and its other rule could not be transposed for "
            f"{mode} mode ({e}); give fad.primitive a {rule}= rule"
        ) from None
    out = lin.Linear(
        source,
        [n for _, n in pairs],
        tree,
        [shape_of(p) for p, _ in pairs],
        [dtype_of(p) for p, _ in pairs],
    )
    return v @ out


def primitive(
    value: Callable[[Any], Any],
    deriv: Callable[[Any], Any] | None = None,
    *,
    jvp: Callable[[Any, Any], Any] | None = None,
    vjp: Callable[[Any, Any], Any] | None = None,
    name: str | None = None,
    domain: Domain = REALS,
) -> Fn[Any, Any]:
    """Declare a new primitive; it behaves exactly like a built-in one.

    With ``deriv=`` (``x -> dy/dx``) the primitive is elementwise, takes part in the fast
    paths and in ``fad.strategies``. With ``jvp=(x, t) -> J t`` and/or
    ``vjp=(x, ct) -> ct J`` it is general (any shapes; ``x``, ``t`` and the cotangent are
    tuples for a primitive of several arguments). Write rules with numpy functions and
    operators: they then also run on ``Dual`` values, which gives higher derivatives.

    Args:
        value: the numpy kernel, ``x -> y``.
        deriv: for elementwise primitives, the derivative ``x -> dy/dx``.
        jvp: for general primitives, ``(x, t) -> J t``.
        vjp: for general primitives, ``(x, ct) -> ct J``.
        name: what reprs, errors and traces print.
        domain: where the rule holds; the test strategies draw points from it.

    Returns:
        An ``Fn`` of one step.

    Examples:
        >>> import fad
        >>> cube = fad.primitive(lambda x: x ** 3, deriv=lambda x: 3 * x ** 2, name="cube")
        >>> fad.derivative(cube)(2.0)
        12.0

    See also:
        derivative, laws.check_finite_differences
    """
    label = name or str(getattr(value, "__name__", "primitive"))
    if deriv is not None:
        if jvp is not None or vjp is not None:
            raise TypeError("give either deriv= (elementwise) or jvp=/vjp= (general), not both")
        d = deriv
        return elementwise(label, value, lambda x, y: d(x), domain, fast=(value, lambda x, y: d(x)))
    if jvp is None and vjp is None:
        raise TypeError(f"primitive {label!r} needs deriv=, jvp= or vjp=")
    return Fn((General(label, value, jvp, vjp),))
