"""The lesson's C programs (tests/interop), traced through the close and shutdown experiments:
the calls, the packets and the verdict must be the lab's for the same scenario.

The lab runs the project's Python programs at --speed 0.1 (answers after 0.5 s, 0.6 s wait
after close); the C programs get the same timings through their environment variables, and
are typed the same script: data1, wait until the server read it, data2, wait until the client
sent it, then close or shutdown. Three ways: the client traced (command mode), the server traced
(command mode), both traced by attaching to two PIDs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lesson.driver import Proc, Procs
from tcpclose.lab.jsonout import run_json
from tcpclose.lab.runner import LabRun, run_scenario
from tcpclose.lab.scenarios import BY_NAME

from .conftest import Traced, c_env, calls, only_run, start_trace, wire

pytestmark = pytest.mark.slow

DELAY_MS = "500"
CLOSE_WAIT_MS = "600"
EXPERIMENTS = ["close", "shutdown"]
#: facts that do not depend on which side was traced
WIRE_FACTS = ("termination", "conn_state", "fins", "rsts")

_LAB: dict[str, LabRun] = {}


def lab(name: str) -> dict[str, Any]:
    """The lab's own run of the scenario (once per session), as its JSON."""
    if name not in _LAB:
        _LAB[name] = run_scenario(BY_NAME[name])
    return dict(json.loads(json.dumps(run_json(_LAB[name]))))


def server_env(c_programs: Path) -> dict[str, str]:
    return c_env(
        c_programs,
        GRACE_PORT="0",
        GRACE_BIND="127.0.0.1",
        GRACE_DELAY_MS=DELAY_MS,
        GRACE_SIGPIPE="default",
    )


def client_env(c_programs: Path, port: int) -> dict[str, str]:
    return c_env(c_programs, GRACE_PORT=str(port), GRACE_CLOSE_WAIT_MS=CLOSE_WAIT_MS)


def port_of(proc: Proc) -> int:
    proc.wait_output(b"listening on ", stream="stderr")
    found = re.search(rb"listening on 127\.0\.0\.1:(\d+)\n", proc.stderr)
    assert found, proc.describe()
    return int(found.group(1))


def type_script(client_in: Proc, client_out: Proc, server_out: Proc, ending: str) -> None:
    """The lab's script for close and shutdown, typed into the client's standard input."""
    client_in.write(b"data1\n")
    server_out.wait_output(b"received 5 bytes: data1\n")
    client_in.write(b"data2\n")
    client_out.wait_output(b"send bytes: 5", count=2)
    client_in.write(ending.encode() + b"\n")


def without_errors(events: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [e for e in events if e[0] != "error"]


def check_traced_side(trace: dict[str, Any], expected: dict[str, Any], role: str) -> None:
    """The side's calls are the lab's, in order; a failed write the lab's Python server cannot
    report (SIGPIPE kills it inside the call) is there too, right before its death."""
    assert without_errors(calls(trace, role)) == without_errors(calls(expected, role))
    for error in (e for e in trace["events"] if e["role"] == role and e["event"] == "error"):
        assert error["errno"] == "EPIPE"
        assert trace["verdicts"]["server_end"] == "killed by SIGPIPE"


def check_wire(trace: dict[str, Any], expected: dict[str, Any]) -> None:
    assert wire(trace) == wire(expected)
    for fact in WIRE_FACTS:
        assert trace["verdicts"][fact] == expected["verdicts"][fact], fact


def mark(verdicts: dict[str, Any], which: str) -> tuple[Any, ...] | None:
    m = verdicts[which]
    return None if m is None else (m["by"], m["after"], m["in_reply_to"])


@pytest.mark.parametrize("ending", EXPERIMENTS)
def test_client_traced(ending: str, procs: Procs, tmp_path: Path, c_programs: Path) -> None:
    server = procs.start(["stdbuf", "-oL", "graceserver"], env=server_env(c_programs))
    port = port_of(server)
    traced = start_trace(
        procs,
        tmp_path,
        "--",
        "stdbuf",
        "-oL",
        "graceclient",
        "127.0.0.1",
        env=client_env(c_programs, port),
    )
    type_script(traced.proc, traced.proc, server, ending)
    status, doc = traced.result()
    expected = lab(ending)
    run = only_run(doc)
    assert status == expected["client"]["exit_status"]  # the command's status, passed through
    assert run["traced"] == ["client"]
    check_wire(run, expected)
    check_traced_side(run, expected, "client")
    v, e = run["verdicts"], expected["verdicts"]
    assert (v["answers_delivered"], v["answers_lost"]) == (
        e["answers_delivered"],
        e["answers_lost"],
    )
    assert mark(v, "first_fin") == mark(e, "first_fin")
    assert v["client_end"] == e["client_end"]
    assert v["server_end"] == "not traced (packets only)"
    # the lab's sentence, up to what only the server's calls could tell; the server's FIN
    # is said as the wire shows it
    known, _sep, _wire = v["conclusion"].partition("; the wire shows the server (not traced)")
    assert e["conclusion"].startswith(known)
    assert "no packets captured" not in v["conclusion"]
    assert "the server read" not in v["conclusion"] and "server's next" not in v["conclusion"]
    if "then the server read EOF, exited, and its kernel sent FIN" in e["conclusion"]:
        assert "; the wire shows the server (not traced) sent FIN at " in v["conclusion"]


@pytest.mark.parametrize("ending", EXPERIMENTS)
def test_server_traced(ending: str, procs: Procs, tmp_path: Path, c_programs: Path) -> None:
    traced = start_trace(
        procs, tmp_path, "--", "stdbuf", "-oL", "graceserver", env=server_env(c_programs)
    )
    port = port_of(traced.proc)  # the server's stderr passes through tcpclose's
    client = procs.start(
        ["stdbuf", "-oL", "graceclient", "127.0.0.1"], env=client_env(c_programs, port)
    )
    type_script(client, client, traced.proc, ending)
    status, doc = traced.result()
    expected = lab(ending)
    run = only_run(doc)
    e = expected["verdicts"]
    assert status == (1 if ending == "shutdown" else 128 + 13)  # exit(1), or killed by SIGPIPE
    assert run["traced"] == ["server"]
    check_wire(run, expected)
    check_traced_side(run, expected, "server")
    v = run["verdicts"]
    assert (v["server_end"], v["signals"]) == (e["server_end"], e["signals"])
    assert v["first_fin"]["by"] == "client"
    assert v["first_fin"]["after"] == "its calls not traced"
    # the verdict: what the server did, and what the wire shows of the client, whose calls
    # it never names (close() or shutdown() are the lab's words: only a client trace knows)
    conclusion = v["conclusion"]
    assert "after nothing" not in conclusion
    assert "close()" not in conclusion and "shutdown(" not in conclusion
    assert "the wire shows the client (not traced): sent data1, sent data2, FIN at" in conclusion
    if ending == "close":
        assert conclusion.startswith(
            "0 of 2 answers reached the client's kernel, 2 lost: Hi, data1 (the client's "
            "kernel answered it with RST), Hi, data2 (never sent); the server (traced): read "
            "data1, sent Hi, data1, read data2, sendto() failed with EPIPE, killed by SIGPIPE;"
        ), conclusion
        assert conclusion.endswith("its kernel answered Hi, data1 with RST"), conclusion
    else:
        assert conclusion.startswith(
            "2 of 2 answers reached the client's kernel (Hi, data1, Hi, data2); the server "
            "(traced): read data1, sent Hi, data1, read data2, sent Hi, data2, read EOF, exit(1);"
        ), conclusion


@pytest.mark.parametrize("ending", EXPERIMENTS)
def test_both_traced_by_pid(ending: str, procs: Procs, tmp_path: Path, c_programs: Path) -> None:
    server = procs.start(["stdbuf", "-oL", "graceserver"], env=server_env(c_programs))
    port = port_of(server)
    # The client waits for a line before it becomes graceclient (same PID), so that the trace
    # is attached before it connects.
    client = procs.start(
        ["sh", "-c", "read -r go && exec stdbuf -oL graceclient 127.0.0.1"],
        env=client_env(c_programs, port),
    )
    traced = start_trace(procs, tmp_path, "-p", str(server.pid), "-p", str(client.pid))
    traced.proc.wait_output(b"tcpclose: tracing PID", stream="stderr")
    client.write(b"go\n")
    type_script(client, client, server, ending)
    status, doc = traced.result()
    expected = lab(ending)
    run = only_run(doc)
    assert status == 0
    assert run["traced"] == ["client", "server"]
    check_wire(run, expected)
    check_traced_side(run, expected, "client")
    check_traced_side(run, expected, "server")
    v, e = run["verdicts"], expected["verdicts"]
    for fact in ("answers_delivered", "answers_lost", "client_end", "server_end", "signals"):
        assert v[fact] == e[fact], fact
    assert mark(v, "first_fin") == mark(e, "first_fin")
    assert mark(v, "first_rst") == mark(e, "first_rst")
    assert v["conclusion"] == e["conclusion"]


def test_the_diagram_says_which_call_sent_fin(
    procs: Procs, tmp_path: Path, c_programs: Path
) -> None:
    """The terminal output: the traced client's close() next to the FIN it sent."""
    server = procs.start(["stdbuf", "-oL", "graceserver"], env=server_env(c_programs))
    port = port_of(server)
    out = tmp_path / "trace.txt"
    from lesson.driver import program

    traced = Traced(
        procs.start(
            program(
                "tcpclose",
                "trace",
                "-o",
                str(out),
                "--",
                "stdbuf",
                "-oL",
                "graceclient",
                "127.0.0.1",
            ),
            env=client_env(c_programs, port),
        ),
        out,
    )
    type_script(traced.proc, traced.proc, server, "close")
    assert traced.proc.wait() == 0
    text = out.read_text()
    lines = text.splitlines()
    fin = next(i for i, line in enumerate(lines) if "-- FIN --" in line)
    # next to it: close() returns about when its FIN leaves, so either may be drawn first
    assert any("close() -> FIN" in line for line in (lines[fin - 1], lines[fin + 1])), text
    assert "verdict: 2 answers lost: the client closed both directions (close())" in text
    assert "traced: client (calls and packets)" in text
