"""The probe's verdict: a pure function of the observed facts, and the exit status per verdict.

Theory of operation. In the reading modes (shutdown, partial, none) the verdict comes from the
socket alone: how many bytes we read and how the read ended (EOF, ECONNRESET, timeout). So the
verdict is the same with or without packet capture; packets only add evidence. In close mode
we cannot read, so the verdict comes from the packets when captured (did the server's answer
arrive after our close?), else from what /proc/net/tcp shows of our orphaned socket. In abort
mode we reset the connection ourselves: the verdict says so.

The tables below are the single source of the documentation (docs/probe.md, --help).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from tcpclose.probe.facts import AfterClose, Mode, PacketFacts, ReadEnd, SocketFacts


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


#: one sentence per verdict, for the terminal and the documentation
MEANING: dict[Verdict, str] = {
    Verdict.GRACEFUL: "answered, then closed its side (FIN): nothing lost",
    Verdict.CLOSED_WITHOUT_ANSWER: "closed (FIN) without answering",
    Verdict.ANSWER_THEN_RESET: "answered partially or fully, then reset (RST)",
    Verdict.RESET_WITHOUT_ANSWER: "reset (RST) without answering",
    Verdict.ANSWERED_KEPT_OPEN: "answered, then kept the connection open (no FIN in time)",
    Verdict.NO_ANSWER: "neither answered nor closed within the timeout",
    Verdict.READ_ERROR: "the read failed with an error other than a reset",
    Verdict.ANSWER_LOST: "answered after our close(); our kernel reset it: the answer is lost",
    Verdict.RESET_AFTER_CLOSE: "the connection was reset after our close() (late answer or RST)",
    Verdict.UNOBSERVED: "nothing observable after our close() (no capture, no /proc/net/tcp)",
    Verdict.ABORTED: "we reset the connection ourselves (SO_LINGER 0, close)",
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


def judge(sock: SocketFacts, packets: PacketFacts | None = None) -> Verdict:
    """The verdict of one run, from its socket facts and, when captured, its packet facts."""
    if sock.mode is Mode.ABORT:
        return Verdict.ABORTED
    if sock.mode is Mode.CLOSE:
        return _judge_close(sock, packets)
    answered = sock.received > 0
    match sock.read_end:
        case ReadEnd.EOF:
            return Verdict.GRACEFUL if answered else Verdict.CLOSED_WITHOUT_ANSWER
        case ReadEnd.RESET:
            return Verdict.ANSWER_THEN_RESET if answered else Verdict.RESET_WITHOUT_ANSWER
        case ReadEnd.TIMEOUT:
            return Verdict.ANSWERED_KEPT_OPEN if answered else Verdict.NO_ANSWER
        case _:
            return Verdict.READ_ERROR


def _judge_close(sock: SocketFacts, packets: PacketFacts | None) -> Verdict:
    # Answer bytes already waiting when we called close(): close() discards them and sends
    # RST instead of FIN (the kernel's rule for unread data); the answer is lost.
    if sock.unread_at_close > 0:
        return Verdict.ANSWER_LOST
    if packets is not None and packets.packets > 0:
        if packets.peer_bytes_after_our_close > 0:
            return Verdict.ANSWER_LOST
        if packets.peer_rst_t is not None:
            return Verdict.RESET_WITHOUT_ANSWER
        if packets.peer_fin_t is not None:
            return Verdict.CLOSED_WITHOUT_ANSWER
        return Verdict.NO_ANSWER
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
    """One exit status for all runs: UNSTABLE if they disagree, else the verdict's class."""
    if not verdicts:
        raise ValueError("no runs")
    if len(set(verdicts)) > 1:
        return ProbeExit.UNSTABLE
    return exit_class(mode, verdicts[0])
