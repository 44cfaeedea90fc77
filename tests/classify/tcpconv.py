"""Build realistic packet sequences from a compact script (sequence numbers kept consistent).

A script is a list of steps `(who, letters, payload)`: `who` is "c" (client, the originator)
or "s" (server), `letters` the TCP flags as in `flag_letters` ("S", "SA", "A", "PA", "FA",
"R", "RA"), `payload` the bytes sent (or a length). A step "c!" re-sends the client's last
data segment (a retransmission).
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
    for i, (who, letters, payload) in enumerate(steps):
        t = 1_700_000_000.0 + i * 0.01
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
        other = "s" if who == "c" else "c"
        src, dst = (CLIENT, SERVER) if who == "c" else (SERVER, CLIENT)
        flags = int(flags_from_letters(letters))
        ack = nxt[other] if "A" in letters else 0
        p = Packet(t, src[0], src[1], dst[0], dst[1], flags, nxt[who], ack, 65535, len(data), data)
        out.append(p)
        last[who] = p
        if "R" not in letters:
            nxt[who] = p.seq_end
    return out
