"""Errors fad raises, and the ``debug_nans`` switch (layer 0: numpy only)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["DomainError", "MixedInputsError", "ShapeError", "debug_nans", "nan_checks_enabled"]


class ShapeError(ValueError):
    """Raised when a function in a pipeline receives a value of the wrong shape.

    The message names the function and both shapes.

    Examples:
        >>> issubclass(ShapeError, ValueError)
        True
    """


class DomainError(ArithmeticError):
    """Raised under ``debug_nans()`` at the first primitive that produced nan or inf.

    Examples:
        >>> issubclass(DomainError, ArithmeticError)
        True
    """


class MixedInputsError(ValueError):
    """Raised when two ``Dual`` values that differentiate different inputs meet.

    Outside a transform, ``fad.sin(a) + fad.sin(b)`` for two plain numbers ``a`` and ``b``
    would otherwise give a derivative with respect to neither.

    Examples:
        >>> issubclass(MixedInputsError, ValueError)
        True
    """


_CHECK_NANS: ContextVar[bool] = ContextVar("fad_debug_nans", default=False)


def nan_checks_enabled() -> bool:
    """Whether ``debug_nans`` is on in this context."""
    return _CHECK_NANS.get()


@contextmanager
def debug_nans() -> Iterator[None]:
    """Raise ``DomainError`` at the first primitive that turns finite inputs into nan/inf.

    Examples:
        >>> import fad
        >>> with fad.debug_nans():
        ...     fad.log(-1.0)
        Traceback (most recent call last):
        ...
        fad._errors.DomainError: log produced nan or inf from finite input -1.0

    See also:
        DomainError
    """
    token = _CHECK_NANS.set(True)
    try:
        yield
    finally:
        _CHECK_NANS.reset(token)
