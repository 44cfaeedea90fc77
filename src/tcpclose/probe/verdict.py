"""The probe's verdict: a pure function of the observed facts, and the exit status per verdict.

Theory of operation. In the reading modes (shutdown, partial, none) the verdict comes from the
socket alone: how many bytes we read and how the read ended (EOF, ECONNRESET, timeout). So the
verdict is the same with or without packet capture; packets only add evidence. In close mode
we cannot read, so the verdict comes from the packets when captured (did the server's answer
arrive after our close?), else from what /proc/net/tcp shows of our orphaned socket. In abort
mode we reset the connection ourselves: the verdict says so.

Two checks sit above the socket's view. With packets, a half-close run counts only if the
server's first answering segment acknowledged our FIN (else NOT_EXERCISED: the answer left
before the FIN arrived, the run tested nothing). With a control request (the same request,
no half-close), a graceful-looking answer that differs from the control's is ANSWER_CHANGED.

The tables below are the single source of the documentation (docs/probe.md, --help).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from tcpclose.probe.answer import answer_change
from tcpclose.probe.facts import (
    AfterClose,
    ControlResult,
    Mode,
    PacketFacts,
    ReadEnd,
    SocketFacts,
)


class Verdict(enum.StrEnum):
    #: the server answered, then closed its side (FIN): nothing lost
    GRACEFUL = "graceful"
    #: the server closed (FIN) without sending a byte
    CLOSED_WITHOUT_ANSWER = "closed-without-answer"
    #: the server sent some answer, then reset the connection
    ANSWER_THEN_RESET = "answer-then-reset"
    #: the server reset the connection without sending a byte
    RESET_WITHOUT_ANSWER = "reset-without-answer"
    #: the server answered but sent no FIN within the timeout
    ANSWERED_KEPT_OPEN = "answered-kept-open"
    #: nothing came back within the timeout: no byte, no FIN, no RST
    NO_ANSWER = "no-answer"
    #: the read failed with another error (read_errno says which)
    READ_ERROR = "read-error"
    #: close mode: the server answered after our close; our kernel answered it with RST
    ANSWER_LOST = "answer-lost"
    #: close mode without capture: reset after our close (late answer or server RST)
    RESET_AFTER_CLOSE = "reset-after-close"
    #: close mode without capture and without /proc/net/tcp: nothing could be seen
    UNOBSERVED = "unobserved"
    #: abort mode: we reset the connection (SO_LINGER 0); the packets show the rest
    ABORTED = "aborted"
    #: answered after our FIN and closed, but not what the same request gets without one
    ANSWER_CHANGED = "answer-changed"
    #: the server's answer (or close) left before our FIN reached it: half-close not tested
    NOT_EXERCISED = "not-exercised"


#: one sentence per verdict, for the terminal and the documentation
MEANING: dict[Verdict, str] = {
    Verdict.GRACEFUL: "answered, then closed its side (FIN): nothing lost",
    Verdict.CLOSED_WITHOUT_ANSWER: "closed (FIN) without answering",
    Verdict.ANSWER_THEN_RESET: "answered partially or fully, then reset (RST)",
    Verdict.RESET_WITHOUT_ANSWER: "reset (RST) without answering",
    Verdict.ANSWERED_KEPT_OPEN: "answered, then kept the connection open (no FIN in time)",
    Verdict.NO_ANSWER: "neither answered nor closed within the timeout",
    Verdict.READ_ERROR: "the read failed with an error other than a reset",
    Verdict.ANSWER_LOST: "close mode: the answer came (before or after our close(), the "
    "packets say which) and our kernel reset it: the answer is lost",
    Verdict.RESET_AFTER_CLOSE: "the connection was reset after our close() (late answer or RST)",
    Verdict.UNOBSERVED: "nothing observable after our close() (no capture, no /proc/net/tcp)",
    Verdict.ABORTED: "we reset the connection ourselves (SO_LINGER 0, close)",
    Verdict.ANSWER_CHANGED: "answered after our FIN, but not the answer the same request "
    "gets without a half-close (the control)",
    Verdict.NOT_EXERCISED: "the server answered or closed before our FIN reached it: "
    "this run did not test the half-close",
}


class ProbeExit(enum.IntEnum):
    """Exit statuses per verdict class (errors keep tcpclose's ExitStatus 2-6, 130)."""

    #: the answer came back, or the server did what the mode allows
    OK = 0
    #: the server closed without answering a complete request: half-close is broken
    CLOSED_WITHOUT_ANSWER = 10
    #: the server reset the connection (or the read failed)
    RESET = 11
    #: the server did not close within the timeout (or sent nothing at all)
    HANG = 12
    #: --repeat: the runs did not all reach the same verdict
    UNSTABLE = 13
    #: the answer after our half-close differs from the control's
    ANSWER_CHANGED = 14
    #: no run tested the half-close (the answer always left before our FIN arrived)
    NOT_EXERCISED = 15


#: verdict -> exit class in every mode, unless MODE_EXITS says otherwise for a mode
EXITS: dict[Verdict, ProbeExit] = {
    Verdict.GRACEFUL: ProbeExit.OK,
    Verdict.CLOSED_WITHOUT_ANSWER: ProbeExit.CLOSED_WITHOUT_ANSWER,
    Verdict.ANSWER_THEN_RESET: ProbeExit.RESET,
    Verdict.RESET_WITHOUT_ANSWER: ProbeExit.RESET,
    Verdict.ANSWERED_KEPT_OPEN: ProbeExit.HANG,
    Verdict.NO_ANSWER: ProbeExit.HANG,
    Verdict.READ_ERROR: ProbeExit.RESET,
    Verdict.ANSWER_LOST: ProbeExit.OK,
    Verdict.RESET_AFTER_CLOSE: ProbeExit.OK,
    Verdict.UNOBSERVED: ProbeExit.OK,
    Verdict.ABORTED: ProbeExit.OK,
    Verdict.ANSWER_CHANGED: ProbeExit.ANSWER_CHANGED,
    Verdict.NOT_EXERCISED: ProbeExit.NOT_EXERCISED,
}

#: where a mode changes what is acceptable
MODE_EXITS: dict[Mode, dict[Verdict, ProbeExit]] = {
    # An incomplete request has no answer: closing without one is correct.
    Mode.PARTIAL: {Verdict.CLOSED_WITHOUT_ANSWER: ProbeExit.OK},
    # We closed both directions: the server owes us nothing more than closing too.
    Mode.CLOSE: {Verdict.CLOSED_WITHOUT_ANSWER: ProbeExit.OK},
    # We never closed: keeping the connection open after answering is keep-alive, not a hang.
    Mode.NONE: {Verdict.ANSWERED_KEPT_OPEN: ProbeExit.OK},
}


def exit_class(mode: Mode, verdict: Verdict) -> ProbeExit:
    """The exit status that a run with this mode and verdict stands for."""
    return MODE_EXITS.get(mode, {}).get(verdict, EXITS[verdict])


def judge(
    sock: SocketFacts,
    packets: PacketFacts | None = None,
    control: ControlResult | None = None,
) -> Verdict:
    """The verdict of one run, from its socket facts, its packet facts when captured, and the
    control request's answer when one was made.

    In the half-close modes a run whose packets show the server's answer (or close) leaving
    before our FIN reached it is NOT_EXERCISED, whatever the socket saw: it tested nothing.
    """
    if sock.mode is Mode.ABORT:
        return Verdict.ABORTED
    if sock.mode is Mode.CLOSE:
        return _judge_close(sock, packets)
    if (
        sock.mode in (Mode.SHUTDOWN, Mode.PARTIAL)
        and packets is not None
        and packets.packets > 0
        and not packets.half_close_exercised
    ):
        return Verdict.NOT_EXERCISED
    answered = sock.received > 0
    match sock.read_end:
        case ReadEnd.EOF:
            if not answered:
                return Verdict.CLOSED_WITHOUT_ANSWER
            if _changed(sock, control) is not None:
                return Verdict.ANSWER_CHANGED
            return Verdict.GRACEFUL
        case ReadEnd.RESET:
            return Verdict.ANSWER_THEN_RESET if answered else Verdict.RESET_WITHOUT_ANSWER
        case ReadEnd.TIMEOUT:
            return Verdict.ANSWERED_KEPT_OPEN if answered else Verdict.NO_ANSWER
        case _:
            return Verdict.READ_ERROR


def _changed(sock: SocketFacts, control: ControlResult | None) -> str | None:
    if control is None or not control.usable or sock.answer is None:
        return None
    return answer_change(control.answer, sock.answer)


def change_reason(sock: SocketFacts, control: ControlResult | None) -> str | None:
    """Why the answer differs from the control's (None when it does not, or no control)."""
    return _changed(sock, control)


def _judge_close(sock: SocketFacts, packets: PacketFacts | None) -> Verdict:
    # From the wire when captured: any answer byte from the server is lost after close(),
    # whether it arrived before it (close() discards unread data and sends RST) or after it
    # (our kernel answers it with RST). The packet facts say which.
    if packets is not None and packets.packets > 0:
        if packets.peer_bytes > 0:
            return Verdict.ANSWER_LOST
        if packets.peer_rst_t is not None:
            return Verdict.RESET_WITHOUT_ANSWER
        if packets.peer_fin_t is not None:
            return Verdict.CLOSED_WITHOUT_ANSWER
        return Verdict.NO_ANSWER
    # Without packets: unread bytes at close() are proof of an answer; then the orphan's state.
    if sock.unread_at_close > 0:
        return Verdict.ANSWER_LOST
    match sock.after_close:
        case AfterClose.PEER_FIN:
            return Verdict.CLOSED_WITHOUT_ANSWER
        case AfterClose.GONE:
            return Verdict.RESET_AFTER_CLOSE
        case AfterClose.OPEN:
            return Verdict.NO_ANSWER
        case _:
            return Verdict.UNOBSERVED


def overall_exit(mode: Mode, verdicts: Sequence[Verdict]) -> ProbeExit:
    """One exit status for all runs. Runs that did not exercise the half-close count for
    nothing; if no run did, NOT_EXERCISED. Among the rest: UNSTABLE if they disagree, else
    their verdict's class."""
    if not verdicts:
        raise ValueError("no runs")
    tested = [v for v in verdicts if v is not Verdict.NOT_EXERCISED]
    if not tested:
        return ProbeExit.NOT_EXERCISED
    if len(set(tested)) > 1:
        return ProbeExit.UNSTABLE
    return exit_class(mode, tested[0])


#: the usual causes of a broken verdict, and their fixes: hints, not findings
HINTS: dict[Verdict, tuple[str, ...]] = {
    Verdict.CLOSED_WITHOUT_ANSWER: (
        "nginx stream closes both sides on the client's FIN unless `proxy_half_close on;`",
        "socat closes `-t` seconds (default 0.5) after one side's EOF: make -t longer than "
        "the backend's answer time",
        "a proxy or server that treats read() = 0 as 'client gone' closes without answering",
    ),
    Verdict.ANSWER_THEN_RESET: (
        "a proxy that closes the backend leg on the client's FIN resets the backend's late "
        "answer; nginx stream: `proxy_half_close on;`",
    ),
    Verdict.RESET_WITHOUT_ANSWER: (
        "a server that close()s with our request unread resets the connection; a proxy that "
        "aborts on the client's FIN does the same (HAProxy: `option abortonclose`)",
    ),
    Verdict.ANSWER_CHANGED: (
        "HAProxy `option abortonclose` aborts half-closed requests and answers them itself "
        "(e.g. 400); drop it, or keep clients from half-closing",
    ),
    Verdict.NOT_EXERCISED: (
        "the answer left before our FIN arrived: a server that answers without reading the "
        "request, or a request larger than one segment; try --repeat, or a smaller request",
    ),
}


_EXIT_TEXT: dict[ProbeExit, str] = {
    ProbeExit.OK: "ok: the answer came back, or the server did what the mode allows",
    ProbeExit.CLOSED_WITHOUT_ANSWER: "closed without answering a complete request: "
    "half-close is broken",
    ProbeExit.RESET: "reset (or read error)",
    ProbeExit.HANG: "hang: no FIN within `--timeout`, or nothing at all",
    ProbeExit.UNSTABLE: "`--repeat`: the runs that exercised the half-close did not all reach "
    "the same verdict, or a later run could not even connect",
    ProbeExit.ANSWER_CHANGED: "the answer after our half-close differs from the control's",
    ProbeExit.NOT_EXERCISED: "no run exercised the half-close: the answer always left before "
    "our FIN reached the server",
}


def markdown_tables() -> str:
    """The verdict and exit-status tables of docs/probe.md, generated from the tables above."""
    lines = ["| verdict | meaning | exit |", "|---|---|---|"]
    for verdict in Verdict:
        exit_ = EXITS[verdict]
        overrides = [
            f"{int(table[verdict])} in {mode} mode"
            for mode, table in MODE_EXITS.items()
            if verdict in table
        ]
        text = str(int(exit_)) + (f" ({', '.join(overrides)})" if overrides else "")
        lines.append(f"| `{verdict}` | {MEANING[verdict]} | {text} |")
    lines += ["", "| status | class |", "|---|---|"]
    lines += [f"| {int(e)} | {_EXIT_TEXT[e]} |" for e in ProbeExit]
    return "\n".join(lines) + "\n"
