"""Typed events: one frozen, validated dataclass per kind, parsed from the --events records."""

from __future__ import annotations

import dataclasses

import pytest

from tcpclose.facts import RunFacts
from tcpclose.model.event import (
    Accepted,
    AppEvent,
    Call,
    Connected,
    EventFormatError,
    Exit,
    Received,
    Sent,
    Signal,
    Syscall,
    typed,
)
from tcpclose.model.timeline import Timeline


def rec(event: str, role: str = "client", **fields: object) -> AppEvent:
    return AppEvent(1_700_000_000_000_000_000, role, event, dict(fields))


def test_records_equal_only_with_equal_payloads() -> None:
    assert rec("error", call="write", errno="EPIPE") != rec("error", call="write", errno="EIO")
    assert rec("eof") == rec("eof")
    assert len({rec("eof"), rec("eof")}) == 1  # still hashable


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (rec("connected", local="127.0.0.1"), Connected),
        (rec("accepted", role="server"), Accepted),
        (rec("sent", bytes=5, data="data1"), Sent),
        (rec("received", bytes=9, data="Hi, data1"), Received),
        (rec("eof"), Received),
        (rec("close", started_ns=1), Call),
        (rec("signal", signal="SIGPIPE"), Signal),
        (rec("killed", signal="SIGPIPE"), Signal),
        (rec("exit", status=1), Exit),
    ],
)
def test_every_kind_of_the_lesson_format_parses(record: AppEvent, expected: type) -> None:
    event = typed(record)
    assert isinstance(event, expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.role = "server"  # type: ignore[misc]


def test_lesson_calls_get_stable_ids_apart_from_their_labels() -> None:
    shutdown = typed(rec("shutdown", how="SHUT_WR", reason="stdin-eof", started_ns=5))
    assert isinstance(shutdown, Call) and shutdown.syscall is Syscall.SHUTDOWN
    assert shutdown.call_id == "shutdown.shut_wr"
    assert shutdown.label == "shutdown(SHUT_WR) on stdin EOF" and shutdown.started_ns == 5
    abort = typed(rec("abort"))
    assert isinstance(abort, Call) and (abort.syscall, abort.call_id) == (Syscall.ABORT, "abort")
    error = typed(rec("error", role="server", call="write", errno="EPIPE", message="Broken pipe"))
    assert isinstance(error, Call) and error.failed and error.result is None
    assert (error.syscall, error.errno) == (Syscall.WRITE, "EPIPE")


def test_actor_calls_carry_id_syscall_and_label() -> None:
    event = typed(rec("call", id="close.child", syscall="close", call="close() in child", result=0))
    assert isinstance(event, Call)
    assert (event.call_id, event.syscall, event.label) == ("close.child", Syscall.CLOSE,
                                                           "close() in child")  # fmt: skip
    old = typed(rec("call", call="SO_LINGER 0, close()", result=0))  # before ids existed
    assert isinstance(old, Call) and old.syscall is Syscall.ABORT


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        (rec("sent", role="proxy", bytes=1, data="x"), "role must be client or server"),
        (rec("sent", bytes=-1, data="x"), "bad byte count"),
        (rec("sent", data="x"), "bytes must be an int"),
        (rec("call", id="x", syscall="frobnicate", call="x", result=0), "unknown syscall"),
        (rec("call", id="r", syscall="read", call="read()", result=None), "result xor errno"),
        (rec("error", call="write", errno="broken"), "bad errno name"),
        (rec("signal", signal="PIPE"), "bad signal name"),
        (rec("teleported"), "unknown event kind"),
        (rec("close", started_ns=2_000_000_000_000_000_000), "started after it returned"),
    ],
)
def test_invalid_records_are_refused_by_name(record: AppEvent, complaint: str) -> None:
    with pytest.raises(EventFormatError, match=complaint):
        typed(record)


def test_facts_keep_invalid_records_aside() -> None:
    good = rec("sent", bytes=5, data="data1")
    bad = AppEvent(good.t_ns + 1, "client", "teleported", {})
    facts = RunFacts.of(Timeline.build([], [good, bad]))
    assert facts.messages == ("data1",)
    assert facts.invalid == (("client", "teleported", "unknown event kind 'teleported'"),)
