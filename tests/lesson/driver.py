"""Drive real processes from tests: start, type lines, wait for output or events, reap.

Every wait is bounded and waits on something observable (a line of output, a line of an
`--events` file); nothing here sleeps a fixed time. A wait that runs out fails the test with
what the process printed so far.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tcpclose.model.event import AppEvent, read_events

#: Generous bound for any single wait, for a loaded 2-core machine.
TIMEOUT = 30.0
SRC = Path(__file__).resolve().parents[2] / "src"
MODULES = {
    "graceserver": "tcpclose.lesson.server",
    "graceclient": "tcpclose.lesson.client",
    "tcpclose": "tcpclose",
}


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a Python program of this checkout (no installation needed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def program(name: str, *args: str) -> list[str]:
    """argv running `graceserver`, `graceclient` or `tcpclose` from this checkout."""
    return [sys.executable, "-m", MODULES[name], *args]


class Proc:
    """A child process with its standard streams on pipes, read by threads as they come."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        executable: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.popen = subprocess.Popen(
            self.argv,
            executable=executable,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=python_env() if env is None else env,
            start_new_session=True,  # its own process group: kill() reaches its children too
        )
        self._cond = threading.Condition()
        self._buffers = {"stdout": bytearray(), "stderr": bytearray()}
        self._readers = [
            threading.Thread(target=self._pump, args=(name, stream), daemon=True)
            for name, stream in (("stdout", self.popen.stdout), ("stderr", self.popen.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, name: str, stream) -> None:  # type: ignore[no-untyped-def]
        fd = stream.fileno()
        while chunk := os.read(fd, 65536):
            with self._cond:
                self._buffers[name] += chunk
                self._cond.notify_all()
        stream.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdout(self) -> bytes:
        with self._cond:
            return bytes(self._buffers["stdout"])

    @property
    def stderr(self) -> bytes:
        with self._cond:
            return bytes(self._buffers["stderr"])

    def describe(self) -> str:
        return (
            f"{' '.join(self.argv)}\n  status: {self.popen.poll()}\n"
            f"  stdout: {self.stdout!r}\n  stderr: {self.stderr!r}"
        )

    def wait_output(
        self, needle: bytes, count: int = 1, stream: str = "stdout", timeout: float = TIMEOUT
    ) -> None:
        """Wait until `needle` has appeared `count` times on `stream`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._buffers[stream].count(needle) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"waited {timeout} s for {count} x {needle!r} on {stream}\n"
                        + self.describe()
                    )
                self._cond.wait(min(left, 0.5))

    def write(self, data: bytes) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(data)
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.close()

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The exit status (negative: killed by that signal), once all output is read."""
        try:
            status = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s\n{self.describe()}") from None
        for reader in self._readers:
            reader.join(timeout)
        return status

    def kill(self) -> None:
        """Kill the process group if still running; reap; close the pipes."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(TIMEOUT)
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.popen.stdin.close()
        for reader in self._readers:
            reader.join(TIMEOUT)


@dataclass(frozen=True)
class RunningServer:
    """A server started by the `start_graceserver` fixture (tests/conftest.py)."""

    proc: Proc
    port: int
    events: Path


class Procs:
    """The processes one test started; the fixture kills whatever is left at teardown."""

    def __init__(self) -> None:
        self.started: list[Proc] = []

    def start(self, argv: Sequence[str], **kwargs) -> Proc:  # type: ignore[no-untyped-def]
        proc = Proc(argv, **kwargs)
        self.started.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.started:
            proc.kill()


def wait_events(
    path: Path,
    accept: Callable[[list[AppEvent]], bool],
    proc: Proc | None = None,
    timeout: float = TIMEOUT,
) -> list[AppEvent]:
    """Poll an `--events` file until `accept(events)`; fail early if `proc` has exited."""
    deadline = time.monotonic() + timeout
    while True:
        events = read_events(path)
        if accept(events):
            return events
        if proc is not None and proc.popen.poll() is not None:
            events = read_events(path)
            if accept(events):
                return events
            raise AssertionError(f"exited before the awaited event\n{proc.describe()}")
        if time.monotonic() > deadline:
            detail = proc.describe() if proc else ""
            raise AssertionError(f"waited {timeout} s for an event in {path}\n{detail}")
        time.sleep(0.02)


def named(events: list[AppEvent], name: str) -> list[AppEvent]:
    return [event for event in events if event.event == name]
