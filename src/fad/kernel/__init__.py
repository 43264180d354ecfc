"""Fused kernels for elementwise pipelines: values and derivatives over whole batches.

``compile(f)`` plans a composed elementwise pipeline once and returns a ``Kernel``;
``k(xs)`` returns ``(ys, dys)``, the values and the per-element derivatives, computed in
one pass of in-place numpy operations over cache-sized chunks. See ``docs/kernel.md``.

Examples:
    >>> import numpy as np
    >>> import fad
    >>> from fad.prims import add, exp, multiply, reciprocal
    >>> sigmoid = multiply(-1.0) >> exp >> add(1.0) >> reciprocal
    >>> k = fad.kernel.compile(sigmoid)
    >>> ys, dys = k(np.array([0.0, 2.0]))
    >>> print(ys.round(6), dys.round(6))
    [0.5      0.880797] [0.25     0.104994]
"""

from __future__ import annotations

from typing import Any

from .._core import Fn
from ._kernel import DEFAULT_CHUNK as DEFAULT_CHUNK
from ._kernel import NUMEXPR_CHUNK as NUMEXPR_CHUNK
from ._kernel import NUMEXPR_MIN as NUMEXPR_MIN
from ._kernel import THREADS_MIN as THREADS_MIN
from ._kernel import Kernel as Kernel
from ._plan import UnsupportedError as UnsupportedError

__all__ = [
    "DEFAULT_CHUNK",
    "NUMEXPR_CHUNK",
    "NUMEXPR_MIN",
    "THREADS_MIN",
    "Kernel",
    "UnsupportedError",
    "compile",
]


def compile(  # the contract's name (fad.kernel.compile), shadowing the builtin here only
    f: Fn[Any, Any],
    *,
    chunk: int = DEFAULT_CHUNK,
    engine: str = "numpy",
    threads: int | None = None,
) -> Kernel:
    """Plan an elementwise pipeline once; return a kernel computing values and derivatives.

    ``k = compile(f)`` accepts what ``f`` accepts, as arrays of one common shape (a tuple
    of them for ``par``, ``fst``, ``snd``), and ``k(xs)`` returns ``(ys, dys)``: ``ys`` the
    values of ``f(xs)`` and ``dys`` the per-element derivatives, ``np.asarray(deriv)`` of
    ``f(xs)``. For several inputs or outputs, ``dys`` is nested output first, then input,
    like a Jacobian (``dys[j][i]`` is output j's derivative by input i, elementwise).

    What is fused: elementwise primitives (built-in ones run from an in-place table; a
    user's ``fad.primitive`` runs its own kernel and rule on each chunk), arithmetic
    between functions, ``const``, ``fork``, ``par`` and projections of tuples. Values and
    derivatives share intermediates, temporaries are reused across calls, and large inputs
    run in chunks of ``chunk`` elements, so extra memory is a few chunks. Results are fresh
    arrays (values and derivatives of one call share one allocation) unless the caller
    passes ``out=(ys, dys)``; the input is never written. float32 stays float32.

    Args:
        f: the pipeline, an ``Fn`` of elementwise pieces.
        chunk: elements per chunk; the default keeps temporaries in cache.
        engine: ``"numpy"`` (the default); ``"numexpr"`` (its own threads, for float64
            inputs of at least ``NUMEXPR_MIN`` elements, numpy below; whole batches, or
            chunks of ``NUMEXPR_CHUNK`` if the plan needs temporaries); ``"auto"``: numexpr
            when it is installed. numexpr wins where its transcendentals are faster than
            numpy's; measure (``benchmarks/kernel.py``) before choosing it.
        threads: for the numpy engine, threads sharing the chunks of a batch of at least
            ``THREADS_MIN`` elements (numpy releases the GIL in ufuncs), each taking the
            next chunk when done with one; by default the cores this process may use,
            at most 8. ``threads=1`` stays on the caller's.

    Returns:
        A ``Kernel``; ``repr(k)`` shows its plan and engine, ``k.source`` its program.

    Raises:
        UnsupportedError: a piece is not elementwise (a reduction, a pointed function);
            the message names it.

    Examples:
        >>> import numpy as np
        >>> import fad
        >>> k = fad.kernel.compile(fad.sin * fad.sin + fad.cos * fad.cos, engine="numpy")
        >>> ys, dys = k(np.linspace(0.0, 3.0, 4))
        >>> print(ys.round(12), abs(dys).max() < 1e-15)
        [1. 1. 1. 1.] True

    See also:
        Kernel, fad.derivative, fad.value_and_derivative
    """
    return Kernel(f, chunk=chunk, engine=engine, threads=threads)
