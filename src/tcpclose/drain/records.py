"""One record per request the load generator attempted, and the run's accounting (pure).

Every request ends in exactly one `Outcome`. The accounting identity

    attempted = ok + sum(lost by outcome) + sum(expected by outcome)

is checked in code (`Tally.check`): nothing is unaccounted. `expected` holds only one thing:
connections refused after a *stop* signal (the server said it was going away; refusing new
connections is what it should do, a load balancer routes them elsewhere). Under a reload every
refusal is a loss.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class Outcome(enum.StrEnum):
    """How one request ended, as the client saw it."""

    #: a complete answer with a non-error status
    OK = "ok"
    #: a complete answer with an error status (HTTP 5xx, a Redis -ERR)
    ERROR_STATUS = "error-status"
    #: connect() failed with ECONNREFUSED: the SYN was answered by RST
    REFUSED = "refused"
    #: ECONNRESET before any byte of the answer
    RESET_BEFORE_ANSWER = "reset-before-answer"
    #: ECONNRESET after part of the answer
    RESET_MID_ANSWER = "reset-mid-answer"
    #: the server's FIN (read returned 0) before any byte of the answer
    CLOSED_WITHOUT_ANSWER = "closed-without-answer"
    #: the server's FIN after part of the answer
    CLOSED_MID_ANSWER = "closed-mid-answer"
    #: no complete answer within --timeout
    TIMED_OUT = "timed-out"


LOSSES: tuple[Outcome, ...] = tuple(o for o in Outcome if o is not Outcome.OK)


class ClientKind(enum.StrEnum):
    """The three kinds of client drain runs side by side."""

    #: a new connection per request (`Connection: close`)
    NEW = "new"
    #: keep-alive, reusing its idle connection without looking (as many pools do)
    REUSE = "reuse"
    #: keep-alive, checking first that the idle connection was not closed (as urllib3 does)
    CHECK = "check"


@dataclass(slots=True)
class RequestRecord:
    """One attempted request. Times are wall-clock seconds (the capture's clock)."""

    index: int
    client: ClientKind
    worker: int
    start: float
    end: float = 0.0
    connection: int = -1  #: connection number in this run (-1: none was made)
    local_port: int = 0  #: the client's port (0: unknown, e.g. refused)
    reused: bool = False  #: False: the first request on its connection
    outcome: Outcome = Outcome.TIMED_OUT
    status: int | None = None  #: HTTP status, when an answer began
    answer_bytes: int = 0
    error: str | None = None  #: errno name, or "timeout"
    expected: bool = False  #: refused after a stop signal (see the module docstring)
    #: the cause from the packets (`tcpclose.drain.causes.Cause`), for lost requests
    cause: str | None = None

    @property
    def lost(self) -> bool:
        return self.outcome is not Outcome.OK and not self.expected

    def to_json(self, t0: float) -> dict[str, Any]:
        return {
            "index": self.index,
            "client": str(self.client),
            "start": round(self.start - t0, 6),
            "duration": round(self.end - self.start, 6),
            "connection": self.connection,
            "local_port": self.local_port,
            "reused": self.reused,
            "outcome": str(self.outcome),
            "status": self.status,
            "answer_bytes": self.answer_bytes,
            "error": self.error,
            "expected": self.expected,
            "cause": self.cause,
        }


class AccountingError(AssertionError):
    """attempted != ok + lost + expected: a bug in drain, never the server's fault."""


@dataclass
class Tally:
    """Counts over a list of records, by outcome, by cause and by client kind."""

    attempted: int = 0
    ok: int = 0
    lost: Counter[str] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)
    causes: Counter[str] = field(default_factory=Counter)
    by_client: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, records: list[RequestRecord]) -> Tally:
        tally = cls()
        for kind in ClientKind:
            tally.by_client[str(kind)] = {"attempted": 0, "ok": 0, "lost": 0, "expected": 0}
        for r in records:
            tally.attempted += 1
            row = tally.by_client[str(r.client)]
            row["attempted"] += 1
            if r.outcome is Outcome.OK:
                tally.ok += 1
                row["ok"] += 1
            elif r.expected:
                tally.expected[str(r.outcome)] += 1
                row["expected"] += 1
            else:
                tally.lost[str(r.outcome)] += 1
                tally.causes[r.cause or "unexplained"] += 1
                row["lost"] += 1
        tally.check()
        return tally

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    def check(self) -> None:
        """The accounting identity, asserted."""
        total = self.ok + self.lost_total + sum(self.expected.values())
        if total != self.attempted:
            raise AccountingError(
                f"attempted {self.attempted} != ok {self.ok} + lost {self.lost_total} "
                f"+ expected {sum(self.expected.values())}"
            )
        if sum(self.causes.values()) != self.lost_total:
            raise AccountingError("a lost request has no cause")
        for kind, row in self.by_client.items():
            if row["attempted"] != row["ok"] + row["lost"] + row["expected"]:
                raise AccountingError(f"client kind {kind}: the counts do not add up")
