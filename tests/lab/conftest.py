from __future__ import annotations

import pytest

from tcpclose.lab.runner import LabRun, run_many
from tcpclose.lab.scenarios import CATALOG


@pytest.fixture(scope="session")
def catalog_runs() -> dict[str, LabRun]:
    """The whole catalog, run once for real (captured on lo) and shared by the lab tests."""
    return {run.scenario.name: run for run in run_many(CATALOG, jobs=6)}


@pytest.fixture(scope="session")
def catalog_reruns() -> dict[str, LabRun]:
    """A second, independent run of the catalog, to show the verdicts are deterministic."""
    return {run.scenario.name: run for run in run_many(CATALOG, jobs=6)}
