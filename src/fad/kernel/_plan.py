"""Planning: read an ``Fn``'s steps once and build the DAG of its values and derivatives.

The walk mirrors ``Fn.ew`` (the unfused evaluator, the reference): the same steps, the
same rules, but over symbolic ``Sym`` values, so what comes out is a program rather than
numbers. Derivatives are pushed forward per input leaf: each ``Sym`` carries, for every
input leaf it depends on, the per-element derivative as a ``Term``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast, final

import numpy as np

from .._core import Const as ConstStep
from .._core import Fn, Pointwise
from .._structure import Fork, Par, Proj
from .._tree import Tree, flatten, unflatten
from ..prims._declare import Elementwise
from ._ir import Builder, Const, Node, Term, Value, is_const
from ._table import lookup

__all__ = ["Plan", "Sym", "UnsupportedError", "plan", "reachable", "unsupported_steps"]

SUPPORTED: Final = (
    "elementwise primitives, arithmetic between functions (f + g, 2 * f, f ** k), "
    "const(c) with a scalar c, fork, par, and fst/snd/proj of tuples, lists and dicts"
)


class UnsupportedError(TypeError):
    """A pipeline holds a piece the kernel layer cannot fuse (named in the message)."""


@final
class Sym:
    """A symbolic batch value: its ``value`` and ``{input leaf: d value / d input}``.

    Deliberately not a dataclass: fad's pytrees open dataclasses, and a ``Sym`` is a leaf.
    """

    __slots__ = ("derivs", "value")

    def __init__(self, value: Value, derivs: dict[int, Term] | None = None) -> None:
        self.value = value
        self.derivs = {} if derivs is None else derivs


@final
@dataclass(slots=True)
class Plan:
    """A traced pipeline: the DAG and what fills each output array.

    ``outputs`` lists the value of every output leaf, then, leaf by leaf, its derivative
    with respect to each input leaf (a constant 0.0 where it does not depend on it).
    """

    in_tree: Tree
    out_tree: Tree
    n_in: int
    outputs: list[Value]
    fused: bool  # every primitive ran from the in-place table

    def __reduce__(self) -> tuple[Any, ...]:
        # A flat table of nodes, not the nested objects: pickle recurses per level, and a
        # long pipeline is a deep DAG.
        nodes = reachable(self.outputs)
        index = {n.id: k for k, n in enumerate(nodes)}

        def ref(v: Value) -> Any:
            return ("n", index[v.id]) if isinstance(v, Node) else ("c", v)

        table = [(n.op, tuple(ref(a) for a in n.args), n.kind) for n in nodes]
        outputs = [ref(v) for v in self.outputs]
        return (_unreduce, (self.in_tree, self.out_tree, self.n_in, self.fused, table, outputs))

    @property
    def n_out(self) -> int:
        """The number of output leaves (each has one value and ``n_in`` derivatives)."""
        return self.out_tree.size


def reachable(outputs: list[Value]) -> list[Node]:
    """Every node the outputs need, in topological (creation) order."""
    seen: dict[int, Node] = {}
    stack = [v for v in outputs if isinstance(v, Node)]
    while stack:
        n = stack.pop()
        if n.id not in seen:
            seen[n.id] = n
            stack.extend(a for a in n.args if isinstance(a, Node))
    return sorted(seen.values(), key=lambda n: n.id)


def _unreduce(
    in_tree: Tree, out_tree: Tree, n_in: int, fused: bool, table: list[Any], outputs: list[Any]
) -> Plan:
    nodes: list[Node] = []

    def value(r: Any) -> Value:
        return nodes[r[1]] if r[0] == "n" else r[1]  # type: ignore[no-any-return]

    for k, (op, args, kind) in enumerate(table):
        nodes.append(Node(op, tuple(value(a) for a in args), kind, k))
    return Plan(in_tree, out_tree, n_in, [value(r) for r in outputs], fused)


def _where(step: Any, fn: Fn[Any, Any] | None) -> str:
    return f"`{step!r}`" + (f" (in `{fn!r}`)" if fn is not None and len(fn.steps) > 1 else "")


def _scalar_const(c: Any, step: Any) -> Value:
    if isinstance(c, bool) or not isinstance(c, int | float | np.number | np.ndarray):
        raise UnsupportedError(
            f"fad.kernel: {step!r} is not a number; the kernel layer supports {SUPPORTED}"
        )
    if np.ndim(c) != 0:
        raise UnsupportedError(
            f"fad.kernel: {step!r} is an array constant; chunks and dask blocks can't split "
            "it, so the kernel layer supports scalar constants only"
        )
    # np.ndim(c) == 0, so c[()] is the numpy scalar inside a 0-d array.
    return cast(Const, c[()] if isinstance(c, np.ndarray) else c)


class _Tracer:
    def __init__(self) -> None:
        self.b = Builder()
        self.fused = True

    def fn(self, f: Fn[Any, Any], x: Any) -> Any:
        for step in f.steps:
            x = self.step(step, x, f)
        return x

    def step(self, step: Any, x: Any, f: Fn[Any, Any]) -> Any:
        t = type(step)
        if t is Elementwise:
            return self.elementwise(step, self.leaf(x, step, f))
        if t is Pointwise:
            return self.pointwise(step, x)
        if t is ConstStep:
            return Sym(_scalar_const(step.c, step))
        if t is Fork:
            return tuple(self.fn(g, x) for g in step.fs)
        if t is Par:
            if not isinstance(x, tuple | list) or len(x) != len(step.fs):
                raise TypeError(
                    f"fad.kernel: {_where(step, f)} expects a tuple of {len(step.fs)} arrays"
                )
            return tuple(self.fn(g, xi) for g, xi in zip(step.fs, x, strict=True))
        if t is Proj:
            if isinstance(x, Sym):
                raise UnsupportedError(
                    f"fad.kernel: {_where(step, f)} selects entries of an array, which is "
                    f"not elementwise; the kernel layer supports {SUPPORTED}"
                )
            try:
                return x[step.index]
            except (IndexError, KeyError, TypeError) as e:
                raise type(e)(f"fad.kernel: {_where(step, f)} cannot index {x!r}: {e}") from None
        raise UnsupportedError(
            f"fad.kernel: {_where(step, f)} is not elementwise (or not a step the kernel "
            f"layer knows); it supports {SUPPORTED}. Evaluate it with f(x) instead."
        )

    def leaf(self, x: Any, step: Any, f: Fn[Any, Any]) -> Sym:
        if not isinstance(x, Sym):
            raise TypeError(
                f"fad.kernel: {_where(step, f)} expects an array, got a structured value"
            )
        return x

    def elementwise(self, step: Elementwise, x: Sym) -> Sym:
        if is_const(x.value):
            with np.errstate(all="ignore"):
                return Sym(step.kernel(x.value))
        spec = lookup(step)
        self.fused = self.fused and spec.fused
        y = spec.value(self.b, x.value)
        r = spec.rule(self.b, x.value, y)
        return Sym(y, {i: self.b.tmul(t, r) for i, t in x.derivs.items()})

    def pointwise(self, step: Pointwise, x: Any) -> Sym:
        a = self.leaf(self.fn(step.f, x), step, step.f)
        c = self.leaf(self.fn(step.g, x), step, step.g)
        b = self.b
        op = step.op.symbol
        if op == "+":
            y = b.ufunc(np.add, a.value, c.value)
            return Sym(y, self.combine(a, c, None, None))
        if op == "-":
            y = b.ufunc(np.subtract, a.value, c.value)
            return Sym(y, self.combine(a, c, None, Term(-1.0)))
        if op == "*":
            y = b.ufunc(np.multiply, a.value, c.value)
            return Sym(y, self.combine(a, c, b.term(c.value), b.term(a.value)))
        if op == "/":
            y = b.ufunc(np.true_divide, a.value, c.value)
            da = b.term(b.ufunc(np.divide, 1.0, c.value)) if a.derivs else None
            dc = b.term(b.ufunc(np.divide, y, c.value)) if c.derivs else None
            return Sym(y, self.combine(a, c, da, None if dc is None else Term(-dc.coef, dc.node)))
        if op == "**":
            y = b.ufunc(np.power, a.value, c.value)
            da = self.pow_da(a.value, c.value) if a.derivs else None
            # d/dc a**c = log(a) a**c, needed only where the exponent varies: for a
            # constant exponent the core's evaluator multiplies log(a) by a zero tangent,
            # which is nan for a < 0; here that term does not exist.
            dc = b.term(b.mul(b.ufunc(np.log, a.value), y)) if c.derivs else None
            return Sym(y, self.combine(a, c, da, dc))
        raise UnsupportedError(f"fad.kernel: the operator {op!r} of `{step!r}` is not supported")

    def pow_da(self, a: Value, c: Value) -> Term:
        b = self.b
        if is_const(c):
            k = float(c)  # type: ignore[arg-type]
            if k == 0.0:
                return Term(0.0)
            if k == 1.0:
                return Term(1.0)
            if k == 2.0:
                t = b.term(a)
                return Term(2.0 * t.coef, t.node)
            t = b.term(b.ufunc(np.power, a, k - 1.0))
            return Term(k * t.coef, t.node)
        return b.term(b.mul(c, b.ufunc(np.power, a, b.ufunc(np.subtract, c, 1.0))))

    def combine(self, a: Sym, c: Sym, ca: Term | None, cc: Term | None) -> dict[int, Term]:
        """``ca * da + cc * dc`` per input leaf (``None``: the coefficient one)."""
        out: dict[int, Term] = {}
        for i in a.derivs.keys() | c.derivs.keys():
            t = Term(0.0)
            if i in a.derivs:
                t = a.derivs[i] if ca is None else self.b.tmul(a.derivs[i], ca)
            if i in c.derivs:
                u = c.derivs[i] if cc is None else self.b.tmul(c.derivs[i], cc)
                t = self.b.tadd(t, u)
            if not t.is_zero:
                out[i] = t
        return out


def plan(f: Fn[Any, Any], in_tree: Tree) -> Plan:
    """Trace ``f`` on an input of structure ``in_tree`` into a ``Plan``."""
    tracer = _Tracer()
    b = tracer.b
    n_in = in_tree.size
    inputs = [Sym(b.input(i), {i: Term(1.0)}) for i in range(n_in)]
    out = tracer.fn(f, unflatten(in_tree, inputs))
    leaves, out_tree = flatten(out)
    for v in leaves:
        if not isinstance(v, Sym):
            raise UnsupportedError(f"fad.kernel: `{f!r}` returns {v!r}, not an array")
    syms: list[Sym] = leaves
    outputs = [s.value for s in syms]
    outputs += [b.materialize(s.derivs.get(i, Term(0.0))) for s in syms for i in range(n_in)]
    return Plan(in_tree, out_tree, n_in, outputs, tracer.fused)


def unsupported_steps(f: Fn[Any, Any]) -> None:
    """Raise ``UnsupportedError`` for the first step no plan could contain.

    Called by ``compile`` before any input is seen, so a pipeline with a reduction or a
    pointed function fails where it is compiled, not at its first call.
    """
    stack: list[Fn[Any, Any]] = [f]
    while stack:
        g = stack.pop()
        for step in g.steps:
            if isinstance(step, Pointwise):
                stack += [step.f, step.g]
            elif isinstance(step, Fork | Par):
                stack += list(step.fs)
            elif isinstance(step, ConstStep):
                _scalar_const(step.c, step)
            elif not isinstance(step, Elementwise | Proj):
                _Tracer().step(step, None, g)
