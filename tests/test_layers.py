"""Imports point down only: every import of every tcpclose module, checked against the layers
table in `tcpclose.layers` (type-only and function-local imports count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tcpclose.layers import BASE, LAYERS, layer_of, package_of

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """(line, module) for every tcpclose import in the file, relative ones resolved."""
    tree = ast.parse(text if text is not None else path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], base]).strip(".")
            # `from tcpclose.claims import judges` imports the submodule tcpclose.claims.judges
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = (SRC / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    SRC / Path(*candidate.split(".")) / "__init__.py"
                ).exists()
                found.append((node.lineno, candidate if is_module else base))
    return [(line, name) for line, name in found if name.split(".")[0] == "tcpclose"]


def violations(path: Path, text: str | None = None) -> list[str]:
    me = module_name(path)
    mine = layer_of(me)
    out = []
    for line, target in imported(path, text):
        theirs = layer_of(target)
        same_package = package_of(target) == package_of(me)
        if theirs is None or same_package:
            continue
        where = f"{path.relative_to(SRC)}:{line}: {me} imports {target}"
        if mine is None:
            out.append(f"{where}: the base imports nothing above it")
        elif theirs > mine:
            out.append(f"{where}: points up ({LAYERS[mine]} < {LAYERS[theirs]})")
        elif theirs == mine and mine != len(LAYERS) - 1:
            out.append(f"{where}: sideways between siblings {LAYERS[mine]}")
    return out


MODULES = sorted(SRC.joinpath("tcpclose").rglob("*.py"))


def test_every_module_is_in_a_layer() -> None:
    for path in MODULES:
        layer_of(module_name(path))  # raises KeyError naming the module


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    assert violations(path) == []


def test_render_imports_only_the_model_and_the_facts() -> None:
    allowed = {"model", "facts", "render"}
    for path in SRC.joinpath("tcpclose", "render").rglob("*.py"):
        for line, target in imported(path):
            if target not in BASE:
                assert package_of(target) in allowed, f"{path.name}:{line} imports {target}"


def test_the_checker_catches_upward_and_sideways_imports() -> None:
    """The tests above must be able to fail (a module that does not exist, checked as text)."""
    render = SRC / "tcpclose" / "render" / "imagined.py"
    found = violations(
        render,
        "from tcpclose.lab.runner import LabRun\nfrom tcpclose.render import text\n"
        "def f():\n    from ..claims import judges\n",
    )
    assert len(found) == 2 and all("points up" in f for f in found)
    assert "tcpclose.lab.runner" in found[0] and "tcpclose.claims.judges" in found[1]
    probe = SRC / "tcpclose" / "probe" / "imagined.py"
    assert "sideways" in violations(probe, "import tcpclose.analyze.table\n")[0]
    command = SRC / "tcpclose" / "commands" / "lab.py"
    assert violations(command, "from tcpclose.claims import check\n") == []
