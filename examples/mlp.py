"""A two-layer MLP written point-free with ``map`` and ``>>``, trained on three spirals.

The layers are one pipeline, applied to every row of a batch with ``map``::

    layers = matmul(W1) + const(b1) >> tanh >> matmul(W2) + const(b2)
    loss = cross_entropy(labels)(map(layers, points))

``map`` sees that every step acts row by row (a matrix product, adding a vector,
``tanh``) and runs it once on the whole batch: no Python loop over the samples. The
gradient with respect to the weights, which the pipeline closes over, comes from
``fad.value_and_grad`` in reverse mode. Training is plain gradient descent with momentum
on a synthetic data set made here: three interleaved spirals in the plane, which no
linear classifier separates. The script stops once the training accuracy reaches 97%
and insists that the held-out accuracy is at least 93%. Run it with::

    python examples/mlp.py
"""

from __future__ import annotations

from typing import Any

import numpy as np

import fad

CLASSES, HIDDEN = 3, 64
TRAIN_TARGET, TEST_TARGET = 0.97, 0.93

Params = tuple[Any, ...]


def spirals(n: int, rng: np.random.Generator) -> tuple[Any, Any]:
    """``n`` points per class on three noisy spiral arms, and their labels."""
    r = np.tile(np.linspace(0.05, 1.0, n), CLASSES)
    labels = np.repeat(np.arange(CLASSES), n)
    angle = 6.0 * r + labels * 2 * np.pi / CLASSES + rng.normal(0.0, 0.2, r.size)
    points = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1)
    return points, labels


def layers(params: Params) -> fad.Fn[Any, Any]:
    """The logits of one point, as a pipeline closing over the weights."""
    w1, b1, w2, b2 = params
    f: fad.Fn[Any, Any] = (
        fad.matmul(w1) + fad.const(b1) >> fad.tanh >> fad.matmul(w2) + fad.const(b2)
    )
    return f


def loss(params: Params, points: Any, labels: Any) -> Any:
    # fad.map(f, xs) applied to the data differentiates with respect to the weights alone;
    # the curried (fad.map(f) >> loss)(xs) would also form the derivative in the data.
    return fad.cross_entropy(labels)(fad.map(layers(params), points))


def accuracy(params: Params, points: Any, labels: Any) -> float:
    logits = fad.map(layers(params), points)
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def main() -> None:
    rng = np.random.default_rng(0)
    train, test = spirals(200, rng), spirals(100, rng)
    params: Params = (
        rng.normal(0.0, 1.0, (2, HIDDEN)),
        np.zeros(HIDDEN),
        rng.normal(0.0, 1.0 / np.sqrt(HIDDEN), (HIDDEN, CLASSES)),
        np.zeros(CLASSES),
    )
    value_and_grad = fad.value_and_grad(loss)
    velocity = tuple(np.zeros_like(p) for p in params)
    lr, beta = 0.3, 0.9
    for step in range(1, 5001):
        value, grads = value_and_grad(params, *train)
        velocity = tuple(beta * v + g for v, g in zip(velocity, grads, strict=True))
        params = tuple(p - lr * v for p, v in zip(params, velocity, strict=True))
        if step % 250 == 0:
            acc = accuracy(params, *train)
            print(f"step {step:4d}: loss {value:.4f}, training accuracy {acc:.1%}")
            if acc >= TRAIN_TARGET:
                break
    train_acc, test_acc = accuracy(params, *train), accuracy(params, *test)
    print(f"training accuracy {train_acc:.1%}, held-out accuracy {test_acc:.1%}")
    assert train_acc >= TRAIN_TARGET, train_acc
    assert test_acc >= TEST_TARGET, test_acc


if __name__ == "__main__":
    main()
