"""`tcpclose claims`, run in-process."""

from __future__ import annotations

import json

from tcpclose.claims import CLAIMS, Verdict
from tcpclose.claims.model import ClaimResult
from tcpclose.cli import main
from tcpclose.commands.claims import status_of
from tcpclose.model.jsonshape import SCHEMA_VERSION


def _row(verdict: Verdict) -> ClaimResult:
    return ClaimResult("x", "words", "src", ("close",), verdict, "ev", "", "Linux 6", "af_packet")


def test_status_is_ok_whatever_the_verdicts_unless_unchecked():
    assert status_of([_row(Verdict.HOLDS), _row(Verdict.DIFFERS), _row(Verdict.DEPENDS)]) == 0
    assert status_of([_row(Verdict.HOLDS), _row(Verdict.UNCHECKED)]) == 1


def test_claims_json(capsys):
    status = main(["claims", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [c["id"] for c in out["claims"]] == [c.id for c in CLAIMS]
    assert out["system"].startswith("Linux ")
    assert out["schema_version"] == SCHEMA_VERSION


def test_claims_rejects_bad_options(capsys):
    assert main(["claims", "--jobs", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "tcpclose: error: argument --jobs: must be a whole number from 1 to 64\n"
