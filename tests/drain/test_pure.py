"""drain's pure parts: answer framing, the accounting identity, the cause table on canned
connections, option parsing."""

from __future__ import annotations

import pytest

from tcpclose.classify import classify_packets
from tcpclose.drain.causes import RULES, Cause, RequestFacts, cause_of
from tcpclose.drain.explain import ConnectionPackets, wire_facts
from tcpclose.drain.load import LoadOptions
from tcpclose.drain.processes import signal_number
from tcpclose.drain.protocol import AnswerReader, workload
from tcpclose.drain.records import (
    AccountingError,
    ClientKind,
    Outcome,
    RequestRecord,
    Tally,
)
from tcpclose.errors import UsageError
from tcpclose.model.packet import Packet

C, S = ("127.0.0.1", 40000), ("127.0.0.1", 8080)
SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04


def _from(side: tuple[str, int], t: float, flags: int, seq: int, ack: int, n: int = 0) -> Packet:
    other = S if side == C else C
    return Packet(t, side[0], side[1], other[0], other[1], flags, seq, ack, 64, n)


def _handshake() -> list[Packet]:
    return [
        _from(C, 0.000, SYN, 100, 0),
        _from(S, 0.001, SYN | ACK, 500, 101),
        _from(C, 0.002, ACK, 101, 501),
    ]


def _exchange(t: float, cseq: int, sseq: int) -> list[Packet]:
    """One answered request: 50 bytes from the client, 80 back."""
    return [
        _from(C, t, PSH | ACK, cseq, sseq, 50),
        _from(S, t + 0.001, PSH | ACK, sseq, cseq + 50, 80),
        _from(C, t + 0.002, ACK, cseq + 50, sseq + 80),
    ]


def _record(start: float, reused: bool, outcome: Outcome) -> RequestRecord:
    return RequestRecord(0, ClientKind.REUSE, 0, start, start + 0.01, 1, 40000, reused, outcome)


# Canned connections: (name, packets, request start, reused, outcome, expected cause).
CASES = [
    (
        "keep-alive race: server FIN before our second request, RST answers it",
        [
            *_handshake(),
            *_exchange(0.010, 101, 501),
            _from(S, 0.020, FIN | ACK, 581, 151),
            _from(C, 0.0205, PSH | ACK, 151, 581, 50),
            _from(S, 0.021, RST, 581, 0),
        ],
        0.0204,
        True,
        Outcome.CLOSED_WITHOUT_ANSWER,
        Cause.KEEPALIVE_RACE,
    ),
    (
        "keep-alive race seen by the FIN's ack: FIN sent before our data arrived",
        [
            *_handshake(),
            *_exchange(0.010, 101, 501),
            _from(C, 0.020, PSH | ACK, 151, 581, 50),
            _from(S, 0.0201, FIN | ACK, 581, 151),
            _from(S, 0.021, RST, 582, 0),
        ],
        0.0199,
        True,
        Outcome.RESET_BEFORE_ANSWER,
        Cause.KEEPALIVE_RACE,
    ),
    (
        "keep-alive race by RST: the server reset its idle connection as our request arrived",
        [
            *_handshake(),
            *_exchange(0.010, 101, 501),
            _from(C, 0.020, PSH | ACK, 151, 581, 50),
            _from(S, 0.0205, RST | ACK, 581, 201),
        ],
        0.0199,
        True,
        Outcome.RESET_BEFORE_ANSWER,
        Cause.KEEPALIVE_RACE,
    ),
    (
        # HAProxy's soft stop (-sf), seen in a full suite run: FIN 13 us after our request,
        # acking it, then RST 10 us later: closed while the request sat unread
        "keep-alive race: FIN then RST as our request arrived (a shutdown, then unread data)",
        [
            *_handshake(),
            *_exchange(0.010, 101, 501),
            _from(C, 0.020, PSH | ACK, 151, 581, 50),
            _from(S, 0.020013, FIN | ACK, 581, 201),
            _from(S, 0.020023, RST | ACK, 582, 201),
        ],
        0.0199,
        True,
        Outcome.CLOSED_WITHOUT_ANSWER,
        Cause.KEEPALIVE_RACE,
    ),
    (
        "closed after reading without answering",
        [
            *_handshake(),
            _from(C, 0.010, PSH | ACK, 101, 501, 50),
            _from(S, 0.011, ACK, 501, 151),
            _from(S, 0.050, FIN | ACK, 501, 151),
        ],
        0.009,
        False,
        Outcome.CLOSED_WITHOUT_ANSWER,
        Cause.CLOSED_UNANSWERED,
    ),
    (
        "RST with our request unread on a connection that had answered before",
        [
            *_handshake(),
            *_exchange(0.010, 101, 501),
            _from(C, 0.020, PSH | ACK, 151, 581, 50),
            _from(S, 0.030, RST | ACK, 581, 201),
        ],
        0.0199,
        True,
        Outcome.RESET_BEFORE_ANSWER,
        Cause.RST_UNREAD,
    ),
    (
        "never accepted: reset by the closing listener, nothing ever sent by the server",
        [
            *_handshake(),
            _from(C, 0.003, PSH | ACK, 101, 501, 50),
            _from(S, 0.040, RST | ACK, 501, 151),
        ],
        0.0025,
        False,
        Outcome.RESET_BEFORE_ANSWER,
        Cause.NEVER_ACCEPTED,
    ),
    (
        "partial answer",
        [
            *_handshake(),
            _from(C, 0.010, PSH | ACK, 101, 501, 50),
            _from(S, 0.011, PSH | ACK, 501, 151, 20),
            _from(S, 0.012, RST | ACK, 521, 151),
        ],
        0.009,
        False,
        Outcome.RESET_MID_ANSWER,
        Cause.PARTIAL_ANSWER,
    ),
    (
        "closed before the request on a new connection",
        [
            *_handshake(),
            _from(S, 0.003, FIN | ACK, 501, 101),
            _from(C, 0.004, PSH | ACK, 101, 502, 50),
            _from(S, 0.0041, RST, 502, 0),
        ],
        0.0035,
        False,
        Outcome.CLOSED_WITHOUT_ANSWER,
        Cause.CLOSED_BEFORE_REQUEST,
    ),
    (
        "reset before the request left: connect() itself failed with ECONNRESET",
        [*_handshake(), _from(S, 0.003, RST | ACK, 501, 101)],
        0.0025,
        False,
        Outcome.RESET_BEFORE_ANSWER,
        Cause.NEVER_ACCEPTED,
    ),
    (
        "SYN refused",
        [_from(C, 0.0, SYN, 100, 0), _from(S, 0.0001, RST | ACK, 0, 101)],
        0.0,
        False,
        Outcome.REFUSED,
        Cause.SYN_REFUSED,
    ),
    (
        "no answer: the server ACKed and stayed silent",
        [*_handshake(), _from(C, 0.010, PSH | ACK, 101, 501, 50), _from(S, 0.011, ACK, 501, 151)],
        0.009,
        False,
        Outcome.TIMED_OUT,
        Cause.NO_ANSWER,
    ),
]


@pytest.mark.parametrize(
    ("name", "packets", "start", "reused", "outcome", "cause"), CASES, ids=[c[0] for c in CASES]
)
def test_cause_from_canned_connection(
    name: str, packets: list[Packet], start: float, reused: bool, outcome: Outcome, cause: Cause
) -> None:
    verdict = classify_packets(packets)
    facts = wire_facts(_record(start, reused, outcome), ConnectionPackets(verdict, packets))
    assert cause_of(facts) is cause, (name, facts)


def test_every_cause_has_a_rule_and_not_captured_comes_first() -> None:
    assert [c for c, _ in RULES] == list(Cause)
    facts = wire_facts(_record(0.0, False, Outcome.TIMED_OUT), None)
    assert cause_of(facts) is Cause.NOT_CAPTURED
    assert (
        cause_of(
            RequestFacts(
                True,
                False,
                Outcome.ERROR_STATUS,
                False,
                True,
                10,
                0,
                False,
                False,
                False,
                False,
                False,
                False,
            )
        )
        is Cause.ERROR_ANSWER
    )


@pytest.mark.parametrize(
    ("chunks", "complete", "status", "close_after"),
    [
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"], True, 200, False),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na", b"bc"], True, 200, False),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab"], False, 200, False),
        ([b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"], True, 503, True),
        ([b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"], True, 200, True),
        ([b"HTTP/1.1 204 No Content\r\n\r\n"], True, 204, False),
        (
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", b"0\r\n\r\n"],
            True,
            200,
            False,
        ),
        ([b"HTTP/1.1 200 OK\r\n\r\nuntil the end"], False, 200, True),
    ],
)
def test_http_answers_are_framed(
    chunks: list[bytes], complete: bool, status: int, close_after: bool
) -> None:
    reader = AnswerReader(http=True)
    done = False
    for chunk in chunks:
        done = reader.feed(chunk)
    assert done is complete
    assert reader.status == status
    assert reader.close_after is close_after
    assert reader.error is (status >= 400)


def test_answer_without_length_ends_at_fin() -> None:
    reader = AnswerReader(http=True)
    reader.feed(b"HTTP/1.1 200 OK\r\n\r\nbody")
    assert reader.eof() is True


def test_line_answers() -> None:
    reader = AnswerReader(http=False)
    assert reader.feed(b"+PO") is False
    assert reader.feed(b"NG\r\n") is True and not reader.error
    bad = AnswerReader(http=False)
    assert bad.feed(b"-ERR no\r\n") and bad.error


def test_workloads() -> None:
    http = workload("http", "127.0.0.1", 8080, "/x", None, None)
    assert http.keepalive_request.startswith(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert http.close_request.endswith(b"Connection: close\r\n\r\n")
    assert workload("redis", "127.0.0.1", 6379, "/", None, None).keepalive_request == (
        b"*1\r\n$4\r\nPING\r\n"
    )
    assert workload("http", "::1", 80, "/", None, "a\\r\\n").keepalive_request == b"a\r\n"
    with pytest.raises(UsageError):
        workload("gopher", "127.0.0.1", 70, "/", None, None)


def test_client_kinds_are_split_as_asked() -> None:
    load = LoadOptions(
        "127.0.0.1",
        1,
        workload("echo", "127.0.0.1", 1, "/", None, None),
        concurrency=12,
        keepalive_share=0.5,
        check_share=0.5,
    )
    kinds = load.kinds()
    assert kinds.count(ClientKind.NEW) == 6
    assert kinds.count(ClientKind.REUSE) == 3 and kinds.count(ClientKind.CHECK) == 3


def test_tally_and_its_identity() -> None:
    records = [
        RequestRecord(0, ClientKind.NEW, 0, 0.0, outcome=Outcome.OK),
        RequestRecord(
            1, ClientKind.REUSE, 1, 0.1, outcome=Outcome.RESET_BEFORE_ANSWER, cause="keepalive-race"
        ),
        RequestRecord(2, ClientKind.NEW, 0, 0.2, outcome=Outcome.REFUSED, expected=True),
    ]
    tally = Tally.of(records)
    assert (tally.attempted, tally.ok, tally.lost_total) == (3, 1, 1)
    assert tally.expected == {"refused": 1} and tally.causes == {"keepalive-race": 1}
    tally.ok += 1
    with pytest.raises(AccountingError):
        tally.check()


@pytest.mark.parametrize(("text", "number"), [("TERM", 15), ("sighup", 1), ("USR2", 12), ("9", 9)])
def test_signal_names(text: str, number: int) -> None:
    assert signal_number(text) == number


def test_unknown_signal() -> None:
    with pytest.raises(UsageError):
        signal_number("NOPE")
