"""`tcpclose lab` and `tcpclose demo` ended by a signal at several moments of a run leave
nothing behind: no process of theirs, no listening socket, no temp directory.

Each run is a real `tcpclose` process with TMPDIR pointing at a fresh directory (so the
temp-directory check is exact) and a token in its environment that every child inherits (so
that every process of the run is found in /proc, whatever became of its parent). The moments
are events of the run itself, never delays: a server logged `listening`, a client logged
`connected`, or a scenario's programs have all ended (the run is stopping its capture and
judging: no process of ours has that scenario's directory as its working directory any more).

- SIGTERM and SIGINT: tcpclose ends every child and removes its temp directories before it
  exits (143, 130), with one line on stderr.
- SIGKILL: no handler runs; each child notices by itself (PR_SET_PDEATHSIG, see
  tcpclose.lifeline; tcpdump through `setpriv --pdeathsig`). The temp directories stay, as
  docs/exit-statuses.md says, and the next lab run removes them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lesson.driver import python_env
from support.commands import tcpclose_argv
from support.net import free_port
from tcpclose.model.event import read_events
from tcpclose.status import ExitStatus

#: the variable every process of one run inherits
TOKEN_VARIABLE = "TCPCLOSE_SIGNAL_TEST"
#: how long a whole lab run, or the end of one, may take on a loaded 2-core machine
RUN_TIMEOUT = 240.0


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # the process ended meanwhile, or is not ours to read
        return b""


def processes_with(token: str) -> dict[int, Path | None]:
    """pid -> working directory of every live (not zombie) process whose environment holds
    the token: the run's tcpclose, its children, their children, tcpdump."""
    needle = f"{TOKEN_VARIABLE}={token}".encode()
    found: dict[int, Path | None] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        if needle not in _read(f"/proc/{entry.name}/environ").split(b"\0"):
            continue
        stat = _read(f"/proc/{entry.name}/stat")
        if not stat or stat.rsplit(b")", 1)[-1].split()[0] == b"Z":
            continue  # ended; only its parent's wait() is missing
        try:
            cwd: Path | None = Path(os.readlink(f"/proc/{entry.name}/cwd"))
        except OSError:
            cwd = None
        found[int(entry.name)] = cwd
    return found


def listening_sockets() -> list[str]:
    """Every listening TCP socket, one `ss -tlnp` line each (with its processes)."""
    done = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


@dataclass
class Run:
    """One `tcpclose` run under watch: what it started, and where."""

    argv: list[str]
    tmpdir: Path
    out: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    proc: subprocess.Popen[bytes] | None = None
    #: every pid of ours seen so far, and the scenario directories their cwd was in
    pids: set[int] = field(default_factory=set)
    busy_dirs: set[Path] = field(default_factory=set)
    #: (address, port) of every server that logged `listening`
    servers: set[tuple[str, int]] = field(default_factory=set)

    def start(self) -> None:
        self.tmpdir.mkdir()
        env = python_env(TMPDIR=str(self.tmpdir), **{TOKEN_VARIABLE: self.token})
        with open(self.out, "wb") as out, open(self.out.with_suffix(".err"), "wb") as err:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
            )

    @property
    def stderr(self) -> bytes:
        return self.out.with_suffix(".err").read_bytes()

    def events(self) -> list[str]:
        """Every event logged so far by the run's programs (their `--events` files)."""
        names = []
        for path in self.tmpdir.glob("tcpclose-*/*.jsonl"):
            try:
                events = read_events(path)
            except (OSError, ValueError):  # removed, or a line half-written
                continue
            for event in events:
                names.append(event.event)
                if event.event == "listening":
                    self.servers.add((str(event.get("address")), int(event.get("port"))))
        return names

    def look(self) -> dict[int, Path | None]:
        found = processes_with(self.token)
        self.pids |= set(found)
        return found

    def wait_until(self, what: str, reached: Callable[[], bool]) -> None:
        """Poll the run until `reached()` holds; fail if tcpclose ended first or too late."""
        assert self.proc is not None
        deadline = time.monotonic() + RUN_TIMEOUT
        while not reached():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"tcpclose ended ({self.proc.returncode}) before {what}: {self.stderr!r}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {RUN_TIMEOUT} s")
            time.sleep(0.005)

    def kill_everything(self) -> None:
        """Test teardown: whatever is left of the run, SIGKILLed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(RUN_TIMEOUT)
        for pid in processes_with(self.token):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- the moments --------------------------------------------------------------------------


def a_server_listens(run: Run) -> bool:
    run.look()
    return "listening" in run.events()


def a_client_connected(run: Run) -> bool:
    run.look()
    return "connected" in run.events()


def a_scenario_tears_down(run: Run) -> bool:
    """A scenario whose programs all ran and ended: its directory is no process's cwd any
    more, but still there (the run is stopping that scenario's capture and judging it)."""
    cwds = {cwd for cwd in run.look().values() if cwd is not None}
    scenario_dirs = {cwd for cwd in cwds if cwd.parent == run.tmpdir}
    run.busy_dirs |= scenario_dirs
    return any(d.exists() and d not in cwds for d in run.busy_dirs)


MOMENTS: dict[str, Callable[[Run], bool]] = {
    "listening": a_server_listens,
    "connected": a_client_connected,
    "teardown": a_scenario_tears_down,
}


# --- what must hold afterwards ------------------------------------------------------------


def wait_no_process_left(run: Run) -> None:
    """Every process of the run ends (a SIGKILLed child takes a moment to exit)."""
    deadline = time.monotonic() + 60
    while left := processes_with(run.token):
        if time.monotonic() > deadline:
            described = {pid: _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ") for pid in left}
            raise AssertionError(f"processes of the run still alive: {described}")
        time.sleep(0.05)


def assert_no_listening_socket(run: Run) -> None:
    """No listening socket held by a process of the run, nor on a port one of its servers
    announced."""
    ours = [f"pid={pid}," for pid in run.pids]
    announced = [f"{address}:{port} " for address, port in run.servers]
    left = [
        line
        for line in listening_sockets()
        if any(p in line for p in ours) or any(a in line for a in announced)
    ]
    assert left == [], f"listening sockets of the run left: {left}"


@pytest.fixture
def watched(tmp_path: Path):  # type: ignore[no-untyped-def]
    runs: list[Run] = []

    def make(*args: str) -> Run:
        run = Run(tcpclose_argv(*args), tmp_path / f"tmp{len(runs)}", tmp_path / f"out{len(runs)}")
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.kill_everything()


COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "lab": lambda tmp: ["lab"],
    "demo": lambda tmp: ["demo", "-o", str(tmp / "demo.html")],
}


def _at_the_moment(watched, command: str, moment: str, tmp_path: Path) -> Run:  # type: ignore[no-untyped-def]
    """`command` started, and waited for until `moment` (one of MOMENTS) has come."""
    run = watched(*COMMANDS[command](tmp_path))
    run.start()
    run.wait_until(moment, lambda: MOMENTS[moment](run))
    return run


@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_sigterm_ends_every_child_and_removes_every_temp_dir(
    command: str, moment: str, watched, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = _at_the_moment(watched, command, moment, tmp_path)
    assert run.pids, "no process of the run was seen"
    _ends_cleanly(run, signal.SIGTERM, ExitStatus.TERMINATED, b"tcpclose: terminated\n")


def test_sigint_is_as_clean(watched) -> None:  # type: ignore[no-untyped-def]
    run = watched("lab")
    run.start()
    run.wait_until("connected", lambda: a_client_connected(run))
    _ends_cleanly(run, signal.SIGINT, ExitStatus.INTERRUPTED, b"tcpclose: interrupted\n")


def _ends_cleanly(run, signum: int, status: int, stderr: bytes) -> None:  # type: ignore[no-untyped-def]
    """`signum` ends the run with `status` and one line: no process, listening socket or
    temp dir of it is left."""
    assert run.proc is not None
    run.proc.send_signal(signum)
    assert (run.proc.wait(RUN_TIMEOUT), run.stderr) == (status, stderr)
    wait_no_process_left(run)
    assert_no_listening_socket(run)
    assert sorted(p.name for p in run.tmpdir.iterdir()) == []


@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_sigkill_children_end_by_themselves_and_the_next_run_sweeps(
    command: str, moment: str, watched, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = _at_the_moment(watched, command, moment, tmp_path)
    assert run.proc is not None
    killed_pid = run.proc.pid
    run.proc.kill()
    assert run.proc.wait(RUN_TIMEOUT) == -signal.SIGKILL
    wait_no_process_left(run)
    assert_no_listening_socket(run)
    # What may stay: the killed process's own temp directories, named after its pid.
    left = sorted(p.name for p in run.tmpdir.iterdir())
    assert all(
        name.startswith((f"tcpclose-lab-{killed_pid}-", f"tcpclose-tcpdump-{killed_pid}-"))
        for name in left
    ), left
    # The next run in the same temp directory removes them.
    done = subprocess.run(
        tcpclose_argv("lab", "close"),
        capture_output=True,
        env=python_env(TMPDIR=str(run.tmpdir)),
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == ExitStatus.OK, done.stderr
    assert sorted(p.name for p in run.tmpdir.iterdir()) == []


# --- drain: its own children (a supervisor, the server, tcpdump) ---------------------------


def _cmdlines(run: Run) -> list[bytes]:
    return [_read(f"/proc/{pid}/cmdline").replace(b"\0", b" ") for pid in run.look()]


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_drain_leaves_nothing_behind(signum: int, watched) -> None:  # type: ignore[no-untyped-def]
    """Mid-run (the server accepts, tcpdump captures): SIGTERM cleans up (143); after SIGKILL
    the server, its supervisor and tcpdump end by themselves, and the temp directory left is
    the killed pid's, removed by the next drain."""
    port = free_port()
    serve = tcpclose_argv("serve", "--port", str(port))
    target = f"127.0.0.1:{port}"
    run = watched("drain", "--target", target, "--at", "60", "--after", "1", "--", *serve)
    run.start()
    capturing = shutil.which("tcpdump") is not None
    run.wait_until(
        "the server accepting and tcpdump capturing",
        lambda: _accepts(port) and (not capturing or any(b"tcpdump" in c for c in _cmdlines(run))),
    )
    assert run.proc is not None
    killed_pid = run.proc.pid
    run.proc.send_signal(signum)
    status = run.proc.wait(RUN_TIMEOUT)
    wait_no_process_left(run)
    assert_no_listening_socket(run)
    left = sorted(p.name for p in run.tmpdir.iterdir())
    if signum == signal.SIGTERM:
        assert (status, run.stderr.splitlines()[-1]) == (143, b"tcpclose: terminated")
        assert left == []
        return
    assert status == -signal.SIGKILL
    assert all(name.startswith(f"tcpclose-drain-{killed_pid}-") for name in left), left
    port = free_port()
    again = [*tcpclose_argv("drain", "--target", f"127.0.0.1:{port}", "--at", "0.2")]
    again += ["--after", "0.2", "--", *tcpclose_argv("serve", "--port", str(port))]
    done = subprocess.run(
        again,
        capture_output=True,
        env=python_env(TMPDIR=str(run.tmpdir)),
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == ExitStatus.OK, done.stderr
    assert sorted(p.name for p in run.tmpdir.iterdir()) == []
