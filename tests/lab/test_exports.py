"""What the lab writes for other tools: pcap files that tshark and tcpclose analyze read back
(classified as the lab classified the live capture), Mermaid, and the --json contract."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tcpclose.analyze import read_connections
from tcpclose.capture.pcapfile import write_pcap
from tcpclose.cli import main
from tcpclose.lab.runner import LabRun
from tcpclose.lab.scenarios import CATALOG
from tcpclose.model.jsonshape import EVENT_FIELDS, PACKET_FIELDS, SCHEMA_VERSION


def test_every_scenario_exported_as_pcap_is_classified_as_live(
    catalog_runs: dict[str, LabRun], tmp_path: Path
) -> None:
    for name, run in catalog_runs.items():
        path = tmp_path / f"{name}.pcap"
        assert write_pcap(path, run.capture.frames) == len(run.capture.packets)
        verdicts = list(read_connections(path))
        assert len(verdicts) == 1, name
        offline = verdicts[0]
        live = run.verdict
        assert (str(offline.termination), offline.conn_state, offline.history) == (
            live.termination,
            live.conn_state,
            live.history,
        ), name
        assert offline.reason == live.termination_reason, name


def test_lesson_experiments_terminate_as_the_lesson_says(
    catalog_runs: dict[str, LabRun],
) -> None:
    terminations = {name: run.verdict.termination for name, run in catalog_runs.items()}
    assert terminations["close"] == "rst-after-close"
    assert terminations["shutdown"] == "half-close"
    assert terminations["abort"] == "abort"
    # close() with unread data looks on the wire like SO_LINGER {1, 0}: an abort naming both
    # (rst-unread needs the wire's proof, a closed receive window)
    assert terminations["unread-data-close"] == "abort"
    assert "unread" in (catalog_runs["unread-data-close"].verdict.termination_reason or "")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_opens_the_pcap(catalog_runs: dict[str, LabRun], tmp_path: Path) -> None:
    run = catalog_runs["close"]
    path = tmp_path / "close.pcap"
    write_pcap(path, run.capture.frames)
    done = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "tcp.flags.str", "-e", "tcp.len"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert len(rows) == len(run.capture.packets)
    assert any("R" in row.split("\t")[0] for row in rows)


def test_list_names_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "--list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == [s.name for s in CATALOG]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["lab", "nosuch"], "unknown scenario 'nosuch'"),
        (["lab", "--speed", "0"], "speed must be between"),
        (["lab", "--speed", "x"], "is not a number"),
        (["lab", "--jobs", "0"], "argument --jobs: must be a whole number from 1 to 64"),
        (["lab", "--realtime", "--speed", "1"], "not allowed with"),
    ],
)
def test_bad_arguments_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcpclose: error: ") and message in err
    assert err.count("\n") == 1


def test_json_mermaid_and_pcap_from_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mermaid, pcap = tmp_path / "run.mmd", tmp_path / "run.pcap"
    argv = ["lab", "shutdown", "--json", "--mermaid", str(mermaid), "--pcap", str(pcap)]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    (run,) = doc["runs"]
    assert run["scenario"] == "shutdown"
    # the one JSON shape: versioned, every packet and event with the documented keys
    assert run["schema_version"] == SCHEMA_VERSION
    assert all(list(p) == [k for k, _ in PACKET_FIELDS] for p in run["packets"])
    assert all(list(e)[:4] == [k for k, _ in EVENT_FIELDS] for e in run["events"])
    assert run["client"]["received"] == ["Hi, data1", "Hi, data2"]
    assert run["server"]["exit_status"] == 1 and run["server"]["signal"] is None
    flags = [p["flags"] for p in run["packets"]]
    assert flags[:2] == ["S", "SA"] and any("F" in f for f in flags)
    assert [p["data"] for p in run["packets"] if p["len"]] == [
        "data1",
        "data2",
        "Hi, data1",
        "Hi, data2",
    ]
    assert all(p["from"] in ("client", "server") for p in run["packets"])
    assert run["verdicts"]["answers_delivered"] == ["Hi, data1", "Hi, data2"]
    assert run["verdicts"]["termination"] == "half-close"
    assert mermaid.read_text().startswith("sequenceDiagram\n")
    assert "C->>S: FIN" in mermaid.read_text()
    assert [str(v.termination) for v in read_connections(pcap)] == ["half-close"]


def test_several_scenarios_get_one_file_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "read-after-rst", "fork-close", "--pcap", str(tmp_path / "x.pcap")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "x-fork-close.pcap",
        "x-read-after-rst.pcap",
    ]
    out = capsys.readouterr().out
    assert "── read-after-rst" in out and "── fork-close" in out
    assert "pcap: " in out


def test_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing-dir" / "x.mmd"
    assert main(["lab", "abort", "--mermaid", str(target)]) == 5
    err = capsys.readouterr().err
    assert err.startswith("tcpclose: error: cannot write") and err.count("\n") == 1


def test_an_unwritable_output_is_refused_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.monotonic()
    assert main(["lab", "close", "--realtime", "--pcap", str(tmp_path / "no" / "x.pcap")]) == 5
    assert time.monotonic() - start < 5  # the lesson's timings would take over 10 s
    assert "cannot write" in capsys.readouterr().err


def test_paths_are_printed_verbatim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """File names are not rich markup: `[b]` and `[red]` stay in the name."""
    mermaid, pcap = tmp_path / "x[b].mmd", tmp_path / "[red]p.pcap"
    assert main(["lab", "abort", "--mermaid", str(mermaid), "--pcap", str(pcap)]) == 0
    out = capsys.readouterr().out
    assert f"mermaid: {mermaid}\n" in out and f"pcap: {pcap} (" in out
    assert mermaid.exists() and pcap.exists()
