"""``Kernel``: a compiled pipeline, called over batches chunk by chunk."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar, copy_context
from typing import Any, Final, final

import numpy as np

from .._core import Fn
from .._errors import ShapeError, nan_checks_enabled
from .._transforms import linearize
from .._tree import Tree, flatten, leaf_tree, unflatten
from ._codegen import Program, emit
from ._plan import Plan, plan, unsupported_steps

__all__ = ["DEFAULT_CHUNK", "NUMEXPR_MIN", "THREADS_MIN", "Kernel", "default_threads"]

DEFAULT_CHUNK: Final = 1 << 14
"""Elements per chunk: a few chunk-sized temporaries stay in a core's L2 cache."""

NUMEXPR_MIN: Final = 10_000
"""Below this many elements numexpr's fixed cost (about 15 us a call) outweighs it."""

NUMEXPR_CHUNK: Final = 1 << 18
"""Elements per chunk for numexpr when a plan needs temporaries: numexpr blocks and
threads each call itself, so its chunks only bound the temporaries' memory."""

THREADS_MIN: Final = 1 << 17
"""Batches this large run on several threads (fewer elements: not worth the hand-off)."""

# Set while a dask task runs a kernel: dask already runs one task per core.
_IN_WORKER: ContextVar[bool] = ContextVar("fad_kernel_in_worker", default=False)

_LEAF: Final = leaf_tree()
Scratch = tuple[np.ndarray[Any, Any], ...]
Bound = tuple[np.dtype[Any], Callable[..., Any], Callable[..., Any]]
_INPUT_KINDS: Final = frozenset("fiu")


@final
class _Entry:
    """A plan for one input structure: its numpy program, bound per dtype, and a pool of
    temporaries.

    Temporaries are pooled by (dtype, length) and handed to one call at a time, so two
    threads (dask's threaded scheduler) never share a buffer, and a call of a size seen
    before allocates nothing but its results.
    """

    __slots__ = ("bound", "numexpr", "plan", "pool", "program")

    def __init__(self, p: Plan) -> None:
        self.plan = p
        self.program: Program = emit(p)
        self.numexpr: Any = None  # the numexpr program, built at its first use
        self.bound: dict[np.dtype[Any], Bound] = {}
        self.pool: dict[tuple[np.dtype[Any], int], list[Scratch]] = {}

    def bind(self, dt: np.dtype[Any]) -> Bound:
        """The working dtype, the chunk function and the loop over chunks (``run`` and
        ``span`` of ``Program.bind``) for inputs of dtype ``dt``."""
        got = self.bound.get(dt)
        if got is None:
            wd = self.program.promoted(dt)
            got = self.bound[dt] = (wd, *self.program.bind(wd))
        return got

    def take(self, wd: np.dtype[Any], length: int) -> Scratch:
        try:
            return self.pool[wd, length].pop()
        except (KeyError, IndexError):
            return tuple(
                np.empty(length, wd if kind == "f" else np.bool_) for kind in self.program.scratch
            )

    def give(self, wd: np.dtype[Any], length: int, scratch: Scratch) -> None:
        pool = self.pool.get((wd, length))
        if pool is None:
            if len(self.pool) >= _POOL_SIZES:
                self.pool.clear()  # many different sizes: keep memory bounded
            pool = self.pool.setdefault((wd, length), [])
        if len(pool) < _POOL_DEPTH:
            pool.append(scratch)


_POOL_SIZES: Final = 16  # lengths of temporaries kept per plan
_POOL_DEPTH: Final = 8  # sets of temporaries kept per length (one per concurrent call)


def _numexpr_available() -> bool:
    # find_spec, not import: mypy must not need numexpr (an optional extra) to check this.
    return importlib.util.find_spec("numexpr") is not None


@final
class Kernel:
    """A compiled elementwise pipeline: ``k(xs) -> (ys, dys)`` over whole batches.

    See ``fad.kernel.compile``.
    """

    __slots__ = ("_entries", "_leaf", "_lock", "chunk", "engine", "fn", "threads")

    def __init__(
        self,
        fn: Fn[Any, Any],
        *,
        chunk: int = DEFAULT_CHUNK,
        engine: str = "numpy",
        threads: int | None = None,
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
        self.threads = default_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads!r}")
        if engine == "auto":
            engine = "numexpr" if _numexpr_available() else "numpy"
        self.engine = engine
        self._entries: dict[Tree, _Entry] = {}
        self._leaf: _Entry | None = None  # the plan for one array in, one array out
        self._lock = threading.Lock()
        with contextlib.suppress(TypeError):  # a structured input (par, fst): first call
            self._entry(_LEAF)

    # -- planning
    def _entry(self, tree: Tree) -> _Entry:
        entry = self._entries.get(tree)
        if entry is None:
            entry = _Entry(plan(self.fn, tree))
            with self._lock:
                entry = self._entries.setdefault(tree, entry)
            if tree.is_leaf and entry.plan.out_tree.is_leaf:
                self._leaf = entry
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
            parts.append(f"engine: numexpr from {NUMEXPR_MIN} elements, numpy below")
        else:
            parts.append("engine: numpy")
        parts.append(f"chunks of {self.chunk} elements")
        if self.threads > 1:
            parts.append(f"{self.threads} threads from {THREADS_MIN} elements")
        return "<" + "; ".join(parts) + ">"

    def __reduce__(self) -> tuple[Callable[..., Kernel], tuple[Any, ...]]:
        plans = [e.plan for e in self._entries.values()]
        return (_rebuild, (self.fn, self.chunk, self.engine, self.threads, plans))

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
        leaf = self._leaf
        if (
            leaf is not None
            and type(xs) is np.ndarray
            and out is None
            and 0 < xs.size <= self.chunk
            and xs.flags.c_contiguous
            and (self.engine == "numpy" or xs.size < NUMEXPR_MIN)
            and not nan_checks_enabled()
        ):
            # The hot path for one small array: a batch of a thousand points must not pay
            # more for the call than for the arithmetic.
            bound = leaf.bound.get(xs.dtype)
            if bound is not None:
                wd, run, _ = bound
                n = xs.size
                block = np.empty((2, n), wd)  # one allocation for both results
                y = block[0]
                d = block[1]
                scratch = leaf.take(wd, n)
                flat = xs if xs.ndim == 1 else xs.reshape(-1)
                nan = run(flat, y, d, *scratch)
                leaf.give(wd, n, scratch)
                if nan:
                    self._repair(leaf.plan, [flat], [y, d])
                if xs.ndim != 1:
                    return y.reshape(xs.shape), d.reshape(xs.shape)
                return y, d
        return self._call(xs, out)

    def _call(self, xs: Any, out: tuple[Any, Any] | None) -> tuple[Any, Any]:
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
        wd, run, span = entry.bind(dt)
        flat = [
            x.reshape(-1) if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(-1)
            for x in xs_
        ]
        n = x0.size
        n_out = entry.program.n_out
        if out is None:
            block = np.empty((n_out, n), wd)  # one allocation for every result
            outs = [block[i] for i in range(n_out)]
            results = [o.reshape(shape) for o in outs]
            copies: list[tuple[Any, Any]] = []
        else:
            outs, results, copies = self._outs(out, entry, shape, wd)
            if any(np.may_share_memory(o, x) for o in results for x in xs_):
                flat = [x.copy() for x in flat]  # the caller asked to overwrite the input
        if n:
            if self.engine == "numexpr" and n >= NUMEXPR_MIN and wd == np.float64:
                from ._numexpr import evaluate

                evaluate(entry, flat, outs, wd, max(self.chunk, NUMEXPR_CHUNK))
                nan = any(np.isnan(np.maximum.reduce(d)) for d in outs[entry.plan.n_out :])
            else:
                nan = self._run(entry, run, span, wd, flat, outs, n)
            if nan:
                self._repair(entry.plan, flat, outs)
        for dst, src in copies:
            np.copyto(dst, src.reshape(dst.shape), casting="same_kind")
        return self._trees(entry.plan, results)

    def _repair(self, p: Plan, flat: list[Any], outs: list[Any]) -> None:
        """Recompute derivatives that came out nan through fad's own graph.

        A fused product can meet ``0 * inf`` (``sqrt`` at 0 times a zero factor), where
        fad's convention is 0 (see ``fad._linear.times``). Such places are rare; one
        reduction per derivative finds them (inside the program, chunk by chunk), and
        only they are recomputed.
        """
        n_out, n_in = p.n_out, p.n_in
        derivs = outs[n_out:]
        idx = np.flatnonzero(np.any([np.isnan(d) for d in derivs], axis=0))
        if not idx.size:
            return  # the check added the maxima of two derivatives, inf and -inf
        sub = unflatten(p.in_tree, [x[idx] for x in flat])
        with np.errstate(all="ignore"):
            _, d = linearize(self.fn, sub)
            for i in range(n_in):
                ts = [np.zeros(idx.size, x.dtype) for x in flat]
                ts[i] = np.ones(idx.size, flat[i].dtype)
                got = flatten(d @ unflatten(p.in_tree, ts))[0]
                for j in range(n_out):
                    derivs[j * n_in + i][idx] = np.broadcast_to(got[j], idx.shape)

    def _run(
        self,
        entry: _Entry,
        run: Callable[..., Any],
        span: Callable[..., Any],
        wd: np.dtype[Any],
        xs: list[Any],
        outs: list[Any],
        n: int,
    ) -> bool:
        """Run the program over the batch; whether a derivative came out nan."""
        chunk = self.chunk
        if n <= chunk:
            scratch = entry.take(wd, n)
            nan = run(*xs, *outs, *scratch)
            entry.give(wd, n, scratch)
            return bool(nan)
        threads = self.threads if n >= THREADS_MIN and not _IN_WORKER.get() else 1
        threads = min(threads, -(-n // chunk))
        if threads == 1:
            return _run_span(entry, span, wd, xs, outs, range(0, n, chunk), chunk, n)
        # numpy's ufuncs release the GIL, so chunks run side by side. The threads take
        # chunks from one shared iterator as they finish the last, rather than a fixed
        # share each: on a machine whose cores are busy with other work, a thread that
        # gets less of a core takes fewer chunks, and the call is never slower than on
        # one thread by more than a chunk. Each thread has its own temporaries.
        starts = iter(range(0, n, chunk))  # next() on it is atomic under the GIL
        pool = _executor(threads)
        # Each helper runs in a copy of the caller's context: np.errstate is a context
        # variable, and the caller's settings hold for the whole batch.
        futures = [
            pool.submit(copy_context().run, _run_span, entry, span, wd, xs, outs, starts, chunk, n)
            for _ in range(threads - 1)
        ]
        nan = _run_span(entry, span, wd, xs, outs, starts, chunk, n)
        # Every chunk is taken; a helper still queued (the pool busy with other calls)
        # would find none: cancelled, it is not waited for.
        return any([nan, *(f.result() for f in futures if not f.cancel())])

    def _outs(
        self, out: Any, entry: _Entry, shape: tuple[int, ...], wd: np.dtype[Any]
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


def _run_span(
    entry: _Entry,
    span: Callable[..., Any],
    wd: np.dtype[Any],
    xs: list[Any],
    outs: list[Any],
    starts: Iterable[int],
    chunk: int,
    stop: int,
) -> bool:
    """The chunks beginning at ``starts`` (an iterator threads may share); whether a
    derivative came out nan."""
    scratch = entry.take(wd, chunk)
    try:
        return bool(span(*xs, *outs, *scratch, starts, chunk, stop))
    finally:
        entry.give(wd, chunk, scratch)


_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK: Final = threading.Lock()


def _executor(threads: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL or _POOL[0]._max_workers < threads:
            _POOL[:] = [ThreadPoolExecutor(threads, thread_name_prefix="fad-kernel")]
        return _POOL[0]


def default_threads() -> int:
    """Threads a kernel uses for large batches: the cores this process may run on (<= 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.")


def _rebuild(fn: Fn[Any, Any], chunk: int, engine: str, threads: int, plans: list[Plan]) -> Kernel:
    k = Kernel.__new__(Kernel)
    k.fn = fn
    k.chunk = chunk
    k.threads = threads
    k.engine = engine if engine != "numexpr" or _numexpr_available() else "numpy"
    k._entries = {}
    k._leaf = None
    k._lock = threading.Lock()
    for p in plans:
        entry = k._entries[p.in_tree] = _Entry(p)
        if p.in_tree.is_leaf and p.out_tree.is_leaf:
            k._leaf = entry
    return k
