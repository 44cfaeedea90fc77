"""Claims as data: what the lesson says, which scenarios test it, and the verdict they gave.

A `Claim` pairs the lesson's words with a pure `judge` over lab runs. The judge reads facts only
(packets, call results and errnos, how each program ended) and returns a `Judgement`; nothing
in a claim knows the answer in advance. `ClaimResult` is one row of `tcpclose claims`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from tcpclose.lab.runner import LabRun


class Verdict(enum.StrEnum):
    """What the running kernel said about one claim."""

    #: the kernel did what the lesson says
    HOLDS = "holds"
    #: the kernel did something else; the explanation says what
    DIFFERS = "differs"
    #: the outcome depends on the system, the timing or the signal disposition; the runs show
    #: which case this machine was in
    DEPENDS = "depends"
    #: the runs lacked the evidence (no packets captured, a call missing): nothing was decided
    UNCHECKED = "unchecked"


class Judgement(NamedTuple):
    """A judge's answer: the verdict, the deciding facts in one line, and (when the claim does
    not simply hold) what the kernel did instead."""

    verdict: Verdict
    evidence: str
    explanation: str = ""


class MissingEvidence(Exception):
    """A judge needed a fact the runs do not hold (for example: no packets were captured)."""


Runs = Mapping[str, "LabRun"]
Judge = Callable[[Runs], Judgement]


@dataclass(frozen=True)
class Claim:
    """One claim of the lesson and how to check it."""

    id: str
    words: str  #: the lesson's claim in one line
    source: str  #: where the lesson says it, e.g. "close(fd)" or "readers' question 1"
    scenarios: tuple[str, ...]  #: the lab scenarios whose runs decide it
    judge: Judge


@dataclass(frozen=True)
class ClaimResult:
    """One row: the claim, the verdict this machine gave, and the facts behind it."""

    id: str
    claim: str
    source: str
    scenarios: tuple[str, ...]
    verdict: Verdict
    evidence: str
    explanation: str
    system: str  #: e.g. "Linux 6.8.0-45-generic"
    capture: str  #: capture method(s) of the runs, e.g. "af_packet"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scenarios"] = list(self.scenarios)
        data["verdict"] = self.verdict.value
        return data
