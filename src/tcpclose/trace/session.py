"""A trace from start to judgement: capture, strace, then one lab run per TCP connection.

Only what starting the trace needs is imported up front, so the traced program starts at once;
the lab, the classifier and the renderers load in a thread while it runs (`preload`).
"""

from __future__ import annotations

import importlib
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from tcpclose.capture import CaptureResult
from tcpclose.trace.capture import TraceCapture
from tcpclose.trace.tracer import (
    StraceRun,
    check_command,
    check_pids,
    find_strace,
    start_attach,
    start_command,
)

if TYPE_CHECKING:
    from tcpclose.lab.runner import LabRun
    from tcpclose.trace.sockets import ProcessInfo

#: AF_PACKET, else tcpdump (the lab's order)
CAPTURE_METHODS = ("af_packet", "tcpdump")
#: what the end of a trace needs, imported while the program runs
PRELOAD = (
    "tcpclose.trace.strace",
    "tcpclose.trace.sockets",
    "tcpclose.trace.runs",
    "tcpclose.lab.present",
    "tcpclose.lab.jsonout",
    "tcpclose.render.html",
    "tcpclose.render.mermaid",
    "tcpclose.render.console",
)


def preload() -> threading.Thread:
    """Import the modules the end of a trace needs, in a thread, while the program runs."""

    def load() -> None:
        for name in PRELOAD:
            importlib.import_module(name)

    thread = threading.Thread(target=load, name="preload", daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True)
class TraceResult:
    """Everything one trace produced."""

    mode: str  #: "command" or "attach"
    target: str  #: the command line, or the PIDs
    runs: tuple[LabRun, ...]  #: one per TCP connection, in the order they began
    traced: tuple[tuple[str, ...], ...]  #: per run, the roles whose calls were traced
    processes: tuple[ProcessInfo, ...]
    capture: CaptureResult
    exit_status: int | None  #: the command's, as a shell reports it (128 + N for signal N)
    interrupted: bool = False
    skipped_lines: int = 0
    strace_messages: tuple[str, ...] = field(default=())


def _exit_status(info: ProcessInfo | None) -> int | None:
    if info is None or not info.ended:
        return None
    if info.signal:
        return 128 + int(signal.Signals[info.signal])
    return info.exit_status


class _Interrupts:
    """SIGINT and SIGTERM, while a trace runs, go to `StraceRun.interrupt` (see tracer.py)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Interrupts:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._note)
        return self

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def _follow(run: StraceRun, interrupts: _Interrupts, duration: float | None) -> bool:
    """Wait for strace to end, passing on Ctrl-C and SIGTERM; True if one came."""
    deadline = None if duration is None else time.monotonic() + duration
    passed = 0
    while not run.wait(0.05):
        if passed < len(interrupts.received) and (run.attach or run.command_pid()):
            for signum in interrupts.received[passed:]:
                run.interrupt(signum)
            passed = len(interrupts.received)
        if deadline is not None and time.monotonic() >= deadline:
            run.interrupt(signal.SIGINT)
            deadline = None
    return bool(interrupts.received)


def _finish(
    run: StraceRun, capture: TraceCapture, mode: str, target: str, interrupted: bool
) -> TraceResult:
    captured = capture.stop()
    from tcpclose.trace.sockets import SocketTracker
    from tcpclose.trace.strace import StraceParser

    parser = StraceParser()
    tracker = SocketTracker(run.resolver.snapshot())
    for line in run.lines:
        record = parser.feed(line)
        if record is not None:
            tracker.feed(record)
    from tcpclose.trace.runs import build_runs

    runs, traced = build_runs(tracker, captured, target, mode)
    top = tracker.processes.get(run.command_pid() or -1) if mode == "command" else None
    return TraceResult(
        mode,
        target,
        tuple(runs),
        tuple(traced),
        tuple(tracker.processes.values()),
        captured,
        _exit_status(top),
        interrupted,
        parser.skipped,
        tuple(run.errors),
    )


def trace_command(
    argv: Sequence[str],
    *,
    capture: bool = True,
    capture_methods: Sequence[str] = CAPTURE_METHODS,
) -> TraceResult:
    """Run the command under strace (its stdin, stdout and stderr are ours), with the capture
    started first (the first of `capture_methods` that works, as the lab's); return when it
    and the children it started have ended."""
    check_command(argv)  # before anything starts: one clear line if it cannot run
    session = TraceCapture.start(capture, capture_methods)
    with _Interrupts() as interrupts:
        try:
            run = start_command(argv)
        except BaseException:
            session.close()
            raise
        interrupted = _follow(run, interrupts, None)
    return _finish(run, session, "command", " ".join(argv), interrupted)


def trace_pids(
    pids: Sequence[int],
    *,
    duration: float | None = None,
    capture: bool = True,
    capture_methods: Sequence[str] = CAPTURE_METHODS,
    on_attached: Callable[[], None] | None = None,
) -> TraceResult:
    """Attach to the processes until they end, `duration` passes, or Ctrl-C / SIGTERM
    (which detach: the processes go on)."""
    find_strace()
    check_pids(pids)
    session = TraceCapture.start(capture, capture_methods)
    with _Interrupts() as interrupts:
        try:
            run = start_attach(pids)
        except BaseException:
            session.close()
            raise
        if on_attached is not None:
            on_attached()
        interrupted = _follow(run, interrupts, duration)
    target = ", ".join(f"PID {pid}" for pid in pids)
    return _finish(run, session, "attach", target, interrupted)
