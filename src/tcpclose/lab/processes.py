"""Child processes of a lab run: started with the package importable (and nothing from the working
directory: see `tcpclose.lifeline`), watched by a thread that notes the moment each one ends (so
a death by signal lands on the timeline where it happened), all ended at once by `stop_all`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tcpclose.errors import TcpcloseError
from tcpclose.lifeline import child_argv, child_env


@dataclass(frozen=True)
class ProcessOutcome:
    """How one program ended and what it printed."""

    role: str
    argv: tuple[str, ...]
    exit_status: int | None  #: the status passed to exit(), None when killed by a signal
    signal: str | None  #: e.g. "SIGPIPE" when the kernel killed the process
    stdout: str
    stderr: str
    ended_ns: int
    #: replaces `exit N` when no ending was seen (a side not traced, or still running)
    described: str | None = None

    @property
    def ending(self) -> str:
        """`exit 0`, `exit 1` or `killed by SIGPIPE` (or `described`)."""
        if self.described:
            return self.described
        if self.signal:
            return f"killed by {self.signal}"
        return f"exit {self.exit_status}"

    def to_json(self) -> dict[str, object]:
        return {
            "argv": list(self.argv),
            "exit_status": self.exit_status,
            "signal": self.signal,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }


#: every Child still running, so that Ctrl-C can end them all at once (they run in sessions
#: of their own and do not get the terminal's SIGINT)
_RUNNING: set[Child] = set()
_RUNNING_LOCK = threading.Lock()
#: set by `stop_all`: no new child may start (a scenario's thread may be about to start one)
_STOPPING = threading.Event()


class Stopped(TcpcloseError):
    """A child was about to start after `stop_all`: the run is being ended."""


def allow_children() -> None:
    """Let children start again (a new run begins)."""
    _STOPPING.clear()


def stop_all() -> None:
    """Refuse new children, then SIGKILL every child still running (their waiting threads
    then see them end and clean up)."""
    with _RUNNING_LOCK:
        _STOPPING.set()
        running = list(_RUNNING)
    for child in running:
        child.kill(wait=False)


class Child:
    """A running program: `python -P -m MODULE ARGS` on a lifeline (`tcpclose.lifeline`),
    in `workdir`, stdout and stderr to files there, stdin a pipe, in a session of its own."""

    def __init__(self, role: str, module: str, args: list[str], workdir: Path) -> None:
        self.role = role
        self.argv = tuple(child_argv(module, args))
        self._out = tempfile.TemporaryFile(dir=workdir)  # noqa: SIM115 - closed in outcome()
        self._err = tempfile.TemporaryFile(dir=workdir)  # noqa: SIM115
        self.ended_ns = 0
        self._done = threading.Event()
        with _RUNNING_LOCK:  # started under the lock: stop_all() sees it or it never starts
            if _STOPPING.is_set():
                self._out.close()
                self._err.close()
                raise Stopped("the run is being stopped")
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=self._out,
                stderr=self._err,
                cwd=workdir,
                env=child_env(),
                start_new_session=True,
            )
            _RUNNING.add(self)
        threading.Thread(target=self._watch, name=f"wait-{role}", daemon=True).start()

    def _watch(self) -> None:
        self.proc.wait()
        self.ended_ns = time.time_ns()
        self._done.set()
        with _RUNNING_LOCK:
            _RUNNING.discard(self)

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def send_line(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the program already ended; its outcome will say why

    def close_stdin(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def kill(self, *, wait: bool = True) -> None:
        """SIGKILL the program's whole process group (an actor's forked children too)."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            if wait:
                self._done.wait(5)

    def outcome(self) -> ProcessOutcome:
        """How the program ended and what it printed (call once, after it ended)."""
        code = self.proc.returncode
        sig = signal.Signals(-code).name if code is not None and code < 0 else None
        printed = []
        for stream in (self._out, self._err):
            stream.seek(0)
            printed.append(stream.read().decode("utf-8", "replace"))
            stream.close()
        return ProcessOutcome(
            role=self.role,
            argv=self.argv,
            exit_status=None if sig else code,
            signal=sig,
            stdout=printed[0],
            stderr=printed[1],
            ended_ns=self.ended_ns,
        )
