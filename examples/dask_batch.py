"""A fused pipeline over 10^8 points with dask: threads first, then a LocalCluster.

The same lines run on dask's threaded scheduler and, unchanged, on a
``dask.distributed`` cluster (here a ``LocalCluster`` of worker processes; point
``Client`` at a real scheduler's address for a real cluster). ``fad.kernel.compile`` plans
the pipeline once; ``k(x)`` on a dask array returns lazy dask arrays of the values and the
per-element derivatives, each block computed in one fused pass. Reductions of them stream:
no array of 10^8 elements is ever held in memory.

    python examples/dask_batch.py --n 100_000_000      # the full run
    python examples/dask_batch.py                      # a quick one (the test suite's)

Needs the ``dask`` extra (``pip install 'fad[dask]'``); without dask it says so and exits.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import fad
import fad.kernel
from fad.prims import add, exp, multiply, reciprocal

# The sigmoid of the contract (API.md, section 2), then a little more arithmetic.
sigmoid = multiply(-1.0) >> exp >> add(1.0) >> reciprocal
pipeline = sigmoid * fad.tanh + 0.5 * (fad.sin >> fad.square)


def summarise(ys: object, dys: object) -> tuple[float, float]:
    """Sum of the values and mean of the derivatives: streams block by block."""
    import dask

    total, mean = dask.compute(ys.sum(), dys.mean())  # type: ignore[attr-defined]
    return float(total), float(mean)


def check_one_block(k: fad.kernel.Kernel, x: object) -> None:
    """The first block, by the kernel through dask and by direct evaluation."""
    block = np.asarray(x.blocks[0])  # type: ignore[attr-defined]
    ys, dys = k(x)
    v, d = pipeline(block)
    # atol: where the derivative's terms cancel to ~0, an ulp of a term is all that's left.
    np.testing.assert_allclose(np.asarray(ys.blocks[0]), v, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(dys.blocks[0]), np.asarray(d), rtol=1e-12, atol=1e-15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=lambda s: int(s.replace("_", "")), default=2_000_000)
    parser.add_argument("--chunk", type=lambda s: int(s.replace("_", "")), default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    try:
        import dask
        import dask.array as da
    except ImportError:
        print("dask is not installed: pip install 'fad[dask]' to run this example")
        return 0

    n = args.n
    chunk = args.chunk or max(1, min(n // 8, 5_000_000))
    k = fad.kernel.compile(pipeline)
    print(k)
    x = da.linspace(-6.0, 6.0, n, chunks=chunk)  # lazy: made block by block, where it runs
    print(f"{n:,} points in {x.numblocks[0]} blocks of up to {chunk:,}")

    ys, dys = k(x)  # lazy dask arrays: nothing has run yet
    start = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        check_one_block(k, x)
        threaded = summarise(ys, dys)
    print(f"threaded scheduler:  sum y = {threaded[0]:.6f}, mean dy = {threaded[1]:.9f}"
          f"  ({time.perf_counter() - start:.2f} s)")  # fmt: skip

    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("dask.distributed is not installed: the cluster run is skipped")
        return 0
    with (
        LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as cl,
        Client(cl),
    ):
        start = time.perf_counter()
        check_one_block(k, x)  # the same code: the Client is now the default scheduler
        clustered = summarise(ys, dys)
        took = time.perf_counter() - start
    print(f"LocalCluster ({args.workers} workers): sum y = {clustered[0]:.6f}, "
          f"mean dy = {clustered[1]:.9f}  ({took:.2f} s)")  # fmt: skip
    np.testing.assert_allclose(clustered, threaded, rtol=1e-9)
    print("both schedulers agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
