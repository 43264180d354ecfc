"""Dask arrays: the same kernel, lazily, block by block (``dask.array.map_blocks``).

Each block is one task calling the kernel on numpy blocks (chunked inside as usual); the
task returns all of its results at once and one light ``getitem`` task per output picks
its array, so values and derivatives still come from one fused pass per block. The kernel
travels to workers with its plan (see ``Kernel.__reduce__``), so a ``distributed``
cluster runs exactly the program planned here.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .._errors import ShapeError
from .._tree import Tree, flatten, unflatten

__all__ = ["apply"]


def _block(*blocks: Any, kernel: Any, tree: Tree) -> tuple[Any, ...]:
    from ._kernel import _IN_WORKER

    token = _IN_WORKER.set(True)  # dask runs a task per core already: no threads of ours
    try:
        ys, dys = kernel(unflatten(tree, blocks))
    finally:
        _IN_WORKER.reset(token)
    return (*flatten(ys)[0], *flatten(dys)[0])


def _pick(results: tuple[Any, ...], index: int) -> Any:
    return results[index]


def apply(kernel: Any, leaves: list[Any], tree: Tree) -> tuple[Any, Any]:
    """``kernel`` over dask arrays (numpy leaves are wrapped): lazy ``(ys, dys)``."""
    da = importlib.import_module("dask.array")  # an optional extra: typed Any here

    arrays = [da.asarray(x) for x in leaves]
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        raise ShapeError(
            f"{kernel!r}: every input array must have the same shape, got "
            f"{[a.shape for a in arrays]}"
        )
    for a in arrays:
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{kernel!r} received a dask array of dtype {a.dtype}")
    entry = kernel._entry(tree)  # plan here, so workers receive the plan with the kernel
    dt = np.result_type(*[a.dtype if a.dtype.kind == "f" else np.float64 for a in arrays])
    wd = entry.bind(dt)[0]
    meta = np.empty((0,) * len(shape), dtype=wd)
    both = da.map_blocks(_block, *arrays, kernel=kernel, tree=tree, dtype=wd, meta=meta)
    p = entry.plan
    outs = [
        da.map_blocks(_pick, both, index=i, dtype=wd, meta=meta)
        for i in range(p.n_out * (1 + p.n_in))
    ]
    return kernel._trees(p, outs)  # type: ignore[no-any-return]
