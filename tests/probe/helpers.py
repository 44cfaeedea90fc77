"""Running `tcpclose probe` in-process and in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tcpclose.cli import main

SRC = str(Path(__file__).resolve().parents[2] / "src")


def env() -> dict[str, str]:
    """The environment for child processes: this checkout's src first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def probe_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """`tcpclose probe ARGS --json` in this process: (exit status, the JSON document)."""
    capsys.readouterr()
    status = main(["probe", *args, "--json"])
    out = capsys.readouterr().out
    return status, json.loads(out)


def probe_subprocess(
    *args: str, prefix: tuple[str, ...] = (), timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`tcpclose probe ARGS` in a child process (optionally under `prefix`, e.g. unshare)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "tcpclose", "probe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
    )
