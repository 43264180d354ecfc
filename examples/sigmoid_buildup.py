"""From a global gradient to a monad: five ways to differentiate the sigmoid.

The sigmoid is four small steps, applied left to right::

    x  ->  -x  ->  exp(-x)  ->  1 + exp(-x)  ->  1 / (1 + exp(-x))

Each stage below computes sigmoid(0) = 0.5 and sigmoid'(0) = 0.25 with those four steps,
and each fixes what was awkward in the one before, until what is left is the pair
``unit``/``bind`` of a monad, which is what fad is built on. Run it with::

    python examples/sigmoid_buildup.py
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any

import fad
from fad.prims import add, exp, multiply, reciprocal


def check(stage: str, value: float, deriv: float) -> None:
    """Print one stage's numbers and insist they are the sigmoid's at 0."""
    print(f"{stage:<44} sigmoid(0) = {value}, sigmoid'(0) = {deriv}")
    assert math.isclose(value, 0.5), (stage, value)
    assert math.isclose(deriv, 0.25), (stage, deriv)


# --- Stage 1: a global gradient --------------------------------------------------------
#
# The first idea anyone has: compute the value as usual, and let every primitive also
# update one global number, "the derivative of what we have so far with respect to x".
# By the chain rule each step multiplies it by its own local derivative.

GRAD = 1.0  # d(current value)/dx; dx/dx = 1 before the first step


def multiply_1(c: float) -> Callable[[float], float]:
    def step(x: float) -> float:
        global GRAD
        GRAD *= c  # d(c x)/dx = c
        return c * x

    return step


def exp_1(x: float) -> float:
    global GRAD
    y = math.exp(x)
    GRAD *= y  # d(e^x)/dx = e^x: the value we just computed
    return y


def add_1(c: float) -> Callable[[float], float]:
    def step(x: float) -> float:
        return x + c  # d(x + c)/dx = 1: GRAD is unchanged

    return step


def reciprocal_1(x: float) -> float:
    global GRAD
    y = 1.0 / x
    GRAD *= -y * y  # d(1/x)/dx = -1/x^2
    return y


def stage_1() -> None:
    global GRAD
    # The catch: someone must remember to reset the global before every call, two
    # derivatives can never be computed at once (say, inside one another), and a thread
    # would trample another's. The derivative belongs with the value, not in a global.
    GRAD = 1.0
    value = reciprocal_1(add_1(1.0)(exp_1(multiply_1(-1.0)(0.0))))
    check("1. a global gradient", value, GRAD)


# --- Stage 2: the derivative passed along as state -----------------------------------
#
# So pass it along explicitly: every step takes and returns the pair (value, deriv).
# Now the functions are pure, and nothing needs resetting.

State = tuple[float, float]  # (value, d value / dx)


def multiply_2(c: float) -> Callable[[State], State]:
    def step(s: State) -> State:
        x, dx = s
        return c * x, c * dx

    return step


def exp_2(s: State) -> State:
    x, dx = s
    y = math.exp(x)
    return y, y * dx


def add_2(c: float) -> Callable[[State], State]:
    def step(s: State) -> State:
        x, dx = s
        return x + c, dx

    return step


def reciprocal_2(s: State) -> State:
    x, dx = s
    y = 1.0 / x
    return y, -y * y * dx


def stage_2() -> None:
    # The catch: a bare tuple says nothing about what its halves are, and a caller
    # starting a computation has to know to pass (x, 1.0). Give the pair a name.
    value, deriv = reciprocal_2(add_2(1.0)(exp_2(multiply_2(-1.0)((0.0, 1.0)))))
    check("2. (value, deriv) threaded as state", value, deriv)


# --- Stage 3: a Dual number ---------------------------------------------------------
#
# A small immutable class carrying both halves: a dual number, x + x' eps with eps^2 = 0.


@dataclass(frozen=True, slots=True)
class Dual:
    value: float
    deriv: float


def multiply_3(c: float) -> Callable[[Dual], Dual]:
    def step(m: Dual) -> Dual:
        return Dual(c * m.value, c * m.deriv)

    return step


def exp_3(m: Dual) -> Dual:
    y = math.exp(m.value)
    return Dual(y, y * m.deriv)


def add_3(c: float) -> Callable[[Dual], Dual]:
    def step(m: Dual) -> Dual:
        return Dual(m.value + c, m.deriv)

    return step


def reciprocal_3(m: Dual) -> Dual:
    y = 1.0 / m.value
    return Dual(y, -y * y * m.deriv)


def stage_3() -> None:
    # The catch: look at what every primitive above does with `m.deriv`. Each one
    # multiplies its local derivative by the incoming one: the chain rule, written out
    # again in every primitive. Only the local derivative is really the primitive's own.
    m = reciprocal_3(add_3(1.0)(exp_3(multiply_3(-1.0)(Dual(0.0, 1.0)))))
    check("3. a Dual class", m.value, m.deriv)


# --- Stage 4: unit and bind ---------------------------------------------------------
#
# So take the chain rule out of the primitives. A primitive now maps a plain number to a
# Dual holding its value and its *local* derivative: a function a -> M b. Two small
# functions do the rest, and they are exactly a monad's:
#   unit(x)    starts a computation: x with derivative dx/dx = 1;
#   bind(m, f) feeds m's value to f and composes the derivatives: the chain rule.

Prim = Callable[[float], Dual]


def unit(x: float) -> Dual:
    return Dual(x, 1.0)


def bind(m: Dual, f: Prim) -> Dual:
    r = f(m.value)
    return Dual(r.value, r.deriv * m.deriv)  # D(f . g)(x) = Df(g(x)) * Dg(x)


def comp(*fs: Prim) -> Prim:
    """Compose right to left, like toolz.compose: comp(f, g)(x) is f(g(x))."""
    return lambda x: reduce(bind, reversed(fs), unit(x))


def multiply_4(c: float) -> Prim:
    return lambda x: Dual(c * x, c)


def exp_4(x: float) -> Dual:
    y = math.exp(x)
    return Dual(y, y)


def add_4(c: float) -> Prim:
    return lambda x: Dual(x + c, 1.0)


def reciprocal_4(x: float) -> Dual:
    y = 1.0 / x
    return Dual(y, -y * y)


def stage_4() -> None:
    # Each primitive is now one line, value beside derivative, and composing them is
    # just `comp`. What remains to generalise is what the derivative *is*: a number here,
    # a linear map in general (a Jacobian, kept unmaterialised), so that the same bind
    # covers vectors, batches, and reverse mode. That is fad.
    sigmoid = comp(reciprocal_4, add_4(1.0), exp_4, multiply_4(-1.0))
    m = sigmoid(0.0)
    check("4. unit, bind and comp by hand", m.value, m.deriv)


# --- Stage 5: fad --------------------------------------------------------------------
#
# fad's functions are the same a -> M b values, with fad.unit, fad.bind and fad.comp,
# plus `>>` to compose left to right and arithmetic lifted pointwise to functions, so
# the sigmoid can be written three ways and they all agree.


def stage_5() -> None:
    by_comp = fad.comp(reciprocal, add(1.0), exp, multiply(-1.0))  # right to left, as toolz
    by_pipe = multiply(-1.0) >> exp >> add(1.0) >> reciprocal  # left to right
    by_arithmetic = 1 / (1 + (multiply(-1.0) >> exp))  # arithmetic on functions, pointwise
    ways: list[tuple[str, fad.Fn[Any, Any]]] = [
        ("fad.comp(reciprocal, add, exp, multiply)", by_comp),
        ("multiply >> exp >> add >> reciprocal", by_pipe),
        ("1 / (1 + (multiply >> exp))", by_arithmetic),
    ]
    for name, sigmoid in ways:
        value, deriv = sigmoid(0.0)  # a fad.Dual unpacks to (value, derivative)
        check(f"5. {name}", float(value), float(deriv))

    # The monad spelt out: unit starts, each bind applies one step and the chain rule.
    m = fad.unit(0.0)
    for step in (multiply(-1.0), exp, add(1.0), reciprocal):
        m = fad.bind(m, step)
    value, deriv = m
    check("5. fad.unit and fad.bind", float(value), float(deriv))


def main() -> None:
    stage_1()
    stage_2()
    stage_3()
    stage_4()
    stage_5()


if __name__ == "__main__":
    main()
