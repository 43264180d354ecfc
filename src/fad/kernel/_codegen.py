"""The numpy engine: schedule a plan's DAG, give each node a buffer, emit one function.

Buffers are reused as soon as a value is dead (linear scan in topological order), and a
ufunc may write over an argument that dies with it, so a k-step chain needs two or three
chunk-sized temporaries, not k. Output nodes are computed straight into the caller's
result arrays. The program is emitted as Python source, a straight line of
``ufunc(a, b, out=c)`` calls over one chunk, compiled once per plan (``Kernel.source``
shows it): no interpretation per instruction, no per-element Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any, Final, final

import numpy as np

from ._ir import Call, Input, Node, const_key, is_const
from ._plan import Plan, reachable

__all__ = ["Program", "emit"]

# Operations slow enough per element (numpy calls libm's, element by element) that
# writing their result to a result array costs nothing extra: the first write of a
# result chunk fetches its cache lines from memory, and during a slow operation that
# fetch is hidden behind the arithmetic, while a cheap one would wait for it.
_SLOW: Final = frozenset({
    np.exp, np.exp2, np.expm1, np.log, np.log2, np.log10, np.log1p, np.sin, np.cos,
    np.tan, np.sinh, np.cosh, np.tanh, np.arcsin, np.arccos, np.arctan, np.arcsinh,
    np.arccosh, np.arctanh, np.power, np.cbrt,
})  # fmt: skip


@final
@dataclass(frozen=True, slots=True)
class Program:
    """One chunk's worth of work, ``run(*inputs, *outputs, *scratch)``, as source (the
    code also holds ``span``, the same work in a loop over chunks; see ``bind``).

    ``scratch`` lists the kind of each temporary (``"f"``: the working float dtype,
    ``"b"``: bool); ``constants`` names the scalars the ufuncs take, which ``bind``
    turns into 0-d arrays of the working dtype.
    """

    code: CodeType
    namespace: dict[str, Any]
    source: str
    n_in: int
    n_out: int
    scratch: tuple[str, ...]
    constants: tuple[str, ...]
    ops: int

    def promoted(self, dt: np.dtype[Any]) -> np.dtype[Any]:
        """The working dtype for inputs of dtype ``dt``: numpy's promotion with the
        constants, so float32 stays float32 unless a numpy float64 constant takes part."""
        wd = np.result_type(dt, *(self.namespace[c] for c in self.constants))
        return wd if wd.kind == "f" else np.dtype(np.float64)

    def bind(self, wd: np.dtype[Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The functions for working dtype ``wd``: ``run``, one chunk's work, and
        ``span(*inputs, *outputs, *scratch, starts, chunk, stop)``, the chunks starting
        at ``starts`` (whole arrays, scratch of one chunk), each ending at ``stop`` or
        ``chunk`` elements on. Each returns whether a derivative came out nan."""
        namespace = dict(self.namespace)
        for c in self.constants:
            namespace[c] = np.asarray(namespace[c], dtype=wd)
        exec(self.code, namespace)
        return namespace["run"], namespace["span"]


def emit(plan: Plan) -> Program:
    """Allocate buffers for ``plan`` and compile its chunk function."""
    outputs = plan.outputs
    order = reachable(outputs)
    last: dict[int, int] = {}
    for p, n in enumerate(order):
        for a in n.args:
            if isinstance(a, Node):
                last[a.id] = p
    home: dict[int, str] = {}  # node id -> where its value lives
    for s, v in enumerate(outputs):
        if isinstance(v, Node) and not isinstance(v.op, Input) and v.id not in home:
            home[v.id] = f"o{s}"
    for n in order:
        if isinstance(n.op, Input):
            home[n.id] = f"x{n.op.index}"
    # An output's buffer is free until its own value is computed: a slow operation's
    # result may live there meanwhile (see _SLOW). Name -> [the step writing the output,
    # the last use of what lives there now].
    position = {n.id: p for p, n in enumerate(order)}
    spare: dict[str, list[int]] = {}
    for s, v in enumerate(outputs):
        o = f"o{s}"
        mine = isinstance(v, Node) and home.get(v.id) == o
        spare[o] = [position[v.id] if mine else len(order), -1]  # type: ignore[union-attr]

    names: dict[tuple[Any, ...], str] = {}  # constant -> its name in the namespace
    namespace: dict[str, Any] = {"copyto": np.copyto}
    constants: list[Any] = []

    def const(c: Any, ufunc: bool = True) -> str:
        # A ufunc's constants become 0-d arrays of the working dtype when the program is
        # bound to one (see ``Program.bind``): numpy converts a Python float on every
        # call, which costs more than the whole operation on a small batch.
        key = (ufunc, *const_key(c))
        name = names.get(key)
        if name is None:
            name = names[key] = f"{'c' if ufunc else 'k'}{len(names)}"
            namespace[name] = c
            if ufunc:
                constants.append(name)
        return name

    def fn_name(f: Any, label: str) -> str:
        for k, v in namespace.items():
            if v is f:
                return k
        name = label if label not in namespace else f"{label}{len(namespace)}"
        namespace[name] = f
        return name

    scratch: list[str] = []
    free: dict[str, list[str]] = {"f": [], "b": []}
    lines: list[str] = []
    where: dict[int, str] = {}
    ops = 0
    for p, n in enumerate(order):
        if isinstance(n.op, Input):
            where[n.id] = home[n.id]
            continue
        call = isinstance(n.op, Call)
        args = ", ".join(where[a.id] if isinstance(a, Node) else const(a, not call) for a in n.args)
        dying = [
            where[a.id]
            for a in {a.id: a for a in n.args if isinstance(a, Node)}.values()
            if last.get(a.id) == p and where[a.id].startswith("t")
        ]
        if isinstance(n.op, Call):
            target = home.get(n.id)
            f = fn_name(n.op.fn, f"call{len(namespace)}")
            local = f"v{n.id}"
            lines.append(f"{local} = {f}({args})  # {n.op.name}")
            where[n.id] = local
            if target is not None:
                lines.append(f"copyto({target}, {local})")
                where[n.id] = target
            ops += 1
        else:
            for r in dying:  # freed before the op: a ufunc may write over its argument
                free[r[1]].append(r)
            dying = []
            target = home.get(n.id)
            if target is None and n.op in _SLOW:
                end = last.get(n.id, p)
                fits = [o for o, (w, busy) in spare.items() if end <= w and busy <= p]
                if fits:
                    target = min(fits, key=lambda o: spare[o][0])
                    spare[target][1] = end
            if target is None:
                pool = free[n.kind]
                if pool:
                    target = pool.pop()
                else:
                    target = f"t{n.kind}{len(scratch)}"
                    scratch.append(n.kind)
            f = fn_name(n.op, n.op.__name__ if isinstance(n.op, np.ufunc) else "op")
            lines.append(f"{f}({args}, out={target})")
            where[n.id] = target
            ops += 1
        for r in dying:
            free[r[1]].append(r)
    for s, v in enumerate(outputs):
        o = f"o{s}"
        if is_const(v):
            lines.append(f"{o}.fill({const(v)})")
        elif where[v.id] != o:  # type: ignore[union-attr]
            lines.append(f"copyto({o}, {where[v.id]})")  # type: ignore[union-attr]
    # Whether a derivative came out nan (a fused 0 * inf, see Kernel._repair): one
    # reduction per derivative, over the chunk while it is in cache. np.maximum's keeps
    # nan, and is the cheapest numpy has (SIMD, no pairwise summation).
    derivs = [f"o{s}" for s in range(plan.out_tree.size, len(outputs))]
    derivs = [
        o for o, v in zip(derivs, outputs[plan.out_tree.size :], strict=True) if not is_const(v)
    ]
    namespace["_max"] = np.maximum.reduce
    check = ["_v = " + (" + ".join(f"_max({o})" for o in derivs) or "0.0")]
    arrays = [f"x{i}" for i in range(plan.n_in)] + [f"o{s}" for s in range(len(outputs))]
    temps = [f"t{k}{i}" for i, k in enumerate(scratch)]
    body = "\n".join(f"    {line}" for line in [*lines, *check])
    source = f"def run({', '.join(arrays + temps)}):\n{body}\n    return _v != _v\n"
    # The loop over chunks, in the same program: per chunk, slicing and the ufunc calls
    # are all the Python there is. ``starts`` may be shared by threads taking turns.
    whole = [a.upper() for a in arrays]
    loop = [
        "_nan = False",
        "for _s in _starts:",
        "    _e = _s + _chunk",
        "    if _e >= _stop:  # the last chunk: scratch cut to its length",
        "        _e = _stop",
        *(f"        {t} = {t}[: _e - _s]" for t in temps),
        *(f"    {a} = {w}[_s:_e]" for a, w in zip(arrays, whole, strict=True)),
        *(f"    {line}" for line in [*lines, *check]),
        "    if _v != _v:",
        "        _nan = True",
        "return _nan",
    ]
    loop_source = f"\n\ndef span({', '.join(whole + temps)}, _starts, _chunk, _stop):\n"
    loop_source += "\n".join(f"    {line}" for line in loop) + "\n"
    return Program(
        compile(source + loop_source, "<fad.kernel>", "exec"),
        namespace,
        source,
        plan.n_in,
        len(outputs),
        tuple(scratch),
        tuple(constants),
        ops,
    )
