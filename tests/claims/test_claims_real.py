"""Every claim judged on real runs of this kernel."""

from __future__ import annotations

import platform

from tcpclose.claims import CLAIMS, Verdict, judge_claims, needed_scenarios
from tcpclose.lab.scenarios import BY_NAME


def test_every_claim_names_scenarios_of_the_catalog():
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)
    for claim in CLAIMS:
        assert claim.scenarios and all(name in BY_NAME for name in claim.scenarios)
    assert set(needed_scenarios()) == {n for c in CLAIMS for n in c.scenarios}


def test_every_claim_gets_a_verdict_from_real_runs(claim_runs):
    rows = judge_claims(list(claim_runs.values()))
    assert [r.id for r in rows] == [c.id for c in CLAIMS]
    for row in rows:
        assert row.verdict is not Verdict.UNCHECKED, (row.id, row.evidence)
        assert row.system == f"{platform.system()} {platform.release()}"
        assert row.capture != "none"
        # the evidence quotes the runs it came from
        assert any(name in row.evidence for name in row.scenarios) or row.id in (
            "sigpipe-dispositions",
            "sigint-typo",
            "rst-write-sigpipe",
            "who-closes",
        ), row.evidence
        if row.verdict is not Verdict.HOLDS:
            assert row.explanation, row.id


def test_the_evidence_carries_the_measured_times(claim_runs):
    rows = {r.id: r for r in judge_claims(list(claim_runs.values()))}
    fin = next(s for s in claim_runs["fork-close"].timeline.segments if s.packet.fin)
    assert f"FIN at {fin.t * 1000:.1f} ms" in rows["close-refcount"].evidence


def test_claims_json_round_trip(claim_runs):
    import json

    rows = judge_claims(list(claim_runs.values()))
    data = json.loads(json.dumps([r.to_json() for r in rows]))
    assert {d["verdict"] for d in data} <= {v.value for v in Verdict}
    assert all(isinstance(d["scenarios"], list) for d in data)


def test_the_text_output_has_one_row_per_claim_then_the_explanations(claim_runs):
    from rich.console import Console

    from tcpclose.claims.present import claims_table, explanations, heading

    rows = judge_claims(list(claim_runs.values()))
    console = Console(record=True, width=200, color_system=None)
    console.print(heading(rows), claims_table(rows), explanations(rows))
    text = console.export_text()
    assert platform.release() in text
    for row in rows:
        assert row.id in text
    for row in rows:
        if row.verdict is Verdict.DIFFERS:
            assert f"{row.id} (differs): {row.explanation[:40]}" in text
