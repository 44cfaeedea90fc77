"""Every scenario run for real: its verdicts come from the packets captured on lo and the
programs' own events. Each test states what this kernel did."""

from __future__ import annotations

import pytest

from tcpclose.facts import SegmentKind
from tcpclose.lab.runner import LabRun
from tcpclose.lab.scenarios import CATALOG
from tcpclose.lab.verdicts import LabVerdict
from tcpclose.model.event import Exit
from tcpclose.model.timeline import Role
from tcpclose.render.facts_text import mark_text
from tcpclose.render.text import diagram_rows


def calls(run: LabRun, role: str) -> list[tuple[str, object, str | None]]:
    """`role`'s calls as (stable id, result, errno), in order."""
    return [(c.id, c.result, c.errno) for c in run.verdict.calls if c.role == role]


def call(run: LabRun, call_id: str, role: str = "") -> tuple[object, str | None]:
    found = [
        (c.result, c.errno)
        for c in run.verdict.calls
        if c.id == call_id and (not role or c.role == role)
    ]
    assert found, f"no call {call_id!r} in {run.verdict.calls}"
    return found[0]


def signature(v: LabVerdict) -> tuple[object, ...]:
    """What must not change from one run to the next (times may)."""
    marks = tuple((m.by, m.after, m.in_reply_to) if m else None for m in (v.first_fin, v.first_rst))
    return (
        v.answers_delivered,
        v.answers_lost,
        marks,
        v.fins,
        v.rsts,
        v.client_end,
        v.server_end,
        v.errors,
        v.signals,
        # each role's calls in that role's order (the two sides run concurrently)
        tuple(
            tuple((c.call, c.result, c.errno) for c in v.calls if c.role == role)
            for role in ("client", "server")
        ),
        v.conclusion,
    )


def test_every_scenario_was_captured(catalog_runs: dict[str, LabRun]) -> None:
    assert set(catalog_runs) == {s.name for s in CATALOG}
    for run in catalog_runs.values():
        assert run.capture.method == "af_packet", run.capture.note
        assert run.capture.dropped == 0
        syns = [s for s in run.timeline.segments if s.packet.syn]
        assert [s.sender.value for s in syns] == ["client", "server"], run.scenario.name


def test_every_event_the_programs_wrote_is_a_valid_typed_event(
    catalog_runs: dict[str, LabRun],
) -> None:
    """The lesson programs' and the actors' --events records all parse into typed events, and
    every FIN and RST either side's kernel sends has a logged cause (the lesson programs log
    the exit that closes their socket around that close)."""
    for run in catalog_runs.values():
        facts = run.verdict.facts
        assert facts is not None and facts.invalid == (), run.scenario.name
        for wire in facts.segments:
            if wire.packet.fin or wire.packet.rst:
                assert wire.cause is not None, (run.scenario.name, wire)


@pytest.mark.parametrize("name", [s.name for s in CATALOG])
def test_verdicts_are_deterministic(
    name: str, catalog_runs: dict[str, LabRun], catalog_reruns: dict[str, LabRun]
) -> None:
    assert signature(catalog_runs[name].verdict) == signature(catalog_reruns[name].verdict)


def test_close_loses_both_answers_and_sigpipe_kills_the_server(
    catalog_runs: dict[str, LabRun],
) -> None:
    run = catalog_runs["close"]
    v = run.verdict
    assert v.messages == ("data1", "data2")
    assert v.answers_delivered == () and v.answers_lost == ("Hi, data1", "Hi, data2")
    assert v.first_fin is not None and (v.first_fin.by, v.first_fin.after) == ("client", "close()")
    assert v.first_rst is not None and v.first_rst.by == "client"
    assert v.first_rst.in_reply_to == "Hi, data1"
    assert run.server.signal == "SIGPIPE" and run.server.exit_status is None
    assert run.client.exit_status == 0 and run.received == []
    assert "received 5 bytes: data2" in run.server.stdout
    assert run.server.stdout.count("send bytes: 9 ") == 1
    assert v.conclusion.startswith("2 answers lost: the client closed both directions")
    assert "raised SIGPIPE" in v.conclusion


def test_shutdown_delivers_both_answers_then_fin_both_ways(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["shutdown"]
    v = run.verdict
    assert v.answers_delivered == ("Hi, data1", "Hi, data2") and v.answers_lost == ()
    assert v.fins == ("client", "server") and v.rsts == ()
    assert v.first_fin is not None and v.first_fin.after == "shutdown(SHUT_WR)"
    assert run.client.stdout.endswith("Hi, data1\nHi, data2\n")
    assert "server terminated" in run.client.stderr and run.client.exit_status == 1
    assert "client closed" in run.server.stderr and run.server.exit_status == 1
    assert v.conclusion.startswith("all 2 answers delivered")


def test_the_servers_fin_comes_from_its_exit(catalog_runs: dict[str, LabRun]) -> None:
    """graceserver reads EOF, prints `client closed ` and exits: the FIN its kernel sends is
    sent while its exit closes the socket, between the exit record's two stamps."""
    facts = catalog_runs["shutdown"].verdict.facts
    assert facts is not None
    fin = facts.first(SegmentKind.FIN, Role.SERVER)
    assert fin is not None and fin.cause_id == "exit", fin
    assert isinstance(fin.cause, Exit) and fin.cause.started_ns is not None
    sent_ns = fin.packet.t * 1e9
    assert fin.cause.started_ns <= sent_ns <= fin.cause.t_ns
    assert "after exit(1)" in mark_text(facts, fin)
    # on the diagram, the server's next logged step after its FIN is that exit
    rows = diagram_rows(catalog_runs["shutdown"].timeline)
    fin_row = next(i for i, r in enumerate(rows) if r.kind == "fin" and r.lane.startswith("|<"))
    server_steps = [r.right for r in rows[fin_row + 1 :] if r.right]
    assert server_steps[:1] == ["exit(1)"], server_steps


def test_close_late_shows_the_first_answer(catalog_runs: dict[str, LabRun]) -> None:
    v = catalog_runs["close-late"].verdict
    assert v.answers_delivered == ("Hi, data1",) and v.answers_lost == ("Hi, data2",)
    assert v.first_rst is not None and v.first_rst.in_reply_to == "Hi, data2"
    # the client's FIN came from its close() (stamped), not "in reply to" Hi, data1
    assert v.first_fin is not None and v.first_fin.after_id == "close"
    assert v.first_fin.in_reply_to is None
    assert "Hi, data1\n" in catalog_runs["close-late"].client.stdout


def test_sigpipe_modes(catalog_runs: dict[str, LabRun]) -> None:
    ignore, default, handler = (
        catalog_runs[f"sigpipe-{m}"] for m in ("ignore", "default", "handler")
    )
    assert ignore.server.exit_status == 1 and ignore.server.signal is None
    assert "graceserver: error write: Broken pipe" in ignore.server.stderr
    assert ignore.verdict.errors["server"] == ("write(): EPIPE",)
    assert default.server.signal == "SIGPIPE"
    assert default.verdict.errors["server"] == ()
    assert handler.server.exit_status == 1
    assert "caught SIGPIPE" in handler.server.stdout
    assert "server SIGPIPE" in handler.verdict.signals
    assert handler.verdict.errors["server"] == ("write(): EPIPE",)


def test_abort_sends_rst_instead_of_fin(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["abort"]
    v = run.verdict
    assert v.rsts[:1] == ("client",) and "client" not in v.fins
    assert v.errors["server"] == ("write(): ECONNRESET",)
    assert "Connection reset by peer" in run.server.stderr


def test_exit_without_close_still_sends_fin(catalog_runs: dict[str, LabRun]) -> None:
    v = catalog_runs["exit-without-close"].verdict
    assert v.first_fin is not None and v.first_fin.by == "server"
    assert v.first_fin.after == "exit(0), no close()"
    assert call(catalog_runs["exit-without-close"], "read.2") == (0, None)


def test_unread_data_close_sends_rst(catalog_runs: dict[str, LabRun]) -> None:
    v = catalog_runs["unread-data-close"].verdict
    assert v.rsts == ("server",) and v.fins == ()
    assert call(catalog_runs["unread-data-close"], "read") == (None, "ECONNRESET")
    first_rst = catalog_runs["unread-data-close"].verdict.first_rst
    assert first_rst is not None and first_rst.after_id == "close.unread"
    assert first_rst.in_reply_to is None  # close() sent it; it answered nothing


def test_fork_close_sends_nothing_until_the_last_reference(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["fork-close"]
    assert run.verdict.first_fin is not None
    assert run.verdict.first_fin.after == "close() in parent"
    assert run.verdict.first_fin.after_id == "close.parent"
    assert call(run, "write.parent") == (10, None)


def test_fork_shutdown_sends_fin_at_once(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["fork-shutdown"]
    assert run.verdict.first_fin is not None
    assert run.verdict.first_fin.after == "shutdown(SHUT_WR) in child"
    assert call(run, "write.parent") == (None, "EPIPE")
    assert call(run, "read.parent") == (5, None)


def test_shut_rd_on_linux_discards_nothing(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["shut-rd"]
    reads = [(r, e) for c, r, e in calls(run, "server") if c.startswith("read")]
    assert reads == [(6, None), (5, None), (0, None)]  # "before", then "after", then EOF
    after = next(s for s in run.timeline.segments if s.packet.payload == b"after")
    acked = [
        s
        for s in run.timeline.segments
        if s.sender.value == "server" and s.packet.ack == after.packet.seq_end
    ]
    assert acked, "the data sent after SHUT_RD was not ACKed"
    # the server's FIN came from its close(), not from the write before it
    fin = run.verdict.first_fin
    assert fin is not None and (fin.by, fin.after_id) == ("server", "close")


def test_shut_wr_write(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["shut-wr-write"]
    assert call(run, "write.late") == (None, "EPIPE")
    assert "client SIGPIPE" in run.verdict.signals
    assert call(run, "read.1") == (2, None)


def test_shut_rdwr_ignores_the_reference_count(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["shut-rdwr"]
    assert run.verdict.first_fin is not None
    assert run.verdict.first_fin.after == "shutdown(SHUT_RDWR) in child"
    assert call(run, "read.parent") == (0, None)
    assert call(run, "write.parent") == (None, "EPIPE")


def test_write_and_read_after_rst(catalog_runs: dict[str, LabRun]) -> None:
    w = catalog_runs["write-after-rst"]
    assert call(w, "write.1") == (None, "ECONNRESET")
    assert call(w, "write.2") == (None, "EPIPE")
    assert "server SIGPIPE" in w.verdict.signals
    r = catalog_runs["read-after-rst"]
    assert call(r, "read.1") == (None, "ECONNRESET")
    assert call(r, "read.2") == (0, None)


def test_close_flushes_the_send_buffer(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["close-flushes"]
    assert call(run, "read.until-eof") == (256 * 1024, None)
    fin = next(s for s in run.timeline.segments if s.packet.fin)
    data = [s for s in run.timeline.segments if s.packet.length]
    assert all(s.t <= fin.t for s in data) and fin.sender.value == "client"
    # whatever segment carries the client's FIN, the terminal diagram shows it
    rows = [r for r in diagram_rows(run.timeline) if r.lane.endswith(">|") and "FIN" in r.lane]
    assert len(rows) == 1, [r.lane for r in diagram_rows(run.timeline)]


def test_exit_with_unread_data_sends_rst(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["exit-unread"]
    v = run.verdict
    assert v.rsts == ("server",) and "server" not in v.fins
    assert v.first_rst is not None and v.first_rst.after_id == "exit"
    assert v.first_rst.in_reply_to is None
    assert call(run, "read.1") == (None, "ECONNRESET")


def test_read_after_rst_returns_the_queued_data_first(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["read-after-rst-queued"]
    assert run.verdict.rsts == ("client",)
    assert [call(run, f"read.{n}") for n in (1, 2, 3)] == [(5, None), (None, "ECONNRESET"),
                                                           (0, None)]  # fmt: skip


def test_rst_in_close_wait_is_never_reported_to_read(catalog_runs: dict[str, LabRun]) -> None:
    run = catalog_runs["read-after-rst-close-wait"]
    v = run.verdict
    assert v.fins[:1] == ("client",) and v.rsts == ("client",)
    assert [call(run, f"read.{n}") for n in (1, 2, 3)] == [(0, None)] * 3
    assert call(run, "write", "server") == (None, "EPIPE")
