"""The judges: one pure function per claim, from lab runs to a `Judgement`.

Each judge names the facts it reads (see `tcpclose.claims.facts`), decides the verdict from
them, and writes the deciding facts into one line of evidence. The explanations say what the
kernel did instead when the lesson's words do not hold as written.
"""

from __future__ import annotations

from tcpclose.claims.facts import (
    Wire,
    call,
    calls,
    delivered,
    ended_at,
    event_time,
    first,
    need,
    printed,
    segments_of,
    signal_notes,
    squeeze,
    wire,
)
from tcpclose.claims.model import Judgement, MissingEvidence, Runs, Verdict
from tcpclose.lab.runner import LabRun

HOLDS, DIFFERS, DEPENDS = Verdict.HOLDS, Verdict.DIFFERS, Verdict.DEPENDS


def _caused_by(segments: list[Wire], prefix: str) -> list[Wire]:
    return [w for w in segments if w.cause.startswith(prefix)]


def _fin_text(w: Wire | None) -> str:
    if w is None:
        return "no FIN"
    return f"FIN at {w.ms}" + (f" after {w.cause}" if w.cause != "nothing" else "")


# --- close(fd) --------------------------------------------------------------------------


def close_refcount(runs: Runs) -> Judgement:
    run = need(runs, "fork-close")
    child = call(run, "server", "close() in child")
    write = call(run, "server", "write() in parent")
    ends = segments_of(run, "fin", "server") + segments_of(run, "rst", "server")
    by_child = _caused_by(ends, "close() in child")
    fin = first(run, "fin", "server")
    evidence = (
        f"fork-close: {child.text}, then {'; '.join(f'{w.label} at {w.ms}' for w in by_child)}"
        if by_child
        else f"fork-close: {child.text} sent nothing; {write.text}; {_fin_text(fin)}"
    )
    if by_child:
        return Judgement(DIFFERS, evidence, "the child's close() ended the connection at once")
    if write.errno:
        return Judgement(DIFFERS, evidence, "the parent could not write after the child's close()")
    return Judgement(HOLDS, evidence)


def close_both_directions(runs: Runs) -> Judgement:
    run = need(runs, "close")
    closed = event_time(run, "client", "close")
    if closed is None:
        raise MissingEvidence("close: the client never called close()")
    fin = first(run, "fin", "client")
    incoming = [w for w in wire(run) if w.by == "server" and w.kind == "data" and w.t > closed]
    if not incoming:
        raise MissingEvidence("close: no data reached the client after its close()")
    rsts = [w for w in segments_of(run, "rst", "client") if w.in_reply_to == incoming[0].label]
    reads = [c for c in calls(run, "client", "read()") if c.t > closed]
    answer = f"answered with RST at {rsts[0].ms}" if rsts else "not answered with RST"
    evidence = (
        f"close: client close() at {closed * 1000:.1f} ms, {_fin_text(fin)}; "
        f"{incoming[0].label} arrived at {incoming[0].ms}, {answer}; "
        f"client reads after close(): {len(reads)}"
    )
    if fin is None or not fin.cause.startswith("close()"):
        return Judgement(DIFFERS, evidence, "close() sent no FIN: the output stayed open")
    if not rsts or reads:
        return Judgement(DIFFERS, evidence, "the client's socket still took input after close()")
    return Judgement(HOLDS, evidence)


def _first_data_after_close(run: LabRun) -> tuple[Wire, Wire | None]:
    closed = event_time(run, "client", "close")
    if closed is None:
        raise MissingEvidence(f"{run.scenario.name}: the client never called close()")
    incoming = [w for w in wire(run) if w.by == "server" and w.kind == "data" and w.t > closed]
    if not incoming:
        raise MissingEvidence(f"{run.scenario.name}: no data reached the closed socket")
    rst = next(
        (w for w in segments_of(run, "rst", "client") if w.in_reply_to == incoming[0].label),
        None,
    )
    return incoming[0], rst


def closed_socket_rst(runs: Runs) -> Judgement:
    parts, missing = [], []
    for name in ("close", "close-late"):
        data, rst = _first_data_after_close(need(runs, name))
        parts.append(f"{name}: {data.label} → " + (f"RST at {rst.ms}" if rst else "no RST"))
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
    written = call(run, "client", "write(256 KiB)")
    got = call(run, "server", "read() until EOF")
    fin = first(run, "fin", "client")
    late = [w for w in segments_of(run, "data", "client") if fin and w.t > fin.t]
    unread = need(runs, "unread-data-close")
    closing = call(unread, "server", "close() with")
    ends = segments_of(unread, "fin", "server") + segments_of(unread, "rst", "server")
    peer_read = call(unread, "client", "read()")
    end = ends[0].label if ends else "nothing"
    evidence = (
        f"close-flushes: {written.text}, close(), peer read {got.result} bytes, then "
        f"{_fin_text(fin)}; unread-data-close: {closing.call} sent {end}, peer {peer_read.text}"
    )
    flushed = fin is not None and not late and got.result == written.result
    if not flushed:
        return Judgement(DIFFERS, evidence, "close() did not deliver the send buffer before FIN")
    if ends and ends[0].kind == "rst":
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


def _after_shut_rd(run: LabRun) -> tuple[float, list]:
    sd = call(run, "server", "shutdown(SHUT_RD)")
    return sd.t, [c for c in calls(run, "server", "read()") if c.t >= sd.t]


def shut_rd_eof(runs: Runs) -> Judgement:
    run = need(runs, "shut-rd")
    _, reads = _after_shut_rd(run)
    if not reads:
        raise MissingEvidence("shut-rd: no read() after shutdown(SHUT_RD)")
    evidence = "shut-rd: after shutdown(SHUT_RD): " + "; ".join(r.text for r in reads)
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
    new = [w for w in wire(run) if w.by == "client" and w.kind == "data" and w.t > sd_t]
    if not new:
        raise MissingEvidence("shut-rd: the peer sent nothing after shutdown(SHUT_RD)")
    acked = any(w.by == "server" and w.ack >= new[0].seq_end for w in wire(run) if w.t > new[0].t)
    rst = first(run, "rst", "server")
    evidence = (
        f"shut-rd: reads after SHUT_RD returned {', '.join(repr(r.data) for r in got) or 'none'}"
        f"; new data {new[0].label!r} at {new[0].ms}: "
        + ("ACKed" if acked else "not ACKed")
        + (f", RST at {rst.ms}" if rst else ", no RST")
    )
    if rst is not None or not acked:
        return Judgement(DIFFERS, evidence, "new data after SHUT_RD was not silently ACKed")
    if got:
        return Judgement(
            DEPENDS,
            evidence,
            "this kernel discarded nothing: data buffered before shutdown(SHUT_RD) and data "
            "arriving after it were both ACKed and returned by read(), EOF only after them. "
            "4.4BSD-derived systems (FreeBSD, macOS) flush and drop as the lesson says: the "
            "claim depends on the system",
        )
    return Judgement(HOLDS, evidence)


def shut_wr_refcount(runs: Runs) -> Judgement:
    run = need(runs, "fork-shutdown")
    sd = call(run, "server", "shutdown(SHUT_WR) in child")
    fin = first(run, "fin", "server")
    peer = call(run, "client", "read()")
    evidence = f"fork-shutdown: {sd.text}, {_fin_text(fin)}; client {peer.text}"
    if fin is None or not fin.cause.startswith("shutdown(SHUT_WR) in child"):
        return Judgement(
            DIFFERS, evidence, "shutdown(SHUT_WR) sent no FIN while another process held the socket"
        )
    return Judgement(HOLDS, evidence)


def shut_wr_write_fails(runs: Runs) -> Judgement:
    run = need(runs, "shut-wr-write")
    late = call(run, "client", "write(late)")
    deaths = [s for t, ev, s in signal_notes(run, "client") if ev == "killed"]
    reads = [c for c in calls(run, "client", "read()") if c.result]
    killed = f"; with SIGPIPE's default action the writer was killed by {deaths[0]}"
    evidence = (
        f"shut-wr-write: {late.text}"
        + (killed if deaths else "")
        + (f"; reading still worked: {reads[0].text}" if reads else "")
    )
    if not late.errno:
        return Judgement(DIFFERS, evidence, "writing after shutdown(SHUT_WR) succeeded")
    return Judgement(HOLDS, evidence)


# --- close vs shutdown(SHUT_RDWR) -------------------------------------------------------


def rdwr_releases(runs: Runs) -> Judgement:
    run = need(runs, "shut-rdwr")
    sd = call(run, "server", "shutdown(SHUT_RDWR) in child")
    after = [c for c in calls(run, "server", "") if c.t > sd.t and "in parent" in c.call]
    closing = call(run, "server", "close() in parent")
    fork_close = need(runs, "fork-close")
    last = first(fork_close, "fin", "server")
    bad = [c for c in after if c.errno == "EBADF"]
    evidence = (
        f"shut-rdwr: after {sd.call} the parent's descriptor still named a socket: "
        + "; ".join(c.text for c in after)
        + f"; fork-close: the last close() ended it ({_fin_text(last)})"
    )
    if bad or closing.errno:
        return Judgement(DIFFERS, evidence, "shutdown() released the descriptor")
    if last is None or not last.cause.startswith("close() in parent"):
        return Judgement(DIFFERS, evidence, "the last close() did not end the connection")
    return Judgement(HOLDS, evidence)


def rdwr_refcount(runs: Runs) -> Judgement:
    fc = need(runs, "fork-close")
    write_fc = call(fc, "server", "write() in parent")
    sr = need(runs, "shut-rdwr")
    read_sr = call(sr, "server", "read() in parent")
    write_sr = call(sr, "server", "write() in parent")
    evidence = (
        f"fork-close: after close() in child, {write_fc.text}; shut-rdwr: after shutdown"
        f"(SHUT_RDWR) in child, {read_sr.text}, {write_sr.text}"
    )
    if write_fc.errno:
        return Judgement(DIFFERS, evidence, "close() in one process broke the socket for all")
    if not write_sr.errno or read_sr.result:
        return Judgement(DIFFERS, evidence, "the other process could still use the socket")
    return Judgement(HOLDS, evidence)


def rdwr_fin(runs: Runs) -> Judgement:
    fc = need(runs, "fork-close")
    fc_child = _caused_by(segments_of(fc, "fin", "server"), "close() in child")
    sr_fin = first(need(runs, "shut-rdwr"), "fin", "server")
    fs_fin = first(need(runs, "fork-shutdown"), "fin", "server")
    evidence = (
        f"fork-close: close() in child → {'FIN' if fc_child else 'no FIN'}; "
        f"shut-rdwr: {_fin_text(sr_fin)}; fork-shutdown: {_fin_text(fs_fin)}"
    )
    shut_fins = all(w is not None and w.cause.startswith("shutdown(") for w in (sr_fin, fs_fin))
    if fc_child:
        return Judgement(DIFFERS, evidence, "close() sent FIN although a reference remained")
    if not shut_fins:
        return Judgement(DIFFERS, evidence, "a shutdown() sent no FIN")
    return Judgement(HOLDS, evidence)


# --- SIGPIPE ----------------------------------------------------------------------------


def first_writes_after_rst(run: LabRun, role: str = "server") -> list[str]:
    """What `role`'s writes after the peer's first RST did, in order: an errno, `killed by
    SIGPIPE` or `SIGPIPE handler`. Writes whose data was on the wire before the RST (the RST
    answered them) do not count."""
    rst = first(run, "rst", "client" if role == "server" else "server")
    if rst is None:
        raise MissingEvidence(f"{run.scenario.name}: no RST from the peer")
    on_wire = {w.label for w in wire(run) if w.by == role and w.kind == "data" and w.t <= rst.t}
    attempts: list[tuple[float, str]] = []
    for c in calls(run, role, "write"):
        if c.t > rst.t and not (c.errno is None and c.data in on_wire):
            attempts.append((c.t, c.errno or f"= {c.result}"))
    for t, event, sig in signal_notes(run, role):
        if t > rst.t:
            attempts.append((t, f"killed by {sig}" if event == "killed" else f"{sig} handler"))
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
    rst = first(run, "rst")
    got = delivered(run)
    evidence = (
        "close: "
        + (f"RST by the {rst.by} in reply to {rst.in_reply_to}" if rst else "no RST")
        + f"; server {run.server.ending}; answers delivered: {len(got)}"
    )
    ok = (
        rst is not None
        and rst.by == "client"
        and rst.in_reply_to == "Hi, data1"
        and run.server.signal == "SIGPIPE"
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
    fin_c = first(run, "fin", "client")
    fin_s = first(run, "fin", "server")
    eof = event_time(run, "server", "eof")
    got = delivered(run)
    terminated = any("server terminated" in line for line in printed(run.client))
    evidence = (
        f"shutdown: client {_fin_text(fin_c)}; answers delivered {len(got)} of 2; server read "
        f"EOF at {eof * 1000:.1f} ms; server {_fin_text(fin_s)}"
        if eof is not None
        else f"shutdown: client {_fin_text(fin_c)}; server never read EOF"
    ) + ("; client printed `server terminated`" if terminated else "")
    ok = (
        fin_c is not None
        and fin_c.cause.startswith("shutdown(")
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
    fin = first(run, "fin", "server")
    closes = calls(run, "server", "close")
    peer = calls(run, "client", "read()")
    evidence = f"exit-without-close: server {_fin_text(fin)}; client " + ", then ".join(
        c.text for c in peer
    )
    if fin is None or closes or not fin.cause.startswith("exit("):
        return Judgement(DIFFERS, evidence, "the exiting process's kernel sent no FIN")
    return Judgement(HOLDS, evidence)


def timing_shows_hi_data1(runs: Runs) -> Judgement:
    parts, ok = [], True
    for name, expect in (("close-late", True), ("close", False)):
        run = need(runs, name)
        closed = event_time(run, "client", "close")
        hi = next((w for w in segments_of(run, "data", "server") if w.label == "Hi, data1"), None)
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
    fin_c = first(run, "fin", "client")
    eof = event_time(run, "server", "eof")
    fin_s = first(run, "fin", "server")
    ended = ended_at(run, "server")
    own = calls(run, "server", "close") + calls(run, "server", "shutdown")
    own_events = [event_time(run, "server", name) for name in ("close", "shutdown")]
    evidence = (
        f"shutdown: client {_fin_text(fin_c)}; server read() = 0 at "
        + (f"{eof * 1000:.1f} ms" if eof is not None else "never")
        + f"; server {_fin_text(fin_s)}, with no close() or shutdown() call; the server "
        f"process ended at {ended * 1000:.1f} ms"
    )
    ok = (
        fin_c is not None
        and eof is not None
        and fin_c.t <= eof
        and fin_s is not None
        and eof <= fin_s.t <= ended
        and not own
        and own_events == [None, None]
    )
    if not ok:
        return Judgement(DIFFERS, evidence, "the FINs did not follow the half-close and the exit")
    return Judgement(HOLDS, evidence)


def who_closes(runs: Runs) -> Judgement:
    by: dict[str, list[str]] = {"client": [], "server": []}
    for name, run in runs.items():
        ends = [w for w in wire(run) if w.kind in ("fin", "rst")]
        if ends:
            by[ends[0].by].append(name)
    evidence = "; ".join(
        f"the {side} ended first in {len(names)} runs ({', '.join(names[:4])}"
        + (", …" if len(names) > 4 else "")
        + ")"
        for side, names in by.items()
        if names
    )
    if by["client"] and by["server"]:
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
