"""Break one fact of a real run on purpose: the claim's verdict must follow the facts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from claims_doctor import FIN_ACK, add_segment, drop_segments, edit_events, with_entries

from tcpclose.claims import BY_ID, Verdict, check_claims
from tcpclose.claims.check import evaluate
from tcpclose.lab.runner import LabRun
from tcpclose.model.timeline import Note, Role


def verdict(runs: dict[str, LabRun], claim_id: str) -> Verdict:
    return evaluate(BY_ID[claim_id], runs, "test").verdict


def doctored(runs: dict[str, LabRun], name: str, run: LabRun) -> dict[str, LabRun]:
    return {**runs, name: run}


def note_time(run: LabRun, label: str) -> float:
    return next(n.t for n in run.timeline.notes if n.event.get("call") == label)


def test_a_fin_after_the_childs_close_refutes_the_reference_count(claim_runs):
    run = claim_runs["fork-close"]
    t = note_time(run, "close() in child") + 0.001
    bad = add_segment(run, t, Role.SERVER, FIN_ACK)
    before = verdict(claim_runs, "close-refcount")
    after = verdict(doctored(claim_runs, "fork-close", bad), "close-refcount")
    assert (before, after) == (Verdict.HOLDS, Verdict.DIFFERS)
    assert verdict(doctored(claim_runs, "fork-close", bad), "rdwr-vs-close-fin") is Verdict.DIFFERS


def test_a_write_that_succeeds_after_shut_wr_refutes_the_claim(claim_runs):
    run = claim_runs["shut-wr-write"]
    bad = edit_events(run, lambda e: e.get("call") == "write(late)", errno=None, result=4)
    assert verdict(claim_runs, "shut-wr-write") is Verdict.HOLDS
    assert verdict(doctored(claim_runs, "shut-wr-write", bad), "shut-wr-write") is Verdict.DIFFERS


def test_without_the_rst_the_close_explanation_fails(claim_runs):
    bad = drop_segments(claim_runs["close"], lambda s: s.packet.rst)
    runs = doctored(claim_runs, "close", bad)
    assert verdict(claim_runs, "close-explanation") is Verdict.HOLDS
    assert verdict(runs, "close-explanation") is Verdict.DIFFERS
    assert verdict(runs, "close-draws-rst") is Verdict.DIFFERS
    assert verdict(runs, "close-both-directions") is Verdict.DIFFERS


def test_reads_returning_eof_after_shut_rd_would_make_the_lesson_right(claim_runs):
    run = claim_runs["shut-rd"]
    sd = note_time(run, "shutdown(SHUT_RD)")
    bsd_like = edit_events(
        run, lambda e: e.get("call") == "read()" and e.t - run.timeline.start >= sd,
        result=0, data="",
    )  # fmt: skip
    runs = doctored(claim_runs, "shut-rd", bsd_like)
    before = (verdict(claim_runs, "shut-rd-eof"), verdict(claim_runs, "shut-rd-discard"))
    after = (verdict(runs, "shut-rd-eof"), verdict(runs, "shut-rd-discard"))
    assert after == (Verdict.HOLDS, Verdict.HOLDS)
    assert before != after


def test_new_data_not_acked_after_shut_rd_differs(claim_runs):
    run = claim_runs["shut-rd"]
    after = next(s for s in run.timeline.segments if s.packet.payload == b"after")
    end = after.packet.seq_end
    bad = drop_segments(
        run, lambda s: s.sender is Role.SERVER and s.t > after.t and s.packet.ack >= end
    )
    assert verdict(doctored(claim_runs, "shut-rd", bad), "shut-rd-discard") is Verdict.DIFFERS


def test_sigpipe_on_every_first_write_after_rst_would_hold(claim_runs):
    abort = edit_events(claim_runs["abort"], lambda e: e.event == "error", errno="EPIPE")
    war = edit_events(
        claim_runs["write-after-rst"], lambda e: e.get("call") == "write() #1", errno="EPIPE"
    )
    runs = {**claim_runs, "abort": abort, "write-after-rst": war}
    assert verdict(runs, "rst-write-sigpipe") is Verdict.HOLDS
    assert verdict(claim_runs, "rst-write-sigpipe") is not Verdict.HOLDS


def test_the_transcript_holds_when_the_close_run_prints_it(claim_runs):
    close, late = claim_runs["close"], claim_runs["close-late"]
    as_printed = replace(close, client=late.client, server=late.server)
    assert verdict(claim_runs, "close-transcript") is not Verdict.HOLDS
    assert verdict(doctored(claim_runs, "close", as_printed), "close-transcript") is Verdict.HOLDS


def test_fin_instead_of_rst_on_unread_close_would_hold(claim_runs):
    run = claim_runs["unread-data-close"]
    rst = next(s for s in run.timeline.segments if s.packet.rst)
    fixed = add_segment(drop_segments(run, lambda s: s.packet.rst), rst.t, Role.SERVER, FIN_ACK)
    assert verdict(claim_runs, "close-flushes") is Verdict.DIFFERS
    runs = doctored(claim_runs, "unread-data-close", fixed)
    assert verdict(runs, "close-flushes") is Verdict.HOLDS


def test_no_fin_at_exit_refutes_the_first_thought_question(claim_runs):
    bad = drop_segments(
        claim_runs["exit-without-close"], lambda s: s.packet.fin and s.sender is Role.SERVER
    )
    assert verdict(claim_runs, "exit-sends-fin") is Verdict.HOLDS
    assert (
        verdict(doctored(claim_runs, "exit-without-close", bad), "exit-sends-fin")
        is Verdict.DIFFERS
    )


def test_a_handler_that_never_ran_refutes_the_second_thought_question(claim_runs):
    run = claim_runs["sigpipe-handler"]
    silent = with_entries(
        run,
        [
            e
            for e in run.timeline.entries
            if not (isinstance(e, Note) and e.event.event == "signal")
        ],
    )
    runs = doctored(claim_runs, "sigpipe-handler", silent)
    assert verdict(claim_runs, "sigpipe-dispositions") is Verdict.HOLDS
    assert verdict(runs, "sigpipe-dispositions") is Verdict.DIFFERS
    assert verdict(runs, "sigint-typo") is Verdict.DIFFERS


@pytest.mark.parametrize("claim_id", ["shut-rd-eof", "shut-rd-discard"])
def test_a_run_without_packets_leaves_its_claims_unchecked(claim_runs, claim_id):
    bare = drop_segments(claim_runs["shut-rd"], lambda s: True)
    runs = doctored(claim_runs, "shut-rd", bare)
    row = evaluate(BY_ID[claim_id], runs, "test")
    if claim_id == "shut-rd-discard":
        assert row.verdict is Verdict.UNCHECKED
        assert "no packets captured" in row.evidence
    else:  # read() results alone decide this one
        assert row.verdict is verdict(claim_runs, claim_id)


def test_check_claims_judges_the_runs_it_is_given(claim_runs):
    bad = drop_segments(claim_runs["close"], lambda s: s.packet.rst)
    rows = {r.id: r for r in check_claims(list(doctored(claim_runs, "close", bad).values()))}
    assert rows["close-explanation"].verdict is Verdict.DIFFERS
    assert "no RST" in rows["close-explanation"].evidence


def test_a_fin_at_exit_with_unread_data_refutes_exit_unread_rst(claim_runs):
    run = claim_runs["exit-unread"]
    rst = next(s for s in run.timeline.segments if s.packet.rst)
    fin = add_segment(drop_segments(run, lambda s: s.packet.rst), rst.t, Role.SERVER, FIN_ACK)
    assert verdict(claim_runs, "exit-unread-rst") is Verdict.HOLDS
    assert verdict(doctored(claim_runs, "exit-unread", fin), "exit-unread-rst") is Verdict.DIFFERS


def test_an_rst_that_discarded_the_queued_data_refutes_rst_keeps_queued_data(claim_runs):
    run = claim_runs["read-after-rst-queued"]
    lost = edit_events(run, lambda e: e.get("id") == "read.1", errno="ECONNRESET", result=None,
                       data=None)  # fmt: skip
    assert verdict(claim_runs, "rst-keeps-queued-data") is Verdict.HOLDS
    runs = doctored(claim_runs, "read-after-rst-queued", lost)
    assert verdict(runs, "rst-keeps-queued-data") is Verdict.DIFFERS


def test_a_reset_reported_in_close_wait_refutes_rst_in_close_wait(claim_runs):
    run = claim_runs["read-after-rst-close-wait"]
    told = edit_events(run, lambda e: e.get("id") == "read.2", errno="ECONNRESET", result=None)
    assert verdict(claim_runs, "rst-in-close-wait") is Verdict.HOLDS
    runs = doctored(claim_runs, "read-after-rst-close-wait", told)
    assert verdict(runs, "rst-in-close-wait") is Verdict.DIFFERS


def test_the_cause_of_a_fin_follows_the_stamps_not_the_label(claim_runs):
    """Relabel the child's close() and the judge still finds it by id; give the FIN's call a
    different id and the judge no longer counts it."""
    run = claim_runs["fork-shutdown"]
    relabelled = edit_events(run, lambda e: e.get("id") == "shutdown.wr.child", call="x()")
    assert verdict(doctored(claim_runs, "fork-shutdown", relabelled), "shut-wr-fin") is (
        Verdict.HOLDS
    )
    other = edit_events(run, lambda e: e.get("id") == "shutdown.wr.child", id="shutdown.wr.x")
    with_other = doctored(claim_runs, "fork-shutdown", other)
    assert verdict(with_other, "shut-wr-fin") is not Verdict.HOLDS
