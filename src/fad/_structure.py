"""Several inputs and outputs: ``fork``, ``par`` and projections (layer 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, final

from ._core import Fn, Step, as_fn

__all__ = ["fork", "fst", "lift", "par", "proj", "snd"]


@final
class Fork(Step):
    """``x -> (f(x), g(x), ...)``."""

    __slots__ = ("fs",)

    def __init__(self, fs: tuple[Fn[Any, Any], ...]) -> None:
        self.fs = fs

    def run(self, x: Any) -> Any:
        return tuple(f.run(x) for f in self.fs)

    def value(self, x: Any) -> Any:
        return tuple(f.value(x) for f in self.fs)

    def __repr__(self) -> str:
        return f"fork({', '.join(map(repr, self.fs))})"


@final
class Par(Step):
    """``(x, y, ...) -> (f(x), g(y), ...)``."""

    __slots__ = ("fs",)

    def __init__(self, fs: tuple[Fn[Any, Any], ...]) -> None:
        self.fs = fs

    def _check(self, x: Any) -> None:
        if not isinstance(x, tuple | list) or len(x) != len(self.fs):
            raise TypeError(f"{self!r} expects a tuple of {len(self.fs)} values, got {x!r}")

    def run(self, x: Any) -> Any:
        self._check(x)
        return tuple(f.run(xi) for f, xi in zip(self.fs, x, strict=True))

    def value(self, x: Any) -> Any:
        self._check(x)
        return tuple(f.value(xi) for f, xi in zip(self.fs, x, strict=True))

    def __repr__(self) -> str:
        return f"par({', '.join(map(repr, self.fs))})"


@final
class Proj(Step):
    """``x -> x[i]``: an item of a tuple, list or dict, or an entry of an array."""

    __slots__ = ("index",)

    def __init__(self, index: Any) -> None:
        self.index = index

    def run(self, x: Any) -> Any:
        try:
            return x[self.index]
        except (IndexError, KeyError, TypeError) as e:
            raise type(e)(f"{self!r} cannot index {type(x).__name__} {x!r}: {e}") from None

    def __repr__(self) -> str:
        return (
            {0: "fst", 1: "snd"}.get(self.index, f"proj({self.index!r})")
            if isinstance(self.index, int)
            else f"proj({self.index!r})"
        )


def fork(*fs: Fn[Any, Any] | Callable[[Any], Any]) -> Fn[Any, tuple[Any, ...]]:
    """Run several functions on the same input: ``x -> (f(x), g(x), ...)``.

    Examples:
        >>> import fad
        >>> v, d = fad.fork(fad.sin, fad.cos)(0.0)
        >>> print(v)
        (0.0, 1.0)
        >>> print(d @ 1.0)
        (1.0, -0.0)

    See also:
        par, fst, snd
    """
    return Fn((Fork(tuple(as_fn(f) for f in fs)),))


def par(*fs: Fn[Any, Any] | Callable[[Any], Any]) -> Fn[tuple[Any, ...], tuple[Any, ...]]:
    """Run functions side by side on the items of a tuple: ``(x, y) -> (f(x), g(y))``.

    Examples:
        >>> import fad
        >>> print(fad.par(fad.sin, fad.exp).value((0.0, 0.0)))
        (0.0, 1.0)

    See also:
        fork
    """
    return Fn((Par(tuple(as_fn(f) for f in fs)),))


def proj(index: Any) -> Fn[Any, Any]:
    """Select ``x[index]``: a tuple or list item, a dict key, or array entries.

    Examples:
        >>> import fad
        >>> print(fad.proj(2).value((1.0, 2.0, 3.0)))
        3.0

    See also:
        fst, snd
    """
    return Fn((Proj(index),))


fst: Fn[Any, Any] = proj(0)
snd: Fn[Any, Any] = proj(1)


def lift(f: Callable[..., Any]) -> Fn[Any, Any]:
    """A pointed Python function as an ``Fn`` of one (tuple) argument.

    ``lift(f)((a, b))`` calls ``f(a, b)`` with values that record derivatives.

    Examples:
        >>> import fad
        >>> def f(x1, x2):
        ...     return fad.log(x1) + x1 * x2 - fad.sin(x2)
        >>> print(fad.lift(f).value((2.0, 5.0)))
        11.652071455223084

    See also:
        grad, Fn
    """
    return as_fn(f)
