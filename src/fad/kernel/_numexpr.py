"""The numexpr engine: the same plan, its arithmetic fused by numexpr on all cores.

A node is *materialised* (given a buffer) when it is an output, is used more than once,
or is something numexpr cannot express (``copysign``, ``heaviside``, a primitive's own
kernel...), which numpy then computes in place as in the numpy engine. Every other node is
inlined into the expression of the materialised node that uses it, so
``1 / (1 + exp(-x))`` is one numexpr call and its intermediates never touch memory.
numexpr works in float64 here; float32 batches take the numpy engine.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Final, final

import numpy as np

from ._ir import Call, Input, Node, Value
from ._plan import Plan, reachable

__all__ = ["NumexprProgram", "evaluate"]

_TEMPLATES: Final[dict[Any, str]] = {
    np.add: "({0} + {1})",
    np.subtract: "({0} - {1})",
    np.multiply: "({0} * {1})",
    np.divide: "({0} / {1})",
    np.negative: "(-{0})",
    np.positive: "{0}",
    np.square: "({0} * {0})",
    np.reciprocal: "(1.0 / {0})",
    np.exp: "exp({0})",
    np.log: "log({0})",
    np.log1p: "log1p({0})",
    np.expm1: "expm1({0})",
    np.sin: "sin({0})",
    np.cos: "cos({0})",
    np.tan: "tan({0})",
    np.tanh: "tanh({0})",
    np.sqrt: "sqrt({0})",
    np.absolute: "abs({0})",
}


def _expressible(n: Node) -> bool:
    return (
        n.kind == "f"
        and n.op in _TEMPLATES
        and all(a.kind == "f" if isinstance(a, Node) else np.isfinite(a) for a in n.args)
    )


@final
@dataclass(frozen=True, slots=True)
class _Step:
    """Compute one materialised node into ``target`` (an index into the buffers)."""

    target: int
    numexpr: Any  # a compiled numexpr.NumExpr, or None for a numpy op
    args: tuple[int | Value, ...]  # buffer indices (numexpr: its inputs, in order) or constants
    op: Any  # the numpy ufunc or Call for a numpy step


@final
class NumexprProgram:
    """A plan split into numexpr expressions and numpy operations over buffers.

    Buffers are numbered: inputs first, then outputs, then temporaries.
    """

    __slots__ = ("expressions", "n_temp", "steps", "tail")

    def __init__(self, plan: Plan) -> None:
        # Imported by name: numexpr is an optional extra, typed Any here.
        numexpr = importlib.import_module("numexpr")

        outputs = plan.outputs
        order = reachable(outputs)
        uses: dict[int, int] = {}
        for n in order:
            for a in {a.id: a for a in n.args if isinstance(a, Node)}.values():
                uses[a.id] = uses.get(a.id, 0) + 1
        must = {n.id for n in order if not _expressible(n) and not isinstance(n.op, Input)}
        for n in order:
            if n.id in must:  # numpy needs its arguments as arrays
                must.update(a.id for a in n.args if isinstance(a, Node))
        must.update(n.id for n in order if uses.get(n.id, 0) > 1)
        buffer: dict[int, int] = {}
        for n in order:
            if isinstance(n.op, Input):
                buffer[n.id] = n.op.index
        n_in = plan.n_in
        for s, v in enumerate(outputs):
            if isinstance(v, Node) and v.id not in buffer:
                buffer[v.id] = n_in + s
        n_temp = 0
        base = n_in + len(outputs)
        for n in order:
            if (n.id in must or n.id in buffer) and n.id not in buffer:
                buffer[n.id] = base + n_temp
                n_temp += 1
        self.n_temp = n_temp
        self.steps: list[_Step] = []
        self.expressions: list[str] = []
        for n in order:
            if isinstance(n.op, Input) or n.id not in buffer:
                continue
            if _expressible(n):
                names: dict[int, str] = {}
                text = self._inline(n, buffer, names, top=True)
                signature = [(name, np.float64) for name in names.values()]
                compiled = numexpr.NumExpr(text, signature=signature)
                self.expressions.append(text)
                self.steps.append(_Step(buffer[n.id], compiled, tuple(names), None))
            else:
                # Constants as numpy scalars: a plain int would read as a buffer index.
                args = tuple(buffer[a.id] if isinstance(a, Node) else np.float64(a) for a in n.args)
                self.steps.append(_Step(buffer[n.id], None, args, n.op))
        # Outputs that are constants, inputs or a node already written elsewhere.
        self.tail: list[tuple[int, int | Value]] = []
        for s, v in enumerate(outputs):
            if not isinstance(v, Node):
                self.tail.append((n_in + s, np.float64(v)))
            elif buffer[v.id] != n_in + s:
                self.tail.append((n_in + s, buffer[v.id]))

    def _inline(self, n: Value, buffer: dict[int, int], names: dict[int, str], top: bool) -> str:
        if not isinstance(n, Node):
            return repr(float(n))
        if not top and n.id in buffer:
            b = buffer[n.id]
            return names.setdefault(b, f"b{b}")
        args = [self._inline(a, buffer, names, top=False) for a in n.args]
        return _TEMPLATES[n.op].format(*args)

    def run(self, buffers: list[Any]) -> None:
        for step in self.steps:
            out = buffers[step.target]
            if step.numexpr is not None:
                step.numexpr(
                    *(buffers[i] for i in step.args),  # type: ignore[index]
                    out=out,
                    order="K",
                    casting="same_kind",
                    ex_uses_vml=False,
                )
            elif isinstance(step.op, Call):
                np.copyto(out, step.op.fn(*(_arg(buffers, a) for a in step.args)))
            else:
                step.op(*(_arg(buffers, a) for a in step.args), out=out)
        for target, src in self.tail:
            if isinstance(src, int):
                np.copyto(buffers[target], buffers[src])
            else:
                buffers[target].fill(src)


def _arg(buffers: list[Any], a: int | Value) -> Any:
    return buffers[a] if type(a) is int else a


def evaluate(entry: Any, xs: list[Any], outs: list[Any], wd: np.dtype[Any], chunk: int) -> None:
    """Run ``entry``'s plan with numexpr over ``xs`` into ``outs``, ``chunk`` at a time."""
    program: NumexprProgram | None = entry.numexpr
    if program is None:
        program = entry.numexpr = NumexprProgram(entry.plan)
    n = xs[0].size
    length = min(n, chunk)
    temps = [np.empty(length, wd) for _ in range(program.n_temp)]
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        part = temps if e - s == length else [t[: e - s] for t in temps]
        program.run([*(x[s:e] for x in xs), *(o[s:e] for o in outs), *part])
