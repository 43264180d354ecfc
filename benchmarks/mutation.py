"""Mutation score of fad.laws + fad.strategies, and their false alarms on correct code.

Plants wrong derivative rules (a wrong sign, a missing chain factor, sin for cos, a power
off by one, a pullback that is not the transpose of its pushforward, kink conventions
that differ between modes, an error only float32 shows, a rule that loses its own
derivative...), each as a user primitive, and runs the laws on random pipelines the way
a user's test suite would: ``@given(st.pipelines(prims=[mutant, *fad's]), hs.data())``
at hypothesis' default budget (100 examples per law), one test per law. A mutant is
caught when a law fails with an ``AssertionError`` naming it; the table shows which laws
caught it and the counterexample hypothesis shrank to.

Then runs every law on correct random pipelines (float64 and float32, scalars and
arrays) and counts failures: false alarms.

When autograd (the ``bench`` extra) is installed, its ``check_grads`` is scored on the
same elementwise mutants at one user-chosen point per mutant, for comparison.

    python benchmarks/mutation.py                # 10,000 correct pipelines
    python benchmarks/mutation.py --correct 500  # a quicker run
    python benchmarks/mutation.py --skip-mutants --correct 1000 --seed 3  # reproducible
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as hs

import fad
from fad import laws
from fad import strategies as st
from fad.prims import Domain
from fad.prims._declare import REGISTRY

BUILTINS: list[Any] = [*REGISTRY.values()]
FACTORIES: list[Any] = [fad.add, fad.multiply, fad.power, fad.affine, fad.clip]
POSITIVE = Domain(lo=0.0)
# Hypothesis' default budget (100 examples); no deadline (finite differences take
# milliseconds), no example database (each run starts afresh), one bug per law.
DEFAULT = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,
)
REALS = Domain()
SHAPES = [(), (3,)]
DTYPES = [np.float64, np.float32]


# ------------------------------------------------------------------------ mutants


@dataclass
class Mutant:
    """A planted bug: a primitive whose derivative is wrong in the way ``what`` says."""

    name: str
    what: str
    build: Callable[[], fad.Fn[Any, Any]]
    # For autograd's check_grads: value and (jvp, vjp) rules on float64, and a point.
    value: Callable[[Any], Any] | None = None
    jvp: Callable[[Any, Any], Any] | None = None
    vjp: Callable[[Any, Any], Any] | None = None
    point: float = 0.7
    caught_by: list[str] = field(default_factory=list)
    shrunk: str = ""
    seconds: float = 0.0


def elementwise(name: str, what: str, value: Callable[[Any], Any], deriv: Callable[[Any], Any],
                domain: Domain = REALS, point: float = 0.7) -> Mutant:  # fmt: skip
    """A mutant declared with ``deriv=``: one rule, read by both modes."""
    return Mutant(
        name, what, lambda: fad.primitive(value, deriv=deriv, name=name, domain=domain),
        value, lambda x, t: deriv(x) * t, lambda x, ct: ct * deriv(x), point,
    )  # fmt: skip


def general(name: str, what: str, value: Callable[[Any], Any], jvp: Callable[[Any, Any], Any],
            vjp: Callable[[Any, Any], Any], point: float = 0.7) -> Mutant:  # fmt: skip
    """A mutant declared with separate ``jvp=`` and ``vjp=`` rules."""
    return Mutant(
        name, what, lambda: fad.primitive(value, jvp=jvp, vjp=vjp, name=name),
        value, jvp, vjp, point,
    )  # fmt: skip


def _float32(x: Any) -> bool:
    return bool(np.result_type(x) == np.float32)


def _sigmoid(x: Any) -> Any:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _plain(x: Any) -> Any:
    """A rule that strips the Dual: its value is right, its own derivative is lost."""
    return x.value if isinstance(x, fad.Dual) else x


MUTANTS = [
    elementwise("sin_neg", "wrong sign: d sin = -cos", np.sin, lambda x: -np.cos(x)),
    elementwise("sin_is_sin", "sin for cos: d sin = sin", np.sin, np.sin),
    elementwise("cos_pos", "wrong sign: d cos = sin", np.cos, np.sin),
    elementwise("exp2x", "missing chain factor: d exp(2x) = exp(2x)",
                lambda x: np.exp(2 * x), lambda x: np.exp(2 * x)),
    elementwise("sin3x", "missing chain factor: d sin(3x) = cos(3x)",
                lambda x: np.sin(3 * x), lambda x: np.cos(3 * x)),
    elementwise("cube_pow", "power off by one: d x^3 = 3 x^3", lambda x: x**3, lambda x: 3 * x**3),
    elementwise("cube_coef", "coefficient off by one: d x^3 = 2 x^2",
                lambda x: x**3, lambda x: 2 * x**2),
    elementwise("log_sq", "d log = 1/x^2", np.log, lambda x: 1 / x**2, POSITIVE),
    elementwise("tanh_nosq", "missing square: d tanh = 1 - tanh",
                np.tanh, lambda x: 1 - np.tanh(x)),
    elementwise("sigmoid_plus", "d sigmoid = s (1 + s)",
                _sigmoid, lambda x: _sigmoid(x) * (1 + _sigmoid(x))),
    elementwise("sqrt_half", "missing 1/2: d sqrt = 1/sqrt", np.sqrt, lambda x: 1 / np.sqrt(x),
                POSITIVE),
    elementwise("recip_sign", "wrong sign: d 1/x = 1/x^2", lambda x: 1 / x, lambda x: 1 / x**2,
                Domain(nonzero=True)),
    elementwise("softplus_flip", "d softplus = sigmoid(-x)",
                lambda x: np.logaddexp(0.0, x), lambda x: _sigmoid(-x)),
    elementwise("erf_noconst", "missing 2/sqrt(pi): d erf = exp(-x^2)",
                fad.erf.value, lambda x: np.exp(-x * x)),
    elementwise("tan_nosq", "missing square: d tan = 1 + tan",
                np.tan, lambda x: 1 + np.tan(x), Domain(-1.5, 1.5)),
    elementwise("log1p_shift", "wrong shift: d log1p = 1/x", np.log1p, lambda x: 1 / x, POSITIVE),
    elementwise("expm1_value", "the value for the derivative: d expm1 = expm1",
                np.expm1, np.expm1),
    elementwise("sin_f32", "1% off, float32 only", np.sin,
                lambda x: np.cos(x) * (1.01 if _float32(x) else 1.0)),
    elementwise("exp_f32_sign", "wrong sign, float32 only", np.exp,
                lambda x: -np.exp(x) if _float32(x) else np.exp(x)),
    elementwise("cube_2nd", "rule not differentiable itself (second derivative lost)",
                lambda x: x**3, lambda x: 3 * _plain(x) ** 2),
    general("sin_vjp_neg", "vjp not the transpose: -cos", np.sin,
            lambda x, t: np.cos(x) * t, lambda x, ct: -np.cos(x) * ct),
    general("exp_vjp_2", "vjp not the transpose: twice the jvp", np.exp,
            lambda x, t: np.exp(x) * t, lambda x, ct: 2 * np.exp(x) * ct),
    general("tanh_jvp", "forward rule wrong, reverse right", np.tanh,
            lambda x, t: (1 - np.tanh(x)) * t, lambda x, ct: (1 - np.tanh(x) ** 2) * ct),
    general("sin_vjp_rev", "vjp mixes up elements (arrays only)", np.sin,
            lambda x, t: np.cos(x) * t, lambda x, ct: np.flip(np.cos(x) * ct)),
    general("relu_kinks", "kink conventions differ between modes (0 forward, 1 reverse)",
            lambda x: np.maximum(x, 0.0), lambda x, t: np.heaviside(x, 0.0) * t,
            lambda x, ct: np.heaviside(x, 1.0) * ct, point=0.0),
    general("abs_kinks", "kink conventions differ between modes (sign forward, 1 reverse)",
            np.abs, lambda x, t: np.sign(x) * t,
            lambda x, ct: np.where(x == 0, 1.0, np.sign(x)) * ct, point=0.0),
]  # fmt: skip


# ------------------------------------------------------------------------ the laws


def _point(f: fad.Fn[Any, Any], data: Any, special: bool = False) -> Any:
    dtype = data.draw(hs.sampled_from(DTYPES), label="dtype")
    shape = data.draw(hs.sampled_from(SHAPES), label="shape")
    return data.draw(st.points(f, shape, dtype, special=special), label="x")


LawTest = Callable[[list[Any]], Callable[[], None]]


def law_tests() -> dict[str, LawTest]:
    """One hypothesis test per law, as a user's suite would have them."""

    def fd1(prims: list[Any]) -> Callable[[], None]:
        @DEFAULT
        @given(f=st.pipelines(prims=prims), data=hs.data())
        def test(f: Any, data: Any) -> None:
            laws.check_finite_differences(f, _point(f, data))

        return test

    def fd2(prims: list[Any]) -> Callable[[], None]:
        @DEFAULT
        @given(f=st.pipelines(max_depth=3, prims=prims), data=hs.data())
        def test(f: Any, data: Any) -> None:
            laws.check_finite_differences(f, _point(f, data), order=2)

        return test

    def jvp_vjp(prims: list[Any]) -> Callable[[], None]:
        @DEFAULT
        @given(f=st.pipelines(prims=prims), data=hs.data())
        def test(f: Any, data: Any) -> None:
            laws.check_jvp_vjp(f, _point(f, data))

        return test

    def modes(prims: list[Any]) -> Callable[[], None]:
        @DEFAULT
        @given(f=st.pipelines(prims=prims), data=hs.data())
        def test(f: Any, data: Any) -> None:
            laws.check_modes_agree(f, _point(f, data, special=data.draw(hs.booleans())))

        return test

    def modes2(prims: list[Any]) -> Callable[[], None]:
        @DEFAULT
        @given(f=st.pipelines(max_depth=3, prims=prims), data=hs.data())
        def test(f: Any, data: Any) -> None:
            laws.check_modes_agree(f, _point(f, data), order=2)

        return test

    def monad(prims: list[Any]) -> Callable[[], None]:
        @DEFAULT
        @given(fgh=st.compositions(3, prims=prims), data=hs.data())
        def test(fgh: Any, data: Any) -> None:
            f, g, h = fgh
            x = _point(f >> g >> h, data)
            laws.check_left_identity(f, x)
            laws.check_right_identity(f, x)
            laws.check_associativity(f, g, h, x)
            laws.check_chain_rule(f, g, x)

        return test

    return {"fd": fd1, "fd2": fd2, "jvp/vjp": jvp_vjp, "modes": modes, "modes2": modes2,
            "monad": monad}  # fmt: skip


def shrunk_function(message: str) -> str:
    found = re.search(r"(?:derivative of|product of|mode of) (.*?) is wrong", message)
    found = found or re.search(
        r"for (?:f|m) = \(?(.*?)\)?(?:\(x\))?(?:, s\(x\)|, g =| at x =)", message
    )
    return found.group(1) if found else "?"


def primitives_in(text: str) -> int:
    """How many primitives a pipeline's repr names (numbers and operators not counted)."""
    return len(re.findall(r"[a-z_][a-z_0-9]*(?:\([^()]*\))?", text))


def score(mutant: Mutant, tests: dict[str, LawTest]) -> None:
    saved = dict(REGISTRY)
    start = time.perf_counter()
    try:
        prims = [mutant.build(), *BUILTINS, *FACTORIES]
        for law, make in tests.items():
            try:
                make(prims)()
            except AssertionError as e:
                message = str(e)
                if mutant.name in message:
                    mutant.caught_by.append(law)
                    culprit = shrunk_function(message)
                    if not mutant.shrunk or primitives_in(culprit) < primitives_in(mutant.shrunk):
                        mutant.shrunk = culprit
            except Exception as e:  # a law that crashes is not a catch; say so
                mutant.caught_by.append(f"({law}: {type(e).__name__})")
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)
        mutant.seconds = time.perf_counter() - start


# ----------------------------------------------------------------- autograd, if any


def autograd_catches(mutant: Mutant) -> str:
    """Whether autograd's check_grads (both modes, order 1) flags the mutant at its point."""
    try:
        from autograd.extend import defjvp, defvjp, primitive
        from autograd.test_util import check_grads
    except ImportError:
        return "n/a"
    value, jvp, vjp = mutant.value, mutant.jvp, mutant.vjp
    assert value is not None and jvp is not None and vjp is not None
    f = primitive(lambda x: value(x))
    defvjp(f, lambda ans, x: lambda g: vjp(x, g))
    defjvp(f, lambda g, ans, x: jvp(x, g))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_grads(f, modes=["fwd", "rev"], order=1)(mutant.point)
    except AssertionError:
        return "caught"
    except Exception as e:
        return f"error ({type(e).__name__})"
    return "missed"


# ----------------------------------------------------------------- false alarms


def false_alarms(n: int, seed_: int | None = None) -> tuple[int, dict[str, int], list[str], float]:
    """Run every law on ``n`` correct random pipelines; count and describe failures.

    With ``seed_`` the pipelines and points drawn are reproducible; each failure's
    description starts with the pipeline and the point, as code.
    """
    counts = {"fd": 0, "fd2": 0, "jvp/vjp": 0, "modes": 0, "modes2": 0, "monad": 0}
    examples: list[str] = []
    checked = [0]
    prims = [*BUILTINS, *FACTORIES]

    def run(law: str, check: Callable[[], None], case: str) -> None:
        try:
            check()
        except Exception as e:  # any failure on correct code is a false alarm
            counts[law] += 1
            examples.append(f"[{law}] {case}\n{type(e).__name__}: {str(e)[:600]}")

    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(fgh=st.compositions(3, max_depth=2, prims=prims), data=hs.data())
    def correct(fgh: Any, data: Any) -> None:
        f, g, h = fgh
        fg = f >> g
        x = _point(fg >> h, data)
        checked[0] += 1
        case = f"f, g, h = {f!r}, {g!r}, {h!r}; x = {_code(x)}"
        run("fd", lambda: laws.check_finite_differences(fg, x), case)
        run("fd2", lambda: laws.check_finite_differences(fg, x, order=2), case)
        run("jvp/vjp", lambda: laws.check_jvp_vjp(fg, x), case)
        run("modes", lambda: laws.check_modes_agree(fg, x), case)
        run("modes2", lambda: laws.check_modes_agree(fg, x, order=2), case)
        run("monad", lambda: laws.check_left_identity(fg, x), case)
        run("monad", lambda: laws.check_right_identity(fg, x), case)
        run("monad", lambda: laws.check_associativity(f, g, h, x), case)
        run("monad", lambda: laws.check_chain_rule(fg, h, x), case)

    if seed_ is not None:
        correct = seed(seed_)(correct)
    start = time.perf_counter()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        correct()
    return checked[0], counts, examples, time.perf_counter() - start


def _code(x: Any) -> str:
    """A point as code that rebuilds it exactly (dtype included)."""
    if type(x) is float:
        return repr(x)
    a = np.asarray(x)
    dt = f"np.{a.dtype}"
    if a.ndim == 0:
        return f"{dt}({float(a)!r})"
    return f"np.array({[float(v) for v in a.ravel()]!r}, dtype={dt})"


# -------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--correct", type=int, default=10_000, help="correct pipelines to run")
    parser.add_argument("--skip-mutants", action="store_true")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed the correct pipelines (reproducible false alarms)")  # fmt: skip
    args = parser.parse_args()

    if not args.skip_mutants:
        tests = law_tests()
        print(f"Planted bugs: {len(MUTANTS)}; laws run with hypothesis' default budget "
              f"(100 examples each): {', '.join(tests)}\n")  # fmt: skip
        header = (f"{'mutant':<14} {'bug':<62} {'caught by':<40} {'shrunk to':<26} "
                  f"{'prims':>5} {'s':>5} {'autograd':>9}")  # fmt: skip
        print(header)
        print("-" * len(header))
        for m in MUTANTS:
            score(m, tests)
            by = ", ".join(m.caught_by) or "MISSED"
            ag = autograd_catches(m)
            size = primitives_in(m.shrunk) if m.shrunk else 0
            print(f"{m.name:<14} {m.what[:62]:<62} {by[:40]:<40} {m.shrunk[:26]:<26} "
                  f"{size:>5} {m.seconds:>5.0f} {ag:>9}", flush=True)  # fmt: skip
        caught = [m for m in MUTANTS if any(not c.startswith("(") for c in m.caught_by)]
        small = [m for m in caught if primitives_in(m.shrunk) <= 3]
        ag_caught = sum(autograd_catches(m) == "caught" for m in MUTANTS)
        print(f"\ncaught: {len(caught)}/{len(MUTANTS)} ({100 * len(caught) / len(MUTANTS):.0f} %), "
              f"shrunk to at most 3 primitives: {len(small)}/{len(caught)}")  # fmt: skip
        print(f"autograd check_grads (fwd and rev, order 1, at x = 0.7, or 0 for the kinks): "
              f"{ag_caught}/{len(MUTANTS)}")  # fmt: skip
        try:
            import jax  # noqa: F401
        except ImportError:
            print("JAX is not installed: its check_grads is not scored.")

    if args.correct:
        print(f"\nFalse alarms: every law on {args.correct} correct random pipelines "
              f"(float64 and float32, scalars and arrays)...", flush=True)  # fmt: skip
        n, counts, examples, seconds = false_alarms(args.correct, args.seed)
        total = sum(counts.values())
        print(
            f"pipelines checked: {n} in {seconds:.0f} s; false alarms: {total} "
            + "("
            + ", ".join(f"{k}: {v}" for k, v in counts.items())
            + ")"
        )
        for e in examples:
            print("  " + e.replace("\n", "\n    "))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
