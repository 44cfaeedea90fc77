"""One self-contained HTML report: per scenario a time-scaled SVG diagram, both programs'
transcripts, the verdict, the facts and the captured packets as a pcap download; then the
claims table. Inline CSS, no script, no external resource: the file opens offline and prints.

`render_report` is pure (runs in, HTML text out); `write_report` adds the two impure steps,
packing each run's frames as pcap and writing the file.
"""

from __future__ import annotations

import base64
import datetime as dt
import platform
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from tcpclose.errors import from_oserror
from tcpclose.render.facts_text import fact_rows
from tcpclose.render.pcap import pcap_bytes as frames_to_pcap
from tcpclose.render.svg import render_svg
from tcpclose.render.views import VERDICT_ORDER, ClaimView, RunView

#: the narrowest a diagram is drawn: its smallest text (11 px in a 760 px wide drawing) stays
#: above 9 CSS px; a narrower screen scrolls the diagram sideways in its own box, not the page
DIAGRAM_MIN_WIDTH = 680

CSS = """
:root{--fg:#1d1d1f;--muted:#5f6368;--line:#d9dce1;--holds:#1f7a3d;--differs:#c0141f;
--depends:#a35a00;--unchecked:#7a1fa2}
*{box-sizing:border-box}
body{font:15px/1.5 ui-sans-serif,system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);
margin:0 auto;max-width:1180px;padding:24px}
h1{margin:0 0 4px;font-size:26px}h2{margin:0;font-size:21px}h3{font-size:15px;margin:16px 0 6px}
header p,.muted{color:var(--muted)}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:6px 14px}
a{color:#0b57d0}
section.scenario{border-top:2px solid var(--line);padding:18px 0 8px}
.summary{color:var(--muted);margin:2px 0 10px}
.verdict{border-left:5px solid var(--fg);background:#f6f7f9;padding:8px 12px;margin:10px 0}
.layout{display:grid;grid-template-columns:minmax(0,760px) minmax(260px,1fr);gap:18px;
align-items:start}
.layout>*{min-width:0}
figure{margin:0}
.diagram{overflow-x:auto}
.diagram svg{display:block;width:100%;min-width:{DIAGRAM_MIN_WIDTH}px;height:auto}
figcaption{font-size:12px;color:var(--muted)}
dl.facts{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 10px;margin:0;
font-size:14px}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
.transcripts{display:grid;grid-template-columns:1fr 1fr;gap:12px}
pre{background:#f6f7f9;border:1px solid var(--line);padding:8px;margin:0 0 6px;
white-space:pre-wrap;word-break:break-word;font-size:13px}
pre.stderr{background:#fff6f6}
.pcap{display:inline-block;max-width:100%;overflow-wrap:anywhere;margin-top:8px;padding:4px 10px;
border:1px solid #0b57d0;border-radius:4px;text-decoration:none;font-size:14px}
.table{overflow-x:auto}
table.claims{border-collapse:collapse;width:100%;font-size:14px}
table.claims th,table.claims td{border:1px solid var(--line);padding:6px 8px;vertical-align:top;
text-align:left;overflow-wrap:break-word}
table.claims th{background:#f3f4f6}
.v{font-weight:700;white-space:nowrap}
.v.holds{color:var(--holds)}.v.differs{color:var(--differs)}
.v.depends{color:var(--depends)}.v.unchecked{color:var(--unchecked)}
td .why{display:block;margin-top:4px;color:var(--muted)}
.legend{font-size:13px;color:var(--muted)}
.legend b.rst{color:#d0021b}.legend b.fin{color:#b45309}.legend b.data{color:#1f6f43}
@media (max-width:900px){.layout,.transcripts{grid-template-columns:minmax(0,1fr)}}
@media (max-width:600px){body{padding:12px}h1{font-size:21px}h2{font-size:18px}
table.claims,table.claims tbody,table.claims tr,table.claims td{display:block}
table.claims thead{display:none}table.claims tr{border:1px solid var(--line);margin:0 0 10px}
table.claims td{border:0;padding:4px 10px}table.claims td:first-child{background:#f3f4f6}
table.claims td[data-label]::before{content:attr(data-label) ": ";color:var(--muted)}}
@media print{body{max-width:none;padding:0;font-size:11pt}nav,.pcap{display:none}
section.scenario{break-inside:avoid-page}figure,pre,tr{break-inside:avoid}
.diagram{overflow:visible}.diagram svg{min-width:0}
a{color:inherit;text-decoration:none}}
""".replace("{DIAGRAM_MIN_WIDTH}", str(DIAGRAM_MIN_WIDTH))


def _facts(run: RunView) -> str:
    facts = run.verdict.facts
    rows = fact_rows(facts, run.capture, brief=True) if facts else []
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(val)}</dd>" for k, val in rows)
    return f'<dl class="facts">{body}</dl>'


def _transcript(run: RunView) -> str:
    columns = []
    for outcome in (run.client, run.server):
        blocks = [f"<h3>{escape(outcome.role)} ({escape(outcome.ending)})</h3>"]
        for stream in ("stdout", "stderr"):
            text = getattr(outcome, stream)
            if text.strip():
                blocks.append(
                    f'<pre class="{stream}" title="{stream}">{escape(text.rstrip())}</pre>'
                )
        if len(blocks) == 1:
            blocks.append('<p class="muted">(printed nothing)</p>')
        columns.append(f'<div class="transcript {escape(outcome.role)}">{"".join(blocks)}</div>')
    return f'<div class="transcripts">{"".join(columns)}</div>'


def _pcap_link(name: str, data: bytes | None) -> str:
    if not data:
        return '<p class="muted">no packets captured: no pcap</p>'
    href = "data:application/vnd.tcpdump.pcap;base64," + base64.b64encode(data).decode("ascii")
    return (
        f'<a class="pcap" download="{escape(name)}.pcap" href="{href}">'
        f"download {escape(name)}.pcap ({len(data)} bytes)</a>"
    )


def scenario_section(run: RunView, pcap: bytes | None) -> str:
    s = run.scenario
    ident = f"scenario-{s.name}"
    svg = render_svg(run.timeline, title=f"{s.name}: {s.summary}", ident=f"svg-{s.name}")
    return f"""<section class="scenario" id="{escape(ident)}" data-scenario="{escape(s.name)}">
<h2>{escape(s.name)}</h2>
<p class="summary">{escape(s.summary)}. <em>{escape(s.question)}</em></p>
<p class="verdict"><strong>verdict:</strong> {escape(run.verdict.conclusion)}</p>
<div class="layout"><figure><div class="diagram">{svg}</div><figcaption>time flows down; each
row is labelled with its ms since the first packet; long idle gaps are cut (≈); pure ACKs not
drawn.</figcaption></figure>
<div>{_facts(run)}{_pcap_link(s.name, pcap)}</div></div>
{_transcript(run)}
</section>"""


def claims_section(claims: Sequence[ClaimView], names: set[str]) -> str:
    rows = []
    for c in claims:
        links = ", ".join(
            f'<a href="#scenario-{escape(n)}">{escape(n)}</a>' if n in names else escape(n)
            for n in c.scenarios
        )
        why = f'<span class="why">{escape(c.explanation)}</span>' if c.explanation else ""
        rows.append(
            f'<tr id="claim-{escape(c.id)}" data-verdict="{c.verdict.value}">'
            f"<td><strong>{escape(c.id)}</strong><br>{escape(c.claim)}</td>"
            f'<td data-label="scenarios">{links}</td>'
            f'<td class="v {c.verdict.value}" data-label="verdict">{c.verdict.value}</td>'
            f'<td data-label="evidence">{escape(c.evidence)}{why}</td></tr>'
        )
    counts = ", ".join(
        f"{sum(c.verdict.value == v for c in claims)} {v}"
        for v in VERDICT_ORDER
        if any(c.verdict.value == v for c in claims)
    )
    system = escape(claims[0].system) if claims else ""
    return f"""<section id="claims"><h2>The lesson's claims, checked on {system}</h2>
<p class="muted">{len(claims)} claims: {counts}. <b>holds</b>: the kernel did what the lesson
says; <b>differs</b>: it did something else (explained); <b>depends</b>: the system, the timing
or the signal disposition decides (the runs show which case this machine was in).</p>
<div class="table"><table class="claims"><thead><tr><th>claim</th><th>scenarios</th><th>verdict</th>
<th>evidence</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div></section>"""


def render_report(
    runs: Sequence[RunView],
    *,
    claims: Sequence[ClaimView] | None = None,
    title: str = "tcpclose report",
    pcaps: Mapping[str, bytes] | None = None,
    generated: dt.datetime | None = None,
    system: str | None = None,
) -> str:
    """The whole page as text (pure when `generated` and `system` are given)."""
    when = (generated or dt.datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    system = system or f"{platform.system()} {platform.release()}"
    pcaps = pcaps or {}
    speeds = sorted({run.speed for run in runs})
    speed_note = ", ".join(f"{s:g}" for s in speeds)
    nav = "".join(
        f'<li><a href="#scenario-{escape(r.scenario.name)}">{escape(r.scenario.name)}</a></li>'
        for r in runs
    )
    if claims:
        nav += '<li><a href="#claims">claims</a></li>'
    sections = "\n".join(scenario_section(r, pcaps.get(r.scenario.name)) for r in runs)
    names = {r.scenario.name for r in runs}
    claims_html = claims_section(claims, names) if claims else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body><header><h1>{escape(title)}</h1>
<p>Generated {escape(when)} on <strong>{escape(system)}</strong>, loopback. Every diagram is
drawn from packets captured while the programs ran (time scale {escape(speed_note)}: the
lesson's 5 s delays are scaled by it).</p>
<p class="legend">Arrows: <b class="rst">RST</b> red and crossed, <b class="fin">FIN</b> amber,
<b class="data">data</b> green with its text, SYN grey; boxes are the programs' calls, red boxes
signals and deaths.</p>
<nav><ul>{nav}</ul></nav></header>
<main>
{sections}
{claims_html}
</main>
<footer class="muted"><p>tcpclose: how TCP connections end, from real packets.</p></footer>
</body></html>
"""


def pcap_bytes(run: RunView) -> bytes:
    """The run's captured frames as a pcap file's bytes (empty when nothing was captured)."""
    return frames_to_pcap(run.capture.frames) if run.capture.frames else b""


def write_report(
    runs: Sequence[RunView],
    path: Path,
    *,
    claims: Sequence[ClaimView] | None = None,
    title: str = "tcpclose report",
) -> Path:
    """Write the report for `runs` (and the claims table, when given) to `path`; return it."""
    path = Path(path)
    pcaps = {run.scenario.name: pcap_bytes(run) for run in runs}
    text = render_report(runs, claims=claims, title=title, pcaps=pcaps)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise from_oserror(exc, f"cannot write {path}", on_file=True) from exc
    return path
