"""The layering of STYLE.md: every import inside fad points inward, toward the core."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fad"

# Module (dotted, relative to fad) -> layer. A module may import its own layer or lower.
LAYERS = {
    "_errors": 0,
    "_linear": 0,
    "_tree": 0,
    "_core": 1,
    "_structure": 1,
    "prims": 2,
    "_transforms": 4,
    "_blocks": 4,
    "kernel": 5,
    "laws": 5,
    "strategies": 5,
    "_trace": 5,
    "optim": 5,
    "__main__": 6,  # the tour: a user of the public surface
    "__init__": 6,
}


def layer_of(module: str) -> int:
    head = module.split(".")[0]
    if head not in LAYERS:
        raise AssertionError(f"fad.{module} has no layer in tests/test_architecture.py")
    return LAYERS[head]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts)


def fad_imports(path: Path) -> list[str]:
    """The fad modules a file imports, as dotted names relative to fad."""
    here = module_name(path).split(".")
    package = here[:-1]  # a module's package (for __init__.py: its own)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "fad":
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:  # "from . import x" names a module or a package item
                sub = SRC.joinpath(*target, alias.name)
                if sub.with_suffix(".py").exists() or sub.is_dir():
                    found.append(".".join([*target, alias.name]))
                else:
                    found.append(".".join(target) or "__init__")
        elif isinstance(node, ast.Import):
            found += [a.name[4:] for a in node.names if a.name.startswith("fad.")]
    return [m for m in found if m]


def test_every_import_points_inward() -> None:
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        me = module_name(path)
        mine = layer_of(me)
        for target in fad_imports(path):
            if layer_of(target) > mine:
                wrong.append(f"{path.relative_to(SRC)} (layer {mine}) imports fad.{target}")
    assert not wrong, "imports that point outward:\n" + "\n".join(wrong)


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    # A layer-0 module importing the core must be caught (the test can fail).
    assert layer_of("_linear") < layer_of("_core")
    assert "_core" in fad_imports(SRC / "_transforms.py")
