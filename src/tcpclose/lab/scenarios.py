"""The catalog: every scenario the lab runs, as data.

Lesson scenarios run the project's own `graceserver` and `graceclient` as separate processes
and type a script into the client. A step is one of:

    ("type", "data1")                   write a line to the client's standard input
    ("await", "server", "received", n)  wait until the server has logged its n-th `received`
    ("await", "client", "sent", n)      wait until the client has logged its n-th `sent`
    ("await", "client", "received", n)  wait until the client has printed its n-th answer

Kernel scenarios run one purpose-built actor (`tcpclose.lab.actors`) that plays both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tcpclose.errors import UsageError

Step = tuple[str, ...] | tuple[str, str, str, int]

#: data1 and data2, each read by the server as its own message
_TWO_MESSAGES: tuple[Step, ...] = (
    ("type", "data1"),
    ("await", "server", "received", 1),
    ("type", "data2"),
    ("await", "client", "sent", 2),
)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str  #: one line for `tcpclose lab --list`
    question: str  #: what the lesson says or asks that this scenario puts to the kernel
    kind: Literal["lesson", "actor"]
    script: tuple[Step, ...] = ()
    sigpipe: str = "ignore"  #: graceserver --sigpipe for lesson scenarios


def _lesson(
    name: str, summary: str, question: str, script: tuple[Step, ...], sigpipe: str = "default"
) -> Scenario:
    return Scenario(name, summary, question, "lesson", script, sigpipe)


def _actor(name: str, summary: str, question: str) -> Scenario:
    return Scenario(name, summary, question, "actor")


CATALOG: tuple[Scenario, ...] = (
    _lesson(
        "close",
        "data1, data2, then close(): the lesson's first experiment",
        "close() closes both directions: are the answers lost, does the server die?",
        (*_TWO_MESSAGES, ("type", "close")),
    ),
    _lesson(
        "shutdown",
        "data1, data2, then shutdown(SHUT_WR): the lesson's second experiment",
        "a half-close lets both answers come back before the server's FIN",
        (*_TWO_MESSAGES, ("type", "shutdown")),
    ),
    _lesson(
        "close-late",
        "close() typed after Hi, data1 arrived (the readers' question)",
        "why was Hi, data1 still shown with close? because it arrived first",
        (*_TWO_MESSAGES, ("await", "client", "received", 1), ("type", "close")),
    ),
    _lesson(
        "sigpipe-ignore",
        "the close experiment, server with SIGPIPE ignored",
        "SIG_IGN: the failing write returns EPIPE and the program decides",
        (*_TWO_MESSAGES, ("type", "close")),
        sigpipe="ignore",
    ),
    _lesson(
        "sigpipe-default",
        "the close experiment, server with SIGPIPE's default action",
        "default action: the write onto a reset connection kills the server",
        (*_TWO_MESSAGES, ("type", "close")),
        sigpipe="default",
    ),
    _lesson(
        "sigpipe-handler",
        "the close experiment, server with a SIGPIPE handler",
        "a handler runs, then the write returns EPIPE",
        (*_TWO_MESSAGES, ("type", "close")),
        sigpipe="handler",
    ),
    _lesson(
        "abort",
        "data1, then abort: SO_LINGER {on, 0} and close(), RST instead of FIN",
        "an abortive close resets the connection at once; the server's write fails",
        (("type", "data1"), ("await", "server", "received", 1), ("type", "abort")),
    ),
    _actor(
        "exit-without-close",
        "a process exits without close(): the kernel sends FIN",
        "the server ends with exit(0), yet a FIN is sent: why? (first thought question)",
    ),
    _actor(
        "unread-data-close",
        "close() with unread data in the receive buffer",
        "close() sends what is buffered, then FIN (but what about unread input?)",
    ),
    _actor(
        "fork-close",
        "after fork(), close() in one process sends nothing",
        "close() only decrements the reference count; no FIN while another holds it",
    ),
    _actor(
        "fork-shutdown",
        "after fork(), shutdown(SHUT_WR) in one process sends FIN",
        "shutdown() ignores the reference count and always sends FIN",
    ),
    _actor(
        "shut-rd",
        "shutdown(SHUT_RD), then the peer sends",
        "SHUT_RD: reads return EOF, buffered and new data discarded, new data ACKed",
    ),
    _actor(
        "shut-wr-write",
        "writing after shutdown(SHUT_WR)",
        "after SHUT_WR writing is an error (and SIGPIPE); reading still works",
    ),
    _actor(
        "shut-rdwr",
        "shutdown(SHUT_RDWR) in a forked child vs close()",
        "SHUT_RDWR ignores the reference count and makes the socket unusable for all",
    ),
    _actor(
        "write-after-rst",
        "the first writes after the peer's RST",
        "writing onto a reset connection raises SIGPIPE",
    ),
    _actor(
        "read-after-rst",
        "the first reads after the peer's RST",
        "reading a reset connection reports the reset, once",
    ),
    _actor(
        "exit-unread",
        "a process exits with unread data in its receive buffer",
        "the kernel closes an exiting process's sockets: FIN, or RST when input was unread?",
    ),
    _actor(
        "read-after-rst-queued",
        "reading after an RST, with the peer's data still queued",
        "after the peer's RST, does read() return the data already queued, or ECONNRESET?",
    ),
    _actor(
        "read-after-rst-close-wait",
        "reading after an RST in CLOSE_WAIT (the peer half-closed first)",
        "an RST after the peer's FIN: is the reset ever reported to read()?",
    ),
    _actor(
        "close-flushes",
        "close() right after a 256 KiB write",
        "close() still sends what is in the send buffer, then FIN",
    ),
)

BY_NAME: dict[str, Scenario] = {s.name: s for s in CATALOG}


def select_scenarios(names: list[str]) -> tuple[Scenario, ...]:
    """The scenarios named, in the order given, once each; every scenario when none is named.

    An unknown name is a usage error naming it."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise UsageError(f"unknown scenario {unknown[0]!r} (see tcpclose lab --list)")
    return tuple(BY_NAME[n] for n in dict.fromkeys(names)) if names else CATALOG
