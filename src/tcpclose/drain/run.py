"""One drain run: capture, start the server, wait for it, load it, signal it, stop it, explain.

The order matters: the capture starts first (the run's first SYN is in the file), the server
is stopped before the capture (its last FINs are too), and the explanation reads the finished
pcap file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from tcpclose.drain.capture import CaptureStats, RunCapture
from tcpclose.drain.explain import Explained, explain, unexplained
from tcpclose.drain.load import LoadGenerator, LoadOptions
from tcpclose.drain.processes import (
    ProcessEnd,
    Supervised,
    pid_alive,
    read_pid_file,
    send_signal,
    signal_name,
)
from tcpclose.drain.records import RequestRecord, Tally
from tcpclose.errors import NetworkError, TcpcloseError, Terminated, from_oserror
from tcpclose.lab.runner import sweep_left_behind
from tcpclose.status import ExitStatus

READY_POLL = 0.02
#: The environment variable that gives a --reload command the pid of the server drain runs.
PID_VARIABLE = "TCPCLOSE_PID"


@dataclass(frozen=True)
class DrainOptions:
    """A drain run, typed (built by the command from its arguments)."""

    host: str
    port: int
    load: LoadOptions
    command: tuple[str, ...] = ()
    pid: int | None = None
    pid_file: Path | None = None
    signal: int = 15
    group: bool = False
    reload: str | None = None
    at: float = 1.0
    after: float = 2.0
    expect_stop: bool = True  #: refusals after the signal are expected (a stop, not a reload)
    ready_timeout: float = 15.0
    grace: float = 3.0
    capture: bool = True
    pcap: Path | None = None


@dataclass
class DrainRun:
    """Everything a run produced, for the summary, the JSON and the report."""

    options: DrainOptions
    records: list[RequestRecord]
    tally: Tally
    t0: float  #: wall time the load started
    t_end: float
    signal_at: float | None
    action: str  #: "SIGTERM to pid 123", "reload: nginx -s reload"
    server_pid: int | None
    server_end: ProcessEnd | None
    reload_end: ProcessEnd | None
    capture: CaptureStats
    explained: Explained | None
    event_loop: str
    notes: list[str] = field(default_factory=list)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def wait_until_accepting(host: str, port: int, timeout: float, server: Supervised | None) -> None:
    """connect() every 20 ms until the target accepts; fail early if the server exits."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while time.monotonic() < deadline:
        if server is not None and server.end is not None:
            tail = server.output_tail()
            raise TcpcloseError(
                f"the server {server.end.text.replace('exited', 'exited with status')} before "
                f"{host}:{port} accepted connections" + (f"; its output: {tail}" if tail else "")
            )
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as exc:
            last = exc
        time.sleep(READY_POLL)
    why = f" (last error: {last.strerror or last})" if last else ""
    raise NetworkError(f"{host}:{port} did not accept connections within {timeout:g} s{why}")


def _check_port_free(host: str, port: int) -> None:
    """Before starting the server: nothing may accept on the target yet, or drain would load
    (and blame) another program."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError:
        return
    raise TcpcloseError(
        f"{host}:{port} already accepts connections before the server started: another "
        "program listens there (pick a free port)",
        status=ExitStatus.ADDRESS_IN_USE,
    )


class _Trigger:
    """Sends the signal (or starts the reload command) at --at seconds, from the loop."""

    def __init__(self, options: DrainOptions, server: Supervised | None, workdir: Path) -> None:
        self.options = options
        self.server = server
        self.workdir = workdir
        self.at: float | None = None
        self.action = ""
        self.reloader: Supervised | None = None
        self.notes: list[str] = []

    def target_pid(self) -> int:
        if self.options.pid_file is not None:
            return read_pid_file(self.options.pid_file)
        if self.server is not None:
            return self.server.pid
        assert self.options.pid is not None
        return self.options.pid

    def fire(self, load: LoadGenerator) -> None:
        options = self.options
        load.stopping = options.expect_stop
        if options.reload is not None:
            self.at = time.time()
            self.action = f"reload: {options.reload}"
            env = dict(os.environ)
            if self.server is not None or options.pid is not None:
                # The reload command may name the running server: `haproxy -sf $TCPCLOSE_PID`
                env[PID_VARIABLE] = str(self.server.pid if self.server else options.pid)
            try:
                self.reloader = Supervised(
                    ["/bin/sh", "-c", options.reload],
                    self.workdir / "reload.log",
                    "reload",
                    options.grace,
                    env,
                )
            except TcpcloseError as exc:
                self.at = None
                self.notes.append(str(exc))
            return
        name = signal_name(options.signal)
        try:
            pid = self.target_pid()
            self.at = time.time()
            send_signal(pid, options.signal, options.group)
            self.action = f"{name} to {'the process group of ' if options.group else ''}pid {pid}"
        except TcpcloseError as exc:
            self.at = None
            self.action = f"{name} not sent"
            self.notes.append(str(exc))


async def _drive(
    load: LoadGenerator, trigger: _Trigger, at: float, after: float, stop: _SignalStop
) -> None:
    loop = asyncio.get_running_loop()

    def start() -> None:
        load.stop_at = time.monotonic() + at + after
        if trigger.options.reload is not None:
            # Starting the reload command takes a fork and an exec: off the loop's thread.
            loop.call_later(at, lambda: loop.run_in_executor(None, trigger.fire, load))
        else:
            loop.call_later(at, trigger.fire, load)

    stop.task = asyncio.current_task()
    if stop.received is not None:  # a signal came between the loop's start and this task's
        raise asyncio.CancelledError
    await load.run(on_start=start)


class _SignalStop:
    """SIGINT or SIGTERM during the load: end the load, cancel the run, exit 130 or 143.

    The handlers are plain Python ones (`signal.signal`) that raise nothing: they note the
    signal, move the workers' deadline to the past and ask the loop to cancel the run
    (`call_soon_threadsafe`, which also wakes it). Raising from a handler would not do:
    inside the loop the exception lands in whatever callback runs, and asyncio logs and
    swallows every BaseException there but KeyboardInterrupt and SystemExit. The loop's own
    `add_signal_handler` would not do either: uvloop listens to its signal fd only while the
    loop runs, so a signal just before `run` or just after it is lost. A noted signal cannot
    be lost: the handlers are installed before the loop starts and removed after it has
    closed, and drain raises `Terminated` or KeyboardInterrupt itself after the loop. The
    deadline moves too, so that a worker that misses the cancellation (asyncio.wait_for in
    Python 3.11 can swallow one that races its result) still leaves its loop at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, load: LoadGenerator) -> None:
        self.load = load
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[None] | None = None
        self.received: signal.Signals | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
        self.load.stop_at = 0.0
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {signum: signal.getsignal(signum) for signum in self.SIGNALS}
        for signum in self.SIGNALS:
            signal.signal(signum, self)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                if signum == signal.SIGTERM and self.received is signal.SIGTERM:
                    handler = signal.SIG_IGN  # as tcpclose.errors.sigterm_raises: one is enough
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def raise_if_received(self) -> None:
        """Terminated for SIGTERM (exit 143), KeyboardInterrupt for SIGINT (exit 130)."""
        if self.received is signal.SIGTERM:
            raise Terminated()
        if self.received is signal.SIGINT:
            raise KeyboardInterrupt()


def run_drain(options: DrainOptions) -> DrainRun:
    """Run it all; raises TcpcloseError for what stops a run (the server never accepted...)."""
    sweep_left_behind()  # the temp directories of a drain (or lab) killed by SIGKILL
    # The pid in the name lets the next run remove it if this process is SIGKILLed.
    with tempfile.TemporaryDirectory(prefix=f"tcpclose-drain-{os.getpid()}-") as tmp:
        workdir = Path(tmp)
        capture: RunCapture | None = None
        server: Supervised | None = None
        trigger = _Trigger(options, None, workdir)
        capture_stats = CaptureStats("none", None, note="capture turned off (--no-capture)")
        try:
            if options.capture:
                capture = RunCapture(options.port, workdir / "run.pcap")
            if options.command:
                _check_port_free(options.host, options.port)
                server = Supervised(
                    list(options.command), workdir / "server.log", "server", options.grace
                )
                trigger.server = server
            elif options.pid is not None and not pid_alive(options.pid):
                raise TcpcloseError(f"--pid {options.pid}: no such process")
            wait_until_accepting(options.host, options.port, options.ready_timeout, server)
            load = LoadGenerator(options.load)
            t0 = time.time()
            stop = _SignalStop(load)
            with stop.installed(), asyncio.Runner(loop_factory=_loop_factory()) as runner:
                stop.loop = runner.get_loop()
                event_loop = type(stop.loop).__module__.split(".")[0]
                try:
                    runner.run(_drive(load, trigger, options.at, options.after, stop))
                except asyncio.CancelledError:
                    stop.raise_if_received()
                    raise
            stop.raise_if_received()
            t_end = time.time()
            if trigger.at is None:
                # Nothing was tested: never report "nothing lost" for it.
                raise TcpcloseError(
                    f"the {'reload command' if options.reload else 'signal'} did not happen: "
                    + ("; ".join(trigger.notes) or "unknown reason")
                )
        except OSError as exc:
            raise from_oserror(exc, "drain") from exc
        finally:
            if trigger.reloader is not None:
                trigger.reloader.stop()
            if server is not None:
                server.stop()
            if capture is not None:
                capture_stats = capture.stop()
        records = load.records
        explained: Explained | None = None
        if capture_stats.path is not None and capture_stats.path.exists():
            explained = explain(
                records, capture_stats.path, options.port, trigger.at, trigger.action
            )
            if options.pcap is not None:
                try:
                    shutil.copyfile(capture_stats.path, options.pcap)
                except OSError as exc:
                    raise from_oserror(exc, f"cannot write {options.pcap}") from exc
        else:
            unexplained(records)
        return DrainRun(
            options=options,
            records=records,
            tally=Tally.of(records),
            t0=t0,
            t_end=t_end,
            signal_at=trigger.at,
            action=trigger.action,
            server_pid=server.pid if server is not None else options.pid,
            server_end=server.end if server is not None else None,
            reload_end=trigger.reloader.end if trigger.reloader is not None else None,
            capture=capture_stats,
            explained=explained,
            event_loop=event_loop,
            notes=trigger.notes,
        )
