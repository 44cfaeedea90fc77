"""Running Debian's strace on a command, or attached to running processes.

    strace -f -q --timestamps=unix,ns --syscall-times=ns -y -s LIMIT -e trace=... \
           [--seccomp-bpf] -o /proc/self/fd/N  (-- COMMAND ARGS | -p PID -p PID)

`-o` writes the trace to a pipe we read, so the command's own standard streams stay its own
(its stdin, stdout and stderr are ours, passed through). `--seccomp-bpf` (command mode only)
stops the program only at the calls we asked for: everything else runs at full speed.

Signals: in command mode strace blocks fatal signals (its default with -o), so Ctrl-C or a
SIGTERM sent to tcpclose is passed on to the command, which ends; strace then ends with it. In
attach mode SIGINT makes strace detach: the traced processes go on running.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tcpclose.errors import InputError, PermissionDenied, TcpcloseError, UsageError
from tcpclose.trace.procnet import InodeResolver

#: the system calls strace is asked to trace (-e trace=...)
TRACED_CALLS = (
    "socket,connect,accept,accept4,listen,shutdown,close,setsockopt,dup,dup2,dup3,fcntl,"
    "read,recvfrom,recvmsg,recvmmsg,readv,write,sendto,sendmsg,sendmmsg,writev,sendfile,splice,"
    "clone,clone3,fork,vfork,execve,exit_group,rt_sigreturn"
)
#: how long strace may take to say it attached (a loaded machine, many threads)
ATTACH_TIMEOUT = 20.0
#: bytes of each string strace prints (the data of reads and writes)
STRING_LIMIT = 1024

_ATTACHED = re.compile(r"Process (\d+) attached")
_FIRST_PID = re.compile(r"^(\d+)\s")


class StraceMissing(TcpcloseError):
    """strace is not installed."""


def find_strace() -> str:
    """strace's path: $TCPCLOSE_STRACE if set (another build), else the one on PATH."""
    named = os.environ.get("TCPCLOSE_STRACE")
    if named:
        if not os.access(named, os.X_OK):
            raise StraceMissing(f"TCPCLOSE_STRACE names {named}, which is not an executable")
        return named
    path = shutil.which("strace") or next(
        (p for p in ("/usr/bin/strace", "/bin/strace") if os.path.exists(p)), None
    )
    if path is None:
        raise StraceMissing(
            "strace is not installed (Debian: apt-get install strace); tcpclose trace needs it"
        )
    return path


def resolve_command(argv: Sequence[str]) -> str:
    """The program the command names, as exec would find it; one clear error otherwise."""
    if not argv:
        raise UsageError("no command to trace (tcpclose trace [options] -- COMMAND [ARGS...])")
    name = argv[0]
    path = name if "/" in name else shutil.which(name)
    if path is None or not os.path.exists(path):
        raise InputError(f"command not found: {name}")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise PermissionDenied(f"cannot run {name}: permission denied (not an executable file)")
    return path


def check_pids(pids: Sequence[int]) -> None:
    """Each PID names a live process other than this one, once."""
    if len(set(pids)) != len(pids):
        raise UsageError("the same PID was given twice")
    for pid in pids:
        if pid <= 0:
            raise UsageError(f"{pid} is not a process id")
        if pid == os.getpid():
            raise UsageError(f"PID {pid} is tcpclose itself")
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, OverflowError):
            raise UsageError(f"no process with PID {pid}") from None
        except PermissionError:
            raise PermissionDenied(
                f"cannot trace PID {pid}: it belongs to another user (needs CAP_SYS_PTRACE)"
            ) from None


@dataclass
class StraceRun:
    """A running strace; `lines` fills as the trace pipe is read."""

    proc: subprocess.Popen[bytes]
    attach: bool
    lines: list[str]
    reader: threading.Thread
    errors: list[str]
    resolver: InodeResolver
    first_pid: int | None = None

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def command_pid(self) -> int | None:
        """The traced command's PID (the first PID in the trace), once strace has written it."""
        if self.first_pid is None:
            for line in self.lines[:5]:
                if found := _FIRST_PID.match(line):
                    self.first_pid = int(found.group(1))
                    break
        return self.first_pid

    def interrupt(self, signum: int) -> None:
        """Ctrl-C or SIGTERM: attach mode detaches (strace ends, the processes go on); command
        mode passes the signal to the command, which ends (and strace with it)."""
        if self.attach:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            return
        pid = self.command_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def wait(self, timeout: float | None = None) -> bool:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        self.reader.join(10)
        return True


def _strace_argv(strace: str, out_fd: int, attach: bool) -> list[str]:
    argv = [
        strace,
        "-f",
        "-q",
        "--timestamps=unix,ns",
        "--syscall-times=ns",
        "-y",
        "-s",
        str(STRING_LIMIT),
        "-e",
        f"trace={TRACED_CALLS}",
        "-e",
        "signal=all",
        "-o",
        f"/proc/self/fd/{out_fd}",
    ]
    if not attach:
        argv.append("--seccomp-bpf")
    return argv


def _start_reader(read_fd: int, lines: list[str], resolver: InodeResolver) -> threading.Thread:
    def pump() -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="surrogateescape") as stream:
            for line in stream:
                lines.append(line)
                resolver.see(line)

    thread = threading.Thread(target=pump, name="strace-reader", daemon=True)
    thread.start()
    return thread


def check_command(argv: Sequence[str]) -> str:
    """strace's path, once strace and the command are both known to exist."""
    strace = find_strace()
    resolve_command(argv)
    return strace


def start_command(argv: Sequence[str]) -> StraceRun:
    """strace running the command; its standard streams are this process's."""
    strace = check_command(argv)
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [*_strace_argv(strace, write_fd, attach=False), "--", *argv],
            pass_fds=(write_fd,),
        )
    finally:
        os.close(write_fd)
    lines: list[str] = []
    resolver = InodeResolver()
    return StraceRun(proc, False, lines, _start_reader(read_fd, lines, resolver), [], resolver)


def start_attach(pids: Sequence[int]) -> StraceRun:
    """strace attached to every PID (and their threads and future children). Returns once
    strace said it attached to each; raises PermissionDenied when ptrace is refused."""
    strace = find_strace()
    check_pids(pids)
    read_fd, write_fd = os.pipe()
    argv = _strace_argv(strace, write_fd, attach=True)
    argv.remove("-q")  # -q would hide the "Process N attached" lines we wait for
    for pid in pids:
        argv += ["-p", str(pid)]
    try:
        proc = subprocess.Popen(
            argv,
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(write_fd)
    lines: list[str] = []
    resolver = InodeResolver()
    run = StraceRun(proc, True, lines, _start_reader(read_fd, lines, resolver), [], resolver)
    _wait_attached(run, set(pids))
    return run


def _wait_attached(run: StraceRun, pids: set[int]) -> None:
    """Read strace's messages until each PID is attached; keep reading them in a thread."""
    assert run.proc.stderr is not None
    stderr = run.proc.stderr
    attached: set[int] = set()
    deadline = time.monotonic() + ATTACH_TIMEOUT
    buffer = b""
    while not pids <= attached:
        if time.monotonic() > deadline:
            run.proc.kill()
            raise TcpcloseError(f"strace did not attach within {ATTACH_TIMEOUT:.0f} s")
        chunk = os.read(stderr.fileno(), 4096)
        if not chunk:
            run.proc.wait()
            run.reader.join(5)
            raise _attach_error(run.errors, pids - attached)
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            line = raw.decode("utf-8", "replace")
            if found := _ATTACHED.search(line):
                attached.add(int(found.group(1)))
            elif line.strip():
                run.errors.append(line.strip())

    def drain() -> None:
        for raw in iter(lambda: os.read(stderr.fileno(), 4096), b""):
            run.errors.extend(
                line.strip() for line in raw.decode("utf-8", "replace").splitlines() if line
            )

    threading.Thread(target=drain, name="strace-stderr", daemon=True).start()


def _attach_error(messages: list[str], pids: set[int]) -> TcpcloseError:
    said = next((m for m in messages if "attach" in m), messages[0] if messages else "")
    which = ", ".join(str(p) for p in sorted(pids))
    if "Operation not permitted" in said or "EPERM" in said:
        return PermissionDenied(
            f"cannot trace PID {which}: ptrace not permitted (needs root or CAP_SYS_PTRACE; "
            "see /proc/sys/kernel/yama/ptrace_scope)"
        )
    if "No such process" in said:
        return UsageError(f"no process with PID {which}")
    detail = said.removeprefix("strace: ") or "strace ended without a word"
    return TcpcloseError(f"cannot trace PID {which}: {detail}")


def trace_file_lines(path: Path) -> list[str]:
    """An strace output file's lines (for tests and --from-strace style replays)."""
    return path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
