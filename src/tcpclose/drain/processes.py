"""The processes drain starts (the server, a reload command) and the signals it sends them.

Each command runs under `tcpclose.drain.supervisor`, in a new session, in a process group of
its own: drain can signal the server or its whole group, and the supervisor kills the group
when drain stops it or dies (see the supervisor's docstring for the mechanism).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tcpclose.errors import InputError, TcpcloseError, UsageError


@dataclass(frozen=True)
class ProcessEnd:
    """How a supervised command ended: `exited N` or `killed SIGNAME`, at wall time `t`."""

    text: str
    t: float


class Supervised:
    """A command running under the supervisor. `pid` is the command's own pid (and pgid)."""

    def __init__(
        self,
        argv: list[str],
        log: Path,
        name: str,
        grace: float = 3.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.end: ProcessEnd | None = None
        self._log_file = open(log, "ab")  # noqa: SIM115 - closed in stop()
        # -P: the caller's working directory stays off sys.path (no ./tcpclose imported)
        supervisor = [sys.executable, "-P", "-m", "tcpclose.drain.supervisor"]
        self.proc = subprocess.Popen(
            [*supervisor, "--grace", str(grace), "--", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            start_new_session=True,  # Ctrl-C on drain's terminal reaches drain only
            env=env,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().decode(errors="replace").strip()
        if not first.startswith("started "):
            self.stop()
            reason = first.removeprefix("failed ") or "the supervisor did not start it"
            raise TcpcloseError(f"cannot start {name} {argv[0]!r}: {reason}")
        self.pid = int(first.split()[1])
        self._reader = threading.Thread(target=self._read_reports, daemon=True)
        self._reader.start()

    def _read_reports(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith(("exited ", "killed ")) and self.end is None:
                self.end = ProcessEnd(line, time.time())

    @property
    def running(self) -> bool:
        return self.end is None

    def signal(self, signum: int, group: bool) -> None:
        try:
            if group:
                os.killpg(self.pid, signum)
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            raise TcpcloseError(f"{self.name} (pid {self.pid}) is no longer running") from None

    def output_tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the supervisor to stop the group (SIGTERM, then SIGKILL after its grace)."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"stop\n")
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_reader", None) is not None:
            self._reader.join(1.0)
        self._log_file.close()


def signal_number(name: str) -> int:
    """`TERM`, `SIGTERM`, `term` or `15` -> 15; UsageError for anything else."""
    text = name.strip().upper()
    if text.isdigit():
        number = int(text)
        if number in {s.value for s in signal.Signals}:
            return number
    else:
        try:
            return int(signal.Signals["SIG" + text.removeprefix("SIG")])
        except KeyError:
            pass
    raise UsageError(f"--signal: unknown signal {name!r} (try TERM, INT, QUIT, HUP, USR2)")


def signal_name(number: int) -> str:
    return signal.Signals(number).name


def read_pid_file(path: Path) -> int:
    """The pid in `path` (first number of its first line)."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise InputError(f"cannot read --pid-file {path}: {exc.strerror or exc}") from exc
    word = text.split()[0] if text.split() else ""
    if not word.isdigit() or int(word) <= 0:
        raise InputError(f"--pid-file {path} holds no pid: {text[:40]!r}")
    return int(word)


def send_signal(pid: int, signum: int, group: bool) -> None:
    """kill(pid, sig), or killpg(getpgid(pid), sig) for the group."""
    try:
        if group:
            os.killpg(os.getpgid(pid), signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        raise TcpcloseError(f"no process {pid} to signal") from None
    except PermissionError:
        raise TcpcloseError(f"not allowed to signal process {pid}") from None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
