"""CPU instructions per call of a statement, counted by valgrind: a timing that isn't noisy.

On a shared virtual machine the same call's time swings by 2x from one minute to the
next; the number of instructions it executes does not (within ~0.5 %). This counts
them with callgrind, only inside the measured loop (the loop runs inside
``functools.reduce``, and collection is toggled on that function alone), and
subtracts an empty statement's count. Instructions are not time: numpy's own loops
run more of them per nanosecond than the interpreter does, so compare counts of the
same kind of work (before and after a change to fad's Python overhead, say).

Usage (valgrind must be installed)::

    python benchmarks/instructions.py 'vg(x)'
    python benchmarks/instructions.py --src /path/to/other/src 'vg(x)' 'np.sum(x)'

Statements run with ``np``, ``fad``, a 1,000-element ``x`` and ``vg``, the
``value_and_grad`` of the Rosenbrock function, in scope; ``--setup`` adds more.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

SETUP = """
import numpy as np
import fad

def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

x = np.random.default_rng(0).uniform(-2.0, 2.0, 1000)
vg = fad.value_and_grad(rosenbrock)
"""

RUNNER = """
import functools, sys
sys.path.insert(0, {src!r})
{setup}
code = compile({stmt!r}, "<statement>", "exec")
for _ in range(20):  # warm up: caches, specialised bytecode
    exec(code)

def measured(acc, _):
    for _ in range({number}):
        exec(code)

functools.reduce(measured, [0], None)  # callgrind collects inside this call only
"""


def collected(src: str, setup: str, stmt: str, number: int) -> int:
    """Instructions callgrind counts in ``number`` executions of ``stmt``."""
    program = RUNNER.format(src=src, setup=setup, stmt=stmt, number=number)
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=functools_reduce",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            program,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    found = re.search(r"Collected : ([\d,]+)", out)
    if found is None:
        raise RuntimeError(f"no count in valgrind's output:\n{out}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("statements", nargs="+")
    parser.add_argument("--src", default="src", help="the fad source tree to import")
    parser.add_argument("--setup", default="", help="more setup code, after the default")
    parser.add_argument("--number", type=int, default=1000, help="executions counted")
    args = parser.parse_args(argv)
    setup = SETUP + args.setup
    empty = collected(args.src, setup, "pass", args.number)
    for stmt in args.statements:
        count = collected(args.src, setup, stmt, args.number)
        print(f"{(count - empty) / args.number:12,.0f} instructions  {stmt}")


if __name__ == "__main__":
    main(sys.argv[1:])
