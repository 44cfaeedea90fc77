"""The docs generated from the code's tables (`python -m tcpclose.docs`) match the code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tcpclose import docs
from tcpclose.claims.catalog import CLAIMS
from tcpclose.classify import Termination

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_generated_doc_matches_the_code() -> None:
    stale = docs.differing(DOCS)
    assert stale == [], f"run `python -m tcpclose.docs`: {[p.name for p in stale]} differ"


def test_a_hand_edit_or_a_table_change_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy)
    claims = copy / "claims.md"
    claims.write_text(claims.read_text().replace("| `close-refcount` |", "| `close-recount` |"))
    (copy / "terminations.md").unlink()
    assert sorted(p.name for p in docs.differing(copy)) == ["claims.md", "terminations.md"]
    assert docs.main(["--check", "--docs", str(copy)]) == 1
    assert docs.main(["--docs", str(copy)]) == 0
    assert docs.differing(copy) == []
    # a claim added to the table changes the generated section
    assert docs.claims_table(CLAIMS[:-1]) != docs.claims_table(CLAIMS)


def test_the_pages_name_every_row_of_their_tables() -> None:
    page = docs.terminations_page()
    assert all(f"| `{t.value}` |" in page for t in Termination)
    section = docs.claims_table()
    assert all(f"| `{c.id}` |" in section for c in CLAIMS)


def test_a_page_without_its_markers_is_an_error(tmp_path: Path, capsys) -> None:
    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy)
    (copy / "claims.md").write_text("# claims\n")
    assert docs.main(["--check", "--docs", str(copy)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tcpclose: error: no generated section") and err.count("\n") == 1
    with pytest.raises(ValueError):
        docs.replace_section("no markers", "claims", "x")
