"""`--report FILE`: one self-contained HTML page with an SVG plot of ok and lost requests."""

from __future__ import annotations

from html import escape

from tcpclose.drain.causes import EXPLANATIONS, Cause
from tcpclose.drain.present import bins, lost_timing
from tcpclose.drain.run import DrainRun

_W, _H, _PAD = 900, 220, 40


def plot_svg(run: DrainRun) -> str:
    """Bars per bin: ok (green) and lost (red) requests by start time; the signal a line."""
    width, ok, lost, mark = bins(run)
    n = len(ok)
    top = max([a + b for a, b in zip(ok, lost, strict=True)] + [1])
    bar = (_W - 2 * _PAD) / n
    scale = (_H - 2 * _PAD) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="ok and lost requests per '
        f'{width * 1000:.0f} ms">',
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#333"/>',
        f'<text x="{_PAD}" y="{_PAD - 10}" font-size="12">requests per {width * 1000:.0f} ms '
        f"(max {top})</text>",
    ]
    for i, (good, bad) in enumerate(zip(ok, lost, strict=True)):
        x = _PAD + i * bar
        h_ok, h_lost = good * scale, bad * scale
        y = _H - _PAD - h_ok
        if good:
            parts.append(
                f'<rect class="ok" x="{x:.1f}" y="{y:.1f}" width="{max(bar - 1, 1):.1f}" '
                f'height="{h_ok:.1f}" fill="#3a3"><title>{good} ok</title></rect>'
            )
        if bad:
            parts.append(
                f'<rect class="lost" x="{x:.1f}" y="{y - max(h_lost, 2):.1f}" '
                f'width="{max(bar - 1, 1):.1f}" height="{max(h_lost, 2):.1f}" fill="#d22">'
                f"<title>{bad} lost</title></rect>"
            )
    if mark is not None:
        x = _PAD + mark * bar
        parts.append(
            f'<line class="signal" x1="{x:.1f}" y1="{_PAD - 5}" x2="{x:.1f}" y2="{_H - _PAD}" '
            f'stroke="#a0a" stroke-dasharray="4 3"/>'
            f'<text x="{x + 4:.1f}" y="{_PAD + 8}" font-size="12" fill="#a0a">'
            f"{escape(run.action)}</text>"
        )
    seconds = n * width
    for k in range(0, int(seconds) + 1):
        x = _PAD + k / width * bar
        parts.append(
            f'<text x="{x:.1f}" y="{_H - _PAD + 16}" font-size="11" text-anchor="middle">'
            f"{k} s</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def report_html(run: DrainRun) -> str:
    t = run.tally
    o = run.options
    rows = [
        ("target", f"{o.host}:{o.port}"),
        ("action", f"{run.action or 'none'} at {o.at:g} s; load kept {o.after:g} s after"),
        ("attempted", str(t.attempted)),
        ("ok", str(t.ok)),
        ("lost", str(t.lost_total)),
        ("expected refusals after the stop signal", str(sum(t.expected.values()))),
        (
            "capture",
            f"{run.capture.method}, {run.capture.received} packets, {run.capture.dropped} dropped",
        ),
    ]
    timing = lost_timing(run)
    if t.lost_total:
        rows.append(
            (
                "lost requests started",
                f"{timing['first']:+.3f} s to {timing['last']:+.3f} s after the signal",
            )
        )
    table = "\n".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    outcome_rows = "\n".join(
        f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in sorted(t.lost.items())
    )
    cause_rows = "\n".join(
        f"<tr><td>{escape(k)}</td><td>{v}</td><td>"
        f"{escape(EXPLANATIONS.get(Cause(k), '') if k in Cause.__members__.values() else '')}"
        "</td></tr>"
        for k, v in sorted(t.causes.items())
    )
    client_rows = "\n".join(
        f"<tr><td>{escape(kind)}</td><td>{row['attempted']}</td><td>{row['ok']}</td>"
        f"<td>{row['lost']}</td><td>{row['expected']}</td></tr>"
        for kind, row in t.by_client.items()
        if row["attempted"]
    )
    diagrams = ""
    if run.explained is not None:
        for cause, (index, text) in run.explained.diagrams.items():
            r = run.records[index]
            diagrams += (
                f"<h3>{escape(cause)}: request #{index}</h3>\n<p>{escape(str(r.client))} client, "
                f"{'reused' if r.reused else 'first'} on its connection: {escape(str(r.outcome))}"
                f"</p>\n<pre>{escape(text)}</pre>\n"
            )
    verdict = "nothing lost" if not t.lost_total else f"{t.lost_total} requests lost"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>tcpclose drain: {escape(verdict)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1000px; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
pre {{ background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 12px; }}
</style></head><body>
<h1>tcpclose drain: {escape(verdict)}</h1>
<table>{table}</table>
<h2>Requests over time</h2>
{plot_svg(run)}
<h2>Clients</h2>
<table><tr><th>kind</th><th>attempted</th><th>ok</th><th>lost</th><th>expected</th></tr>
{client_rows}</table>
<h2>Lost, by outcome</h2>
<table><tr><th>outcome</th><th>requests</th></tr>{outcome_rows}</table>
<h2>Lost, by cause (from the packets)</h2>
<table><tr><th>cause</th><th>requests</th><th>what it means</th></tr>{cause_rows}</table>
<h2>One lost request per cause</h2>
{diagrams or "<p>none</p>"}
</body></html>
"""
