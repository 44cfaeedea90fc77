"""Fixtures shared by every test directory: real processes, killed at teardown."""

from __future__ import annotations

import http.server
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lesson.driver import Procs, RunningServer, named, program, wait_events


@pytest.fixture
def procs() -> Iterator[Procs]:
    """Start processes with `procs.start(argv)`; all are killed when the test ends."""
    started = Procs()
    yield started
    started.kill_all()


@pytest.fixture
def start_graceserver(procs: Procs, tmp_path: Path) -> Callable[..., RunningServer]:
    """`start_graceserver(*options)`: `graceserver --port 0 --events F *options` running, its
    `listening` event seen; returns the process, the port the kernel chose and the events file.
    """
    count = 0

    def start(*options: str, name: str = "graceserver") -> RunningServer:
        nonlocal count
        count += 1
        events = tmp_path / f"server-{count}.jsonl"
        argv = program(name, *(["server"] if name == "tcpclose" else []))
        proc = procs.start([*argv, "--port", "0", "--events", str(events), *options])
        listening = wait_events(events, lambda evs: bool(named(evs, "listening")), proc)
        return RunningServer(proc, int(named(listening, "listening")[0].get("port")), events)

    return start


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    """A quiet http.server on a free loopback port, in a thread (a server for probe, drain
    and the commands the output tests run)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


#: how the tests word a skip for a tool that `make test` installs
MISSING_TOOL = re.compile(r"not installed|is missing|needs|no browser")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI (`CI` set, as .ci/run has it) every tool is installed by `make test`: a test that
    skips for a missing tool means the install failed, so it fails instead of passing quietly.
    Skips that depend on the machine, not on an install (no IPv6, a kernel that lets anybody
    bind port 1, an accept queue that would not fill), stay skips."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        if not MISSING_TOOL.search(str(reason)):
            return
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every tool must be installed: {reason}"
