"""The judges: one pure function per claim, from lab runs to a `Judgement`.

Each judge reads the runs' facts (`tcpclose.facts.RunFacts`, through `tcpclose.claims.facts`),
selects segments and calls by values and stable identifiers (a call id such as `close.child`,
a `Role`, a `SegmentKind`), decides the verdict from them, and writes the deciding facts into
one line of evidence. The explanations say what the kernel did instead when the lesson's words
do not hold as written.
"""

from __future__ import annotations

from tcpclose.claims.facts import (
    Role,
    SegmentKind,
    Syscall,
    WireFact,
    call,
    call_text,
    calls,
    delivered,
    ended_at,
    facts_of,
    fin_text,
    first,
    label,
    ms,
    need,
    printed,
    segments_of,
    squeeze,
    wire,
)
from tcpclose.claims.model import Judgement, MissingEvidence, Runs, Verdict
from tcpclose.facts import CallFact
from tcpclose.lab.runner import LabRun
from tcpclose.model.event import Call, Exit

HOLDS, DIFFERS, DEPENDS = Verdict.HOLDS, Verdict.DIFFERS, Verdict.DEPENDS
CLIENT, SERVER = Role.CLIENT, Role.SERVER
FIN, RST, DATA = SegmentKind.FIN, SegmentKind.RST, SegmentKind.DATA


def _caused_by(segments: list[WireFact], call_id: str) -> list[WireFact]:
    return [w for w in segments if w.cause_id == call_id]


def _call_time(run: LabRun, role: Role, syscall: Syscall) -> float | None:
    """When `role` first made a successful call of `syscall`, or None."""
    found = [c for c in calls(run, role, syscall) if not c.errno]
    return found[0].t if found else None


def _eof_time(run: LabRun, role: Role) -> float | None:
    reads = [c for c in calls(run, role, Syscall.READ) if c.result == 0 and not c.errno]
    return reads[0].t if reads else None


# --- close(fd) --------------------------------------------------------------------------


def close_refcount(runs: Runs) -> Judgement:
    run = need(runs, "fork-close")
    child = call(run, SERVER, "close.child")
    write = call(run, SERVER, "write.parent")
    ends = segments_of(run, FIN, SERVER) + segments_of(run, RST, SERVER)
    by_child = _caused_by(ends, "close.child")
    fin = first(run, FIN, SERVER)
    evidence = (
        f"fork-close: {call_text(child)}, then "
        + "; ".join(f"{label(w)} at {ms(w.t)}" for w in by_child)
        if by_child
        else f"fork-close: {call_text(child)} sent nothing; {call_text(write)}; {fin_text(fin)}"
    )
    if by_child:
        return Judgement(DIFFERS, evidence, "the child's close() ended the connection at once")
    if write.errno:
        return Judgement(DIFFERS, evidence, "the parent could not write after the child's close()")
    return Judgement(HOLDS, evidence)


def close_both_directions(runs: Runs) -> Judgement:
    run = need(runs, "close")
    closed = _call_time(run, CLIENT, Syscall.CLOSE)
    if closed is None:
        raise MissingEvidence("close: the client never called close()")
    fin = first(run, FIN, CLIENT)
    incoming = [w for w in wire(run) if w.by is SERVER and w.kind is DATA and w.t > closed]
    if not incoming:
        raise MissingEvidence("close: no data reached the client after its close()")
    rsts = [w for w in segments_of(run, RST, CLIENT) if w.in_reply_to == incoming[0].index]
    reads = [c for c in calls(run, CLIENT, Syscall.READ) if c.t > closed]
    answer = f"answered with RST at {ms(rsts[0].t)}" if rsts else "not answered with RST"
    evidence = (
        f"close: client close() at {ms(closed)}, {fin_text(fin)}; "
        f"{label(incoming[0])} arrived at {ms(incoming[0].t)}, {answer}; "
        f"client reads after close(): {len(reads)}"
    )
    if fin is None or fin.cause_id != "close":
        return Judgement(DIFFERS, evidence, "close() sent no FIN: the output stayed open")
    if not rsts or reads:
        return Judgement(DIFFERS, evidence, "the client's socket still took input after close()")
    return Judgement(HOLDS, evidence)


def _first_data_after_close(run: LabRun) -> tuple[WireFact, WireFact | None]:
    closed = _call_time(run, CLIENT, Syscall.CLOSE)
    if closed is None:
        raise MissingEvidence(f"{run.scenario.name}: the client never called close()")
    incoming = [w for w in wire(run) if w.by is SERVER and w.kind is DATA and w.t > closed]
    if not incoming:
        raise MissingEvidence(f"{run.scenario.name}: no data reached the closed socket")
    rst = next(
        (w for w in segments_of(run, RST, CLIENT) if w.in_reply_to == incoming[0].index),
        None,
    )
    return incoming[0], rst


def closed_socket_rst(runs: Runs) -> Judgement:
    parts, missing = [], []
    for name in ("close", "close-late"):
        data, rst = _first_data_after_close(need(runs, name))
        parts.append(f"{name}: {label(data)} → " + (f"RST at {ms(rst.t)}" if rst else "no RST"))
        if rst is None:
            missing.append(name)
    evidence = "; ".join(parts)
    if missing:
        return Judgement(
            DIFFERS, evidence, f"data sent to the closed socket drew no RST in {missing[0]}"
        )
    return Judgement(HOLDS, evidence)


def close_flushes(runs: Runs) -> Judgement:
    run = need(runs, "close-flushes")
    written = call(run, CLIENT, "write")
    got = call(run, SERVER, "read.until-eof")
    fin = first(run, FIN, CLIENT)
    late = [w for w in segments_of(run, DATA, CLIENT) if fin and w.t > fin.t]
    unread = need(runs, "unread-data-close")
    closing = call(unread, SERVER, "close.unread")
    ends = segments_of(unread, FIN, SERVER) + segments_of(unread, RST, SERVER)
    peer_read = call(unread, CLIENT, "read")
    end = label(ends[0]) if ends else "nothing"
    evidence = (
        f"close-flushes: {call_text(written)}, close(), peer read {got.result} bytes, then "
        f"{fin_text(fin)}; unread-data-close: {closing.label} sent {end}, peer "
        f"{call_text(peer_read)}"
    )
    flushed = fin is not None and not late and got.result == written.result
    if not flushed:
        return Judgement(DIFFERS, evidence, "close() did not deliver the send buffer before FIN")
    if ends and ends[0].kind is RST:
        return Judgement(
            DIFFERS,
            evidence,
            "with nothing unread, the send buffer went out and then FIN, as the lesson says; "
            "but when close() finds unread data in the receive buffer, Linux sends RST instead "
            "of FIN (RFC 2525 §2.17: data was lost, so the peer must not take it for an "
            "orderly end) and the peer's next read() fails with ECONNRESET",
        )
    return Judgement(HOLDS, evidence)


# --- shutdown(fd, how) ------------------------------------------------------------------


def _after_shut_rd(run: LabRun) -> tuple[float, list[CallFact]]:
    sd = call(run, SERVER, "shutdown.rd")
    return sd.t, [c for c in calls(run, SERVER, Syscall.READ) if c.t >= sd.t]


def shut_rd_eof(runs: Runs) -> Judgement:
    run = need(runs, "shut-rd")
    _, reads = _after_shut_rd(run)
    if not reads:
        raise MissingEvidence("shut-rd: no read() after shutdown(SHUT_RD)")
    evidence = "shut-rd: after shutdown(SHUT_RD): " + "; ".join(call_text(r) for r in reads)
    if reads[0].result == 0 and not reads[0].errno:
        return Judgement(HOLDS, evidence)
    eof = next((r for r in reads if r.result == 0 and not r.errno), None)
    return Judgement(
        DIFFERS,
        evidence,
        "the first read() after shutdown(SHUT_RD) returned the data still buffered"
        + (
            "; read() returned EOF only once the receive buffer was empty"
            if eof
            else "; no read() returned EOF"
        ),
    )


def shut_rd_discard(runs: Runs) -> Judgement:
    run = need(runs, "shut-rd")
    sd_t, reads = _after_shut_rd(run)
    got = [r for r in reads if r.result and not r.errno]
    new = [w for w in wire(run) if w.by is CLIENT and w.kind is DATA and w.t > sd_t]
    if not new:
        raise MissingEvidence("shut-rd: the peer sent nothing after shutdown(SHUT_RD)")
    acked = any(
        w.by is SERVER and w.packet.ack >= new[0].packet.seq_end
        for w in wire(run)
        if w.t > new[0].t
    )
    rst = first(run, RST, SERVER)
    evidence = (
        f"shut-rd: reads after SHUT_RD returned {', '.join(repr(r.data) for r in got) or 'none'}"
        f"; new data {label(new[0])!r} at {ms(new[0].t)}: "
        + ("ACKed" if acked else "not ACKed")
        + (f", RST at {ms(rst.t)}" if rst else ", no RST")
    )
    if rst is not None or not acked:
        return Judgement(DIFFERS, evidence, "new data after SHUT_RD was not silently ACKed")
    if got:
        return Judgement(
            DIFFERS,
            evidence,
            "this kernel discarded nothing: data buffered before shutdown(SHUT_RD) and data "
            "arriving after it were both ACKed and returned by read(), EOF only after them. "
            "4.4BSD-derived systems (FreeBSD, macOS) flush and drop as the lesson says; Linux "
            "does not",
        )
    return Judgement(HOLDS, evidence)


def shut_wr_refcount(runs: Runs) -> Judgement:
    run = need(runs, "fork-shutdown")
    sd = call(run, SERVER, "shutdown.wr.child")
    fin = first(run, FIN, SERVER)
    peer = call(run, CLIENT, "read")
    evidence = f"fork-shutdown: {call_text(sd)}, {fin_text(fin)}; client {call_text(peer)}"
    if fin is None or fin.cause_id != "shutdown.wr.child":
        return Judgement(
            DIFFERS, evidence, "shutdown(SHUT_WR) sent no FIN while another process held the socket"
        )
    return Judgement(HOLDS, evidence)


def shut_wr_write_fails(runs: Runs) -> Judgement:
    run = need(runs, "shut-wr-write")
    late = call(run, CLIENT, "write.late")
    deaths = [s.signal for s in facts_of(run).signals_of(CLIENT) if s.fatal]
    reads = [c for c in calls(run, CLIENT, Syscall.READ) if c.result]
    killed = f"; with SIGPIPE's default action the writer was killed by {deaths[0]}"
    evidence = (
        f"shut-wr-write: {call_text(late)}"
        + (killed if deaths else "")
        + (f"; reading still worked: {call_text(reads[0])}" if reads else "")
    )
    if not late.errno:
        return Judgement(DIFFERS, evidence, "writing after shutdown(SHUT_WR) succeeded")
    return Judgement(HOLDS, evidence)


# --- close vs shutdown(SHUT_RDWR) -------------------------------------------------------


def rdwr_releases(runs: Runs) -> Judgement:
    run = need(runs, "shut-rdwr")
    sd = call(run, SERVER, "shutdown.rdwr.child")
    after = [c for c in calls(run, SERVER) if c.t > sd.t and c.call_id.endswith(".parent")]
    closing = call(run, SERVER, "close.parent")
    fork_close = need(runs, "fork-close")
    last = first(fork_close, FIN, SERVER)
    bad = [c for c in after if c.errno == "EBADF"]
    evidence = (
        f"shut-rdwr: after {sd.label} the parent's descriptor still named a socket: "
        + "; ".join(call_text(c) for c in after)
        + f"; fork-close: the last close() ended it ({fin_text(last)})"
    )
    if bad or closing.errno:
        return Judgement(DIFFERS, evidence, "shutdown() released the descriptor")
    if last is None or last.cause_id != "close.parent":
        return Judgement(DIFFERS, evidence, "the last close() did not end the connection")
    return Judgement(HOLDS, evidence)


def rdwr_refcount(runs: Runs) -> Judgement:
    fc = need(runs, "fork-close")
    write_fc = call(fc, SERVER, "write.parent")
    sr = need(runs, "shut-rdwr")
    read_sr = call(sr, SERVER, "read.parent")
    write_sr = call(sr, SERVER, "write.parent")
    evidence = (
        f"fork-close: after close() in child, {call_text(write_fc)}; shut-rdwr: after shutdown"
        f"(SHUT_RDWR) in child, {call_text(read_sr)}, {call_text(write_sr)}"
    )
    if write_fc.errno:
        return Judgement(DIFFERS, evidence, "close() in one process broke the socket for all")
    if not write_sr.errno or read_sr.result:
        return Judgement(DIFFERS, evidence, "the other process could still use the socket")
    return Judgement(HOLDS, evidence)


def rdwr_fin(runs: Runs) -> Judgement:
    fc = need(runs, "fork-close")
    fc_child = _caused_by(segments_of(fc, FIN, SERVER), "close.child")
    sr_fin = first(need(runs, "shut-rdwr"), FIN, SERVER)
    fs_fin = first(need(runs, "fork-shutdown"), FIN, SERVER)
    evidence = (
        f"fork-close: close() in child → {'FIN' if fc_child else 'no FIN'}; "
        f"shut-rdwr: {fin_text(sr_fin)}; fork-shutdown: {fin_text(fs_fin)}"
    )
    shut_fins = all(
        w is not None and isinstance(w.cause, Call) and w.cause.syscall is Syscall.SHUTDOWN
        for w in (sr_fin, fs_fin)
    )
    if fc_child:
        return Judgement(DIFFERS, evidence, "close() sent FIN although a reference remained")
    if not shut_fins:
        return Judgement(DIFFERS, evidence, "a shutdown() sent no FIN")
    return Judgement(HOLDS, evidence)


# --- SIGPIPE ----------------------------------------------------------------------------


def first_writes_after_rst(run: LabRun, role: Role = SERVER) -> list[str]:
    """What `role`'s writes after the peer's first RST did, in order: an errno, `killed by
    SIGPIPE` or `SIGPIPE handler`. Writes whose data was on the wire before the RST (the RST
    answered them) do not count."""
    rst = first(run, RST, role.peer)
    if rst is None:
        raise MissingEvidence(f"{run.scenario.name}: no RST from the peer")
    on_wire = {w.data for w in wire(run) if w.by is role and w.kind is DATA and w.t <= rst.t}
    attempts: list[tuple[float, str]] = []
    for c in calls(run, role, Syscall.WRITE):
        if c.t > rst.t and not (c.errno is None and c.data in on_wire):
            attempts.append((c.t, c.errno or f"= {c.result}"))
    for s in facts_of(run).signals_of(role):
        if s.t > rst.t:
            attempts.append((s.t, f"killed by {s.signal}" if s.fatal else f"{s.signal} handler"))
    return [what for _, what in sorted(attempts)]


_RAISED = ("killed by SIGPIPE", "SIGPIPE handler", "EPIPE")


def rst_write_sigpipe(runs: Runs) -> Judgement:
    outcomes = {
        name: first_writes_after_rst(need(runs, name))
        for name in ("sigpipe-default", "abort", "write-after-rst")
    }
    evidence = "first writes after the peer's RST: " + "; ".join(
        f"{name}: {', then '.join(found) or 'none'}" for name, found in outcomes.items()
    )
    firsts = [found[0] for found in outcomes.values() if found]
    if not firsts:
        raise MissingEvidence("no write after an RST was seen")
    raised = [f in _RAISED for f in firsts]
    if all(raised):
        return Judgement(HOLDS, evidence)
    if not any(raised):
        return Judgement(DIFFERS, evidence, "no first write after an RST raised SIGPIPE")
    return Judgement(
        DEPENDS,
        evidence,
        "the first write after an RST returns the error the RST left on the socket: "
        "ECONNRESET, without a signal, when the RST hit an open connection (abort, "
        "write-after-rst); EPIPE with SIGPIPE when the server had already received the "
        "client's FIN (the close experiment); the writes after that raise SIGPIPE (EPIPE)",
    )


def sigpipe_dispositions(runs: Runs) -> Judgement:
    ign = first_writes_after_rst(need(runs, "sigpipe-ignore"))
    dfl = first_writes_after_rst(need(runs, "sigpipe-default"))
    hnd = first_writes_after_rst(need(runs, "sigpipe-handler"))
    ends = {n: need(runs, n).server.ending for n in ("sigpipe-ignore", "sigpipe-handler")}
    evidence = (
        f"SIG_IGN: {', '.join(ign)}, {ends['sigpipe-ignore']}; "
        f"default: {', '.join(dfl)}; handler: {', then '.join(hnd)}, {ends['sigpipe-handler']}"
    )
    ok = (
        ign[:1] == ["EPIPE"]
        and dfl[:1] == ["killed by SIGPIPE"]
        and hnd[:2] == ["SIGPIPE handler", "EPIPE"]
    )
    if not ok:
        return Judgement(DIFFERS, evidence, "the three dispositions did not behave as described")
    return Judgement(HOLDS, evidence)


# --- the two experiments ----------------------------------------------------------------


def close_explanation(runs: Runs) -> Judgement:
    run = need(runs, "close")
    facts = facts_of(run)
    rst = first(run, RST)
    answered = facts.segment(rst.in_reply_to) if rst else None
    got = delivered(run)
    reply = f" in reply to {label(answered)}" if answered else ""
    evidence = (
        "close: "
        + (f"RST by the {rst.by}{reply}" if rst else "no RST")
        + f"; server {run.server.ending}; answers delivered: {len(got)}"
    )
    ending = facts.ending(SERVER)
    ok = (
        rst is not None
        and rst.by is CLIENT
        and answered is not None
        and answered.data == "Hi, data1"
        and ending is not None
        and ending.signal == "SIGPIPE"
        and not got
    )
    if not ok:
        return Judgement(DIFFERS, evidence, "the run did not follow the lesson's explanation")
    return Judgement(HOLDS, evidence)


#: the lesson's close transcript (the client's lines without the typed `close`)
LESSON_CLOSE_CLIENT = ("now sending data1", "send bytes:5", "now sending data2", "send bytes:5",
                       "Hi,data1")  # fmt: skip
LESSON_CLOSE_SERVER = ("received 5 bytes: data1", "send bytes: 9", "received 5 bytes: data2",
                       "send bytes: 9", "client closed")  # fmt: skip


def _matches_transcript(run: LabRun) -> bool:
    def same(lines: list[str], lesson: tuple[str, ...]) -> bool:
        return [squeeze(x) for x in lines] == [squeeze(x) for x in lesson]

    return same(printed(run.client), LESSON_CLOSE_CLIENT) and same(
        printed(run.server), LESSON_CLOSE_SERVER
    )


def close_transcript(runs: Runs) -> Judgement:
    close, late = need(runs, "close"), need(runs, "close-late")
    shown = lambda run: " / ".join(printed(run.server)[-2:])  # noqa: E731
    evidence = (
        f"close: server ends '{shown(close)}', {close.server.ending}, client shows "
        f"{len(delivered(close))} answers; close-late: "
        + ("prints the lesson's transcript" if _matches_transcript(late) else "differs from it")
    )
    if _matches_transcript(close):
        return Judgement(HOLDS, evidence)
    if _matches_transcript(late):
        return Judgement(
            DEPENDS,
            evidence,
            "the transcript is a run where close was typed after Hi, data1 arrived (close-late:"
            " the RST answers Hi, data2, the server reads EOF and prints `client closed`); the "
            "explanation is a run where close came first (the server dies of SIGPIPE). Which "
            "one you get depends on timing and on the server's SIGPIPE disposition",
        )
    return Judgement(DIFFERS, evidence, "no run printed the lesson's transcript")


def shutdown_experiment(runs: Runs) -> Judgement:
    run = need(runs, "shutdown")
    fin_c = first(run, FIN, CLIENT)
    fin_s = first(run, FIN, SERVER)
    eof = _eof_time(run, SERVER)
    got = delivered(run)
    terminated = any("server terminated" in line for line in printed(run.client))
    evidence = (
        f"shutdown: client {fin_text(fin_c)}; answers delivered {len(got)} of 2; server read "
        f"EOF at {ms(eof)}; server {fin_text(fin_s)}"
        if eof is not None
        else f"shutdown: client {fin_text(fin_c)}; server never read EOF"
    ) + ("; client printed `server terminated`" if terminated else "")
    ok = (
        fin_c is not None
        and isinstance(fin_c.cause, Call)
        and fin_c.cause.syscall is Syscall.SHUTDOWN
        and len(got) == 2
        and eof is not None
        and fin_s is not None
        and fin_s.t >= eof
        and terminated
    )
    if not ok:
        return Judgement(DIFFERS, evidence, "the half-close did not end as described")
    return Judgement(HOLDS, evidence)


# --- questions ----------------------------------------------------------------------------


def exit_sends_fin(runs: Runs) -> Judgement:
    run = need(runs, "exit-without-close")
    fin = first(run, FIN, SERVER)
    closes = calls(run, SERVER, Syscall.CLOSE)
    peer = calls(run, CLIENT, Syscall.READ)
    evidence = f"exit-without-close: server {fin_text(fin)}; client " + ", then ".join(
        call_text(c) for c in peer
    )
    if fin is None or closes or fin.cause_id != "exit":
        return Judgement(DIFFERS, evidence, "the exiting process's kernel sent no FIN")
    return Judgement(HOLDS, evidence)


def timing_shows_hi_data1(runs: Runs) -> Judgement:
    parts, ok = [], True
    for name, expect in (("close-late", True), ("close", False)):
        run = need(runs, name)
        closed = _call_time(run, CLIENT, Syscall.CLOSE)
        hi = next((w for w in segments_of(run, DATA, SERVER) if w.data == "Hi, data1"), None)
        if closed is None or hi is None:
            raise MissingEvidence(f"{name}: no close() or no Hi, data1 on the wire")
        before = hi.t < closed
        shown = "Hi, data1" in delivered(run)
        when = "before" if before else "after"
        parts.append(f"{name}: Hi, data1 arrived {when} close(), shown: {'yes' if shown else 'no'}")
        ok = ok and before is expect and shown is expect
    evidence = "; ".join(parts)
    if not ok:
        return Judgement(DIFFERS, evidence, "whether Hi, data1 was shown did not follow timing")
    return Judgement(HOLDS, evidence)


def half_close_then_exit(runs: Runs) -> Judgement:
    run = need(runs, "shutdown")
    fin_c = first(run, FIN, CLIENT)
    eof = _eof_time(run, SERVER)
    fin_s = first(run, FIN, SERVER)
    ended = ended_at(run, SERVER)
    own = calls(run, SERVER, Syscall.CLOSE) + calls(run, SERVER, Syscall.SHUTDOWN)
    evidence = (
        f"shutdown: client {fin_text(fin_c)}; server read() = 0 at "
        + (ms(eof) if eof is not None else "never")
        + f"; server {fin_text(fin_s)}, with no close() or shutdown() call; the server "
        f"process ended at {ms(ended)}"
    )
    ok = (
        fin_c is not None
        and eof is not None
        and fin_c.t <= eof
        and fin_s is not None
        and eof <= fin_s.t <= ended
        and not own
    )
    if not ok:
        return Judgement(DIFFERS, evidence, "the FINs did not follow the half-close and the exit")
    return Judgement(HOLDS, evidence)


def who_closes(runs: Runs) -> Judgement:
    by: dict[Role, list[str]] = {CLIENT: [], SERVER: []}
    for name, run in runs.items():
        ends = [w for w in wire(run) if w.kind in (FIN, RST)]
        if ends:
            by[ends[0].by].append(name)
    evidence = "; ".join(
        f"the {side} ended first in {len(names)} runs ({', '.join(names[:4])}"
        + (", …" if len(names) > 4 else "")
        + ")"
        for side, names in by.items()
        if names
    )
    if by[CLIENT] and by[SERVER]:
        return Judgement(
            DEPENDS,
            evidence,
            "TCP lets either end close first; which one does is the application protocol's "
            "choice. In a browser HTTP decides: the server closes after a `Connection: close` "
            "response, with keep-alive the browser closes idle connections (or the server times "
            "them out). These runs show both sides closing first; no browser was run",
        )
    raise MissingEvidence("the runs show only one side closing first")


def sigint_typo(runs: Runs) -> Judgement:
    dfl = first_writes_after_rst(need(runs, "sigpipe-default"))
    hnd = first_writes_after_rst(need(runs, "sigpipe-handler"))
    evidence = (
        f"handler left unregistered (the typo): {', '.join(dfl[:1])}; "
        f"registered for SIGPIPE: {', then '.join(hnd[:2])}"
    )
    if dfl[:1] == ["killed by SIGPIPE"] and hnd[:1] == ["SIGPIPE handler"]:
        return Judgement(HOLDS, evidence)
    return Judgement(DIFFERS, evidence, "a SIGPIPE handler made no difference")


# --- kernel facts the lesson leaves out ---------------------------------------------------


def exit_unread_rst(runs: Runs) -> Judgement:
    run = need(runs, "exit-unread")
    ends = [w for w in wire(run) if w.by is SERVER and w.kind in (FIN, RST)]
    reads = calls(run, CLIENT, Syscall.READ)
    end = ends[0] if ends else None
    cause = f" after {end.cause.label}" if end and isinstance(end.cause, Exit) else ""
    evidence = (
        "exit-unread: the server exited with data1 unread; its kernel sent "
        + (f"{label(end)} at {ms(end.t)}{cause}" if end else "nothing")
        + "; client "
        + ", then ".join(call_text(c) for c in reads)
    )
    if end is None:
        raise MissingEvidence("exit-unread: the exiting server's kernel sent neither FIN nor RST")
    if end.kind is not RST or end.cause_id != "exit":
        return Judgement(DIFFERS, evidence, "the exit with unread data sent FIN, not RST")
    return Judgement(HOLDS, evidence)


def rst_keeps_queued_data(runs: Runs) -> Judgement:
    run = need(runs, "read-after-rst-queued")
    rst = first(run, RST, CLIENT)
    if rst is None:
        raise MissingEvidence("read-after-rst-queued: no RST from the client")
    reads = [c for c in calls(run, SERVER, Syscall.READ) if c.t > rst.t]
    if not reads:
        raise MissingEvidence("read-after-rst-queued: no read() after the RST")
    evidence = f"read-after-rst-queued: RST at {ms(rst.t)}, then " + ", ".join(
        call_text(c) for c in reads
    )
    first_read = reads[0]
    reported = next((c for c in reads if c.errno), None)
    if first_read.errno:
        return Judgement(
            DIFFERS,
            evidence,
            f"the RST discarded the queued data: the first read() failed with {first_read.errno}",
        )
    if reported is None:
        return Judgement(DIFFERS, evidence, "no read() reported the reset")
    return Judgement(HOLDS, evidence)


def rst_in_close_wait(runs: Runs) -> Judgement:
    run = need(runs, "read-after-rst-close-wait")
    rst = first(run, RST, CLIENT)
    fin = first(run, FIN, CLIENT)
    if rst is None or fin is None:
        raise MissingEvidence("read-after-rst-close-wait: no FIN then RST from the client")
    reads = [c for c in calls(run, SERVER, Syscall.READ) if c.t > rst.t]
    writes = [c for c in calls(run, SERVER, Syscall.WRITE) if c.t > rst.t]
    if not reads:
        raise MissingEvidence("read-after-rst-close-wait: no read() after the RST")
    evidence = (
        f"read-after-rst-close-wait: client {fin_text(fin)}, RST at {ms(rst.t)}; server then "
        + ", ".join(call_text(c) for c in reads + writes)
    )
    if any(c.errno for c in reads):
        return Judgement(DIFFERS, evidence, "a read() after the RST reported it")
    return Judgement(
        HOLDS,
        evidence,
        "every read() after the RST returned EOF (0): in CLOSE_WAIT the reset leaves EPIPE, not "
        "ECONNRESET, on the socket, and read() reports end of file before any error; only a "
        "write() sees it, as EPIPE",
    )
