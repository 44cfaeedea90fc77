"""Every command with its standard output closed (`>&-`), full (`> /dev/full`) and a broken
pipe (`| head` that already left): one line on stderr and the documented status, never a
traceback; the lesson's programs do what the C originals do in each SIGPIPE mode.

To cover a new command, add ONE line to TCPCLOSE_COMMANDS (its arguments, given the peers
below: a capture file, a listening HTTP server, a temp directory, a free port). `serve` runs
until a signal: it has a test of its own (SIGTERM once it listens).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lesson.driver import TIMEOUT, named, python_env, wait_events
from support.commands import grace_argv, tcpclose_argv
from support.net import free_port
from tcpclose.model.event import read_events
from tcpclose.status import ExitStatus

DATA = Path(__file__).parent / "data"
CAPTURE = DATA / "analyze" / "three-closes.pcap"
#: How long a command may take here (a lab run on a loaded 2-core machine, generous).
COMMAND_TIMEOUT = 240


@dataclass(frozen=True)
class Peers:
    """What a command may need: a temp directory, a capture file, an HTTP server's port."""

    tmp: Path
    http_port: int

    def drain(self) -> list[str]:
        """drain stopping `tcpclose serve` on a free port (nothing is lost: status 0)."""
        port = str(free_port())
        serve = tcpclose_argv("serve", "--port", port)
        target = f"127.0.0.1:{port}"
        return ["drain", "--target", target, "--at", "0.3", "--after", "0.3", "--", *serve]


#: command -> its arguments. One line per command.
TCPCLOSE_COMMANDS: dict[str, Callable[[Peers], list[str]]] = {
    "overview": lambda p: ["--help"],
    "lab-help": lambda p: ["lab", "--help"],
    "lab": lambda p: ["lab", "close"],
    "lab-json": lambda p: ["lab", "shutdown", "--json"],
    "demo": lambda p: ["demo", "-o", str(p.tmp / "demo.html")],
    "claims": lambda p: ["claims"],
    "report": lambda p: ["report", "close", "--no-claims", "-o", str(p.tmp / "r.html")],
    "probe": lambda p: ["probe", f"127.0.0.1:{p.http_port}", "--timeout", "10"],
    "analyze": lambda p: ["analyze", str(CAPTURE)],
    "analyze-json": lambda p: ["analyze", "--json", str(CAPTURE)],
    "trace": lambda p: ["trace", "--", "/bin/true"],
    "trace-json": lambda p: ["trace", "--json", "--", "/bin/true"],
    "drain": lambda p: p.drain(),
}

STDOUT_KINDS = ("closed", "full", "broken-pipe")


def start(argv: list[str], stdout: str, cwd: Path, stdin: int | None = None) -> subprocess.Popen:
    """Start `argv` with its standard output `closed`, `full` or a `broken-pipe` (a pipe whose
    reader has already gone: every write meets EPIPE), stderr on a pipe."""
    if stdout == "closed":
        argv = ["sh", "-c", 'exec "$@" >&-', "sh", *argv]
        out = None
    elif stdout == "full":
        out = os.open("/dev/full", os.O_WRONLY)
    else:
        reader, out = os.pipe()
        os.close(reader)
    try:
        return subprocess.Popen(
            argv,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=python_env(),
            start_new_session=True,
        )
    finally:
        if out is not None:
            os.close(out)


def finish(proc: subprocess.Popen, timeout: float = COMMAND_TIMEOUT) -> tuple[int, bytes]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        raise AssertionError(f"still running after {timeout} s: {err!r}") from None
    return proc.returncode, err


EXPECTED_TCPCLOSE = {
    "closed": (ExitStatus.INPUT, b"tcpclose: error: cannot write standard output: it is closed\n"),
    "full": (
        ExitStatus.INPUT,
        b"tcpclose: error: cannot write standard output: no space left on device (ENOSPC)\n",
    ),
    "broken-pipe": (ExitStatus.BROKEN_PIPE, b""),
}


@pytest.mark.parametrize("stdout", STDOUT_KINDS)
@pytest.mark.parametrize("command", list(TCPCLOSE_COMMANDS))
def test_tcpclose_commands_never_trace_back_on_a_bad_stdout(
    command: str, stdout: str, tmp_path: Path, http_port: int
) -> None:
    if command == "probe" and stdout != "closed" and shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    args = TCPCLOSE_COMMANDS[command](Peers(tmp_path, http_port))
    status, err = finish(start(tcpclose_argv(*args), stdout, tmp_path))
    assert b"Traceback" not in err and b"Exception ignored" not in err, err
    assert (status, err) == EXPECTED_TCPCLOSE[stdout]


def first_stderr_line(proc: subprocess.Popen, timeout: float = TIMEOUT) -> bytes:
    """The first line `proc` writes on stderr (b"" at EOF); fails after `timeout`."""
    assert proc.stderr is not None
    readable, _, _ = select.select([proc.stderr], [], [], timeout)
    assert readable, f"nothing on stderr within {timeout} s"
    return proc.stderr.readline()


@pytest.mark.parametrize("stdout", STDOUT_KINDS)
def test_serve_never_traces_back_on_a_bad_stdout_when_it_stops(stdout: str, tmp_path: Path) -> None:
    """serve writes its summary to stdout when SIGTERM stops it (its `listening` line goes to
    stderr): a closed stdout is refused at once; a full or broken one is met at the stop."""
    proc = start(tcpclose_argv("serve", "--port", "0"), stdout, tmp_path)
    try:
        first = first_stderr_line(proc)
        if stdout != "closed":
            assert b": listening on " in first, first
            proc.send_signal(signal.SIGTERM)
            first = b""
        status, rest = finish(proc, TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    err = first + rest
    assert b"Traceback" not in err and b"Exception ignored" not in err, err
    assert (status, err) == EXPECTED_TCPCLOSE[stdout]


# --- the lesson's programs ----------------------------------------------------------------


def graceserver_dialogue(
    program: list[str], stdout: str, tmp_path: Path, *options: str
) -> tuple[int, bytes]:
    """Start the server with `stdout`; a raw client sends data1, half-closes, reads to EOF."""
    events = tmp_path / "server.jsonl"
    proc = start([*program, "--port", "0", "--events", str(events), *options], stdout, tmp_path)
    try:
        listening = wait_events(events, lambda evs: bool(named(evs, "listening")))
        port = int(named(listening, "listening")[0].get("port"))
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"data1")
            wait_events(events, lambda evs: bool(named(evs, "received")))
            sock.shutdown(socket.SHUT_WR)
            try:  # to EOF (or a reset, when the server was killed)
                while sock.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        return finish(proc, TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def without_listening_line(err: bytes) -> bytes:
    return b"".join(
        line for line in err.splitlines(keepends=True) if b": listening on " not in line
    )


#: graceserver after a client that sent data1 and half-closed, per stdout and --sigpipe mode:
#: (status, stderr). The C server's stdio ignores a closed or full stdout; a broken pipe raises
#: SIGPIPE: the default action kills it (-13), a handler runs, SIG_IGN makes the write fail.
CLIENT_CLOSED = b"graceserver: client closed \n\n"
GRACESERVER = {
    ("closed", "ignore"): (1, CLIENT_CLOSED),
    ("full", "ignore"): (1, CLIENT_CLOSED),
    ("broken-pipe", "ignore"): (1, CLIENT_CLOSED),
    ("broken-pipe", "handler"): (1, CLIENT_CLOSED),
    ("broken-pipe", "default"): (-signal.SIGPIPE, b""),
    ("full", "default"): (1, CLIENT_CLOSED),
}


@pytest.mark.parametrize(("stdout", "mode"), list(GRACESERVER))
def test_graceserver_treats_its_stdout_as_the_c_original(
    stdout: str, mode: str, tmp_path: Path
) -> None:
    status, err = graceserver_dialogue(
        grace_argv("graceserver"), stdout, tmp_path, "--delay", "0", "--sigpipe", mode
    )
    assert (status, without_listening_line(err)) == GRACESERVER[stdout, mode]


@pytest.mark.parametrize("stdout", STDOUT_KINDS)
def test_tcpclose_server_handles_stdout_as_graceserver_once_started(
    stdout: str, tmp_path: Path
) -> None:
    """Before the dialogue, tcpclose's conventions (a closed stdout is refused at once);
    from the connection on, graceserver's."""
    argv = tcpclose_argv("server")
    if stdout == "closed":
        status, err = finish(start([*argv, "--port", "0"], stdout, tmp_path), TIMEOUT)
        assert (status, err) == EXPECTED_TCPCLOSE["closed"]
        return
    status, err = graceserver_dialogue(argv, stdout, tmp_path, "--delay", "0")
    assert (status, without_listening_line(err)) == (1, CLIENT_CLOSED)


@pytest.fixture
def answering_server(tmp_path: Path) -> Iterator[int]:
    """A graceserver answering at once (its output to /dev/null); yields its port."""
    events = tmp_path / "peer.jsonl"
    argv = grace_argv("graceserver", "--port", "0", "--delay", "0", "--events", str(events))
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=python_env(),
        start_new_session=True,
    )
    try:
        listening = wait_events(events, lambda evs: bool(named(evs, "listening")))
        yield int(named(listening, "listening")[0].get("port"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


#: graceclient typing data1 then EOF (which half-closes): the C client never changes SIGPIPE,
#: so a broken stdout kills it quietly (-13); a closed or full one is ignored by stdio.
SERVER_TERMINATED = b"graceclient: server terminated \n\n"
GRACECLIENT = {
    "closed": (1, SERVER_TERMINATED),
    "full": (1, SERVER_TERMINATED),
    "broken-pipe": (-signal.SIGPIPE, b""),
}


@pytest.mark.parametrize("stdout", STDOUT_KINDS)
def test_graceclient_treats_its_stdout_as_the_c_original(
    stdout: str, answering_server: int, tmp_path: Path
) -> None:
    script = tmp_path / "typed"
    script.write_bytes(b"data1\n")
    events = tmp_path / "client.jsonl"
    argv = grace_argv(
        "graceclient", "127.0.0.1", "--port", str(answering_server), "--events", str(events)
    )
    with open(script, "rb") as typed:
        status, err = finish(start(argv, stdout, tmp_path, stdin=typed.fileno()), TIMEOUT)
    assert (status, err) == GRACECLIENT[stdout]
    if stdout != "broken-pipe":  # the dialogue itself went as usual
        names = [e.event for e in read_events(events)]
        # The answer may arrive before or after the client half-closes on stdin's EOF.
        assert "received" in names and names[-2:] == ["eof", "exit"], names
