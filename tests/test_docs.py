"""Every ```python block of the documentation runs, page by page, as a reader would run it.

The blocks of a page run in order in one fresh interpreter (later blocks use earlier
names), with warnings as errors, as the test suite runs. A fresh process per page keeps
the primitives a page declares (``fad.primitive`` registers them, wrong ones included)
out of the other tests' random pipelines.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
TIMEOUT = 120  # seconds; a page that takes longer is a bug, not a slow machine


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```", page.read_text("utf-8"), re.DOTALL | re.M)


def test_the_testing_page_exists_and_has_code() -> None:
    # A glob that finds nothing would parametrise the test below away and pass silently.
    assert ROOT / "docs" / "testing.md" in PAGES
    assert len(python_blocks(ROOT / "docs" / "testing.md")) >= 4


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_page_runs_as_written(page: Path) -> None:
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no ```python blocks")
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "\n".join(blocks)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, (
        f"docs/{page.name} failed\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
