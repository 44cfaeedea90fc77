"""`--connection N`: one connection drawn by the lab's diagram renderer (`tcpclose.render.text`),
the originator as the client lifeline and the responder as the server, then every packet with
its relative sequence numbers, then the verdict."""

from __future__ import annotations

from collections.abc import Sequence

from tcpclose.analyze.output import endpoint
from tcpclose.classify import ConnectionVerdict
from tcpclose.model.packet import Packet, flag_letters

_M32 = 0xFFFFFFFF


def render_timeline(number: int, verdict: ConnectionVerdict, packets: Sequence[Packet]) -> str:
    """The sequence diagram, then a text table: time (ms from the first packet), direction,
    flags, relative seq/ack, payload length and a payload preview; then the verdict."""
    # Imported here: the renderer (rich) costs every other run of `analyze` 30 ms to load.
    from tcpclose.model.timeline import Timeline
    from tcpclose.render.text import render_diagram

    orig, resp = endpoint(verdict.originator), endpoint(verdict.responder)
    lines = [f"connection {number}: {orig} (originator, drawn as client) <-> {resp} (responder)"]
    timeline = Timeline.build(packets, server=verdict.responder, client=verdict.originator)
    lines += render_diagram(timeline).splitlines()
    lines.append("")
    header = f"{'ms':>10}  {'dir':<4} {'flags':<6} {'seq':>10} {'ack':>10} {'len':>6}  payload"
    lines.append(header)
    base: dict[tuple[str, int], int] = {}
    t0 = packets[0].t if packets else verdict.start
    for p in packets:
        from_orig = (p.src, p.sport) == verdict.originator
        arrow = "->" if from_orig else "<-"
        # Relative numbers, as Wireshark shows them: from each side's first sequence number.
        mine = base.setdefault(p.src_endpoint, p.seq)
        seq = (p.seq - mine) & _M32
        theirs = base.get(p.dst_endpoint)
        ack = "" if not p.has_ack else str((p.ack - theirs) & _M32) if theirs is not None else "?"
        preview = p.text(40)
        if preview is None:
            preview = p.payload[:16].hex(" ") if p.payload else ""
        else:
            preview = repr(preview)
        lines.append(
            f"{(p.t - t0) * 1000:10.3f}  {arrow:<4} {flag_letters(p.flags):<6} {seq:>10} "
            f"{ack:>10} {p.length:>6}  {preview}"
        )
    lines.append(f"{verdict.termination}: {verdict.reason}")
    lines.append(f"zeek: conn_state {verdict.conn_state}, history {verdict.history}")
    return "\n".join(lines) + "\n"
