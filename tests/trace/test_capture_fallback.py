"""The tcpdump fallback of the wide capture: the same program traced with AF_PACKET and with
tcpdump (`-i any`, cooked v2 frames) gives the same diagram and verdict.

Forced with `capture_methods`, as the lab's own fallback test does; and, as root, for real: a
tcpclose without any capability (uid 0 with SECBIT_NOROOT, so AF_PACKET is refused) and a copy
of tcpdump that holds CAP_NET_RAW as a file capability, which is how an unprivileged user's
tcpdump captures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lesson.driver import TIMEOUT, program, python_env
from tcpclose.lab.runner import LabRun
from tcpclose.model.timeline import Note, Segment
from tcpclose.trace.session import trace_command

from .conftest import need_strace, only_run, wire

pytestmark = pytest.mark.slow

#: a conversation with every kind of ending on one connection: data both ways, a half-close by
#: the client, the server's answer after it, then SO_LINGER 0 and an RST from the server
PROGRAM = textwrap.dedent(
    """
    import socket, struct, threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    def serve():
        conn, _ = listener.accept()
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        conn.sendall(b"Hi, " + data)
        read.wait()  # the client has the answer: the RST cannot take it away
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    read = threading.Event()
    server = threading.Thread(target=serve)
    server.start()
    client = socket.create_connection(listener.getsockname())
    client.sendall(b"data1")
    client.shutdown(socket.SHUT_WR)
    answer = b""
    while len(answer) < len(b"Hi, data1"):
        answer += client.recv(4096)
    read.set()
    server.join()
    client.close()
    """
)


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_strace()
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")


def drawn(run: LabRun) -> dict[str, list[tuple[str, ...]]]:
    """The diagram without its times and pure ACKs: each side's packets, and each side's
    calls, in order. (Not one list: the two threads' calls interleave as the scheduler had
    them, and a packet and the end of the call that sent it are microseconds apart.)"""
    rows: dict[str, list[tuple[str, ...]]] = {}
    for entry in run.timeline.entries:
        if isinstance(entry, Segment):
            p = entry.packet
            if p.length or p.syn or p.fin or p.rst:
                rows.setdefault(f"{entry.sender.value} packets", []).append(
                    (p.letters, p.payload.decode())
                )
        elif isinstance(entry, Note):
            text = str(entry.event.get("text") or entry.event.event)
            text = re.sub(r"^(accept4?\(\)) = \d+", r"\1 = FD", text)  # fds vary by run
            rows.setdefault(f"{entry.role.value} calls", []).append((text,))
    return rows


def test_tcpdump_fallback_draws_the_same_diagram(tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    af_packet = trace_command([sys.executable, str(script)], capture_methods=("af_packet",))
    tcpdump = trace_command([sys.executable, str(script)], capture_methods=("tcpdump",))
    assert af_packet.capture.method == "af_packet"
    assert tcpdump.capture.method == "tcpdump", tcpdump.capture.note
    assert tcpdump.capture.note == "tcpdump on every interface"
    assert (af_packet.exit_status, tcpdump.exit_status) == (0, 0)
    assert len(af_packet.runs) == len(tcpdump.runs) == 1
    a, t = af_packet.runs[0], tcpdump.runs[0]
    # each packet once: lo's outgoing copies are dropped from the cooked frames too
    assert [p.letters for p in t.capture.packets] == [p.letters for p in a.capture.packets], (
        a.capture.packets,
        t.capture.packets,
    )
    assert drawn(t) == drawn(a)
    assert ("close() with SO_LINGER 0 -> RST",) in drawn(t)["server calls"]
    for fact in ("termination", "conn_state", "fins", "rsts", "conclusion"):
        assert getattr(t.verdict, fact) == getattr(a.verdict, fact), fact
    for mark in ("first_fin", "first_rst"):
        tm, am = getattr(t.verdict, mark), getattr(a.verdict, mark)
        assert (tm.by, tm.after, tm.in_reply_to) == (am.by, am.after, am.in_reply_to), mark


def _noroot_prefix() -> list[str]:
    """setpriv that runs a command as uid 0 without any capability (SECBIT_NOROOT: exec does
    not give root its capabilities; file capabilities still apply)."""
    return [
        "setpriv",
        "--securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--",
    ]


def test_without_cap_net_raw_trace_uses_a_tcpdump_that_may_capture(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("runs as root, to give a copy of tcpdump a file capability")
    for tool in ("setpriv", "setcap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tcpdump = bin_dir / "tcpdump"
    shutil.copy2(shutil.which("tcpdump") or "", tcpdump)
    given = subprocess.run(
        ["setcap", "cap_net_raw,cap_net_admin,cap_setuid,cap_setgid+ep", str(tcpdump)],
        capture_output=True,
        timeout=TIMEOUT,
    )
    if given.returncode != 0:
        pytest.skip(f"this filesystem takes no file capabilities: {given.stderr.decode().strip()}")
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    out = tmp_path / "trace.json"
    env = python_env()
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    done = subprocess.run(
        [
            *_noroot_prefix(),
            *program("tcpclose", "trace", "--json", "-o", str(out), "--"),
            sys.executable,
            str(script),
        ],
        capture_output=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode()
    doc = json.loads(out.read_text())
    assert doc["trace"]["capture"]["method"] == "tcpdump"
    run = only_run(doc)
    assert run["capture"]["method"] == "tcpdump", run["capture"]
    assert "no permission for AF_PACKET" in (run["capture"]["note"] or "")
    assert wire(run) == [
        ("client", "S", None),
        ("server", "S", None),
        ("client", "", "data1"),
        ("client", "F", None),
        ("server", "", "Hi, data1"),
        ("server", "R", None),
    ], run["packets"]
    assert run["verdicts"]["first_rst"]["after"] == "close() with SO_LINGER 0"
    # the text heading says how it captured, and why not with AF_PACKET
    text = tmp_path / "trace.txt"
    done = subprocess.run(
        [
            *_noroot_prefix(),
            *program("tcpclose", "trace", "-o", str(text), "--"),
            sys.executable,
            str(script),
        ],
        capture_output=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode()
    heading = (
        r"^1 TCP connection; capture: tcpdump on every interface \(no permission for "
        r"AF_PACKET \(needs root or CAP_NET_RAW\)\); \d+ packets$"
    )
    assert re.search(heading, text.read_text(), re.M), text.read_text()


def test_without_any_capture_the_trace_says_why(tmp_path: Path) -> None:
    """No CAP_NET_RAW and a tcpdump without it either (the system's, found by its path):
    socket calls only, the heading says why, no traceback. (Whether this quick program's
    connection is drawn depends on tcpclose reading its socket's inode in time: without a
    capture there is no SYN to find it by; see docs/trace.md, Limits.)"""
    if os.geteuid() != 0:
        pytest.skip("runs as root, to drop every capability with SECBIT_NOROOT")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    out = tmp_path / "trace.txt"
    done = subprocess.run(
        [
            *_noroot_prefix(),
            *program("tcpclose", "trace", "-o", str(out), "--"),
            sys.executable,
            str(script),
        ],
        capture_output=True,
        env=python_env(),
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    heading = (
        r"^\d+ TCP connections?; capture: no packet capture \(no permission for AF_PACKET "
        r"\(needs root or CAP_NET_RAW\); tcpdump cannot capture: [^\n]+\): socket calls only$"
    )
    assert re.search(heading, out.read_text(), re.M), out.read_text()
