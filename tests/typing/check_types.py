"""Types users see, checked by mypy (tests/test_typing.py runs mypy on this file)."""

from __future__ import annotations

from typing import Any, assert_type

import fad
from fad import Dual, Fn
from fad.prims import add, exp, multiply, reciprocal

sigmoid = multiply(-1.0) >> exp >> add(1.0) >> reciprocal
assert_type(sigmoid, Fn[Any, Any])
assert_type(fad.unit(0.0), Dual[float])
assert_type(fad.comp(reciprocal, add(1.0)), Fn[Any, Any])
assert_type(fad.identity, Fn[Any, Any])

f: Fn[float, float] = fad.sin
g: Fn[float, str] = fad.lift(lambda x: "a")
h = f >> fad.cos
assert_type(h, Fn[float, Any])
