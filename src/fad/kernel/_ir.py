"""The kernel's intermediate form: a DAG of numpy operations shared by values and derivatives.

A ``Node`` is one array-valued operation over the batch: an input leaf, a numpy ufunc
called as ``ufunc(*args, out=buffer)`` (in place, into a buffer the planner chooses), or a
``Call`` of a primitive's own kernel or rule (it allocates; the fallback for primitives
the in-place table does not know). Arguments are nodes or scalar constants.

The ``Builder`` hash-conses nodes, so the value and the derivative of a pipeline share
every intermediate they have in common (``exp``'s derivative *is* its value, ``softplus``'s
derivative reuses the ``exp(-|x|)`` of its value), and folds operations on constants.

A derivative is a ``Term``: a scalar coefficient times a node (or times one). Keeping the
scalar apart lets ``multiply(-1.0) >> exp`` fold its ``-1`` into one coefficient instead of
spending a pass over the batch on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast, final

import numpy as np

__all__ = ["ONE", "Builder", "Call", "Const", "Input", "Node", "Term", "Value"]

Const = float | np.floating[Any] | np.integer[Any] | int
"""A scalar constant: a Python number (weak under numpy's promotion) or a numpy scalar."""


@final
class Input:
    """The op of an input leaf: the ``index``-th leaf of the call's argument."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"x{self.index}"


@final
class Call:
    """The op of a primitive's own (allocating) kernel or rule: ``fn(*args)``."""

    __slots__ = ("fn", "name")

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.name = name

    def __repr__(self) -> str:
        return self.name


Op = Input | Call | np.ufunc


@final
class Node:
    """One array-valued operation over the batch.

    ``kind`` is ``"f"`` for floating values and ``"b"`` for boolean masks (``clip``'s
    derivative is ``x == clip(x)``); ``id`` orders nodes topologically (creation order).
    """

    __slots__ = ("args", "id", "kind", "op")

    def __init__(self, op: Op, args: tuple[Node | Const, ...], kind: str, id: int) -> None:
        self.op = op
        self.args = args
        self.kind = kind
        self.id = id

    @property
    def inplace(self) -> bool:
        """Whether the op writes into a given buffer (a ufunc) rather than allocating."""
        return isinstance(self.op, np.ufunc)

    def __repr__(self) -> str:
        return f"n{self.id}"


Value = Node | Const
"""A value over the batch: a node, or a constant (the same for every element)."""


@final
@dataclass(frozen=True, slots=True)
class Term:
    """``coef * node`` (``node`` None: the constant ``coef``): a per-element derivative."""

    coef: Const
    node: Node | None = None

    @property
    def is_zero(self) -> bool:
        return self.node is None and self.coef == 0


ONE: Final = Term(1.0)


def const_key(c: Const) -> tuple[Any, ...]:
    # -0.0 == 0.0 and np.float64(2) == 2.0 hash alike, but they are not interchangeable:
    # the sign of zero survives division, and a numpy scalar promotes float32.
    return (type(c), float(c).hex() if not math.isnan(float(c)) else "nan")


def is_const(v: Any) -> bool:
    return not isinstance(v, Node)


# ufuncs whose result is boolean whatever the inputs.
_BOOL_OUT: Final = frozenset({np.equal, np.not_equal, np.less, np.less_equal, np.greater,
                              np.greater_equal, np.logical_and, np.logical_or})  # fmt: skip


@final
class Builder:
    """Builds hash-consed nodes and derivative terms; every node it makes is in ``nodes``."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._memo: dict[tuple[Any, ...], Node] = {}
        self.inputs: dict[int, Node] = {}

    # -- nodes
    def input(self, index: int) -> Node:
        if index not in self.inputs:
            self.inputs[index] = self._new(Input(index), (), "f")
        return self.inputs[index]

    def _new(self, op: Op, args: tuple[Value, ...], kind: str) -> Node:
        node = Node(op, args, kind, len(self.nodes))
        self.nodes.append(node)
        return node

    def _key(self, op: object, args: tuple[Value, ...]) -> tuple[Any, ...]:
        return (id(op), *(("n", a.id) if isinstance(a, Node) else const_key(a) for a in args))

    def ufunc(self, f: np.ufunc, *args: Value) -> Value:
        """``f(*args)``, folded when every argument is a constant."""
        if all(is_const(a) for a in args):
            with np.errstate(all="ignore"):
                y = f(*args)
            # Python numbers are weak under numpy's promotion (float32 stays float32);
            # folding them must not turn them into a strong np.float64.
            weak = all(type(a) in (int, float) for a in args)
            return float(y) if weak else y
        if f is not np.multiply and f not in _BOOL_OUT:
            # A mask is 0/1 only under multiplication: np.add on bools is logical or.
            args = tuple(self.as_float(a) for a in args)
        key = self._key(f, args)
        node = self._memo.get(key)
        if node is None:
            masks = all(isinstance(a, Node) and a.kind == "b" for a in args)
            bool_out = f in _BOOL_OUT or (masks and f is np.multiply)
            node = self._memo[key] = self._new(f, args, "b" if bool_out else "f")
        return node

    def as_float(self, v: Value) -> Value:
        """A mask as 0.0/1.0 floats (anything else as it is)."""
        if isinstance(v, Node) and v.kind == "b":
            return self.ufunc(np.multiply, v, 1.0)
        return v

    def call(self, fn: Callable[..., Any], name: str, *args: Value) -> Value:
        """``fn(*args)`` by a primitive's own kernel or rule (allocating)."""
        if all(is_const(a) for a in args):
            with np.errstate(all="ignore"):
                out = fn(*args)
            if np.ndim(out) != 0:
                raise ValueError(f"{name} returned an array for a scalar argument")
            # A 0-d result is a numpy scalar (strong under promotion, as in the record).
            return cast(Const, out[()] if isinstance(out, np.ndarray) else out)
        key = self._key(fn, args)
        node = self._memo.get(key)
        if node is None:
            node = self._memo[key] = self._new(Call(fn, name), args, "f")
        return node

    # -- arithmetic on values, with the identities that are exact in floating point
    def mul(self, a: Value, b: Value) -> Value:
        if is_const(b) and b == 1 and isinstance(a, Node) and a.kind == "f":
            return a
        if is_const(a) and a == 1 and isinstance(b, Node) and b.kind == "f":
            return b
        return self.ufunc(np.multiply, a, b)

    # -- terms
    def term(self, v: Value) -> Term:
        """The value ``v`` as a derivative term."""
        return Term(1.0, v) if isinstance(v, Node) else Term(v)

    def tmul(self, t: Term, u: Term) -> Term:
        coef = t.coef * u.coef
        if t.node is None or u.node is None:
            return Term(coef, t.node or u.node)
        node = self.mul(t.node, u.node)
        return Term(coef, node) if isinstance(node, Node) else Term(coef * node)

    def tadd(self, t: Term, u: Term, sign: float = 1.0) -> Term:
        """``t + sign * u``."""
        if u.is_zero:
            return t
        if t.is_zero:
            return Term(sign * u.coef, u.node)
        if t.node is not None and u.node is not None:
            if t.coef == sign * u.coef:
                return self._as_term(t.coef, self.ufunc(np.add, t.node, u.node))
            if t.coef == -sign * u.coef:
                return self._as_term(t.coef, self.ufunc(np.subtract, t.node, u.node))
        op = np.add if sign > 0 else np.subtract
        return self.term(self.ufunc(op, self.materialize(t), self.materialize(u)))

    def _as_term(self, coef: Const, v: Value) -> Term:
        return Term(coef, v) if isinstance(v, Node) else Term(coef * v)

    def materialize(self, t: Term) -> Value:
        """The term as one value: ``node * coef`` (one multiply unless ``coef`` is 1)."""
        if t.node is None:
            return t.coef
        return self.mul(t.node, t.coef)
