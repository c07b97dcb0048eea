"""The library's folders follow the data flow and import one way: data ← training ← evaluation ← tracking ← serving.

A module may import the shared modules at the top (errors, atomic writes, hashing, console, devices, keys, choices,
worker processes, per-epoch tables, provenance)
and the folders before its own in the flow, never one after it; no folder imports the entry points (params, cli).
Imports inside functions count too: they run as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pix2pix"
FLOW = ("data", "training", "evaluation", "tracking", "serving")
SHARED = {"errors", "atomic", "hashing", "console", "devices", "keys", "choices", "processes", "tables", "provenance"}
# ``from pix2pix import __version__`` reads the package's own __init__, which imports nothing.
PACKAGE_ATTRIBUTES = {"__version__"}
ENTRY_POINTS = {"params", "cli", "cli_generator", "__main__"}


def imported_parts(path: Path) -> set[str]:
    """The first name under ``pix2pix`` of every project import in ``path`` (``data``, ``errors``, ...)."""
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "pix2pix" else [f"pix2pix.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        parts.update(name.split(".")[1] for name in names if name.startswith("pix2pix.") and name.count(".") >= 1)
    return parts


def allowed_for(layer: str) -> set[str]:
    """What a module in ``layer`` (a FLOW folder, or a shared top-level module) may import."""
    if layer in SHARED:
        return SHARED | PACKAGE_ATTRIBUTES
    return SHARED | PACKAGE_ATTRIBUTES | set(FLOW[: FLOW.index(layer) + 1])


def library_modules() -> list[Path]:
    return sorted(
        path for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] in FLOW or path.stem in SHARED
    )


def test_every_library_file_is_in_a_known_place() -> None:
    top_level = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert top_level <= SHARED | ENTRY_POINTS, f"unplaced modules: {sorted(top_level - SHARED - ENTRY_POINTS)}"
    folders = {path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders == set(FLOW)


@pytest.mark.parametrize("path", library_modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_module_imports_only_earlier_parts_of_the_flow(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    layer = relative.parts[0] if len(relative.parts) > 1 else relative.stem
    forbidden = imported_parts(path) - allowed_for(layer)
    assert not forbidden, f"pix2pix/{relative} imports {sorted(forbidden)}, which come after {layer!r} in the flow"
