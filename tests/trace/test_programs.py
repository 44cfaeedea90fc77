"""Programs nobody wrote for tcpclose, traced: a Python program that forks and closes in the
parent, one that resets with SO_LINGER 0, curl and `nc -N` against a test nginx; several
connections in one trace; the output files."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dpkt
import pytest

from lesson.driver import TIMEOUT, Procs, program

from .conftest import Nginx, calls, need_strace, only_run, start_trace, wire

pytestmark = pytest.mark.slow

#: a server thread that accepts once, reads until EOF, then closes; the program's own part
#: follows (`client` is connected to it)
PRELUDE = textwrap.dedent(
    """
    import os, socket, struct, sys, threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    def serve():
        conn, _ = listener.accept()
        while conn.recv(4096):
            pass
        conn.close()
    server = threading.Thread(target=serve)
    server.start()
    client = socket.create_connection(listener.getsockname())
    """
)


def python_program(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "program.py"
    path.write_text(PRELUDE + textwrap.dedent(body))
    return path


@pytest.fixture(autouse=True)
def _strace() -> None:
    need_strace()


def test_fork_then_close_in_the_parent_sends_no_fin(procs: Procs, tmp_path: Path) -> None:
    """close() in the parent only drops one reference: no FIN until the child, which holds
    the other, exits."""
    script = python_program(
        tmp_path,
        """
        client.sendall(b"hello")
        child = os.fork()
        if child == 0:
            sys.stdin.readline()  # hold the socket until told
            os._exit(0)
        client.close()
        print("parent closed", flush=True)
        os.waitpid(child, 0)
        server.join()
        """,
    )
    traced = start_trace(procs, tmp_path, "--", sys.executable, str(script))
    traced.proc.wait_output(b"parent closed\n")
    traced.proc.write(b"go\n")
    status, doc = traced.result()
    assert status == 0
    # two connections ends in one process: one run, both sides traced
    run = only_run(doc)
    client = [e for e in run["events"] if e["role"] == "client"]
    kinds = [e["event"] for e in client]
    assert kinds[:4] == ["connected", "sent", "fork", "close"], kinds
    close = client[3]
    fin = next(p for p in run["packets"] if "F" in p["flags"] and p["from"] == "client")
    assert fin["t"] > close["t"], "the FIN left after the parent's close(), not during it"
    child_exit = next(e for e in client if e["event"] == "exit" and e["pid"] != close["pid"])
    assert child_exit["t"] >= fin["t"] - 0.001
    v = run["verdicts"]
    assert v["first_fin"]["by"] == "client"
    assert v["first_fin"]["after"] == "exit(0)"  # the child's exit sent it, not close()
    procs_json = doc["trace"]["processes"]
    assert len(procs_json) == 2 and procs_json[1]["parent"] == procs_json[0]["pid"]


def test_so_linger_zero_then_close_resets(procs: Procs, tmp_path: Path) -> None:
    script = python_program(
        tmp_path,
        """
        client.sendall(b"bye")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        server.join()
        """,
    )
    traced = start_trace(procs, tmp_path, "--", sys.executable, str(script))
    status, doc = traced.result()
    assert status == 0
    run = only_run(doc)
    client = calls(run, "client")
    assert ("call", None) in client and ("abort", None) in client
    linger = next(e for e in run["events"] if e["event"] == "call")
    assert linger["call"] == "setsockopt(SO_LINGER, {1, 0})" and linger["result"] == 0
    assert ("client", "R", None) in wire(run)
    assert not any(f == "F" and who == "client" for who, f, _ in wire(run))
    v = run["verdicts"]
    assert v["first_rst"]["by"] == "client"
    assert v["first_rst"]["after"] == "close() with SO_LINGER 0"
    assert v["first_fin"] is None or v["first_fin"]["by"] == "server"


def test_plain_text_marks_the_reset_on_the_call(procs: Procs, tmp_path: Path) -> None:
    script = python_program(
        tmp_path,
        """
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        server.join()
        """,
    )
    out = tmp_path / "out.txt"
    proc = procs.start(
        program("tcpclose", "trace", "-o", str(out), "--", sys.executable, str(script))
    )
    assert proc.wait() == 0, proc.describe()
    assert "close() with SO_LINGER 0 -> RST" in out.read_text()


def test_curl_against_nginx(procs: Procs, tmp_path: Path, nginx: int) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    url = f"http://127.0.0.1:{nginx}/"
    traced = start_trace(procs, tmp_path, "--", "curl", "-s", url)
    status, doc = traced.result()
    assert status == 0
    assert traced.proc.stdout.startswith(b"hello from nginx\n")  # curl's stdout, passed through
    run = only_run(doc)
    assert run["traced"] == ["client"]
    assert run["summary"].endswith(f"-> 127.0.0.1:{nginx}")
    kinds = [k for k, _ in calls(run, "client")]
    assert kinds[0] == "connected" and "sent" in kinds and "received" in kinds
    assert kinds[-2:] == ["close", "exit"]
    request = next(e for e in run["events"] if e["event"] == "sent")
    assert request["data"].startswith("GET / HTTP/1.1\r\n")
    answer = "".join(e["data"] for e in run["events"] if e["event"] == "received")
    assert "hello from nginx" in answer
    flows = wire(run)
    assert flows[0][:2] == ("client", "S") and flows[1][:2] == ("server", "S")
    assert any(who == "client" and "F" in f for who, f, _ in flows)
    assert run["verdicts"]["termination"]
    assert run["verdicts"]["server_end"] == "not traced (packets only)"


def test_nc_half_closes_against_nginx(procs: Procs, tmp_path: Path, nginx: int) -> None:
    if shutil.which("nc") is None:
        pytest.skip("nc (netcat-openbsd) is not installed")
    traced = start_trace(procs, tmp_path, "--", "nc", "-N", "127.0.0.1", str(nginx))
    # HTTP/1.1: nginx answers and keeps the connection, so the first FIN is nc's
    traced.proc.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    traced.proc.wait_output(b"hello from nginx")
    traced.proc.close_stdin()  # EOF: nc -N shuts its sending direction down
    status, doc = traced.result()
    assert status == 0
    assert b"hello from nginx" in traced.proc.stdout
    run = only_run(doc)
    events = run["events"]
    shutdown = next(e for e in events if e["event"] == "shutdown")
    assert shutdown["how"] == "SHUT_WR"
    v = run["verdicts"]
    assert v["first_fin"]["by"] == "client"
    assert v["first_fin"]["after"].startswith("shutdown(SHUT_WR)")
    # the answer came before nc's FIN, then nginx closed too: FIN both ways, nothing lost
    assert v["termination"] == "graceful"
    assert v["fins"] == ["client", "server"] and v["rsts"] == []
    answer = "".join(e["data"] for e in events if e["event"] == "received")
    assert "hello from nginx" in answer


def test_several_connections_one_line_each_and_files(
    procs: Procs, tmp_path: Path, nginx: int
) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    url = f"http://127.0.0.1:{nginx}/"
    out = tmp_path / "out.txt"
    pcap, mermaid, report = tmp_path / "t.pcap", tmp_path / "t.mmd", tmp_path / "t.html"
    argv = program(
        "tcpclose",
        "trace",
        "-o",
        str(out),
        "--pcap",
        str(pcap),
        "--mermaid",
        str(mermaid),
        "--report",
        str(report),
        "--",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "--no-keepalive",
        "-H",
        "Connection: close",
        url,
        url,
    )
    proc = procs.start(argv)
    assert proc.wait() == 0, proc.describe()
    text = out.read_text()
    assert "2 TCP connections" in text, text
    assert sum(line.startswith("#") for line in text.splitlines()) == 2, text
    assert "(a diagram: --connection N)" in text
    assert (tmp_path / "t-1.mmd").read_text().startswith("sequenceDiagram")
    assert (tmp_path / "t-2.mmd").exists()
    with pcap.open("rb") as f:
        frames = list(dpkt.pcap.Reader(f))
    assert len(frames) >= 14  # two whole connections
    assert "<svg" in report.read_text()


def test_no_connection_at_all(procs: Procs, tmp_path: Path) -> None:
    traced = start_trace(procs, tmp_path, "--", "true")
    status, doc = traced.result()
    assert status == 0 and doc["runs"] == [] and doc["trace"]["connections"] == 0


def test_exit_status_passes_through(procs: Procs, tmp_path: Path) -> None:
    traced = start_trace(procs, tmp_path, "--", "sh", "-c", "exit 7")
    status, doc = traced.result()
    assert status == 7 and doc["trace"]["exit_status"] == 7


def test_a_server_traced_alone_is_judged_on_its_calls_and_the_wire(
    procs: Procs, tmp_path: Path, nginx_server: Nginx
) -> None:
    """Attach to nginx's worker, curl untraced: the verdict says what nginx did and what the
    wire shows of curl, without a call of curl's."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    traced = start_trace(procs, tmp_path, "-p", str(nginx_server.worker()))
    traced.proc.wait_output(b"tcpclose: tracing PID", stream="stderr")
    done = subprocess.run(
        ["curl", "-s", "-H", "Connection: close", f"http://127.0.0.1:{nginx_server.port}/"],
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert done.stdout == b"hello from nginx\n"
    traced.proc.signal(signal.SIGINT)  # detach: nginx goes on
    status, doc = traced.result()
    assert status == 0
    run = only_run(doc)
    assert run["traced"] == ["server"]
    conclusion = run["verdicts"]["conclusion"]
    assert "\n" not in conclusion and "\r" not in conclusion
    assert conclusion.startswith("the server (traced): read GET / HTTP/1.1\\r\\n"), conclusion
    assert "; the wire shows the client (not traced): sent GET / HTTP/1.1\\r\\n" in conclusion
    assert "answers" not in conclusion  # not the lesson's protocol: no answers to count
