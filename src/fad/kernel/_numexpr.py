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
        n_temp = self._temporaries(order, must, buffer, n_in + len(outputs))
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

    @staticmethod
    def _temporaries(order: list[Node], must: set[int], buffer: dict[int, int], base: int) -> int:
        """Give every materialised intermediate a buffer; return how many temporaries.

        An intermediate lives from the step computing it to its last use. It goes, first
        choice, into an output buffer whose own step comes at or after that last use (the
        output is written over it elementwise, as a ufunc or numexpr may); else into a
        temporary freed by then; else into a new temporary. The sigmoid's ``exp(-x)``
        lives in the derivative's buffer, for instance, so it needs no temporary at all.
        """
        kept = must | buffer.keys()
        steps = [n for n in order if n.id in kept and not isinstance(n.op, Input)]
        at = {n.id: p for p, n in enumerate(steps)}
        last: dict[int, int] = {}
        for p, n in enumerate(steps):
            for a in _reads(n, kept):
                last[a] = p
        # Output buffers written by a step: (the step, the last use of what lives there).
        spare = {buffer[n.id]: [at[n.id], -1] for n in steps if n.id in buffer}
        free: list[tuple[int, int]] = []  # (free after this step, temporary buffer)
        n_temp = 0
        for n in steps:
            if n.id in buffer:
                continue
            start, end = at[n.id], last.get(n.id, at[n.id])
            fits = [b for b, (w, busy) in spare.items() if end <= w and busy <= start]
            if fits:
                b = min(fits, key=lambda b: spare[b][0])
                spare[b][1] = end
            else:
                ready = [f for f in free if f[0] <= start]
                if ready:
                    free.remove(ready[0])
                    b = ready[0][1]
                else:
                    b = base + n_temp
                    n_temp += 1
                free.append((end, b))
            buffer[n.id] = b
        return n_temp

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


def _reads(n: Node, kept: set[int]) -> set[int]:
    """The materialised nodes (ids in ``kept``) the step computing ``n`` reads: its
    arguments, looking through those inlined into its expression."""
    out: set[int] = set()
    stack = [a for a in n.args if isinstance(a, Node)]
    while stack:
        a = stack.pop()
        if a.id in kept:
            out.add(a.id)
        else:
            stack.extend(b for b in a.args if isinstance(b, Node))
    return out


def _arg(buffers: list[Any], a: int | Value) -> Any:
    return buffers[a] if type(a) is int else a


def evaluate(entry: Any, xs: list[Any], outs: list[Any], wd: np.dtype[Any], chunk: int) -> None:
    """Run ``entry``'s plan with numexpr over ``xs`` into ``outs``.

    numexpr splits each call into blocks over its own threads, and every call costs a
    thread hand-off, so a plan needing no temporaries runs each step once over the whole
    batch; otherwise the batch goes ``chunk`` elements at a time, keeping the temporaries
    to a few chunks.
    """
    program: NumexprProgram | None = entry.numexpr
    if program is None:
        program = entry.numexpr = NumexprProgram(entry.plan)
    n = xs[0].size
    if not program.n_temp:
        program.run([*xs, *outs])
        return
    length = min(n, chunk)
    temps = [np.empty(length, wd) for _ in range(program.n_temp)]
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        part = temps if e - s == length else [t[: e - s] for t in temps]
        program.run([*(x[s:e] for x in xs), *(o[s:e] for o in outs), *part])
