"""numexpr engine (placeholder while it is written)."""

from __future__ import annotations

from typing import Any


def run(kernel: Any, entry: Any, xs: list[Any], outs: list[Any], wd: Any) -> None:
    kernel._run(entry.program, xs, outs, xs[0].size, wd)
