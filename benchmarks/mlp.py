"""A two-layer MLP's loss and gradient: ``map`` and ``>>`` against numpy backprop.

Run it as ``python benchmarks/mlp.py`` (``--profile`` adds a cProfile of fad's gradient).
The network is 64-512-10 with tanh, a batch of 256 and softmax cross-entropy from the
logits. Its layers are written point-free::

    layers = matmul(W1) + const(b1) >> tanh >> matmul(W2) + const(b2)

and ``map(layers, x)`` runs them on the whole batch (every step acts row by row). Issue 7,
point 5: one ``value_and_grad`` at most 1.25x the hand-written numpy backprop (stretch
1.1x). Rows for comparison: the same model as pointed numpy code; the whole pipeline
``(map(layers) >> cross_entropy(labels))(x)`` called on the batch, which also forms the
derivative with respect to ``x`` (a ``Fn`` called on a plain value inside a transform
differentiates with respect to it, at a level of its own); the loss alone (numpy, no
gradient), dominated by numpy's ``tanh``, for scale; autograd when installed.

BLAS runs single-threaded (_one_blas_thread, unless the environment says otherwise): on a busy
2-core machine its thread pool made every timing, fad's and the hand-written one's, vary
by +-50% and cost 3-6x; single-threaded the rounds agree to 2%.
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
    optional,
    print_summary,
    run,
)

import fad

ag = optional("autograd")
anp = optional("autograd.numpy")

BATCH, SIZES = 256, (64, 512, 10)
Array = np.ndarray[Any, Any]
Params = tuple[Array, Array, Array, Array]


def problem() -> tuple[Params, Array, Array]:
    rng = np.random.default_rng(0)
    n_in, n_hidden, n_out = SIZES
    params = (
        rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_hidden)),
        rng.normal(0.0, 0.1, n_hidden),
        rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_hidden, n_out)),
        rng.normal(0.0, 0.1, n_out),
    )
    return params, rng.normal(size=(BATCH, n_in)), rng.integers(0, n_out, BATCH)


def layers(params: Any) -> fad.Fn[Any, Any]:
    w1, b1, w2, b2 = params
    f: fad.Fn[Any, Any] = (
        fad.matmul(w1) + fad.const(b1) >> fad.tanh >> fad.matmul(w2) + fad.const(b2)
    )
    return f


def point_free_loss(params: Any, x: Array, labels: Array) -> Any:
    return fad.cross_entropy(labels)(fad.map(layers(params), x))


def pipeline_loss(params: Any, x: Array, labels: Array) -> Any:
    return (fad.map(layers(params)) >> fad.cross_entropy(labels))(x)


def pointed_loss(params: Any, x: Array, labels: Array) -> Any:
    w1, b1, w2, b2 = params
    return fad.cross_entropy(labels)(np.tanh(x @ w1 + b1) @ w2 + b2)


def numpy_loss(params: Params, x: Array, labels: Array) -> float:
    w1, b1, w2, b2 = params
    z = np.tanh(x @ w1 + b1) @ w2 + b2
    m = z.max(axis=1, keepdims=True)
    lse = np.log(np.sum(np.exp(z - m), axis=1)) + m[:, 0]
    return float(np.mean(lse - z[np.arange(len(z)), labels]))


def hand_backprop(params: Params, x: Array, labels: Array) -> tuple[float, Params]:
    """Forward keeping the activations, backward by the chain rule: numpy, written once."""
    w1, b1, w2, b2 = params
    h = np.tanh(x @ w1 + b1)
    z = h @ w2 + b2
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(z))
    loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - z[rows, labels]))
    dz = e / s
    dz[rows, labels] -= 1.0
    dz /= len(z)
    da = (dz @ w2.T) * (1.0 - h * h)
    return loss, (x.T @ da, da.sum(axis=0), h.T @ dz, dz.sum(axis=0))


def autograd_loss(params: Any, x: Array, labels: Array) -> Any:
    w1, b1, w2, b2 = params
    z = anp.dot(anp.tanh(anp.dot(x, w1) + b1), w2) + b2
    m = anp.max(z, axis=1, keepdims=True)
    lse = anp.log(anp.sum(anp.exp(z - m), axis=1)) + m[:, 0]
    return anp.mean(lse - z[anp.arange(len(z)), labels])


def table() -> Results:
    params, x, labels = problem()
    point_free = fad.value_and_grad(point_free_loss)
    pipeline = fad.value_and_grad(pipeline_loss)
    pointed = fad.value_and_grad(pointed_loss)
    variants = [
        Variant(
            "numpy loss alone",
            lambda: numpy_loss(params, x, labels),
            expected=hand_backprop(params, x, labels)[0],
        ),
        Variant("hand-written numpy backprop", lambda: hand_backprop(params, x, labels)),
        Variant("fad map(layers, x)", lambda: point_free(params, x, labels)),
        Variant("fad pointed numpy", lambda: pointed(params, x, labels)),
        Variant("fad (map(layers) >> loss)(x)", lambda: pipeline(params, x, labels)),
    ]
    if ag is not None:
        agvg = ag.value_and_grad(autograd_loss)
        variants.append(Variant("autograd", lambda: agvg(params, x, labels)))
    return run(
        f"MLP {'-'.join(str(s) for s in SIZES)}, batch {BATCH}, tanh + softmax cross-entropy",
        variants,
        reference="hand-written numpy backprop",
        rtol=1e-10,
        atol=1e-14,
        rounds=15,
        min_time=0.05,
        memory=True,
        targets=[
            Target.ratio("fad map(layers, x)", "hand-written numpy backprop", 1.25),
            Target.ratio("fad map(layers, x)", "hand-written numpy backprop", 1.1, note="stretch"),
            Target.ratio("fad pointed numpy", "hand-written numpy backprop", 1.25),
        ],
    )


def profile() -> None:
    """Where fad's gradient spends its time, by function (own time)."""
    params, x, labels = problem()
    vg = fad.value_and_grad(point_free_loss)
    prof = cProfile.Profile()
    prof.runcall(lambda: [vg(params, x, labels) for _ in range(20)])
    print("\nprofile of fad map(layers, x), 20 calls")
    pstats.Stats(prof).sort_stats("tottime").print_stats(15)


def main(argv: list[str]) -> None:
    print(describe_machine())
    print_summary([table()])
    if "--profile" in argv:
        profile()


if __name__ == "__main__":
    main(sys.argv[1:])
