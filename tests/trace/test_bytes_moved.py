"""Real programs moving bytes with the calls strace prints differently from read/write:
sendmsg and recvmsg (Python's socket module), sendmmsg, recvmmsg, splice and sendfile (a C
program, tests/trace/bytes_moved.c, built with gcc). Each call's byte count on the diagram is
what it moved, and the counts add up to the payload on the wire."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lesson.driver import Procs

from .conftest import need_strace, only_run, start_trace

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
#: 4053 bytes of text for sendfile
FILE_TEXT = ("tcpclose " * 450 + "end\n")[:4053]


@pytest.fixture(autouse=True)
def _strace() -> None:
    need_strace()


def moved(run: dict[str, Any], role: str) -> list[tuple[str, str, int]]:
    """A side's reads and writes as (event, system call, bytes)."""
    return [
        (e["event"], e["syscall"], e["bytes"])
        for e in run["events"]
        if e["role"] == role and e["event"] in ("sent", "received")
    ]


def wire_bytes(run: dict[str, Any], sender: str) -> int:
    return sum(p["len"] for p in run["packets"] if p["from"] == sender)


def test_sendmmsg_recvmmsg_splice_sendfile(procs: Procs, tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    binary = tmp_path / "bytes_moved"
    subprocess.run(
        [gcc, "-O2", "-Wall", "-o", str(binary), str(HERE / "bytes_moved.c")],
        check=True,
        timeout=120,
    )
    data = tmp_path / "file.txt"
    data.write_text(FILE_TEXT)
    traced = start_trace(procs, tmp_path, "--", str(binary), str(data))
    status, doc = traced.result()
    assert status == 0, traced.proc.describe()
    run = only_run(doc)
    assert run["traced"] == ["client", "server"]
    client, server = moved(run, "client"), moved(run, "server")
    assert client[0] == ("sent", "sendmmsg", 11)
    assert ("sent", "write", 6) in client
    # the server's reads: recvmmsg until the 11 bytes are in (one call, or more on a slow day)
    reads = [m for m in server if m[1] == "recvmmsg"]
    assert sum(m[2] for m in reads) == 11 and reads[0][0] == "received"
    assert sum(m[2] for m in server if m[1] == "splice" and m[0] == "received") == 6
    assert ("sent", "splice", 6) in server
    assert sum(m[2] for m in server if m[1] == "sendfile") == len(FILE_TEXT)
    # what the calls say they moved is what the wire carried, each way
    assert sum(m[2] for m in client if m[0] == "sent") == wire_bytes(run, "client") == 17
    assert sum(m[2] for m in server if m[0] == "sent") == wire_bytes(run, "server")
    assert sum(m[2] for m in client if m[0] == "received") == wire_bytes(run, "server")
    texts = [e.get("text") for e in run["events"] if e["role"] == "client"]
    assert "sendmmsg() = 3 (11 bytes)" in texts


def test_python_sendmsg_recvmsg_and_sendfile(procs: Procs, tmp_path: Path) -> None:
    data = tmp_path / "file.txt"
    data.write_text(FILE_TEXT)
    script = tmp_path / "program.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import socket
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            client = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
            client.sendmsg([b"abc", b"defg"])
            got = b""
            while len(got) < 7:
                got += server.recvmsg(4096)[0]
            with open({str(data)!r}, "rb") as f:
                server.sendfile(f)  # os.sendfile underneath
            server.shutdown(socket.SHUT_WR)
            buffer = bytearray(8192)
            total = 0
            while n := client.recvmsg_into([buffer])[0]:
                total += n
            assert got == b"abcdefg" and total == {len(FILE_TEXT)}, (got, total)
            client.close()
            server.close()
            """
        )
    )
    traced = start_trace(procs, tmp_path, "--", sys.executable, str(script))
    status, doc = traced.result()
    assert status == 0, traced.proc.describe()
    run = only_run(doc)
    client, server = moved(run, "client"), moved(run, "server")
    assert client[0] == ("sent", "sendmsg", 7)
    sent_data = next(e["data"] for e in run["events"] if e.get("syscall") == "sendmsg")
    assert sent_data == "abcdefg"  # the two buffers, in order
    assert sum(m[2] for m in server if m[1] == "recvmsg") == 7
    assert sum(m[2] for m in server if m[1] == "sendfile") == len(FILE_TEXT)
    assert sum(m[2] for m in client if m[1] == "recvmsg") == len(FILE_TEXT)
    assert wire_bytes(run, "server") == len(FILE_TEXT) and wire_bytes(run, "client") == 7
