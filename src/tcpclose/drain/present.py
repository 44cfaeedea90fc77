"""A drain run in words (terminal summary, sparkline, diagrams) and as JSON (pure)."""

from __future__ import annotations

import math
from typing import Any

from tcpclose.drain.causes import EXPLANATIONS, Cause
from tcpclose.drain.records import ClientKind, RequestRecord
from tcpclose.drain.run import DrainRun

BIN = 0.1  #: seconds per sparkline column
MAX_COLUMNS = 100
_BLOCKS = " ▁▂▃▄▅▆▇█"


def bins(run: DrainRun) -> tuple[float, list[int], list[int], int | None]:
    """(bin width, ok per bin, lost per bin, the signal's bin) by request start time."""
    span = max(run.t_end - run.t0, BIN)
    width = BIN * max(1, math.ceil(span / BIN / MAX_COLUMNS))
    count = max(1, math.ceil(span / width))
    ok = [0] * count
    lost = [0] * count
    for r in run.records:
        i = min(count - 1, max(0, int((r.start - run.t0) / width)))
        if r.lost:
            lost[i] += 1
        elif not r.expected:
            ok[i] += 1
    mark = None
    if run.signal_at is not None:
        mark = min(count - 1, max(0, int((run.signal_at - run.t0) / width)))
    return width, ok, lost, mark


def _spark(values: list[int]) -> str:
    top = max(values) if values else 0
    if top == 0:
        return " " * len(values)
    out = []
    for v in values:
        level = 0 if v == 0 else max(1, round(v / top * (len(_BLOCKS) - 1)))
        out.append(_BLOCKS[level])
    return "".join(out)


def sparkline(run: DrainRun) -> list[str]:
    width, ok, lost, mark = bins(run)
    lines = [
        f"ok   {_spark(ok)}  (max {max(ok)} per {width * 1000:.0f} ms)",
        f"lost {_spark(lost)}  (max {max(lost)})",
    ]
    if mark is not None:
        lines.append("     " + " " * mark + "^ " + run.action)
    return lines


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))


def _relative(run: DrainRun, t: float) -> str:
    base = run.signal_at if run.signal_at is not None else run.t0
    return f"{t - base:+.3f} s"


def lost_timing(run: DrainRun) -> dict[str, Any]:
    """When the lost requests started, relative to the signal (or the load's start)."""
    lost = [r for r in run.records if r.lost]
    base = run.signal_at if run.signal_at is not None else run.t0
    if not lost:
        return {"first": None, "last": None, "before_signal": 0, "after_signal": 0}
    starts = [r.start - base for r in lost]
    return {
        "first": round(min(starts), 6),
        "last": round(max(starts), 6),
        "before_signal": sum(1 for s in starts if s < 0),
        "after_signal": sum(1 for s in starts if s >= 0),
    }


def summary_text(run: DrainRun, *, diagrams: bool = True) -> str:
    o = run.options
    t = run.tally
    lines = [
        f"tcpclose drain: {o.host}:{o.port}, {run.action or 'no signal'} at {o.at:g} s, "
        f"load kept {o.after:g} s after ({run.event_loop})",
        f"attempted {t.attempted}  ok {t.ok}  lost {t.lost_total}"
        + (
            f"  (refused after the stop signal, expected: {sum(t.expected.values())})"
            if t.expected
            else ""
        ),
    ]
    rate = t.attempted / max(run.t_end - run.t0, 1e-9)
    lines.append(f"load: {rate:,.0f} requests/s over {run.t_end - run.t0:.2f} s")
    for kind in ClientKind:
        row = t.by_client[str(kind)]
        if row["attempted"]:
            lines.append(
                f"  {kind:<6} clients: {row['attempted']} attempted, {row['ok']} ok, "
                f"{row['lost']} lost" + (f", {row['expected']} expected" if row["expected"] else "")
            )
    if t.lost_total:
        timing = lost_timing(run)
        lines.append(f"lost by outcome: {_counts(t.lost)}")
        lines.append(f"lost by cause:   {_counts(t.causes)}")
        lines.append(
            f"lost requests started from {timing['first']:+.3f} s to {timing['last']:+.3f} s "
            f"{'after the signal' if run.signal_at is not None else 'after the start'}"
        )
        for cause in t.causes:
            if cause in Cause.__members__.values():
                lines.append(f"  {cause}: {EXPLANATIONS[Cause(cause)]}")
    lines.extend(sparkline(run))
    c = run.capture
    if c.method == "none":
        lines.append(f"capture: none ({c.note})")
    else:
        lines.append(
            f"capture: {c.method}, {c.received} packets, {c.dropped} dropped"
            + (f"; pcap: {o.pcap}" if o.pcap else "")
        )
    if run.explained is not None:
        lines.append(
            f"connections: {run.explained.connections} ({_counts(run.explained.terminations)})"
        )
    if run.server_end is not None:
        lines.append(f"server: {run.server_end.text} at {_relative(run, run.server_end.t)}")
    if run.reload_end is not None:
        lines.append(f"reload command: {run.reload_end.text} at {_relative(run, run.reload_end.t)}")
    lines.extend(f"note: {n}" for n in run.notes)
    if diagrams and run.explained is not None:
        for cause, (index, text) in run.explained.diagrams.items():
            r = run.records[index]
            lines.append("")
            lines.append(
                f"{cause}: request #{index} ({r.client} client, "
                f"{'reused' if r.reused else 'first'} on connection {r.connection}, "
                f"port {r.local_port}): {r.outcome}"
            )
            lines.append(text.rstrip("\n"))
    lines.append(
        "verdict: "
        + ("nothing lost" if not t.lost_total else f"{t.lost_total} of {t.attempted} requests lost")
    )
    return "\n".join(lines) + "\n"


def to_json(run: DrainRun) -> dict[str, Any]:
    o = run.options
    t = run.tally
    width, ok, lost, mark = bins(run)
    return {
        "target": {"host": o.host, "port": o.port},
        "action": {
            "text": run.action,
            "at": None if run.signal_at is None else round(run.signal_at - run.t0, 6),
            "signal": None if o.reload else o.signal,
            "reload": o.reload,
            "expect": "stop" if o.expect_stop else "reload",
        },
        "summary": {
            "attempted": t.attempted,
            "ok": t.ok,
            "lost": dict(t.lost),
            "lost_total": t.lost_total,
            "causes": dict(t.causes),
            "expected": dict(t.expected),
            "by_client": t.by_client,
            "timing": lost_timing(run),
            "duration": round(run.t_end - run.t0, 6),
            "requests_per_second": round(t.attempted / max(run.t_end - run.t0, 1e-9), 1),
        },
        "plot": {"bin": width, "ok": ok, "lost": lost, "signal_bin": mark},
        "capture": {
            "method": run.capture.method,
            "packets": run.capture.received,
            "dropped": run.capture.dropped,
            "note": run.capture.note,
            "pcap": None if o.pcap is None else str(o.pcap),
        },
        "connections": None
        if run.explained is None
        else {
            "count": run.explained.connections,
            "terminations": dict(run.explained.terminations),
        },
        "diagrams": {}
        if run.explained is None
        else {
            cause: {"request": index, "text": text}
            for cause, (index, text) in run.explained.diagrams.items()
        },
        "server": {
            "pid": run.server_pid,
            "end": None if run.server_end is None else run.server_end.text,
            "end_at": None if run.server_end is None else round(run.server_end.t - run.t0, 6),
        },
        "reload": None if run.reload_end is None else run.reload_end.text,
        "event_loop": run.event_loop,
        "notes": run.notes,
        "requests": [r.to_json(run.t0) for r in run.records],
    }


def lost_records(run: DrainRun) -> list[RequestRecord]:
    return [r for r in run.records if r.lost]
