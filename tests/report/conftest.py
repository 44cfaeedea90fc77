"""Real runs for the report tests: the demo's two experiments and the claims' scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpclose.claims import ClaimResult, judge_claims, needed_scenarios
from tcpclose.lab.runner import LabRun, run_many
from tcpclose.lab.scenarios import BY_NAME
from tcpclose.render.html import write_report


@pytest.fixture(scope="session")
def real_runs() -> dict[str, LabRun]:
    runs = run_many([BY_NAME[n] for n in needed_scenarios()], jobs=8)
    return {run.scenario.name: run for run in runs}


@pytest.fixture(scope="session")
def real_claims(real_runs) -> list[ClaimResult]:
    return judge_claims(list(real_runs.values()))


@pytest.fixture(scope="session")
def demo_report(real_runs, real_claims, tmp_path_factory) -> Path:
    """The report the demo writes: its two experiments and the claims table."""
    path = tmp_path_factory.mktemp("report") / "tcpclose-report.html"
    runs = [real_runs["close"], real_runs["shutdown"]]
    return write_report(runs, path, claims=real_claims, title="tcpclose demo")
