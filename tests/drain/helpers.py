"""Running `tcpclose drain` for real, and checking its claims against the pcap independently."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dpkt
import pytest

from support.net import free_port as free_port  # re-exported: the drain tests import it here

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
#: Short phases: enough load on both sides of the signal, a modest test time.
SHORT = ["--at", "0.8", "--after", "0.8", "--concurrency", "12"]


def need(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path=str(BIN))
    if path is None:
        pytest.skip(f"{binary} is not installed (make test installs it)")
    return path


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("packet capture needs root")


@dataclass
class DrainResult:
    status: int
    doc: dict[str, Any]
    stderr: str
    pcap: Path

    @property
    def summary(self) -> dict[str, Any]:
        return self.doc["summary"]

    @property
    def lost(self) -> int:
        return int(self.summary["lost_total"])

    @property
    def causes(self) -> dict[str, int]:
        return dict(self.summary["causes"])

    def lost_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.doc["requests"] if r["outcome"] != "ok" and not r["expected"]]


def drain(args: list[str], tmp: Path, timeout: float = 120) -> DrainResult:
    """`tcpclose drain --json --pcap tmp/run.pcap ARGS`, run as a real process."""
    need_root()
    pcap = tmp / f"run-{time.monotonic_ns()}.pcap"
    proc = subprocess.run(
        [sys.executable, "-m", "tcpclose", "drain", "--json", "--pcap", str(pcap), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode in (0, 7), f"status {proc.returncode}: {proc.stderr}"
    doc = json.loads(proc.stdout)
    return DrainResult(proc.returncode, doc, proc.stderr, pcap)


def check_accounting(result: DrainResult) -> None:
    """attempted = ok + each loss class + expected; the records say the same; the status too."""
    s = result.summary
    assert s["attempted"] == s["ok"] + sum(s["lost"].values()) + sum(s["expected"].values())
    assert s["lost_total"] == sum(s["lost"].values()) == sum(s["causes"].values())
    records = result.doc["requests"]
    assert len(records) == s["attempted"]
    outcomes = Counter(r["outcome"] for r in records if not r["expected"])
    assert outcomes.get("ok", 0) == s["ok"]
    assert {k: v for k, v in outcomes.items() if k != "ok"} == s["lost"]
    assert Counter(r["cause"] for r in result.lost_requests()) == Counter(s["causes"])
    assert result.status == (7 if s["lost_total"] else 0)
    assert result.doc["capture"]["dropped"] == 0


@dataclass
class Wire:
    """One client port's connection(s), read with dpkt (not with tcpclose's own reader)."""

    server_fin: bool = False
    server_rst: bool = False
    server_bytes: int = 0


def wire_by_port(pcap: Path, server_port: int) -> dict[int, Wire]:
    found: dict[int, Wire] = defaultdict(Wire)
    with open(pcap, "rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = getattr(ip, "data", None)
            if not isinstance(tcp, dpkt.tcp.TCP) or server_port not in (tcp.sport, tcp.dport):
                continue
            if tcp.sport != server_port:
                continue
            w = found[tcp.dport]
            w.server_fin |= bool(tcp.flags & dpkt.tcp.TH_FIN)
            if tcp.flags & dpkt.tcp.TH_RST:
                w.server_rst = True
            w.server_bytes += ip.len - ip.hl * 4 - tcp.off * 4
    return found


def check_causes_against_packets(result: DrainResult, server_port: int) -> None:
    """Each lost request's cause has the packets it claims, on its own connection."""
    wire = wire_by_port(result.pcap, server_port)
    for r in result.lost_requests():
        cause, port = r["cause"], r["local_port"]
        assert cause not in ("not-captured", "other"), r
        w = wire.get(port)
        assert w is not None, r  # every request names its connection, a refused one too
        if cause == "syn-refused":
            assert w.server_rst and not w.server_bytes, r
        if cause in ("keepalive-race", "closed-before-request"):
            assert w.server_fin or w.server_rst, r
        elif cause in ("rst-unread", "never-accepted"):
            assert w.server_rst, r
        elif cause == "closed-unanswered":
            assert w.server_fin, r
        elif cause == "partial-answer":
            assert w.server_bytes > 0 and (w.server_fin or w.server_rst), r


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
