"""The demo's two experiments side by side when the width allows, stacked at 80 columns, with
no line longer than the width and no value cut (rich never truncates nor ellipsizes)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tcpclose.lab.present import experiment_block
from tcpclose.lab.runner import LabRun, run_many
from tcpclose.lab.scenarios import BY_NAME
from tcpclose.render.columns import GAP, Block, print_blocks, side_by_side_fits


def _demo(columns: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-P", "-m", "tcpclose", "demo", "--no-report"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
    )


@pytest.mark.parametrize("columns", [80, 200])
def test_demo_fits_the_width(columns: int, tmp_path: Path):
    done = _demo(columns, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    too_long = [line for line in lines if len(line) > columns]
    assert not too_long, f"lines longer than {columns}: {too_long}"
    assert "…" not in done.stdout
    titles = [line for line in lines if "experiment: " in line]
    if columns == 80:  # stacked: each title starts a line of its own, close first
        assert titles == ["experiment: close", "experiment: shutdown"]
        close_part, shutdown_part = done.stdout.split("experiment: shutdown")
        for part in (close_part, shutdown_part):
            assert "verdict: " in part
            assert "termination: " in part
            assert "|------------ SYN ------------>|" in part
    else:  # side by side: both titles on one line
        assert len(titles) == 1
        assert "experiment: close" in titles[0]
        assert "experiment: shutdown" in titles[0]
    assert not [line for line in lines if line != line.rstrip()]


@pytest.fixture(scope="module")
def blocks() -> list[Block]:
    runs: list[LabRun] = run_many([BY_NAME[name] for name in ("close", "shutdown")], speed=0.1)
    return [
        experiment_block(name, run, 30, False)
        for name, run in zip(("close", "shutdown"), runs, strict=True)
    ]


def _printed(blocks: list[Block], width: int | None) -> str:
    out = io.StringIO()
    console = Console(file=out, no_color=True, color_system=None, width=width or 1000)
    print_blocks(console, blocks, width)
    return out.getvalue()


def _ink(text: str) -> str:
    """The characters that are not white space, in order: what wrapping must keep."""
    return "".join(text.split())


def _block_ink(block: Block) -> str:
    return _ink("\n".join(text.plain for text, _ in block.pieces))


@pytest.mark.parametrize("width", [80, 60, 40])
def test_stacked_keeps_every_character(blocks: list[Block], width: int):
    assert not side_by_side_fits(blocks, width)
    printed = _printed(blocks, width)
    assert max(len(line) for line in printed.splitlines()) <= width
    assert _ink(printed) == "".join(_block_ink(b) for b in blocks)


@pytest.mark.parametrize("width", [None, 200, 160])
def test_side_by_side_keeps_every_character(blocks: list[Block], width: int | None):
    assert side_by_side_fits(blocks, width)
    printed = _printed(blocks, width)
    lines = printed.splitlines()
    if width is not None:
        assert max(len(line) for line in lines) <= width
        share = (width - GAP) // 2
    else:
        share = max(86, *(b.min_width() for b in blocks))
    left = "".join(line[:share] for line in lines)
    right = "".join(line[share + GAP :] for line in lines)
    assert all(line[share : share + GAP].strip() == "" for line in lines)
    assert _ink(left) == _block_ink(blocks[0])
    assert _ink(right) == _block_ink(blocks[1])
