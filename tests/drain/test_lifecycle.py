"""drain stops everything it started, however it ends; bad input gets one line and a status."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.drain.helpers import (
    APPS,
    BIN,
    ROOT,
    check_accounting,
    drain,
    free_port,
    kill_quietly,
    need_root,
    wait_gone,
)
from tests.support.net import wait_established


def _tcpclose(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcpclose", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _server_writing_pid(pid_file: Path, port: int) -> list[str]:
    """http.server behind `sh`, which writes its pid first (exec keeps the pid)."""
    return [
        "/bin/sh",
        "-c",
        f'echo $$ > {pid_file}; exec "{sys.executable}" -m http.server -b 127.0.0.1 '
        f"-d {APPS} {port}",
    ]


def _wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text().split()[0])
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_orphan_when_drain_is_stopped(tmp_path: Path, how: signal.Signals) -> None:
    need_root()
    port = free_port()
    pid_file = tmp_path / "server.pid"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tcpclose",
            "drain",
            "--target",
            f"127.0.0.1:{port}",
            "--at",
            "30",
            "--after",
            "1",
            "--concurrency",
            "4",
            "--",
            *_server_writing_pid(pid_file, port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    server = 0
    try:
        server = _wait_for_file(pid_file, proc)
        # the load's 4 clients connected (not only drain's readiness check): the loop runs
        wait_established(port, count=4)
        proc.send_signal(how)
        _, err = proc.communicate(timeout=30)
        if how is not signal.SIGKILL:
            assert proc.returncode == 128 + how, err
            assert err.strip().splitlines()[-1] == (
                "tcpclose: interrupted" if how is signal.SIGINT else "tcpclose: terminated"
            )
            assert "Traceback" not in err
        assert wait_gone(server), f"the server (pid {server}) outlived drain ({how.name})"
    finally:
        proc.kill()
        proc.wait()
        if server:
            kill_quietly(server)


@pytest.mark.slow
def test_pid_mode_signals_a_running_server(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "tcpclose"), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        result = drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                "--pid",
                str(server.pid),
                "--at",
                "0.5",
                "--after",
                "0.5",
                "--concurrency",
                "6",
            ],
            tmp_path,
        )
        check_accounting(result)
        assert result.lost == 0
        out, _ = server.communicate(timeout=20)
        assert server.returncode == 0
        assert "stopped graceful" in out
    finally:
        server.kill()
        server.wait()


@pytest.mark.slow
def test_pid_file_and_group(tmp_path: Path) -> None:
    port = free_port()
    pid_file = tmp_path / "server.pid"
    result = drain(
        [
            "--target",
            f"127.0.0.1:{port}",
            "--pid-file",
            str(pid_file),
            "--group",
            "--at",
            "0.5",
            "--after",
            "0.5",
            "--concurrency",
            "6",
            "--",
            *_server_writing_pid(pid_file, port),
        ],
        tmp_path,
    )
    check_accounting(result)
    pid = int(pid_file.read_text())
    assert result.doc["action"]["text"] == f"SIGTERM to the process group of pid {pid}"
    assert result.doc["server"]["end"] == "killed SIGTERM"


def test_server_that_exits_before_accepting(tmp_path: Path) -> None:
    need_root()
    port = free_port()
    done = _tcpclose(
        "drain",
        "--target",
        f"127.0.0.1:{port}",
        "--",
        "/bin/sh",
        "-c",
        "echo no config here >&2; exit 3",
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"tcpclose: error: the server exited with status 3 before 127.0.0.1:{port} accepted "
        "connections; its output: no config here"
    )


def test_a_port_already_taken(tmp_path: Path) -> None:
    need_root()
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = _tcpclose("drain", "--target", f"127.0.0.1:{port}", "--", "/bin/true")
    assert done.returncode == 6
    assert "already accepts connections before the server started" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "10.1.2.3:80", "--", "x"], "not a loopback address"),
        (["--target", "127.0.0.1", "--", "x"], "is not HOST:PORT"),
        (["--target", "127.0.0.1:80"], "name the server"),
        (["--target", "127.0.0.1:80", "--pid", "123", "--", "x"], "not both"),
        (["--target", "127.0.0.1:80", "--signal", "BOGUS", "--", "x"], "unknown signal"),
        (["--target", "127.0.0.1:80", "--reload", "x", "--signal", "HUP", "--", "x"], "not both"),
        (["--target", "127.0.0.1:80", "--keepalive-share", "2", "--", "x"], "from 0 to 1"),
        (["--target", "127.0.0.1:80", "--concurrency", "0", "--", "x"], "from 1 to 10000"),
        (["--target", "127.0.0.1:80", "--path", "nope", "--", "x"], "must start with '/'"),
        (["--target", "127.0.0.1:80", "--send", "bad\\q", "--", "x"], "unknown escape"),
        (["--target", "127.0.0.1:80", "--pcap", "/nonexistent/x.pcap", "--", "x"], "cannot"),
    ],
)
def test_bad_input_one_line(args: list[str], message: str) -> None:
    done = _tcpclose("drain", *args)
    assert done.returncode in (2, 5), done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tcpclose: error: "), done.stderr
    assert message in lines[0]


def test_pid_that_does_not_exist() -> None:
    done = _tcpclose("drain", "--target", "127.0.0.1:9", "--pid", "999999", "--no-capture")
    assert done.returncode == 1
    assert done.stderr.strip() == "tcpclose: error: --pid 999999: no such process"


@pytest.mark.slow
def test_text_output_report_and_closed_stdout(tmp_path: Path) -> None:
    need_root()
    port = free_port()
    report = tmp_path / "drain.html"
    args = [
        "drain",
        "--target",
        f"127.0.0.1:{port}",
        "--at",
        "0.4",
        "--after",
        "0.4",
        "--concurrency",
        "6",
        "--report",
        str(report),
        "--",
        str(BIN / "tcpclose"),
        "serve",
        "--port",
        str(port),
        "--delay",
        "0.02",
        "--abrupt",
    ]
    done = _tcpclose(*args)
    assert done.returncode == 7, done.stderr
    text = done.stdout
    assert "attempted " in text and "lost by cause:" in text and "^ SIGTERM" in text
    assert "verdict: " in text.splitlines()[-2]
    html = report.read_text()
    assert "<svg" in html and 'class="signal"' in html and 'class="lost"' in html
    # stdout closed at once (`| head -0`-like): no traceback, the run still ends.
    port = free_port()
    args[2] = f"127.0.0.1:{port}"
    args[args.index("--port") + 1] = str(port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpclose", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert proc.returncode in (0, 7, 141)  # 141: the reader went away (ExitStatus.BROKEN_PIPE)


def test_line_protocol_preset_against_socat(tmp_path: Path) -> None:
    need_root()
    port = free_port()
    result = drain(
        [
            "--target",
            f"127.0.0.1:{port}",
            "--at",
            "0.3",
            "--after",
            "0.3",
            "--concurrency",
            "4",
            "--preset",
            "echo",
            "--",
            "socat",
            f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
            "EXEC:cat",
        ],
        tmp_path,
    )
    check_accounting(result)
    assert result.summary["ok"] > 10


@pytest.mark.slow
def test_a_signal_that_could_not_be_sent_fails_the_run(tmp_path: Path) -> None:
    need_root()
    port = free_port()
    done = _tcpclose(
        "drain",
        "--target",
        f"127.0.0.1:{port}",
        "--pid-file",
        str(tmp_path / "missing.pid"),
        "--at",
        "0.2",
        "--after",
        "0.2",
        "--concurrency",
        "2",
        "--",
        str(BIN / "tcpclose"),
        "serve",
        "--port",
        str(port),
    )
    assert done.returncode == 1  # never "nothing lost" when nothing was tested
    assert done.stderr.strip().startswith("tcpclose: error: the signal did not happen: ")


@pytest.mark.slow
def test_output_to_a_full_disk(tmp_path: Path) -> None:
    need_root()
    port = free_port()
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tcpclose",
                "drain",
                "--json",
                "--target",
                f"127.0.0.1:{port}",
                "--at",
                "0.2",
                "--after",
                "0.2",
                "--concurrency",
                "2",
                "--",
                str(BIN / "tcpclose"),
                "serve",
                "--port",
                str(port),
            ],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    assert done.returncode == 5  # ExitStatus.INPUT: the output cannot be written
    assert done.stderr.strip().endswith("no space left on device (ENOSPC)")
    assert len(done.stderr.strip().splitlines()) == 1
