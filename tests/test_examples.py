"""Every example and the tour run to completion, as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fad

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT = 120  # seconds; an example that takes longer is a bug, not a slow machine

# The subprocesses import the same fad as this test session (an installed copy or src/),
# so the examples are checked against the code the rest of the suite checks.
FAD_PARENT = str(Path(fad.__file__).resolve().parent.parent)
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [FAD_PARENT, os.environ.get("PYTHONPATH")])),
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with `args` from the repository root, capturing output."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_there_are_examples() -> None:
    # A glob that finds nothing would parametrise the test below away and pass silently.
    assert EXAMPLES, f"no examples found in {ROOT / 'examples'}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path: Path) -> None:
    result = run(str(path))
    assert result.returncode == 0, (
        f"{path.name} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def test_tour_runs_and_shows_the_sigmoid() -> None:
    result = run("-m", "fad")
    assert result.returncode == 0, (
        f"python -m fad exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    assert "0.5" in result.stdout, result.stdout
    assert "0.25" in result.stdout, result.stdout


def test_readme_examples_run() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", readme, re.DOTALL | re.MULTILINE)
    assert blocks, "README.md has no ```python example"
    result = run("-c", "\n".join(blocks))
    assert result.returncode == 0, f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert "0.5 0.25" in result.stdout, result.stdout
    assert "5.5" in result.stdout, result.stdout
    assert "[0. 0. 0.]" in result.stdout, result.stdout
