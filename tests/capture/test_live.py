"""Live capture on lo: every packet once, the same packets tcpdump sees, the BPF filter keeps
only our ports, and a process without CAP_NET_RAW falls back in one line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tcpclose.capture import start_capture
from tcpclose.capture.bpf import tcp_ports_program
from tcpclose.model.packet import Packet

MESSAGES = 200


def talk(listener: socket.socket, messages: int = MESSAGES) -> None:
    """A request/answer exchange, then a half-close and FIN both ways (bounded)."""
    c = socket.create_connection(listener.getsockname()[:2], timeout=10)
    s, _ = listener.accept()
    for i in range(messages):
        c.sendall(f"m{i}".encode())
        s.recv(100)
        s.sendall(b"ok")
        c.recv(100)
    c.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    s.close()
    assert c.recv(10) == b""
    c.close()


def key(p: Packet) -> tuple[object, ...]:
    return (p.src, p.sport, p.dst, p.dport, p.flags, p.seq, p.ack, p.length, p.payload)


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_af_packet_sees_what_tcpdump_sees(family: socket.AddressFamily, host: str) -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen()
    port = listener.getsockname()[1]
    ours = start_capture([port], methods=("af_packet",))
    theirs = start_capture([port], methods=("tcpdump",))
    assert (ours.method, theirs.method) == ("af_packet", "tcpdump")
    talk(listener)
    a, b = ours.stop(), theirs.stop()
    assert a.dropped == 0
    # tcpdump's own "dropped by kernel" counter is not checked: libpcap counts the outgoing
    # copies it discards on lo there. The packet lists below are the real comparison.
    # 3 handshake + 2 data segments and their ACKs per message (some ACKs piggyback) + close.
    assert len(a.packets) >= 3 + 2 * MESSAGES + 3
    assert [key(p) for p in a.packets] == [key(p) for p in b.packets]
    assert len({key(p) for p in a.packets}) == len(a.packets), "a packet was counted twice"


def test_filter_keeps_only_the_ports_asked_for() -> None:
    mine = socket.socket()
    mine.bind(("127.0.0.1", 0))
    mine.listen()
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    capture = start_capture([mine.getsockname()[1]], methods=("af_packet",))
    talk(other, messages=5)
    talk(mine, messages=5)
    result = capture.stop()
    port = mine.getsockname()[1]
    assert result.packets and all(port in (p.sport, p.dport) for p in result.packets)


def test_filter_rejects_an_empty_port_list() -> None:
    with pytest.raises(ValueError):
        tcp_ports_program([])


def _without_net_raw(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run argv with CAP_NET_RAW dropped from the bounding set (so no child regains it)."""
    capsh = shutil.which("capsh")
    if capsh is None or os.geteuid() != 0:
        pytest.skip("needs root and capsh (libcap2-bin) to drop CAP_NET_RAW")
    command = " ".join(map(shlex_quote, argv))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    return subprocess.run(
        [capsh, "--drop=cap_net_raw", "--", "-c", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def test_lab_without_capture_privilege_falls_back_in_one_line() -> None:
    done = _without_net_raw([sys.executable, "-m", "tcpclose", "lab", "close", "--json"])
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)["runs"][0]
    assert run["capture"]["method"] == "none"
    note = run["capture"]["note"]
    assert "no permission for AF_PACKET" in note and "\n" not in note
    assert run["packets"] == []
    # The programs' own events still tell what happened.
    assert run["verdicts"]["answers_lost"] == ["Hi, data1", "Hi, data2"]
    assert run["server"]["signal"] == "SIGPIPE"
    assert "no packets captured" in run["verdicts"]["conclusion"]


def test_terminal_output_says_why_there_are_no_packets() -> None:
    done = _without_net_raw([sys.executable, "-m", "tcpclose", "lab", "abort"])
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("capture:")]
    assert len(lines) == 1 and "socket-level events only" in lines[0]
