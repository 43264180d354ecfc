"""``Kernel``: a compiled pipeline, called over batches chunk by chunk."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, Final, final

import numpy as np

from .._core import Fn
from .._errors import ShapeError, nan_checks_enabled
from .._tree import Tree, flatten, leaf_tree, unflatten
from ._codegen import Program, emit
from ._plan import Plan, plan, unsupported_steps

__all__ = ["DEFAULT_CHUNK", "NUMEXPR_MIN", "Kernel"]

DEFAULT_CHUNK: Final = 1 << 14
"""Elements per chunk: a few chunk-sized temporaries stay in a core's L2 cache."""

NUMEXPR_MIN: Final = 10_000
"""Below this many elements numexpr's fixed cost (about 15 us a call) outweighs it."""

_LEAF: Final = leaf_tree()
Scratch = tuple[np.ndarray[Any, Any], ...]
_INPUT_KINDS: Final = frozenset("fiu")


@final
class _Entry:
    """A plan for one input structure, its numpy program, and dtypes seen so far."""

    __slots__ = ("dtypes", "numexpr", "plan", "program")

    def __init__(self, p: Plan) -> None:
        self.plan = p
        self.program: Program = emit(p)
        self.numexpr: Any = None  # built on first use
        self.dtypes: dict[np.dtype[Any], np.dtype[Any]] = {}

    def dtype(self, dt: np.dtype[Any]) -> np.dtype[Any]:
        """The working dtype for inputs of dtype ``dt``: numpy's promotion with the
        constants, so float32 stays float32 unless a numpy float64 constant is in play."""
        wd = self.dtypes.get(dt)
        if wd is None:
            wd = np.result_type(dt, *self.program.constants)
            if wd.kind != "f":
                wd = np.dtype(np.float64)
            self.dtypes[dt] = wd
        return wd


def _numexpr_available() -> bool:
    try:
        import numexpr  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


@final
class Kernel:
    """A compiled elementwise pipeline: ``k(xs) -> (ys, dys)`` over whole batches.

    See ``fad.kernel.compile``.
    """

    __slots__ = ("_entries", "_lock", "_pool", "chunk", "engine", "fn")

    def __init__(
        self, fn: Fn[Any, Any], *, chunk: int = DEFAULT_CHUNK, engine: str = "auto"
    ) -> None:
        if engine not in ("auto", "numpy", "numexpr"):
            raise ValueError(f"engine must be 'auto', 'numpy' or 'numexpr', got {engine!r}")
        if engine == "numexpr" and not _numexpr_available():
            raise ImportError("engine='numexpr' needs numexpr: pip install 'fad[fast]'")
        if int(chunk) < 1:
            raise ValueError(f"chunk must be a positive number of elements, got {chunk!r}")
        if not isinstance(fn, Fn):
            raise TypeError(f"fad.kernel.compile expects an Fn, got {type(fn).__name__} {fn!r}")
        unsupported_steps(fn)
        self.fn = fn
        self.chunk = int(chunk)
        self.engine = "numexpr" if engine == "auto" and _numexpr_available() else engine
        if self.engine == "auto":
            self.engine = "numpy"
        self._entries: dict[Tree, _Entry] = {}
        self._pool: dict[tuple[np.dtype[Any], tuple[str, ...]], list[Scratch]] = {}
        self._lock = threading.Lock()
        with contextlib.suppress(TypeError):  # a structured input (par, fst): first call
            self._entry(_LEAF)

    # -- planning
    def _entry(self, tree: Tree) -> _Entry:
        entry = self._entries.get(tree)
        if entry is None:
            entry = _Entry(plan(self.fn, tree))
            with self._lock:
                self._entries.setdefault(tree, entry)
        return entry

    @property
    def source(self) -> str:
        """The numpy program of every plan so far, as Python source (one chunk's work)."""
        return "\n".join(e.program.source for e in self._entries.values())

    def __repr__(self) -> str:
        parts = [f"fad.kernel.compile({self.fn!r})"]
        for tree, e in self._entries.items():
            p = e.program
            temps = len(p.scratch)
            what = "" if tree.is_leaf else f" for inputs {tree!r}"
            fused = "" if e.plan.fused else ", some primitives by their own (allocating) kernels"
            parts.append(
                f"plan{what}: {p.ops} ops per chunk into {temps} "
                f"temporar{'y' if temps == 1 else 'ies'}{fused}"
            )
        if not self._entries:
            parts.append("planned at the first call (its input structure decides)")
        if self.engine == "numexpr":
            parts.append(f"engine: numexpr from {NUMEXPR_MIN} elements, else numpy")
        else:
            parts.append("engine: numpy")
        parts.append(f"chunks of {self.chunk} elements")
        return "<" + "; ".join(parts) + ">"

    def __reduce__(self) -> tuple[Callable[..., Kernel], tuple[Any, ...]]:
        return (
            _rebuild,
            (self.fn, self.chunk, self.engine, [e.plan for e in self._entries.values()]),
        )

    # -- calling
    def _input(self, x: Any) -> np.ndarray[Any, Any]:
        if type(x) is np.ndarray:
            if x.dtype.kind == "f":
                return x
            if x.dtype.kind in "iu":
                return x.astype(np.float64)
        elif isinstance(x, int | float | np.floating | np.integer) and not isinstance(
            x, bool | np.bool_
        ):
            return np.asarray(x, dtype=x.dtype if isinstance(x, np.floating) else np.float64)
        elif isinstance(x, np.ndarray) and x.dtype.kind in _INPUT_KINDS:
            return self._input(np.asarray(x))
        raise TypeError(
            f"{self!r} received {type(x).__name__} {x!r}: a compiled kernel takes real "
            "numbers and arrays of them (or tuples, lists and dicts of those)"
        )

    def __call__(self, xs: Any, out: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
        """Values and per-element derivatives of the pipeline over the batch ``xs``."""
        if type(xs) is np.ndarray:
            leaves: list[Any] = [xs]
            tree = _LEAF
        else:
            leaves, tree = flatten(xs)
            if any(_is_dask(x) for x in leaves):
                from ._dask import apply

                if out is not None:
                    raise TypeError("out= is not supported for dask arrays: results are lazy")
                return apply(self, leaves, tree)
        entry = self._entries.get(tree) or self._entry(tree)
        xs_ = [self._input(x) for x in leaves]
        x0 = xs_[0]
        shape = x0.shape
        dt = x0.dtype
        if len(xs_) > 1:
            for x in xs_[1:]:
                if x.shape != shape:
                    raise ShapeError(
                        f"{self!r}: every input array must have the same shape, got "
                        f"{[x.shape for x in xs_]}"
                    )
            dt = np.result_type(*xs_)
        if nan_checks_enabled():
            self.fn.value(xs)  # raises DomainError at the first primitive making nan or inf
        wd = entry.dtype(dt)
        flat = [
            x.reshape(-1) if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(-1)
            for x in xs_
        ]
        n = x0.size
        program = entry.program
        if out is None:
            block = np.empty((program.n_out, n), wd)  # one allocation for every result
            outs = list(block)
            results = [o.reshape(shape) for o in outs]
            copies: list[tuple[Any, Any]] = []
        else:
            outs, results, copies = self._outs(out, entry, shape, wd, flat)
            if any(np.may_share_memory(o, x) for o in results for x in xs_):
                flat = [x.copy() for x in flat]  # the caller asked to overwrite the input
        if n:
            if self.engine == "numexpr" and n >= NUMEXPR_MIN:
                from ._numexpr import run

                run(self, entry, flat, outs, wd)
            else:
                self._run(program, flat, outs, n, wd)
        for dst, src in copies:
            np.copyto(dst, src.reshape(dst.shape), casting="same_kind")
        return self._trees(entry.plan, results)

    def _run(
        self, program: Program, xs: list[Any], outs: list[Any], n: int, wd: np.dtype[Any]
    ) -> None:
        chunk = self.chunk
        scratch = full = self._take(program, wd)
        try:
            if n <= chunk:
                if n < chunk:
                    scratch = tuple(t[:n] for t in scratch)
                program.run(*xs, *outs, *scratch)
                return
            run = program.run
            for s in range(0, n, chunk):
                e = s + chunk
                if e > n:
                    e = n
                    scratch = tuple(t[: e - s] for t in full)
                run(*[x[s:e] for x in xs], *[o[s:e] for o in outs], *scratch)
        finally:
            self._give(wd, full, program)

    def _take(self, program: Program, wd: np.dtype[Any]) -> tuple[np.ndarray[Any, Any], ...]:
        # Temporaries are pooled per dtype and handed to one call at a time, so two threads
        # (dask's threaded scheduler) never share a buffer.
        pool = self._pool.get((wd, program.scratch))
        if pool:
            try:
                return pool.pop()
            except IndexError:
                pass  # another thread took the last one
        return tuple(
            np.empty(self.chunk, wd if kind == "f" else np.bool_) for kind in program.scratch
        )

    def _give(
        self, wd: np.dtype[Any], scratch: tuple[np.ndarray[Any, Any], ...], program: Program
    ) -> None:
        pool = self._pool.setdefault((wd, program.scratch), [])
        if len(pool) < 4:
            pool.append(scratch)

    def _outs(
        self, out: Any, entry: _Entry, shape: tuple[int, ...], wd: np.dtype[Any], flat: list[Any]
    ) -> tuple[list[Any], list[Any], list[tuple[Any, Any]]]:
        p = entry.plan
        try:
            ys, dys = out
        except (TypeError, ValueError):
            raise TypeError(
                "out= takes a pair (ys, dys) shaped like the kernel's results"
            ) from None
        y_leaves, y_tree = flatten(ys)
        d_leaves = flatten(dys)[0]
        want = p.n_out * (1 + p.n_in)
        if y_tree != p.out_tree or len(y_leaves) + len(d_leaves) != want:
            raise ShapeError(
                f"{self!r}: out= must be shaped like the results, {p.out_tree!r} arrays of "
                f"values and {p.n_out * p.n_in} of derivatives"
            )
        outs: list[Any] = []
        results: list[Any] = []
        copies: list[tuple[Any, Any]] = []
        for o in [*y_leaves, *d_leaves]:
            if not isinstance(o, np.ndarray) or o.shape != shape or not o.flags.writeable:
                raise ShapeError(
                    f"{self!r}: out= needs writeable arrays of shape {shape}, got "
                    f"{type(o).__name__} {getattr(o, 'shape', '')}"
                )
            results.append(o)
            if o.dtype == wd and o.flags.c_contiguous:
                outs.append(o.reshape(-1))
            else:
                tmp = np.empty(o.size, wd)
                outs.append(tmp)
                copies.append((o, tmp))
        return outs, results, copies

    def _trees(self, p: Plan, results: list[Any]) -> tuple[Any, Any]:
        n_out, n_in = p.n_out, p.n_in
        if p.out_tree.is_leaf and p.in_tree.is_leaf:
            return results[0], results[1]
        ys = unflatten(p.out_tree, results[:n_out])
        rows = [results[n_out + j * n_in : n_out + (j + 1) * n_in] for j in range(n_out)]
        per_leaf = [r[0] if p.in_tree.is_leaf else unflatten(p.in_tree, r) for r in rows]
        return ys, unflatten(p.out_tree, per_leaf)


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.")


def _rebuild(fn: Fn[Any, Any], chunk: int, engine: str, plans: list[Plan]) -> Kernel:
    k = Kernel.__new__(Kernel)
    k.fn = fn
    k.chunk = chunk
    k.engine = engine if engine != "numexpr" or _numexpr_available() else "numpy"
    k._entries = {p.in_tree: _Entry(p) for p in plans}
    k._pool = {}
    k._lock = threading.Lock()
    return k
