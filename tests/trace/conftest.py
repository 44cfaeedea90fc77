"""Fixtures for the trace tests: the lesson's C reconstructions built with gcc, a test nginx on
a free port, and a way to run `tcpclose trace` as a real process that the test drives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lesson.driver import TIMEOUT, Proc, Procs, program, python_env
from support.nginx import run_nginx

INTEROP = Path(__file__).resolve().parents[1] / "interop"


def need_strace() -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")


@pytest.fixture(scope="session")
def c_programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the compiled graceserver and graceclient (tests/interop/*.c)."""
    need_strace()
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the C reconstructions")
    if shutil.which("stdbuf") is None:
        pytest.skip("stdbuf (coreutils) is missing: the C programs' output cannot be paced")
    out = tmp_path_factory.mktemp("c-programs")
    for name in ("graceserver", "graceclient"):
        subprocess.run(
            [gcc, "-O2", "-Wall", "-o", str(out / name), str(INTEROP / f"{name}.c")],
            check=True,
            timeout=120,
        )
    return out


def c_env(c_programs: Path, **variables: str) -> dict[str, str]:
    env = python_env(**variables)
    env["PATH"] = os.pathsep.join([str(c_programs), env.get("PATH", "")])
    return env


@dataclass
class Nginx:
    port: int
    master: int  #: the master process's PID (its one worker is its child)

    def worker(self) -> int:
        children = Path(f"/proc/{self.master}/task/{self.master}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])


@pytest.fixture(scope="module")
def nginx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx on a free loopback port, answering every request with a short body (the shared
    starter, tests/support/nginx.py), with its master's PID (nginx writes its pid file
    around the time it starts listening: waited for)."""
    tmp = tmp_path_factory.mktemp("nginx")
    with run_nginx(tmp, access_log=False) as port:
        pid_file = tmp / "nginx.pid"
        end = time.monotonic() + TIMEOUT
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < end, "nginx wrote no pid file"
            time.sleep(0.01)
        yield Nginx(port, int(pid_file.read_text()))


@pytest.fixture(scope="module")
def nginx(nginx_server: Nginx) -> int:
    """The test nginx's port."""
    return nginx_server.port


@dataclass
class Traced:
    """`tcpclose trace --json -o FILE ...` running; `result()` waits and reads the JSON."""

    proc: Proc
    output: Path

    def result(self, timeout: float = TIMEOUT) -> tuple[int, dict[str, Any]]:
        status = self.proc.wait(timeout)
        assert self.output.exists(), self.proc.describe()
        return status, json.loads(self.output.read_text())


def start_trace(
    procs: Procs, tmp: Path, *args: str, env: dict[str, str] | None = None, name: str = "trace"
) -> Traced:
    output = tmp / f"{name}.json"
    argv = program("tcpclose", "trace", "--json", "-o", str(output), *args)
    return Traced(procs.start(argv, env=env), output)


def only_run(doc: dict[str, Any]) -> dict[str, Any]:
    runs = doc["runs"]
    assert len(runs) == 1, [r["summary"] for r in runs]
    return dict(runs[0])


def wire(run: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """The packets that say something (SYN, data, FIN, RST), as (from, flags, data)."""
    return [
        (p["from"], p["flags"].replace("P", "").replace("A", ""), p["data"])
        for p in run["packets"]
        if p["len"] or set(p["flags"]) & set("SFR")
    ]


def calls(run: dict[str, Any], role: str) -> list[tuple[str, Any]]:
    """A side's events as (kind, data or status), without the lab-only `listening`."""
    return [
        (e["event"], e.get("data") if "data" in e else e.get("status", e.get("signal")))
        for e in run["events"]
        if e["role"] == role and e["event"] not in ("listening",)
    ]
