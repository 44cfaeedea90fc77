"""Checking the claims: run the scenarios they need (the one impure step), then judge."""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping, Sequence

from tcpclose.claims.catalog import CLAIMS
from tcpclose.claims.model import Claim, ClaimResult, Judgement, MissingEvidence, Verdict
from tcpclose.lab.runner import DEFAULT_SPEED, LabRun, run_many
from tcpclose.lab.scenarios import BY_NAME


def system_name() -> str:
    """The system the runs happened on: `Linux 6.8.0-45-generic`."""
    return f"{platform.system()} {platform.release()}"


def needed_scenarios(claims: Iterable[Claim] = CLAIMS) -> tuple[str, ...]:
    """Every scenario some claim reads, in catalog order."""
    names = {name for claim in claims for name in claim.scenarios}
    return tuple(name for name in BY_NAME if name in names)


def evaluate(claim: Claim, runs: Mapping[str, LabRun], system: str) -> ClaimResult:
    """Judge one claim on the runs of its own scenarios (pure). Missing evidence makes the
    verdict `unchecked`, with the reason as evidence."""
    own = {name: runs[name] for name in claim.scenarios if name in runs}
    try:
        judgement = claim.judge(own)
    except MissingEvidence as exc:
        judgement = Judgement(Verdict.UNCHECKED, str(exc))
    methods = sorted({run.capture.method for run in own.values()})
    return ClaimResult(
        id=claim.id,
        claim=claim.words,
        source=claim.source,
        scenarios=claim.scenarios,
        verdict=judgement.verdict,
        evidence=judgement.evidence,
        explanation=judgement.explanation,
        system=system,
        capture=", ".join(methods) or "none",
    )


def judge_claims(
    runs: Sequence[LabRun], claims: Sequence[Claim] = CLAIMS, *, system: str | None = None
) -> list[ClaimResult]:
    """Judge every claim on the given runs (pure but for reading the kernel release)."""
    by_name = {run.scenario.name: run for run in runs}
    name = system or system_name()
    return [evaluate(claim, by_name, name) for claim in claims]


def check_claims(
    runs: Sequence[LabRun] | None = None,
    *,
    speed: float = DEFAULT_SPEED,
    claims: Sequence[Claim] = CLAIMS,
    jobs: int = 8,
) -> list[ClaimResult]:
    """Check the lesson's claims on this kernel. Runs the scenarios the claims need that are
    not among `runs` (all of them when `runs` is None), then judges every claim."""
    given = {run.scenario.name: run for run in runs or ()}
    missing = [BY_NAME[n] for n in needed_scenarios(claims) if n not in given]
    fresh = run_many(missing, speed=speed, jobs=jobs) if missing else []
    return judge_claims([*given.values(), *fresh], claims)
