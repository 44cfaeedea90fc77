"""Why a request was lost, from its connection's packets: drain's cause logic, in one module.

Input: `RequestFacts`, what the capture shows about the lost request's connection (computed by
`tcpclose.drain.explain` from the analyser's verdict and the connection's packets). Output: a
`Cause`. `RULES` is the decision table, first match wins:

===================  =======================================================================
cause                test (first match wins)
===================  =======================================================================
not-captured         the connection is not in the capture
syn-refused          our SYN was answered by RST: no listener at that moment
error-answer         the server answered, with an error status (a proxy's 502/503...)
partial-answer       some bytes of the answer arrived, then FIN or RST
keepalive-race       a reused connection: the server closed it (FIN, or RST without FIN)
                     before our request reached it, or reset it within RACE_WINDOW of our
                     request's arrival (with or without a FIN just before), unanswered: its
                     close raced our request
closed-before-request  a new connection the server closed (FIN) before the request arrived
rst-unread           the server reset (RST without FIN) an accepted connection while our
                     request was unanswered (closed with unread data: RFC 2525, the lesson)
never-accepted       the server reset (RST, no FIN) a new connection that never carried a byte
                     from it, before or after our request:
                     accepted by the kernel, never by the application (reset when the
                     listener or the process closed)
closed-unanswered    the server's FIN came after our request, with no answer: it read the
                     request (or had it in its buffer) and closed without answering
no-answer            the server neither answered nor closed before the timeout
other                anything else (the reason says what was seen)
===================  =======================================================================

`rst-unread` and `never-accepted` leave the same packets when the request is the first on
its connection: the capture cannot see accept(). A connection that had carried answers was
certainly accepted, so a reset there is `rst-unread`; a first request reset before any byte
from the server is named `never-accepted`, the listener's case.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from tcpclose.drain.records import Outcome


class Cause(enum.StrEnum):
    NOT_CAPTURED = "not-captured"
    SYN_REFUSED = "syn-refused"
    ERROR_ANSWER = "error-answer"
    PARTIAL_ANSWER = "partial-answer"
    KEEPALIVE_RACE = "keepalive-race"
    CLOSED_BEFORE_REQUEST = "closed-before-request"
    RST_UNREAD = "rst-unread"
    NEVER_ACCEPTED = "never-accepted"
    CLOSED_UNANSWERED = "closed-unanswered"
    NO_ANSWER = "no-answer"
    OTHER = "other"


#: One sentence per cause, for the summary and the report.
EXPLANATIONS: dict[Cause, str] = {
    Cause.NOT_CAPTURED: "the connection is not in the capture",
    Cause.SYN_REFUSED: "the SYN was answered by RST: nothing listened on the port",
    Cause.ERROR_ANSWER: "the server (or proxy) answered with an error status",
    Cause.PARTIAL_ANSWER: "part of the answer arrived, then the connection was closed or reset",
    Cause.KEEPALIVE_RACE: "the keep-alive race: the server closed the idle connection while "
    "the request was on its way; its kernel answered the request with RST (or FIN)",
    Cause.CLOSED_BEFORE_REQUEST: "the server closed a new connection before its request arrived",
    Cause.RST_UNREAD: "the server reset the connection with the request unanswered: closed "
    "with unread data (RFC 2525, the lesson's RST)",
    Cause.NEVER_ACCEPTED: "accepted by the kernel, never by the application: reset when the "
    "listener (or the process) closed with the connection in its accept queue",
    Cause.CLOSED_UNANSWERED: "the server closed (FIN) after the request arrived, without "
    "answering it",
    Cause.NO_ANSWER: "the server neither answered nor closed before the timeout",
    Cause.OTHER: "none of the known patterns",
}


@dataclass(frozen=True)
class RequestFacts:
    """What the packets say about one lost request's connection."""

    captured: bool  #: the connection was found in the capture
    rejected: bool  #: SYN answered by RST (the analyser's `rejected`)
    outcome: Outcome  #: what the client saw
    reused: bool  #: not the first request on its connection
    request_sent: bool  #: a data segment of ours at or after the request's start
    answer_bytes: int  #: server payload bytes after our request's data
    server_bytes_before: int  #: server payload bytes before this request (earlier answers)
    server_fin_before_request: bool  #: the server's FIN left before our request reached it
    server_rst_before_request: bool  #: the server's RST (without FIN) left before our request
    #: the server's RST came within RACE_WINDOW of our request's data: it closed a connection
    #: it saw as idle, our request unread in its buffer
    server_rst_at_request: bool
    server_fin_after_request: bool  #: the server's first FIN came after our request arrived
    server_rst: bool  #: the server sent RST (at any time after our request's start)
    server_fin: bool  #: the server sent FIN (at any time)


#: A server RST this soon after our request's data did not come from reading and deciding: the
#: server was closing a connection it saw as idle (seconds).
RACE_WINDOW = 0.002

_Rule = tuple[Cause, Callable[[RequestFacts], bool]]

RULES: tuple[_Rule, ...] = (
    (Cause.NOT_CAPTURED, lambda f: not f.captured),
    (Cause.SYN_REFUSED, lambda f: f.rejected),
    (Cause.ERROR_ANSWER, lambda f: f.outcome is Outcome.ERROR_STATUS),
    (
        Cause.PARTIAL_ANSWER,
        lambda f: (
            f.answer_bytes > 0
            and f.outcome in (Outcome.RESET_MID_ANSWER, Outcome.CLOSED_MID_ANSWER)
        ),
    ),
    (
        Cause.KEEPALIVE_RACE,
        lambda f: (
            f.reused
            and (
                f.server_fin_before_request
                or f.server_rst_before_request
                # an RST this soon: closed with our request unread (a FIN just before it
                # is a shutdown(), a FIN long before is `server_fin_before_request`)
                or (f.server_rst_at_request and f.answer_bytes == 0)
            )
        ),
    ),
    (Cause.CLOSED_BEFORE_REQUEST, lambda f: f.server_fin_before_request),
    (
        Cause.RST_UNREAD,
        lambda f: (
            f.server_rst
            and not f.server_fin
            and (f.reused or f.server_bytes_before > 0 or f.answer_bytes > 0)
        ),
    ),
    (Cause.NEVER_ACCEPTED, lambda f: f.server_rst and not f.server_fin),
    (Cause.CLOSED_UNANSWERED, lambda f: f.server_fin_after_request and f.answer_bytes == 0),
    (
        Cause.NO_ANSWER,
        lambda f: f.outcome is Outcome.TIMED_OUT and not f.server_fin and not f.server_rst,
    ),
    (Cause.OTHER, lambda f: True),
)


def cause_of(facts: RequestFacts) -> Cause:
    """The first rule of RULES that holds."""
    for cause, test in RULES:
        if test(facts):
            return cause
    raise AssertionError("the last rule always matches")  # pragma: no cover
