"""Probe results as data, and their text and JSON forms (pure: no terminal, no files)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from tcpclose.model.timeline import Timeline
from tcpclose.probe.facts import Mode, PacketFacts, ReadEnd, SocketFacts
from tcpclose.probe.verdict import MEANING, ProbeExit, Verdict, overall_exit

MODE_TEXT: dict[Mode, str] = {
    Mode.SHUTDOWN: "the request, then shutdown(SHUT_WR): half-close, keep reading",
    Mode.PARTIAL: "an incomplete request, then shutdown(SHUT_WR)",
    Mode.CLOSE: "the request, then close(): both directions",
    Mode.ABORT: "the request, then SO_LINGER 0 + close(): RST",
    Mode.NONE: "the request, then keep the connection open and watch",
}

READ_END_TEXT: dict[ReadEnd, str] = {
    ReadEnd.EOF: "EOF (the server's FIN)",
    ReadEnd.RESET: "ECONNRESET (the server's RST)",
    ReadEnd.TIMEOUT: "timeout",
    ReadEnd.ERROR: "error",
    ReadEnd.NOT_READ: "not read (this mode closes our reading side)",
}


@dataclass(frozen=True)
class RunResult:
    """One run: its verdict and the facts behind it."""

    index: int
    verdict: Verdict
    exit: ProbeExit
    socket: SocketFacts
    packets: PacketFacts | None
    termination: str | None  #: the shared classifier's class, when packets exist
    capture_method: str
    capture_note: str | None
    timeline: Timeline | None = None

    def to_json(self) -> dict[str, Any]:
        segments = []
        if self.timeline is not None:
            segments = [
                {
                    "t_ms": round(seg.t * 1000, 3),
                    "sender": str(seg.sender),
                    "flags": seg.packet.letters,
                    "length": seg.packet.length,
                }
                for seg in self.timeline.segments
            ]
        return {
            "run": self.index,
            "verdict": str(self.verdict),
            "meaning": MEANING[self.verdict],
            "exit_class": self.exit.name.lower(),
            "exit_status": int(self.exit),
            "socket": self.socket.to_json(),
            "packets": self.packets.to_json() if self.packets else None,
            "termination": self.termination,
            "capture": {"method": self.capture_method, "note": self.capture_note},
            "segments": segments,
        }


@dataclass(frozen=True)
class ProbeReport:
    """All runs against one target in one mode."""

    target: str
    address: tuple[str, int]
    mode: Mode
    request: str  #: preset name or "custom"
    request_bytes: int
    timeout: float
    runs: tuple[RunResult, ...]
    #: why --repeat stopped early: a later run could not even connect (refused, reset, timeout)
    stopped: str | None = None

    @property
    def verdicts(self) -> list[Verdict]:
        return [run.verdict for run in self.runs]

    @property
    def stable(self) -> bool:
        return len(set(self.verdicts)) <= 1 and self.stopped is None

    @property
    def exit(self) -> ProbeExit:
        if self.stopped is not None:  # it answered before, then refused: not stable
            return ProbeExit.UNSTABLE
        return overall_exit(self.mode, self.verdicts)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "address": list(self.address),
            "mode": str(self.mode),
            "request": {"name": self.request, "bytes": self.request_bytes},
            "timeout_s": self.timeout,
            "runs": [run.to_json() for run in self.runs],
            "stable": self.stable,
            "stopped": self.stopped,
            "verdicts": dict(Counter(str(v) for v in self.verdicts)),
            "exit_status": int(self.exit),
        }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def fact_lines(run: RunResult) -> list[tuple[str, str]]:
    """(label, text) lines: the facts behind one run's verdict."""
    sock = run.socket
    lines: list[tuple[str, str]] = []
    if sock.mode.reads or sock.received:
        answer = f"{sock.received} bytes"
        if sock.first_line is not None:
            answer += f', first line "{sock.first_line}"'
        lines.append(("answer", answer))
    read = READ_END_TEXT[sock.read_end]
    if sock.read_errno and sock.read_end is not ReadEnd.RESET:
        read += f" ({sock.read_errno})"
    if sock.t_sent is not None and sock.t_end is not None and sock.mode.reads:
        read += f", {_ms(sock.t_end - sock.t_sent)} after the request"
    lines.append(("read end", read))
    if sock.mode in (Mode.CLOSE, Mode.ABORT):
        lines.append(("unread", f"{sock.unread_at_close} bytes waiting when we closed"))
    if sock.after_close is not None:
        lines.append(("after", f"our orphaned socket: {sock.after_close} (/proc/net/tcp)"))
    ours = "RST" if sock.mode is Mode.ABORT else "FIN"
    pk = run.packets
    if pk is not None and pk.close_to_peer_end is not None:
        theirs = "FIN" if pk.peer_end_t == pk.peer_fin_t else "RST"
        timing = f"our {pk.our_close} -> server {theirs}: {_ms(pk.close_to_peer_end)} (packets)"
        lines.append(("timing", timing))
    elif pk is not None and pk.peer_bytes_after_our_close and pk.our_rst_t and pk.our_close_t:
        late = pk.our_rst_t - pk.our_close_t
        lines.append(("timing", f"our FIN -> the server's late answer -> our RST: {_ms(late)}"))
    elif pk is not None and pk.first_closer == "server" and pk.peer_end_t is not None:
        theirs = "FIN" if pk.peer_end_t == pk.peer_fin_t else "RST"
        since = f" {_ms(pk.peer_end_t - sock.t_sent)} after the request" if sock.t_sent else ""
        lines.append(("timing", f"the server closed first ({theirs}){since} (packets)"))
    elif sock.close_to_end is not None and sock.mode is not Mode.ABORT:
        lines.append(("timing", f"our {ours} -> server's end: {_ms(sock.close_to_end)} (socket)"))
    if run.packets is not None:
        text = f"{run.packets.packets} captured ({run.capture_method})"
        text += f", {run.packets.peer_bytes} payload bytes from the server"
        if run.termination is not None:
            text += f"; termination: {run.termination}"
        lines.append(("packets", text))
    return lines


def summary_lines(report: ProbeReport) -> list[tuple[str, str]]:
    """(label, text) lines: the summary block printed before the diagram."""
    first = report.runs[0]
    host, port = report.address
    lines = [
        ("target", f"{report.target} ({host} port {port})"),
        ("mode", f"{report.mode}: {MODE_TEXT[report.mode]}"),
        ("request", f"{report.request}, {report.request_bytes} bytes"),
        ("verdict", f"{first.verdict}: {MEANING[first.verdict]}"),
    ]
    lines += fact_lines(first)
    if len(report.runs) > 1:
        counts = Counter(str(v) for v in report.verdicts)
        spread = ", ".join(f"{v} x{n}" for v, n in counts.most_common())
        word = "stable" if report.stable else "UNSTABLE"
        lines.append(("repeat", f"{len(report.runs)} runs, {word}: {spread}"))
    if report.stopped is not None:
        lines.append(("stopped", f"after {len(report.runs)} runs: {report.stopped}"))
    lines.append(("exit", f"{int(report.exit)} ({report.exit.name.lower()})"))
    return lines


def render_summary(report: ProbeReport) -> str:
    """The summary block as plain text."""
    return "\n".join(f"{label:<9} {text}" for label, text in summary_lines(report))
