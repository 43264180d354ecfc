"""Backpropagation through time: the gradient of a tanh RNN written with ``fad.scan``.

Run it as ``python benchmarks/rnn.py`` (``--profile`` adds a cProfile of fad's gradient,
``--quick`` skips T = 100,000). The RNN has hidden size 64 and input size 32::

    h_t = tanh(h_{t-1} Wh + x_t Wx + b),      loss = mean_t (h_t · v - y_t)²

and the gradient is taken with respect to Wh, Wx, b and v, which the cell closes over.
Issue 7, point 5: at T = 1,000, fad's gradient time per step is at most 4x a
hand-written numpy BPTT in the same run (stretch 2x), and its peak memory (tracemalloc)
at most 2.5x the hand-written one. At T = 100,000 the gradient runs with and without
checkpointing (``scan(..., checkpoint=True)``: √T segments recomputed in the backward
pass), and their peak memories are compared; so are those of the same cell folded to
its last state, where nothing per step has to be kept. autograd, when installed, is timed beside
them (a Python loop stacking the states).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
from typing import Any

import _one_blas_thread  # noqa: F401  (before numpy loads BLAS)
import numpy as np
from _timing import (
    Results,
    Target,
    Variant,
    describe_machine,
    fmt_time,
    optional,
    print_summary,
    run,
)

import fad

ag = optional("autograd")
anp = optional("autograd.numpy")

HIDDEN, INPUT = 64, 32
Array = np.ndarray[Any, Any]
Params = tuple[Array, Array, Array, Array]


def problem(steps: int) -> tuple[Params, Array, Array]:
    rng = np.random.default_rng(0)
    params = (
        rng.normal(0.0, 1.0 / np.sqrt(HIDDEN), (HIDDEN, HIDDEN)),
        rng.normal(0.0, 1.0 / np.sqrt(INPUT), (INPUT, HIDDEN)),
        np.zeros(HIDDEN),
        rng.normal(0.0, 1.0 / np.sqrt(HIDDEN), HIDDEN),
    )
    return params, rng.normal(size=(steps, INPUT)), np.sin(np.linspace(0.0, 30.0, steps))


def fad_loss(params: Any, xs: Array, targets: Array, checkpoint: bool = False) -> Any:
    """The RNN as a user writes it: a pointed cell closing over the weights, and ``scan``."""
    wh, wx, b, v = params

    def cell(h: Any, x: Any) -> tuple[Any, Any]:
        h = np.tanh(h @ wh + x @ wx + b)
        return h, h

    _, hs = fad.scan(cell, np.zeros(HIDDEN), xs, checkpoint=checkpoint)
    return np.mean((hs @ v - targets) ** 2)


def fad_last_state_loss(params: Any, xs: Array, targets: Array, checkpoint: bool = False) -> Any:
    """The same cell folded: a loss on the last state only, so nothing is stacked."""
    wh, wx, b, v = params
    h = fad.fold(
        lambda h, x: np.tanh(h @ wh + x @ wx + b), np.zeros(HIDDEN), xs, checkpoint=checkpoint
    )
    return (h @ v - targets[-1]) ** 2


def hand_bptt(params: Params, xs: Array, targets: Array) -> tuple[float, Params]:
    """Forward storing the states, backward through time: numpy, written for speed."""
    wh, wx, b, v = params
    steps = len(xs)
    u = xs @ wx + b  # every input projection in one matrix product
    hs = np.empty((steps + 1, HIDDEN))
    hs[0] = 0.0
    for t in range(steps):
        hs[t + 1] = np.tanh(hs[t] @ wh + u[t])
    err = hs[1:] @ v - targets
    loss = float(np.mean(err**2))
    dys = (2.0 / steps) * err  # d loss / d (h_t · v)
    da = np.empty((steps, HIDDEN))
    dh = np.zeros(HIDDEN)
    for t in range(steps - 1, -1, -1):
        dh += dys[t] * v
        da[t] = dh * (1.0 - hs[t + 1] ** 2)
        dh = wh @ da[t]
    return loss, (hs[:-1].T @ da, xs.T @ da, da.sum(axis=0), hs[1:].T @ dys)


def autograd_loss(params: Any, xs: Array, targets: Array) -> Any:
    wh, wx, b, v = params
    h = anp.zeros(HIDDEN)
    hs = []
    for x in xs:
        h = anp.tanh(anp.dot(h, wh) + anp.dot(x, wx) + b)
        hs.append(h)
    return anp.mean((anp.dot(anp.stack(hs), v) - targets) ** 2)


def variants(steps: int, peers: bool) -> list[Variant]:
    params, xs, targets = problem(steps)
    vg = fad.value_and_grad(fad_loss)
    rows = [
        Variant("hand-written numpy BPTT", lambda: hand_bptt(params, xs, targets)),
        Variant("fad scan", lambda: vg(params, xs, targets)),
        Variant("fad scan, checkpoint", lambda: vg(params, xs, targets, True)),
    ]
    if peers and ag is not None:
        agvg = ag.value_and_grad(autograd_loss)
        rows.append(Variant("autograd", lambda: agvg(params, xs, targets)))
    return rows


def memory_verdicts(res: Results, steps: int, bound: float | None) -> None:
    """Bytes per step of every variant, and the memory target against the hand-written one."""
    hand = res.timings["hand-written numpy BPTT"].peak_bytes or 1
    for name, t in res.timings.items():
        peak = t.peak_bytes or 0
        print(f"  peak memory {name}: {peak / steps:,.0f} bytes per step ({peak / hand:.2f}x hand)")
    if bound is not None:
        peak = res.timings["fad scan"].peak_bytes or 0
        ok = peak <= bound * hand
        verdict = "MET" if ok else "MISSED"
        print(f"  target: fad scan peak memory / hand <= {bound:g}: {peak / hand:.2f}  {verdict}")


def table(steps: int, peers: bool = True) -> Results:
    big = steps >= 100_000
    res = run(
        f"tanh RNN gradient (hidden {HIDDEN}, input {INPUT}), T = {steps:,}",
        variants(steps, peers and not big),
        reference="hand-written numpy BPTT",
        per=steps,
        unit="step",
        rtol=1e-9,
        atol=1e-12,
        memory=True,
        rounds=1 if big else 7,
        budget=1.0 if big else 10.0,
        targets=[]
        if big
        else [
            Target.ratio("fad scan", "hand-written numpy BPTT", 4.0),
            Target.ratio("fad scan", "hand-written numpy BPTT", 2.0, note="stretch"),
            Target.ratio("fad scan, checkpoint", "hand-written numpy BPTT", 4.0),
        ],
    )
    memory_verdicts(res, steps, None if big else 2.5)
    if big:
        plain = res.timings["fad scan"].peak_bytes or 0
        ck = res.timings["fad scan, checkpoint"].peak_bytes or 1
        print(f"  checkpointing keeps {ck / plain:.1%} of the memory ({plain / ck:.1f}x less)")
    return res


def fold_table(steps: int) -> Results:
    """A fold keeps no per-step outputs: checkpointing leaves only √T carries."""
    params, xs, targets = problem(steps)
    vg = fad.value_and_grad(fad_last_state_loss)
    res = run(
        f"tanh RNN folded to its last state, T = {steps:,}",
        [
            Variant("fad fold", lambda: vg(params, xs, targets)),
            Variant("fad fold, checkpoint", lambda: vg(params, xs, targets, True)),
        ],
        reference="fad fold",
        per=steps,
        unit="step",
        rtol=1e-9,
        atol=1e-12,
        memory=True,
        rounds=1,
        budget=1.0,
    )
    for name, t in res.timings.items():
        peak = t.peak_bytes or 0
        print(f"  peak memory {name}: {peak / steps:,.0f} bytes per step")
    return res


def profile(steps: int) -> None:
    """Where fad's gradient spends its time, by function (own time)."""
    params, xs, targets = problem(steps)
    vg = fad.value_and_grad(fad_loss)
    prof = cProfile.Profile()
    prof.runcall(lambda: [vg(params, xs, targets) for _ in range(5)])
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    per_step = fmt_time(total / 5 / steps)
    print(f"\nprofile of fad scan, T = {steps:,}: {per_step} per step (profiled)")
    stats.sort_stats("tottime").print_stats(15)


def main(argv: list[str]) -> None:
    print(describe_machine())
    results = [table(1_000)]
    if "--quick" not in argv:
        results += [table(100_000), fold_table(100_000)]
    print_summary(results)
    if "--profile" in argv:
        profile(1_000)


if __name__ == "__main__":
    main(sys.argv[1:])
