"""Side-by-side timing for fad's benchmark scripts.

A benchmark compares *variants* of one computation (fad, hand-written numpy, autograd...)
in one process, so they share the machine's state: the same CPU frequency, caches and
libraries. ``run`` does it in four steps:

1. call every variant once and check its result against the expected one (by default
   the reference variant's), so a fast wrong answer is never timed;
2. choose each variant's inner loop count so one timing lasts ``min_time`` seconds;
3. time the variants in interleaved rounds (the order rotates each round), so a slow
   drift of the machine affects every variant alike;
4. print a table: the median time per call (and per unit, e.g. per composed function),
   the ratio to the named reference, the spread of the rounds, and the targets.

Benchmarks are scripts a user runs, never tests: nothing here asserts a timing.

Examples:
    >>> import math
    >>> res = run(
    ...     "sqrt of 2",
    ...     [Variant("math", lambda: math.sqrt(2.0)), Variant("power", lambda: 2.0**0.5)],
    ...     reference="math",
    ...     targets=[Target.ratio("power", "math", at_most=100.0)],
    ...     rounds=3,
    ...     min_time=1e-3,
    ...     show=False,
    ... )
    >>> res.met("power", "math") is not None
    True

See also:
    peak_memory, describe_machine
"""

from __future__ import annotations

import gc
import math
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Final, final

import numpy as np

__all__ = [
    "SAME",
    "Results",
    "Target",
    "Timing",
    "Variant",
    "assert_close",
    "describe_machine",
    "fmt_bytes",
    "fmt_time",
    "optional",
    "peak_memory",
    "print_summary",
    "run",
]


@final
class _Same:
    """The marker for "check against the table's expected result"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SAME"


SAME: Final = _Same()


@final
@dataclass(frozen=True, slots=True)
class Variant:
    """One way of computing the benchmark's result.

    Attributes:
        name: the row's label, also what targets and ``reference`` refer to.
        fn: a callable of no arguments doing one complete computation.
        expected: what ``fn()`` must return; ``SAME`` means the table's expected result
            (by default the reference variant's). A variant that computes less, such as
            "the function alone" beside "value and gradient", states its own.
    """

    name: str
    fn: Callable[[], object]
    expected: object = SAME


@final
@dataclass(frozen=True, slots=True)
class Timing:
    """The measurements of one variant: seconds per call, one sample per round."""

    name: str
    samples: tuple[float, ...]
    number: int
    peak_bytes: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the interquartile range of the rounds, relative to the median."""
        if len(self.samples) < 4:
            return (max(self.samples) - min(self.samples)) / (2 * self.median)
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return (q3 - q1) / (2 * self.median)


@final
@dataclass(frozen=True, slots=True)
class Target:
    """A goal stated beside the measurements, evaluated on the medians.

    Build one with ``Target.time`` (seconds per unit at most), ``Target.ratio``
    (``variant / against`` at most) or ``Target.speedup`` (``over / variant`` at least).
    """

    kind: str
    variant: str
    bound: float
    other: str | None = None
    note: str = ""

    @staticmethod
    def time(variant: str, seconds: float, note: str = "") -> Target:
        """``variant`` takes at most ``seconds`` per unit."""
        return Target("time", variant, seconds, None, note)

    @staticmethod
    def ratio(variant: str, against: str, at_most: float, note: str = "") -> Target:
        """``variant``'s median divided by ``against``'s is at most ``at_most``."""
        return Target("ratio", variant, at_most, against, note)

    @staticmethod
    def speedup(variant: str, over: str, at_least: float, note: str = "") -> Target:
        """``variant`` is at least ``at_least`` times faster than ``over``."""
        return Target("speedup", variant, at_least, over, note)

    def describe(self, unit: str) -> str:
        if self.kind == "time":
            text = f"{self.variant} <= {fmt_time(self.bound)} per {unit}"
        elif self.kind == "ratio":
            text = f"{self.variant} / {self.other} <= {self.bound:g}"
        else:
            text = f"{self.variant} >= {self.bound:g}x faster than {self.other}"
        return f"{text} ({self.note})" if self.note else text

    def evaluate(
        self, medians: Mapping[str, float], failures: Mapping[str, str] | None = None
    ) -> tuple[str, bool | None]:
        """The measured figure and whether the target is met (``None``: not measured).

        A failed ``variant`` misses its target; a failed comparison makes it unmeasured.
        """
        if failures and self.variant in failures:
            return "failed", False
        names = [self.variant] if self.other is None else [self.variant, self.other]
        missing = [n for n in names if n not in medians]
        if missing:
            return f"n/a ({', '.join(missing)} not run)", None
        mine = medians[self.variant]
        if self.kind == "time":
            return fmt_time(mine), mine <= self.bound
        theirs = medians[self.other]  # type: ignore[index]
        if self.kind == "ratio":
            r = mine / theirs
            return f"{r:.2f}", r <= self.bound
        s = theirs / mine
        return f"{s:.1f}x", s >= self.bound


@final
@dataclass(slots=True)
class Results:
    """What ``run`` measured: timings by variant name, per unit, and the verdicts."""

    title: str
    timings: dict[str, Timing]
    per: int
    unit: str
    failures: dict[str, str] = field(default_factory=dict)
    verdicts: list[tuple[Target, str, bool | None]] = field(default_factory=list)

    def median(self, name: str) -> float:
        """The median seconds per call of one variant."""
        return self.timings[name].median

    def medians(self) -> dict[str, float]:
        """Median seconds per unit of every variant."""
        return {k: t.median / self.per for k, t in self.timings.items()}

    def met(self, variant: str, other: str | None = None) -> bool | None:
        """The verdict of the first target about ``variant`` (and ``other``)."""
        for target, _, ok in self.verdicts:
            if target.variant == variant and (other is None or target.other == other):
                return ok
        return None


def assert_close(
    actual: object, expected: object, *, rtol: float = 1e-9, atol: float = 0.0, where: str = ""
) -> None:
    """Compare two results leaf by leaf: tuples, lists and dicts of numbers and arrays.

    Anything ``np.asarray`` understands is a leaf, so a fad ``LinearMap`` compares as its
    dense matrix (or per-element derivative).

    Raises:
        AssertionError: naming ``where`` and the path of the leaf that differs.

    Examples:
        >>> assert_close((1.0, [2.0, 3.0]), (1.0, np.array([2.0, 3.0])))
        >>> assert_close((1.0, 2.0), (1.0, 2.2), where="demo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        AssertionError: demo: result[1] differs from the expected one...
    """

    def walk(a: object, e: object, path: str) -> None:
        if isinstance(e, dict):
            if not isinstance(a, dict) or a.keys() != e.keys():
                raise AssertionError(f"{where}: result{path} has keys unlike the expected")
            for k in e:
                walk(a[k], e[k], f"{path}[{k!r}]")
            return
        if isinstance(e, tuple | list):
            if not isinstance(a, tuple | list) or len(a) != len(e):
                raise AssertionError(
                    f"{where}: result{path} is {type(a).__name__}, expected a sequence of {len(e)}"
                )
            for i, (x, y) in enumerate(zip(a, e, strict=True)):
                walk(x, y, f"{path}[{i}]")
            return
        av = np.asarray(a, dtype=np.float64)
        ev = np.asarray(e, dtype=np.float64)
        if av.shape != ev.shape:
            raise AssertionError(f"{where}: result{path} has shape {av.shape}, expected {ev.shape}")
        try:
            np.testing.assert_allclose(av, ev, rtol=rtol, atol=atol)
        except AssertionError as err:
            raise AssertionError(
                f"{where}: result{path} differs from the expected one\n{err}"
            ) from None

    walk(actual, expected, "")


def _time_calls(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def _calibrate(fn: Callable[[], object], min_time: float, max_number: int) -> tuple[int, float]:
    """The inner loop count that makes one timing last about ``min_time`` seconds.

    Returns the count and the seconds per call seen while choosing it.
    """
    number = 1
    while True:
        took = _time_calls(fn, number) * number
        if took >= min_time or number >= max_number:
            return number, took / number
        # Aim a little past min_time; grow at most 100x per step so a first call that was
        # fast by luck cannot ask for an hour of loops.
        guess = math.ceil(number * 1.2 * min_time / max(took, 1e-9))
        number = min(max_number, max(number * 2, min(guess, number * 100)))


def run(
    title: str,
    variants: Sequence[Variant],
    *,
    reference: str,
    expected: object = SAME,
    targets: Iterable[Target] = (),
    per: int = 1,
    unit: str = "call",
    rounds: int = 7,
    min_time: float = 0.02,
    max_number: int = 1_000_000,
    budget: float = 10.0,
    rtol: float = 1e-9,
    atol: float = 0.0,
    memory: bool = False,
    show: bool = True,
) -> Results:
    """Check, time side by side and print one table of variants.

    Args:
        title: the table's heading.
        variants: the computations to compare; names must be unique.
        reference: the variant the ratio column divides by.
        expected: the correct result; by default the reference variant's.
        targets: goals printed (and judged) under the table.
        per: units per call, e.g. the depth of a composition; the table then also shows
            the time per unit, and ``Target.time`` bounds it.
        unit: what one unit is called ("call", "composed function"...).
        rounds: timed rounds per variant; the median of them is reported.
        budget: seconds of timing a variant may take; a slow one gets fewer rounds
            (at least one), so a pathological case cannot stall the script.
        min_time: seconds one timing (an inner loop) should last.
        max_number: the largest inner loop count.
        rtol: relative tolerance of the result check.
        atol: absolute tolerance of the result check.
        memory: also measure each variant's peak traced memory (``peak_memory``), in a
            separate call after the timings.
        show: print the table.

    Returns:
        The ``Results``, with the targets' verdicts.

    Raises:
        AssertionError: a variant's result differs from the expected one; nothing is timed.
    """
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique: {names}")
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not among the variants {names}")
    ref = variants[names.index(reference)]
    if expected is not SAME:
        truth = expected
    elif ref.expected is not SAME:
        truth = ref.expected
    else:
        truth = ref.fn()
    failures: dict[str, str] = {}
    first_call: dict[str, float] = {}
    for v in variants:
        want = truth if v.expected is SAME else v.expected
        try:
            start = time.perf_counter()
            out = v.fn()
            first_call[v.name] = time.perf_counter() - start
            assert_close(out, want, rtol=rtol, atol=atol, where=f"{title} / {v.name}")
        except Exception as err:
            if v is ref:
                raise
            # A peer or a fad feature that fails is reported in its row, not timed: the
            # other rows still tell the story. A wrong result is named as such.
            failures[v.name] = _describe_failure(err)
    timed = [v for v in variants if v.name not in failures]

    numbers: dict[str, int] = {}
    quota: dict[str, int] = {}
    for v in timed:
        if first_call[v.name] >= min_time:  # slow enough already: one call per timing
            numbers[v.name], seconds = 1, first_call[v.name]
        else:
            numbers[v.name], seconds = _calibrate(v.fn, min_time, max_number)
        quota[v.name] = max(1, min(rounds, int(budget / (numbers[v.name] * seconds))))
    # A variant whose checked call alone used up the budget is not called again: that
    # call is its one sample (first-call effects included, negligible at that size).
    samples = {v.name: [first_call[v.name]] if first_call[v.name] >= budget else [] for v in timed}
    for r in range(rounds):
        k = r % len(timed)
        for v in (*timed[k:], *timed[:k]):
            if len(samples[v.name]) < quota[v.name]:
                gc.collect()
                samples[v.name].append(_time_calls(v.fn, numbers[v.name]))

    peaks = {v.name: peak_memory(v.fn) for v in timed} if memory else {}
    timings = {n: Timing(n, tuple(s), numbers[n], peaks.get(n)) for n, s in samples.items()}
    results = Results(title, timings, per, unit, failures)
    per_unit = results.medians()
    results.verdicts = [(t, *t.evaluate(per_unit, failures)) for t in targets]
    if show:
        _print_table(results, reference)
    return results


def _describe_failure(err: Exception) -> str:
    if isinstance(err, AssertionError):
        text = str(err).split("\n", 1)[0]
        return f"WRONG RESULT ({text})"
    lines = str(err).strip().splitlines() or [""]
    text = lines[0] if len(lines[0]) <= 160 else lines[0][:157] + "..."
    return f"{type(err).__name__}: {text}"


def _print_table(res: Results, reference: str) -> None:
    ref = res.timings[reference].median
    headers = ["variant", "per call"]
    if res.per != 1:
        headers.append(f"per {res.unit}")
    headers += [f"/ {reference}", "spread"]
    memory = any(t.peak_bytes is not None for t in res.timings.values())
    if memory:
        headers.append("peak memory")
    rows: list[list[str]] = []
    for t in res.timings.values():
        row = [t.name, fmt_time(t.median)]
        if res.per != 1:
            row.append(fmt_time(t.median / res.per))
        row += [f"{t.median / ref:.2f}", f"±{100 * t.spread:.0f}%"]
        if memory:
            row.append(fmt_bytes(t.peak_bytes))
        rows.append(row)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest))

    print(f"\n{res.title}")
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    for name, why in res.failures.items():
        print(f"{name.ljust(widths[0])}  FAILED, not timed: {why}")
    for target, measured, ok in res.verdicts:
        verdict = {True: "MET", False: "MISSED", None: "n/a"}[ok]
        print(f"  target: {target.describe(res.unit)}: {measured}  {verdict}")


def print_summary(results: Iterable[Results]) -> None:
    """One line per target across several tables: which are met and which are missed."""
    print("\nSummary of targets")
    for res in results:
        if res.verdicts:
            print(f"  {res.title}")
        for target, measured, ok in res.verdicts:
            verdict = {True: "MET   ", False: "MISSED", None: "n/a   "}[ok]
            print(f"    {verdict} {target.describe(res.unit)}: {measured}")


def peak_memory(fn: Callable[[], object]) -> int:
    """The peak memory traced while ``fn()`` runs, in bytes, above what was in use before.

    ``tracemalloc`` sees Python objects and numpy's array buffers (numpy reports its
    allocations to it), not memory a library allocates on its own (torch, JAX).

    Examples:
        >>> peak_memory(lambda: np.ones(1_000_000)) >= 8_000_000
        True
    """
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(0, peak - before)


def fmt_time(seconds: float) -> str:
    """A duration with three significant digits in ns, µs, ms or s.

    Examples:
        >>> fmt_time(1.234e-6), fmt_time(0.5), fmt_time(0.0009996)
        ('1.23 µs', '500 ms', '1 ms')
    """
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        # Compare after rounding, so 999.6 µs prints as 1 ms, not 1e+03 µs.
        if float(f"{seconds:.3g}") >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def fmt_bytes(n: int | None) -> str:
    """A byte count in MiB (or "-" when not measured).

    Examples:
        >>> fmt_bytes(3 * 2**20)
        '3.0 MiB'
    """
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


def describe_machine(**extra: str) -> str:
    """One line naming the interpreter, numpy, fad and the comparison libraries found.

    Examples:
        >>> "numpy" in describe_machine()
        True
    """
    parts = [f"Python {platform.python_version()}", f"numpy {np.__version__}"]
    for dist in ("fad", "autograd", "jax", "torch"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    parts += [f"{k} {v}" for k, v in extra.items()]
    parts.append(_cpu())
    return ", ".join(parts)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for text in f:
                if text.startswith("model name"):
                    return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def optional(module: str) -> Any:
    """Import a comparison library, or ``None`` (with a note) when it is not installed."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        print(f"({module} is not installed: its rows are skipped)")
        return None
