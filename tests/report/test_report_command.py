"""`tcpclose report`, run in-process."""

from __future__ import annotations

import json

from tcpclose.claims import CLAIMS
from tcpclose.cli import main


def test_report_writes_the_file_and_prints_its_path(tmp_path, capsys):
    out = tmp_path / "r.html"
    status = main(["report", "close-late", "--no-claims", "-o", str(out)])
    assert status == 0
    assert capsys.readouterr().out == f"report: {out}\n"
    text = out.read_text(encoding="utf-8")
    assert 'id="scenario-close-late"' in text and 'id="claims"' not in text


def test_a_bad_output_path_is_one_line_and_status_5_before_running(tmp_path, capsys):
    status = main(["report", "close", "-o", str(tmp_path / "missing" / "r.html")])
    err = capsys.readouterr().err
    assert status == 5
    assert err.count("\n") == 1 and err.startswith("tcpclose: error: cannot write ")


def test_a_directory_as_output_is_refused(tmp_path, capsys):
    assert main(["report", "close", "-o", str(tmp_path)]) == 5
    assert "is a directory" in capsys.readouterr().err


def test_unknown_scenario_is_a_usage_error(capsys):
    assert main(["report", "no-such-scenario"]) == 2


def test_json_names_the_report_and_carries_runs_and_claims(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "abort", "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["report"] == str(out) and out.exists()
    assert [run["scenario"] for run in doc["runs"]] == ["abort"]
    assert doc["runs"][0]["verdicts"]["termination"] == "abort"
    verdicts = {claim["verdict"] for claim in doc["claims"]}
    assert len(doc["claims"]) == len(CLAIMS) and verdicts <= {"holds", "differs", "depends"}
