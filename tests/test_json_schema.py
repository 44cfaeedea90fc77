"""Every command that prints JSON says which shape it uses: `"schema_version"` is the first key
of the document, equal to tcpclose.model.jsonshape.SCHEMA_VERSION (docs/json.md).

Each command runs for real, in a child process, on loopback: the lab's scenarios, a probe of a
running `tcpclose serve`, a capture read by analyze, a traced program, a drained server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.net import free_port
from tcpclose.cli import COMMANDS
from tcpclose.model.jsonshape import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "tests" / "data" / "analyze" / "three-closes.pcap"
TCPCLOSE = [sys.executable, "-m", "tcpclose"]
#: generous: a lab run at --speed 0.05 takes about a second on an idle machine
TIMEOUT = 120


def env() -> dict[str, str]:
    src = str(ROOT / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_json(*args: str, cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*TCPCLOSE, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env(),
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert isinstance(document, dict)
    return document


class Served:
    """`tcpclose serve --port 0 --json`: its port from its first stderr line, its JSON on stop."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [*TCPCLOSE, "serve", "--port", "0", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on 127.0.0.1:PORT ..."
        assert "listening on 127.0.0.1:" in line, line
        self.port = int(line.split("127.0.0.1:")[1].split()[0])

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=TIMEOUT)
        assert self.proc.returncode == 0, err
        document = json.loads(out)
        assert isinstance(document, dict)
        return document


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served()
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


def json_of(command: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The JSON document `command` prints, run the quickest way it can run for real."""
    speed = ("--speed", "0.05")
    if command == "lab":
        return run_json("lab", "close", "--json", *speed, cwd=tmp_path)
    if command == "demo":
        return run_json("demo", "--json", "--no-report", *speed, cwd=tmp_path)
    if command == "claims":
        return run_json("claims", "--json", *speed, cwd=tmp_path)
    if command == "report":
        out = str(tmp_path / "report.html")
        return run_json("report", "close", "--json", "--output", out, *speed, cwd=tmp_path)
    if command == "probe":
        served: Served = request.getfixturevalue("served")
        return run_json(
            "probe", f"127.0.0.1:{served.port}", "--preset", "http", "--json", cwd=tmp_path
        )
    if command == "analyze":
        return run_json("analyze", "--json", str(CAPTURE), cwd=tmp_path)
    if command == "trace":
        if shutil.which("strace") is None:
            pytest.fail("strace is not installed: trace cannot run")
        return run_json("trace", "--json", "--", "true", cwd=tmp_path)
    if command == "serve":
        server: Served = request.getfixturevalue("served")
        return server.stop()
    if command == "drain":
        port = free_port()
        return run_json(
            "drain",
            "--json",
            "--target",
            f"127.0.0.1:{port}",
            "--at",
            "0.2",
            "--after",
            "0.2",
            "--concurrency",
            "2",
            "--",
            *TCPCLOSE,
            "serve",
            "--port",
            str(port),
            cwd=tmp_path,
        )
    raise AssertionError(f"no JSON run for {command!r}: add one")


#: the lesson's programs print their dialogue, not JSON (their --events log is JSON lines)
NO_JSON = {"server", "client"}


def with_json() -> list[str]:
    return [name for name in COMMANDS if name not in NO_JSON]


def test_every_command_but_the_lesson_programs_has_json() -> None:
    for name in COMMANDS:
        if name in NO_JSON:
            continue
        done = subprocess.run(
            [*TCPCLOSE, name, "--help"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env(),
            cwd=ROOT,
        )
        assert "--json" in done.stdout, f"tcpclose {name} has no --json"


@pytest.mark.parametrize("command", with_json())
def test_json_output_carries_the_schema_version(
    command: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    document = json_of(command, tmp_path, request)
    assert next(iter(document), None) == "schema_version", list(document)[:3]
    assert document["schema_version"] == SCHEMA_VERSION
