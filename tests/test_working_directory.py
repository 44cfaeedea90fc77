"""No code from the caller's working directory runs (issue 9, Security): a `tcpclose/`
package lying in the directory root runs tcpclose from is never imported, neither by
tcpclose nor by the programs it starts (`python -P -m tcpclose.lifeline ...`).

The trap: `./tcpclose/__init__.py` appends to a marker file when imported. A control shows the
trap works (`python -m tcpclose`, which puts the working directory first on sys.path, springs
it); then every command that starts Python children runs to success from that directory and
the marker stays absent. Two defences keep it so, and each is checked on its own, on every
Python child seen during the run: it is started with `-P` (its working directory is not put
on sys.path), and (lab-backed commands) its working directory is not the caller's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from lesson.driver import python_env
from support.commands import tcpclose_argv
from support.net import free_port
from tcpclose.status import ExitStatus
from test_signals import TOKEN_VARIABLE, processes_with

#: a whole lab-backed command on a loaded 2-core machine
RUN_TIMEOUT = 300


@pytest.fixture
def trapped(tmp_path: Path) -> tuple[Path, Path]:
    """A directory holding a `tcpclose` package that writes `marker` when imported."""
    directory = tmp_path / "hostile"
    package = directory / "tcpclose"
    package.mkdir(parents=True)
    marker = tmp_path / "MARKER"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write('imported\\n')\n")
    return directory, marker


def test_the_trap_springs_on_the_old_code_path(trapped: tuple[Path, Path]) -> None:
    """`python -m` (no -P) imports ./tcpclose: what children were started with before."""
    directory, marker = trapped
    subprocess.run(
        [sys.executable, "-m", "tcpclose", "--version"],
        cwd=directory,
        env=python_env(),
        capture_output=True,
        timeout=60,
    )
    assert marker.read_text() == "imported\n"


COMMANDS: dict[str, Callable[[Path, int], list[str]]] = {
    "lab": lambda out, port: ["lab", "close"],
    "claims": lambda out, port: ["claims"],
    "demo": lambda out, port: ["demo", "--no-report"],
    "report": lambda out, port: ["report", "close", "--no-claims", "-o", str(out / "r.html")],
    "probe": lambda out, port: ["probe", f"127.0.0.1:{port}", "--timeout", "10"],
    "drain": lambda out, port: drain_args(),
}


#: commands whose children run in the run's own temp directory (a second defence); drain's
#: server command runs in the caller's directory (it may name relative paths): -P alone guards
LAB_BACKED = ("lab", "claims", "demo", "report")


def drain_args() -> list[str]:
    """drain stopping `tcpclose serve` on a free port (its supervisor is a Python child)."""
    port = str(free_port())
    serve = tcpclose_argv("serve", "--port", port)
    return ["drain", "--target", f"127.0.0.1:{port}", "--at", "0.3", "--after", "0.3", "--", *serve]


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def watch_children(
    token: str, seen: dict[int, tuple[list[str], Path | None]]
) -> Callable[[], None]:
    """Record the command line and working directory of every process of the run (found by
    the token in its environment) until the returned function is called."""
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for pid in processes_with(token):
                # A child seen between fork() and exec() still shows its parent's command
                # line and may not have changed directory yet: each sighting replaces the
                # last, and counts only when the command line is the same either side of the
                # cwd read (so the cwd belongs to that program).
                before = _cmdline(pid)
                try:
                    cwd: Path | None = Path(os.readlink(f"/proc/{pid}/cwd"))
                except OSError:
                    cwd = None
                if before and before == _cmdline(pid):
                    seen[pid] = (before, cwd)
            time.sleep(0.005)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()

    def done() -> None:
        stop.set()
        thread.join(60)

    return done


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_command_imports_from_the_working_directory(
    command: str, trapped: tuple[Path, Path], tmp_path: Path, http_port: int
) -> None:
    directory, marker = trapped
    token = uuid.uuid4().hex
    seen: dict[int, tuple[list[str], Path | None]] = {}
    stop_watching = watch_children(token, seen)
    try:
        done = subprocess.run(
            tcpclose_argv(*COMMANDS[command](tmp_path, http_port)),
            cwd=directory,
            env=python_env(**{TOKEN_VARIABLE: token}),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=RUN_TIMEOUT,
        )
    finally:
        stop_watching()
    assert done.returncode == ExitStatus.OK, done.stderr[-2000:]
    assert not marker.exists(), "a process of the run imported ./tcpclose"
    modules = [argv for argv, _cwd in seen.values() if "-m" in argv]
    if command != "probe":  # the probe starts no Python program
        assert modules, f"no Python child seen among {list(seen.values())}"
    for argv in modules:
        assert "-P" in argv[: argv.index("-m")] or "-I" in argv[: argv.index("-m")], argv
    if command in LAB_BACKED:  # drain runs the user's server where the user is, on purpose
        for argv, cwd in seen.values():
            if "-m" in argv:
                assert cwd != directory, f"{argv} ran in the caller's directory"
