"""RunFacts' causality rules on hand-made timelines (see docs/facts.md)."""

from __future__ import annotations

from support.conversations import HANDSHAKE, SERVER, T0, A, F, R, ev, pkt
from tcpclose.facts import RunFacts
from tcpclose.model.timeline import Role, Timeline


def facts(packets, events) -> RunFacts:
    return RunFacts.of(Timeline.build([*HANDSHAKE, *packets], events, server=SERVER, start=T0))


def call(ms: float, started: float, call_id: str, syscall: str) -> object:
    return ev(ms, "server", "call", id=call_id, syscall=syscall, call=call_id, result=0,
              started=started)  # fmt: skip


def test_a_long_call_in_progress_is_found_behind_a_shorter_later_one() -> None:
    """Two processes of one side: the child's long shutdown() spans the parent's short close()
    that began and ended earlier than the FIN: the FIN is the shutdown's."""
    f = facts(
        [pkt(50.0, "server", F | A)],
        [call(20.0, 10.0, "close.parent", "close"), call(100.0, 5.0, "shutdown.child", "shutdown")],
    )
    assert f.first_fin is not None and f.first_fin.cause_id == "shutdown.child"


def test_without_a_call_in_progress_the_last_one_begun_before_is_the_cause() -> None:
    f = facts(
        [pkt(50.0, "server", F | A)],
        [call(20.0, 10.0, "close.a", "close"), call(40.0, 30.0, "close.b", "close"),
         call(70.0, 60.0, "close.c", "close")],
    )  # fmt: skip
    assert f.first_fin is not None and f.first_fin.cause_id == "close.b"


def test_an_rst_answers_data_that_reached_a_closed_socket_only() -> None:
    closed_first = facts(
        [pkt(50.0, "client", A, b"late"), pkt(50.1, "server", R)],
        [call(20.0, 10.0, "close", "close")],
    )
    rst = closed_first.first_rst
    assert rst is not None and closed_first.segment(rst.in_reply_to) is not None
    data_first = facts(
        [pkt(5.0, "client", A, b"early"), pkt(50.1, "server", R)],
        [call(50.2, 50.0, "close", "close")],
    )
    rst = data_first.first_rst
    assert rst is not None and rst.in_reply_to is None and rst.cause_id == "close"


def test_each_sides_first_end_and_first_fin_or_rst() -> None:
    f = facts(
        [pkt(10.0, "server", F | A), pkt(20.0, "client", R | A), pkt(30.0, "client", F | A)],
        [],
    )
    server_end, client_end = f.first_end(Role.SERVER), f.first_end(Role.CLIENT)
    assert server_end is not None and server_end.packet.fin and server_end.by is Role.SERVER
    assert client_end is not None and client_end.packet.rst and client_end.t > server_end.t
    assert f.first_with("fin", by=Role.CLIENT) is not None
    assert f.first_with("fin", by=Role.CLIENT) is f.segments[-1]
    assert f.first_with("rst", by=Role.SERVER) is None
    assert f.first_with("fin") is server_end
