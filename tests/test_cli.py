"""The `tcpclose` command in-process: `main(argv)` -> exit status, stdout, stderr."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lesson.driver import TIMEOUT, RunningServer, named, python_env, wait_events
from tcpclose import __version__
from tcpclose.cli import main
from tcpclose.status import ExitStatus


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port with nothing listening, held (bound, not listening) so nobody takes it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


@pytest.fixture
def signals_restored() -> Iterator[None]:
    """The in-process server installs SIGINT/SIGPIPE handlers: put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGPIPE)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def run(argv: list[str], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_no_command_prints_the_overview_on_stderr_and_exits_2(capsys) -> None:  # type: ignore[no-untyped-def]
    status, out, err = run([], capsys)
    assert (status, out) == (ExitStatus.USAGE, "")
    assert err.startswith("usage: tcpclose COMMAND [options]\n")
    assert "  server   the lesson's server (same as graceserver)\n" in err


def test_help_and_version(capsys) -> None:  # type: ignore[no-untyped-def]
    assert run(["--help"], capsys)[0] == ExitStatus.OK
    assert run(["--version"], capsys) == (0, f"tcpclose {__version__}\n", "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope"], "unknown command 'nope' (try: server, client, demo, lab, claims, report,"),
        (["client"], "the following arguments are required: IPaddress"),
        (["client", "127.0.0.1", "extra"], "unrecognized arguments: extra"),
        (["client", "127.0.0.1", "--port", "65536"], "argument --port: port 65536 is out of"),
        (["client", "1.2.3"], "bad address: '1.2.3' is not an IP address or a host name"),
        (["client", "no such host"], "bad address: 'no such host' is not an IP address or a"),
        (["server", "--bind", "::1::"], "--bind: '::1::' is not an IP address"),
        (["server", "--delay", "-2"], "argument --delay: '-2' is not a duration of 0 seconds"),
        (["server", "--sigpipe", "x"], "argument --sigpipe: invalid choice: 'x'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    status, out, err = run(argv, capsys)
    assert (status, out) == (ExitStatus.USAGE, "")
    assert err.startswith(f"tcpclose: error: {message}") and err.count("\n") == 1


def test_client_connection_refused_exits_3(refused_port: int, capsys) -> None:  # type: ignore[no-untyped-def]
    status, out, err = run(["client", "127.0.0.1", "--port", str(refused_port)], capsys)
    assert (status, out) == (ExitStatus.NETWORK, "")
    assert err == (
        f"tcpclose: error: cannot connect to 127.0.0.1:{refused_port}: "
        "connection refused (ECONNREFUSED)\n"
    )


def test_server_port_in_use_exits_6(
    start_graceserver: Callable[..., RunningServer],
    signals_restored: None,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    first = start_graceserver()
    status, out, err = run(["server", "--port", str(first.port)], capsys)
    assert (status, out) == (ExitStatus.ADDRESS_IN_USE, "")
    assert err == (
        f"tcpclose: error: cannot listen on 127.0.0.1:{first.port}: "
        "address already in use (EADDRINUSE)\n"
    )


def test_client_in_process_shutdown_experiment(
    start_graceserver: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    server = start_graceserver("--delay", "0.2")
    typed = tmp_path / "typed"
    typed.write_bytes(b"data1\nshutdown\n")  # one message, then the half-close
    with typed.open("rb") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        status, out, err = run(["client", "127.0.0.1", "--port", str(server.port)], capsys)
    assert (status, out) == (1, "now sending data1\nsend bytes: 5 \nHi, data1\n")
    assert err == "graceclient: server terminated \n\n"
    assert server.proc.wait() == 1
    assert server.proc.stdout == b"received 5 bytes: data1\nsend bytes: 9 \n"


def test_server_in_process_answers_and_reports_client_closed(
    tmp_path: Path,
    signals_restored: None,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    events = tmp_path / "server.jsonl"
    answers: list[bytes] = []

    def peer() -> None:  # a bare client: one message, half-close, read until EOF
        listening = wait_events(events, lambda evs: bool(named(evs, "listening")))
        port = named(listening, "listening")[0].get("port")
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"data1")
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(4096):
                answers.append(chunk)

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    argv = ["server", "--port", "0", "--delay", "0", "--events", str(events)]
    status, out, err = run(argv, capsys)
    thread.join(TIMEOUT)
    assert (status, out) == (1, "received 5 bytes: data1\nsend bytes: 9 \n")
    assert err.endswith("graceserver: client closed \n\n")
    assert err.startswith("graceserver: listening on 127.0.0.1:")
    assert b"".join(answers) == b"Hi, data1"


@pytest.mark.parametrize("module", ["tcpclose", "tcpclose.cli"])
def test_python_dash_m(module: str) -> None:
    argv = [sys.executable, "-m", module, "--version"]
    if module == "tcpclose.cli":  # cli.py has no __main__ block: only `-m tcpclose` is promised
        argv = [sys.executable, "-m", "tcpclose", "nope"]
    done = subprocess.run(argv, capture_output=True, env=python_env(), timeout=TIMEOUT)
    if module == "tcpclose":
        assert (done.returncode, done.stdout) == (0, f"tcpclose {__version__}\n".encode())
    else:
        assert done.returncode == 2 and done.stderr.startswith(b"tcpclose: error: unknown")


def test_console_scripts_when_installed() -> None:
    import shutil
    import sysconfig

    where = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    found = {name: shutil.which(name, path=where) for name in ("tcpclose", "graceclient")}
    if not all(found.values()):
        pytest.skip(f"package not installed (pip install -e .): {found}")
    done = subprocess.run([str(found["graceclient"])], capture_output=True, timeout=TIMEOUT)
    assert (done.returncode, done.stderr) == (1, b"graceclient: usage: graceclient <IPaddress>\n")
    done = subprocess.run([str(found["tcpclose"]), "client"], capture_output=True, timeout=TIMEOUT)
    assert done.returncode == 2
    assert done.stderr == b"tcpclose: error: the following arguments are required: IPaddress\n"


@pytest.mark.parametrize(
    "argv", [["lab", "--help"], ["probe", "--help"], ["analyze", "--help"], ["--help"]]
)
def test_help_returns_zero_instead_of_exiting(argv: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: tcpclose") and err == ""


def test_a_bug_of_ours_is_one_line_and_its_traceback_a_file(  # type: ignore[no-untyped-def]
    monkeypatch, tmp_path, capsys
) -> None:
    import tcpclose.commands.serve as serve

    def broken(args: object) -> int:  # a bug cannot be made on purpose: stand in for one
        raise ValueError("boom")

    monkeypatch.setattr(serve, "execute", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("TCPCLOSE_TRACEBACK", raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("tcpclose: internal error: ValueError: boom (a bug: please report it")
    (saved,) = tmp_path.glob("tcpclose-traceback-*.txt")
    assert str(saved) in err
    assert "Traceback" in saved.read_text() and "boom" in saved.read_text()
    monkeypatch.setenv("TCPCLOSE_TRACEBACK", "1")
    with pytest.raises(ValueError, match="boom"):
        main(["serve"])
