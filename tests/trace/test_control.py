"""Attach mode, Ctrl-C / SIGTERM / SIGKILL, and bad input: one line and a documented status."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lesson.driver import TIMEOUT, Procs, RunningServer, program, python_env

from .conftest import need_strace, only_run, start_trace

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture(autouse=True)
def _strace() -> None:
    need_strace()


def converse(port: int, message: bytes = b"data1") -> bytes:
    """One message to the lesson's server, shut down, read every answer until its FIN."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        conn.sendall(message)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return answer


def run_tcpclose(*args: str, prefix: list[str] | None = None, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def, type-arg]
    return subprocess.run(
        [*(prefix or []), *program("tcpclose", "trace", *args)],
        capture_output=True,
        env=kw.pop("env", python_env()),
        timeout=TIMEOUT,
        cwd="/",
        **kw,
    )


# --- attach mode --------------------------------------------------------------------------


def test_attach_follows_a_running_graceserver_until_it_ends(
    procs: Procs, tmp_path: Path, start_graceserver: Callable[..., RunningServer]
) -> None:
    server = start_graceserver("--delay", "0.1")
    traced = start_trace(procs, tmp_path, "-p", str(server.proc.pid))
    traced.proc.wait_output(b"tcpclose: tracing PID", stream="stderr")
    assert converse(server.port) == b"Hi, data1"
    status, doc = traced.result()  # the server exits after its one connection: so does trace
    assert status == 0
    run = only_run(doc)
    assert run["traced"] == ["server"]
    kinds = [e["event"] for e in run["events"] if e["role"] == "server"]
    assert kinds[:4] == ["accepted", "received", "sent", "eof"], kinds
    assert kinds[-1] == "exit"
    assert run["verdicts"]["server_end"] == "exit 1"
    assert run["verdicts"]["fins"] == ["client", "server"], (run["packets"], kinds)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_detaches_and_leaves_the_program_running(
    signum: int,
    procs: Procs,
    tmp_path: Path,
    start_graceserver: Callable[..., RunningServer],
) -> None:
    server = start_graceserver("--delay", "0.1")
    traced = start_trace(procs, tmp_path, "-p", str(server.proc.pid))
    traced.proc.wait_output(b"tcpclose: tracing PID", stream="stderr")
    traced.proc.signal(signum)
    status, doc = traced.result()
    assert status == 0
    assert doc["trace"]["interrupted"] is True and doc["runs"] == []
    assert server.proc.popen.poll() is None, "the traced server must outlive the trace"
    assert converse(server.port) == b"Hi, data1"  # and still work, untraced


def test_duration_detaches_by_itself(
    procs: Procs, tmp_path: Path, start_graceserver: Callable[..., RunningServer]
) -> None:
    server = start_graceserver("--delay", "0.1")
    traced = start_trace(procs, tmp_path, "-p", str(server.proc.pid), "--duration", "0.5")
    status, doc = traced.result()
    assert status == 0 and doc["trace"]["mode"] == "attach"
    assert server.proc.popen.poll() is None
    assert converse(server.port) == b"Hi, data1"


def test_sigkill_of_tcpclose_leaves_the_traced_program_working(
    procs: Procs, tmp_path: Path, start_graceserver: Callable[..., RunningServer]
) -> None:
    server = start_graceserver("--delay", "0.1")
    traced = start_trace(procs, tmp_path, "-p", str(server.proc.pid))
    traced.proc.wait_output(b"tcpclose: tracing PID", stream="stderr")
    os.kill(traced.proc.pid, signal.SIGKILL)
    traced.proc.wait()
    # strace, left without its reader, dies at its next write; the kernel then detaches
    assert converse(server.port) == b"Hi, data1"
    server.proc.wait()


# --- command mode -------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_ends_the_command(signum: int, procs: Procs, tmp_path: Path) -> None:
    traced = start_trace(procs, tmp_path, "--", "sh", "-c", "echo ready; exec sleep 60")
    traced.proc.wait_output(b"ready\n")
    traced.proc.signal(signum)
    status, doc = traced.result()
    assert status == 128 + signum  # the command's death, as a shell reports it
    assert doc["trace"]["interrupted"] is True
    top = doc["trace"]["processes"][0]
    assert top["signal"] == signal.Signals(signum).name


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        ((), 2, "no command to trace"),
        (("--", "no-such-command-here"), 5, "command not found: no-such-command-here"),
        (("--", "/etc/passwd"), 4, "cannot run /etc/passwd: permission denied"),
        (("-p", "999999999"), 2, "no process with PID 999999999"),
        (("-p", "1", "-p", "1"), 2, "the same PID was given twice"),
        (("-p", "1", "--", "true"), 2, "give a COMMAND or -p PID, not both"),
        (("--duration", "1", "--", "true"), 2, "--duration applies to -p PID"),
        (("--duration", "soon", "-p", "1"), 2, "'soon' is not a number of seconds"),
        (("--pcap", "/no/such/dir/x.pcap", "--", "true"), 5, "cannot write /no/such/dir/x.pcap"),
        (("--connection", "2", "--", "true"), 2, "--connection 2: the trace has 0 connections"),
    ],
)
def test_bad_input_is_one_line(args: tuple[str, ...], status: int, message: str) -> None:
    done = run_tcpclose(*args)
    err = done.stderr.decode()
    assert done.returncode == status, err
    assert err.startswith("tcpclose: error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err


def test_strace_missing(tmp_path: Path) -> None:
    """No strace on PATH (nor in /usr/bin, /bin): one line, status 1."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("true",):
        (bin_dir / tool).symlink_to(shutil.which(tool) or "/bin/true")
    env = python_env(PATH=str(bin_dir))
    if any(os.path.exists(p) for p in ("/usr/bin/strace", "/bin/strace")):
        env["TCPCLOSE_STRACE"] = str(tmp_path / "strace")  # stands for "not there"
    done = run_tcpclose("--", "true", env=env)
    assert done.returncode == 1
    assert done.stderr.startswith(b"tcpclose: error: ") and done.stderr.count(b"\n") == 1
    assert b"strace" in done.stderr and b"Traceback" not in done.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_ptrace_refused_without_cap_sys_ptrace(procs: Procs) -> None:
    """Root without CAP_SYS_PTRACE may not trace another user's process: one line, status 4."""
    if os.geteuid() != 0:
        pytest.skip("runs as root, to drop CAP_SYS_PTRACE")
    victim = procs.start([*NOBODY, "sleep", "60"])
    done = run_tcpclose(
        "-p",
        str(victim.pid),
        "--duration",
        "1",
        prefix=["setpriv", "--bounding-set", "-sys_ptrace"],
    )
    assert done.returncode == 4, done.stderr
    assert (
        done.stderr
        == (
            f"tcpclose: error: cannot trace PID {victim.pid}: ptrace not permitted (needs root or "
            "CAP_SYS_PTRACE; see /proc/sys/kernel/yama/ptrace_scope)\n"
        ).encode()
    )
    assert victim.popen.poll() is None


#: user nobody that may still read every file (CAP_DAC_READ_SEARCH, kept across exec as an
#: ambient capability): it reads the checkout wherever it lies (a clone in a 0700 mktemp
#: directory) but has no privilege over another user's process
READING_NOBODY = [
    *NOBODY,
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_an_unprivileged_user_cannot_trace_roots_process(procs: Procs) -> None:
    if os.geteuid() != 0:
        pytest.skip("runs as root, to become nobody")
    victim = procs.start(["sleep", "60"])
    done = run_tcpclose("-p", str(victim.pid), prefix=READING_NOBODY)
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith(f"tcpclose: error: cannot trace PID {victim.pid}".encode())


def test_output_to_a_full_disk_is_one_line() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            program("tcpclose", "trace", "--", "true"),
            stdout=full,
            stderr=subprocess.PIPE,
            env=python_env(),
            timeout=TIMEOUT,
        )
    assert done.returncode == 5  # ExitStatus.INPUT: the output cannot be written
    assert done.stderr == (
        b"tcpclose: error: cannot write standard output: no space left on device (ENOSPC)\n"
    )


def test_json_into_a_closed_pipe_is_not_an_error() -> None:
    proc = subprocess.Popen(
        program("tcpclose", "trace", "--json", "--", "sh", "-c", "exit 3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=python_env(),
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before anything is written
    _out, err = proc.communicate(timeout=TIMEOUT)
    assert b"Traceback" not in err
    assert proc.returncode in (0, 3, 141)  # 141: the reader went away (ExitStatus.BROKEN_PIPE)


def test_json_is_the_labs_shape(procs: Procs, tmp_path: Path) -> None:
    script = tmp_path / "p.py"
    script.write_text(
        "import socket\n"
        "l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\n"
        "c = socket.create_connection(l.getsockname()); a, _ = l.accept()\n"
        "c.sendall(b'x'); a.recv(1); c.close(); a.close()\n"
    )
    traced = start_trace(procs, tmp_path, "--", sys.executable, str(script))
    status, doc = traced.result()
    assert status == 0
    run = only_run(doc)
    for key in ("scenario", "summary", "packets", "events", "client", "server", "verdicts"):
        assert key in run
    assert set(run["verdicts"]) >= {"first_fin", "termination", "conclusion", "calls"}
    json.dumps(doc)
