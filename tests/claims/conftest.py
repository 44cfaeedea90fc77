"""Real runs of every scenario the claims read, once per test session."""

from __future__ import annotations

import pytest

from tcpclose.claims import needed_scenarios
from tcpclose.lab.runner import LabRun, run_many
from tcpclose.lab.scenarios import BY_NAME


@pytest.fixture(scope="session")
def claim_runs() -> dict[str, LabRun]:
    runs = run_many([BY_NAME[n] for n in needed_scenarios()], jobs=8)
    return {run.scenario.name: run for run in runs}
