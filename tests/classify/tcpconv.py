"""Build realistic packet sequences from a compact script (sequence numbers kept consistent).

A script is a list of steps `(who, letters, payload)`: `who` is "c" (client, the originator)
or "s" (server), `letters` the TCP flags as in `flag_letters` ("S", "SA", "A", "PA", "FA",
"R", "RA"), `payload` the bytes sent (or a length). A step "c!" re-sends the client's last
data segment (a retransmission). A "0" in `letters` advertises a zero window (it is not a
flag). A step "c>" holds the client's next data segment back: it is sent (captured) at the
next "c<" step, after the segments sent meanwhile (out of order).
"""

from __future__ import annotations

from tcpclose.model.packet import Packet, flags_from_letters

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 43211)

Step = tuple[str, str, bytes | int]


def conversation(steps: list[Step], *, isn_c: int = 1000, isn_s: int = 5000) -> list[Packet]:
    """The packets of `steps`, 10 ms apart, with sequence and acknowledgement numbers."""
    nxt = {"c": isn_c, "s": isn_s}
    last: dict[str, Packet] = {}
    out: list[Packet] = []
    held: dict[str, Packet] = {}
    for i, (who, letters, payload) in enumerate(steps):
        t = 1_700_000_000.0 + i * 0.01
        if who.endswith("<"):
            late = held.pop(who[0])
            out.append(
                Packet(
                    t,
                    late.src,
                    late.sport,
                    late.dst,
                    late.dport,
                    late.flags,
                    late.seq,
                    late.ack,
                    late.win,
                    late.length,
                    late.payload,
                )
            )
            continue
        if who.endswith("!"):
            side = who[0]
            old = last[side]
            out.append(
                Packet(
                    t,
                    old.src,
                    old.sport,
                    old.dst,
                    old.dport,
                    old.flags,
                    old.seq,
                    old.ack,
                    old.win,
                    old.length,
                    old.payload,
                )
            )
            continue
        data = payload if isinstance(payload, bytes) else b"x" * payload
        side = who[0]
        other = "s" if side == "c" else "c"
        src, dst = (CLIENT, SERVER) if side == "c" else (SERVER, CLIENT)
        win = 0 if "0" in letters else 65535
        flags = int(flags_from_letters(letters.replace("0", "")))
        ack = nxt[other] if "A" in letters else 0
        p = Packet(t, src[0], src[1], dst[0], dst[1], flags, nxt[side], ack, win, len(data), data)
        if who.endswith(">"):
            held[side] = p
        else:
            out.append(p)
            last[side] = p
        if "R" not in letters:
            nxt[side] = p.seq_end
    return out
