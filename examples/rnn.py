"""A tanh RNN written with ``scan``, and its gradient checked against finite differences.

The cell is plain numpy code closing over the weights::

    h_t = tanh(h_{t-1} Wh + x_t Wx + b),      loss = mean_t (h_t · v - target_t)²

``scan`` runs it over the sequence and stacks the hidden states; ``fad.value_and_grad``
differentiates the whole loop in reverse mode (backpropagation through time) with respect
to every weight the cell closes over. The gradient is then compared with central finite
differences of the loss along a few random directions, and the checkpointed scan (which
recomputes segments of the sequence in the backward pass instead of storing them) is
shown to give the same gradient. Run it with::

    python examples/rnn.py
"""

from __future__ import annotations

from typing import Any

import numpy as np

import fad

HIDDEN, INPUT, STEPS = 64, 32, 50

Params = tuple[Any, ...]


def init_params(rng: np.random.Generator) -> Params:
    """Weights scaled so the hidden state neither vanishes nor saturates."""
    wh = rng.normal(0.0, 1.0 / np.sqrt(HIDDEN), (HIDDEN, HIDDEN))
    wx = rng.normal(0.0, 1.0 / np.sqrt(INPUT), (INPUT, HIDDEN))
    b = np.zeros(HIDDEN)
    v = rng.normal(0.0, 1.0 / np.sqrt(HIDDEN), HIDDEN)
    return wh, wx, b, v


def loss(params: Params, xs: Any, targets: Any, checkpoint: bool = False) -> Any:
    """Mean squared error of a linear readout of every hidden state."""
    wh, wx, b, v = params

    def cell(h: Any, x: Any) -> tuple[Any, Any]:
        h = np.tanh(h @ wh + x @ wx + b)
        return h, h

    _, hs = fad.scan(cell, np.zeros(HIDDEN), xs, checkpoint=checkpoint)
    return np.mean((hs @ v - targets) ** 2)


def along(params: Params, direction: Params, eps: float) -> Params:
    return tuple(p + eps * d for p, d in zip(params, direction, strict=True))


def main() -> None:
    rng = np.random.default_rng(0)
    params = init_params(rng)
    xs = rng.normal(size=(STEPS, INPUT))
    targets = np.sin(np.linspace(0.0, 3.0, STEPS))

    value, grads = fad.value_and_grad(loss)(params, xs, targets)
    print(f"tanh RNN, hidden {HIDDEN}, input {INPUT}, {STEPS} steps: loss = {value:.6f}")

    # <grad, d> must equal the directional derivative (L(p + e d) - L(p - e d)) / 2e.
    eps = 1e-5
    worst = 0.0
    for k in range(3):
        direction = tuple(rng.normal(size=np.shape(p)) for p in params)
        predicted = sum(float(np.sum(g * d)) for g, d in zip(grads, direction, strict=True))
        up = loss(along(params, direction, eps), xs, targets)
        down = loss(along(params, direction, -eps), xs, targets)
        measured = (up - down) / (2 * eps)
        error = abs(predicted - measured) / max(abs(measured), 1e-12)
        worst = max(worst, error)
        print(f"  direction {k}: gradient {predicted:+.8f}, finite differences {measured:+.8f}")
    assert worst < 1e-6, f"gradient and finite differences differ by {worst:.2e} (relative)"
    print(f"  largest relative difference: {worst:.1e}")

    _, again = fad.value_and_grad(lambda p: loss(p, xs, targets, checkpoint=True))(params)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(grads, again, strict=True))
    assert diff < 1e-12, diff
    print(f"  checkpointed scan: same gradient (largest difference {diff:.1e})")


if __name__ == "__main__":
    main()
