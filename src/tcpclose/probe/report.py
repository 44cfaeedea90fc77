"""Probe results as data, and their text and JSON forms (pure: no terminal, no files)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from tcpclose.model.timeline import Timeline
from tcpclose.probe.bench import BackendLeg
from tcpclose.probe.facts import ControlResult, Mode, PacketFacts, ReadEnd, SocketFacts
from tcpclose.probe.verdict import HINTS, MEANING, ProbeExit, Verdict, overall_exit
from tcpclose.probe.window import HEAD, TAIL, Gap

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
    timeline: Timeline | None = None  #: kept for the runs whose diagram is drawn
    segments: tuple[dict[str, Any], ...] = ()  #: bounded: first and last of the connection
    change: str | None = None  #: answer-changed: what differs from the control
    legs: tuple[BackendLeg, ...] = ()  #: proxy bench: the proxy's connections to our backend
    where: str | None = None  #: proxy bench: where the answer went or died
    picture: str | None = None  #: proxy bench: the three-column diagram
    dropped: int = 0  #: packets the capture dropped (kernel buffer)
    gaps: tuple[Gap, ...] = ()  #: our connection's packets left out of the capture window
    seen: int = 0  #: packets the capture saw, on every connection it watched

    @property
    def elided(self) -> int:
        """Packets of our connection counted but not kept (the window's gaps)."""
        return sum(gap.total_segments for gap in self.gaps)

    @property
    def _names(self) -> dict[tuple[str, int], str]:
        return {self.socket.local: "client", self.socket.peer: "server"}

    @property
    def exercised(self) -> bool | None:
        """Half-close modes: did our FIN reach the server before its answer left?
        None when not a half-close mode, or without packets (not verifiable)."""
        if self.socket.mode not in (Mode.SHUTDOWN, Mode.PARTIAL):
            return None
        if self.packets is None or self.packets.packets == 0:
            return None
        return self.packets.half_close_exercised

    def to_json(self) -> dict[str, Any]:
        segments = list(self.segments)
        return {
            "run": self.index,
            "verdict": str(self.verdict),
            "meaning": MEANING[self.verdict],
            "exit_class": self.exit.name.lower(),
            "exit_status": int(self.exit),
            "socket": self.socket.to_json(),
            "packets": self.packets.to_json() if self.packets else None,
            "termination": self.termination,
            "capture": {
                "method": self.capture_method,
                "note": self.capture_note,
                "dropped": self.dropped,
                "packets_seen": self.seen,
                "elided": [gap.to_json(self._names) for gap in self.gaps],
            },
            "segments": segments,
            "half_close_exercised": self.exercised,
            "answer_change": self.change,
            "hints": list(HINTS.get(self.verdict, ())) if self.exit is not ProbeExit.OK else [],
            "backend_legs": [leg.to_json() for leg in self.legs],
            "where": self.where,
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
    control: ControlResult | None = None  #: the same request without half-close
    backend: dict[str, Any] | None = None  #: proxy bench: our backend's address, kind, delay

    @property
    def verdicts(self) -> list[Verdict]:
        return [run.verdict for run in self.runs]

    @property
    def tested(self) -> list[Verdict]:
        """The verdicts of the runs that exercised the half-close (all, in other modes)."""
        return [v for v in self.verdicts if v is not Verdict.NOT_EXERCISED]

    @property
    def stable(self) -> bool:
        return len(set(self.tested)) <= 1 and self.stopped is None

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
            "control": self.control.to_json() if self.control else None,
            "backend": self.backend,
            "runs_exercised": sum(1 for r in self.runs if r.exercised),
            "runs_not_exercised": sum(1 for r in self.runs if r.exercised is False),
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
    lines += _half_close_lines(run)
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
    if pk is not None and sock.mode is Mode.CLOSE and pk.peer_bytes:
        lines.append(("lost", _close_answer(pk)))
    if run.packets is not None:
        text = f"{run.packets.packets} captured ({run.capture_method})"
        text += f", {run.packets.peer_bytes} payload bytes from the server"
        # The classifier's class describes the wire only (FIN both ways looks "graceful"):
        # under a broken verdict it would contradict the verdict, so it is not printed.
        if run.termination is not None and run.exit is ProbeExit.OK:
            text += f"; termination: {run.termination}"
        lines.append(("packets", text))
        if run.elided:
            lines.append(
                (
                    "window",
                    f"{run.elided} of them counted, not kept: the first {HEAD} and last {TAIL} "
                    "of the connection are, with each side's first SYN, FIN and RST",
                )
            )
    if run.dropped:
        lines.append(
            (
                "DROPPED",
                f"the kernel dropped {run.dropped} captured packets (capture buffer full): "
                "the packet facts may miss segments",
            )
        )
    return lines


def _close_answer(pk: PacketFacts) -> str:
    """Close mode: did the answer arrive before our close() or after it (the wire says)?"""
    parts = []
    if pk.peer_bytes_before_our_close:
        parts.append(
            f"{pk.peer_bytes_before_our_close} answer bytes arrived before our close(): "
            "close() discarded them unread and sent RST"
        )
    if pk.peer_bytes_after_our_close:
        parts.append(
            f"{pk.peer_bytes_after_our_close} answer bytes arrived after our close() "
            "(our FIN): our kernel answered them with RST"
        )
    return "; ".join(parts)


def _half_close_lines(run: RunResult) -> list[tuple[str, str]]:
    """Was the half-close exercised (our FIN at the server before its answer left)?"""
    if run.socket.mode not in (Mode.SHUTDOWN, Mode.PARTIAL):
        return []
    pk = run.packets
    if run.exercised is None:
        return [
            (
                "tested",
                "half-close not verified without packets: request and FIN were corked "
                "into one send; whether the answer left before our FIN arrived needs capture",
            )
        ]
    assert pk is not None
    one = "request and FIN in one segment" if pk.fin_with_request else "FIN after the request"
    if run.exercised:
        if pk.peer_first_reply_t is None:
            return [("tested", f"half-close exercised: {one}; the server never answered it")]
        return [
            (
                "tested",
                f"half-close exercised: {one}; the server's first reply acknowledged our FIN",
            )
        ]
    if pk.our_close != "FIN":
        why = "our FIN never left (the connection was reset first)"
    else:
        why = "the server's first answer left before our FIN reached it"
    return [("tested", f"half-close NOT exercised: {why}; this run tests nothing")]


def summary_lines(report: ProbeReport) -> list[tuple[str, str]]:
    """(label, text) lines: the summary block printed before the diagram."""
    first = report.runs[0]
    host, port = report.address
    lines = [
        ("target", f"{report.target} ({host} port {port})"),
        ("mode", f"{report.mode}: {MODE_TEXT[report.mode]}"),
        ("request", f"{report.request}, {report.request_bytes} bytes"),
    ]
    if report.backend is not None:
        b_host, b_port = report.backend["address"]
        lines.append(
            (
                "backend",
                f"tcpclose listens at {b_host}:{b_port} ({report.backend['kind']}, answers "
                f"{report.backend['delay_s']:g} s after the request)",
            )
        )
    lines.append(("verdict", f"{first.verdict}: {MEANING[first.verdict]}"))
    if first.where is not None:
        lines.append(("where", first.where))
    lines += fact_lines(first)
    lines += _control_lines(report.control, first)
    if len(report.runs) > 1:
        counts = Counter(str(v) for v in report.verdicts)
        spread = ", ".join(f"{v} x{n}" for v, n in counts.most_common())
        word = "stable" if report.stable else "UNSTABLE"
        lines.append(("repeat", f"{len(report.runs)} runs, {word}: {spread}"))
    if report.stopped is not None:
        lines.append(("stopped", f"after {len(report.runs)} runs: {report.stopped}"))
    lines.append(("exit", f"{int(report.exit)} ({report.exit.name.lower()})"))
    broken = [r.verdict for r in report.runs if r.exit is not ProbeExit.OK]
    for verdict in dict.fromkeys(broken):
        for hint in HINTS.get(verdict, ()):
            lines.append(("hint", f"(usual cause, not measured) {hint}"))
    return lines


def _control_lines(control: ControlResult | None, run: RunResult) -> list[tuple[str, str]]:
    if control is None:
        return []
    if not control.usable:
        end = "complete" if control.read_end is ReadEnd.NOT_READ else str(control.read_end)
        return [("control", f"no usable answer without half-close ({end}): not compared")]
    after = run.socket.answer.describe() if run.socket.answer else "no answer"
    if run.change is not None:
        return [
            (
                "control",
                f"{control.answer.describe()}; after half-close: {after} ({run.change})",
            )
        ]
    if run.verdict is Verdict.GRACEFUL:
        return [("control", f"{control.answer.describe()}: the same answer after half-close")]
    return [("control", f"{control.answer.describe()} (the same request, no half-close)")]


def render_summary(report: ProbeReport) -> str:
    """The summary block as plain text."""
    return "\n".join(f"{label:<9} {text}" for label, text in summary_lines(report))
