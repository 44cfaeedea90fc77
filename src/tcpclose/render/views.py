"""What the renderers need from a run and a claim result, as structural types.

Renderers sit below the feature libraries (lab, claims, probe...), so they cannot import
`LabRun` or `ClaimResult`; anything with these attributes renders. mypy checks that the lab's
and the claims' types fit (see tests/render/test_views.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tcpclose.facts import RunFacts
from tcpclose.model.timeline import Timeline


class FrameView(Protocol):
    @property
    def t_ns(self) -> int: ...
    @property
    def data(self) -> bytes: ...


class CaptureView(Protocol):
    """How the packets were captured (the lab's `CaptureResult`)."""

    @property
    def method(self) -> str: ...
    @property
    def note(self) -> str | None: ...
    @property
    def dropped(self) -> int: ...
    @property
    def packets(self) -> Sequence[object]: ...
    @property
    def frames(self) -> Sequence[FrameView]: ...


class ScenarioView(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def question(self) -> str: ...


class OutcomeView(Protocol):
    """One program's transcript and how it ended."""

    @property
    def role(self) -> str: ...
    @property
    def ending(self) -> str: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


class VerdictView(Protocol):
    @property
    def conclusion(self) -> str: ...
    @property
    def facts(self) -> RunFacts | None: ...


class RunView(Protocol):
    """One lab run, as the report draws it."""

    @property
    def scenario(self) -> ScenarioView: ...
    @property
    def speed(self) -> float: ...
    @property
    def timeline(self) -> Timeline: ...
    @property
    def client(self) -> OutcomeView: ...
    @property
    def server(self) -> OutcomeView: ...
    @property
    def capture(self) -> CaptureView: ...
    @property
    def verdict(self) -> VerdictView: ...


class VerdictValue(Protocol):
    @property
    def value(self) -> str: ...


class ClaimView(Protocol):
    """One row of the claims table."""

    @property
    def id(self) -> str: ...
    @property
    def claim(self) -> str: ...
    @property
    def scenarios(self) -> tuple[str, ...]: ...
    @property
    def verdict(self) -> VerdictValue: ...
    @property
    def evidence(self) -> str: ...
    @property
    def explanation(self) -> str: ...
    @property
    def system(self) -> str: ...


#: the claim verdicts in the order the report counts them (tests pin it to claims.Verdict)
VERDICT_ORDER = ("holds", "differs", "depends", "unchecked")
