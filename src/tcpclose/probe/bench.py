"""The proxy bench's facts: the backend leg, and where the answer died (pure: no I/O).

The client leg (probe <-> proxy) is judged exactly like a direct probe. The backend leg
(proxy <-> our backend) adds what the backend's socket saw (request bytes, the proxy's FIN,
the answer's write and its errno) and, when captured, the proxy's FIN and RST on that leg.
`where_died` turns both legs into one sentence with times from our request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tcpclose.model.packet import Packet
from tcpclose.probe.backend import BackendConn
from tcpclose.probe.facts import PacketFacts, SocketFacts, packet_facts
from tcpclose.probe.verdict import Verdict

Endpoint = tuple[str, int]


@dataclass(frozen=True)
class BackendLeg:
    """One proxy -> backend connection of a run, as the backend and the packets saw it."""

    proxy: Endpoint  #: the proxy's end
    backend: Endpoint
    t_accepted: float
    received: int
    t_eof: float | None
    t_answered: float | None
    answered: int
    write_errno: str | None
    read_errno: str | None
    #: from packets: the proxy's first FIN / RST towards the backend (None without capture)
    proxy_fin_t: float | None = None
    proxy_rst_t: float | None = None
    packets: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "proxy": list(self.proxy),
            "backend": list(self.backend),
            "t_accepted": self.t_accepted,
            "request_bytes_received": self.received,
            "t_proxy_eof": self.t_eof,
            "t_answered": self.t_answered,
            "answer_bytes_written": self.answered,
            "write_errno": self.write_errno,
            "read_errno": self.read_errno,
            "proxy_fin_t": self.proxy_fin_t,
            "proxy_rst_t": self.proxy_rst_t,
            "packets": self.packets,
        }


def backend_leg(conn: BackendConn, packets: Iterable[Packet] | None) -> BackendLeg:
    """A finished BackendConn, with its packets when captured."""
    pk: PacketFacts | None = None
    if packets is not None:
        pk = packet_facts(packets, conn.peer, conn.local)
    return BackendLeg(
        proxy=conn.peer,
        backend=conn.local,
        t_accepted=conn.t_accepted,
        received=conn.received,
        t_eof=conn.t_eof,
        t_answered=conn.t_answered,
        answered=conn.answered,
        write_errno=conn.write_errno,
        read_errno=conn.read_errno,
        proxy_fin_t=_first_fin(pk),
        proxy_rst_t=pk.our_rst_t if pk else None,
        packets=pk.packets if pk else 0,
    )


def _first_fin(pk: PacketFacts | None) -> float | None:
    if pk is None or pk.our_close != "FIN":
        return None
    return pk.our_close_t


def _ms(t: float | None, t0: float) -> str:
    return "?" if t is None else f"{(t - t0) * 1000:.0f} ms"


def where_died(
    verdict: Verdict,
    sock: SocketFacts,
    client: PacketFacts | None,
    legs: Sequence[BackendLeg],
    backend_answer: str,
) -> str:
    """One sentence: where the answer went, or where it died. Times are from our request."""
    t0 = sock.t_sent or sock.t_connected or 0.0
    proxy_end_t = client.peer_end_t if client is not None else sock.t_end
    proxy_end = "FIN"
    if client is not None and client.peer_end_t is not None:
        proxy_end = "FIN" if client.peer_end_t == client.peer_fin_t else "RST"
    elif sock.read_errno == "ECONNRESET":
        proxy_end = "RST"
    if not legs:
        if sock.received:
            return (
                "the proxy never connected to the backend: it answered the client itself "
                f'("{sock.answer.first_line if sock.answer else "?"}") and closed with '
                f"{proxy_end} at {_ms(proxy_end_t, t0)}"
            )
        return (
            "the proxy never connected to the backend; it closed the client's connection "
            f"with {proxy_end} at {_ms(proxy_end_t, t0)}"
        )
    leg = legs[0]
    if leg.received == 0:
        return (
            f"the proxy connected to the backend at {_ms(leg.t_accepted, t0)} but never "
            "forwarded the request; it closed the client's connection with "
            f"{proxy_end} at {_ms(proxy_end_t, t0)}"
        )
    if leg.t_answered is None and leg.write_errno is None:
        return (
            f"the backend got the request ({leg.received} B) but the proxy closed the backend "
            f"leg before the answer was due ({_backend_close(leg, t0)}); the client got "
            f"{proxy_end} at {_ms(proxy_end_t, t0)}"
        )
    answered_at = leg.t_answered if leg.t_answered is not None else None
    if leg.write_errno is not None:
        return (
            f"the backend's answer failed ({leg.write_errno}): the proxy had already "
            f"{_backend_close(leg, t0)}; it sent {proxy_end} to the client at "
            f"{_ms(proxy_end_t, t0)}"
        )
    if verdict is Verdict.GRACEFUL:
        return (
            f"the backend answered at {_ms(answered_at, t0)} ({backend_answer}); the proxy "
            f"passed it on and closed the client's side with {proxy_end} at "
            f"{_ms(proxy_end_t, t0)}: nothing lost"
        )
    if verdict is Verdict.ANSWER_CHANGED:
        got = sock.answer.describe() if sock.answer else "?"
        return (
            f"the backend answered at {_ms(answered_at, t0)} ({backend_answer}); the client got "
            f"{got} instead"
        )
    before = proxy_end_t is not None and answered_at is not None and proxy_end_t < answered_at
    when = "had already sent" if before else "then sent"
    reactions = []
    if leg.proxy_fin_t is not None and answered_at is not None and leg.proxy_fin_t < answered_at:
        reactions.append(f"closed the backend leg (FIN at {_ms(leg.proxy_fin_t, t0)})")
    if leg.proxy_rst_t is not None and answered_at is not None and leg.proxy_rst_t >= answered_at:
        reactions.append("answered the backend's data with RST")
    reaction = "".join(f" and {r}" for r in reactions)
    delivered = "" if not sock.received else f" after {sock.received} B"
    return (
        f"the backend answered at {_ms(answered_at, t0)}; the proxy {when} {proxy_end} to the "
        f"client at {_ms(proxy_end_t, t0)}{delivered}{reaction}"
    )


def _backend_close(leg: BackendLeg, t0: float) -> str:
    if leg.proxy_rst_t is not None and (
        leg.proxy_fin_t is None or leg.proxy_rst_t < leg.proxy_fin_t
    ):
        return f"reset the backend leg (RST at {_ms(leg.proxy_rst_t, t0)})"
    if leg.proxy_fin_t is not None:
        return f"closed the backend leg (FIN at {_ms(leg.proxy_fin_t, t0)})"
    if leg.t_eof is not None:
        return f"closed the backend leg (EOF at {_ms(leg.t_eof, t0)})"
    if leg.read_errno is not None:
        return f"reset the backend leg ({leg.read_errno})"
    return "closed the backend leg"
