"""The sans-IO parts: target parsing, presets and escapes, verdict tables, packet facts."""

from __future__ import annotations

import socket

import pytest

from tcpclose.errors import NetworkError, UsageError
from tcpclose.model.packet import Flag, Packet
from tcpclose.probe.facts import AfterClose, Mode, PacketFacts, ReadEnd, SocketFacts, packet_facts
from tcpclose.probe.presets import PRESETS, custom, preset, unescape
from tcpclose.probe.target import Target, parse_target, resolve
from tcpclose.probe.verdict import (
    EXITS,
    MEANING,
    ProbeExit,
    Verdict,
    exit_class,
    judge,
    overall_exit,
)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:80", "127.0.0.1", 80),
        ("[::1]:8080", "::1", 8080),
        ("[fe80::1%lo]:22", "fe80::1%lo", 22),
        ("localhost:6379", "localhost", 6379),
        ("proxy.example.com:443", "proxy.example.com", 443),
        (" 10.0.0.1:65535 ", "10.0.0.1", 65535),
    ],
)
def test_parse_target(text: str, host: str, port: int) -> None:
    assert parse_target(text) == Target(host, port)


def test_target_prints_ipv6_in_brackets() -> None:
    assert str(Target("::1", 80)) == "[::1]:80"
    assert str(Target("localhost", 80)) == "localhost:80"


@pytest.mark.parametrize("text", ["", ":80", "host:", "[::1]", "a..b:80", "-a:80", "é.com:80"])
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_target(text)


def test_resolve_literals_and_localhost_without_dns() -> None:
    assert resolve(Target("127.0.0.1", 9), 1).sockaddr == ("127.0.0.1", 9)
    v6 = resolve(Target("::1", 9), 1)
    assert (v6.family, v6.ip, v6.port) == (socket.AF_INET6, "::1", 9)
    assert resolve(Target("localhost", 9), 5).ip in ("127.0.0.1", "::1")  # /etc/hosts


def test_resolve_bad_literal_is_a_network_error() -> None:
    with pytest.raises(NetworkError, match="cannot resolve"):
        resolve(Target("300.1.1.1", 9), 1)  # AI_NUMERICHOST: never reaches DNS


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("PING\\r\\n", b"PING\r\n"),
        ("a\\tb\\\\c", b"a\tb\\c"),
        ("\\x00\\xff\\e", b"\x00\xff\x1b"),
        ("héllo", "héllo".encode()),
    ],
)
def test_unescape(text: str, data: bytes) -> None:
    assert unescape(text) == data


@pytest.mark.parametrize("text", ["\\", "\\q", "\\x", "\\xZZ"])
def test_unescape_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        unescape(text)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_partial_is_a_strict_prefix(name: str) -> None:
    request = preset(name, "127.0.0.1", 8080)
    assert request.full.startswith(request.partial)
    assert 0 < len(request.partial) < len(request.full)


def test_http_preset_is_a_complete_http11_get() -> None:
    full = preset("http", "::1", 8080).full
    head, sep, body = full.partition(b"\r\n\r\n")
    assert (sep, body) == (b"\r\n\r\n", b"")
    lines = head.split(b"\r\n")
    assert lines[0] == b"GET / HTTP/1.1"
    assert b"Host: [::1]:8080" in lines
    assert not preset("http", "h", 8080).partial.endswith(b"\r\n\r\n")
    assert b"Host: h\r\n" in preset("http", "h", 80).full


def test_custom_partial_is_the_first_half() -> None:
    assert custom(b"abcdef").partial == b"abc"
    with pytest.raises(UsageError):
        custom(b"")


def facts(mode: Mode, received: int, end: ReadEnd, **kw) -> SocketFacts:  # type: ignore[no-untyped-def]
    return SocketFacts(mode, ("127.0.0.1", 1), ("127.0.0.1", 2), 5, received, b"x", end, **kw)


#: (mode, bytes received, read end) -> verdict, exit status
READ_TABLE = [
    (Mode.SHUTDOWN, 10, ReadEnd.EOF, Verdict.GRACEFUL, 0),
    (Mode.SHUTDOWN, 0, ReadEnd.EOF, Verdict.CLOSED_WITHOUT_ANSWER, 10),
    (Mode.SHUTDOWN, 10, ReadEnd.RESET, Verdict.ANSWER_THEN_RESET, 11),
    (Mode.SHUTDOWN, 0, ReadEnd.RESET, Verdict.RESET_WITHOUT_ANSWER, 11),
    (Mode.SHUTDOWN, 10, ReadEnd.TIMEOUT, Verdict.ANSWERED_KEPT_OPEN, 12),
    (Mode.SHUTDOWN, 0, ReadEnd.TIMEOUT, Verdict.NO_ANSWER, 12),
    (Mode.SHUTDOWN, 0, ReadEnd.ERROR, Verdict.READ_ERROR, 11),
    (Mode.PARTIAL, 0, ReadEnd.EOF, Verdict.CLOSED_WITHOUT_ANSWER, 0),
    (Mode.PARTIAL, 10, ReadEnd.TIMEOUT, Verdict.ANSWERED_KEPT_OPEN, 12),
    (Mode.NONE, 10, ReadEnd.TIMEOUT, Verdict.ANSWERED_KEPT_OPEN, 0),
    (Mode.NONE, 0, ReadEnd.EOF, Verdict.CLOSED_WITHOUT_ANSWER, 10),
    (Mode.NONE, 0, ReadEnd.TIMEOUT, Verdict.NO_ANSWER, 12),
]


@pytest.mark.parametrize(("mode", "received", "end", "verdict", "status"), READ_TABLE)
def test_reading_modes(mode, received, end, verdict, status) -> None:  # type: ignore[no-untyped-def]
    sock = facts(mode, received, end)
    assert judge(sock) is verdict
    # The packets never change a reading mode's verdict: the same with or without capture.
    assert judge(sock, PacketFacts(9, 0, 0, "FIN", 1.0, None, 2.0, None)) is verdict
    assert exit_class(mode, verdict) == status


def pk(after: int = 0, fin: float | None = None, rst: float | None = None) -> PacketFacts:
    return PacketFacts(8, after, after, "FIN", 1.0, fin, rst, 1.1 if after else None)


@pytest.mark.parametrize(
    ("unread", "packets", "after_close", "verdict"),
    [
        (5, None, AfterClose.GONE, Verdict.ANSWER_LOST),
        (0, pk(after=30), AfterClose.GONE, Verdict.ANSWER_LOST),
        (0, pk(rst=1.2), AfterClose.GONE, Verdict.RESET_WITHOUT_ANSWER),
        (0, pk(fin=1.2), AfterClose.PEER_FIN, Verdict.CLOSED_WITHOUT_ANSWER),
        (0, pk(), AfterClose.OPEN, Verdict.NO_ANSWER),
        (0, None, AfterClose.PEER_FIN, Verdict.CLOSED_WITHOUT_ANSWER),
        (0, None, AfterClose.GONE, Verdict.RESET_AFTER_CLOSE),
        (0, None, AfterClose.OPEN, Verdict.NO_ANSWER),
        (0, None, AfterClose.UNKNOWN, Verdict.UNOBSERVED),
    ],
)
def test_close_mode(unread, packets, after_close, verdict) -> None:  # type: ignore[no-untyped-def]
    sock = facts(Mode.CLOSE, 0, ReadEnd.NOT_READ, unread_at_close=unread, after_close=after_close)
    assert judge(sock, packets) is verdict


def test_abort_mode_and_tables_are_complete() -> None:
    assert judge(facts(Mode.ABORT, 0, ReadEnd.NOT_READ)) is Verdict.ABORTED
    assert set(EXITS) == set(MEANING) == set(Verdict)


@pytest.mark.parametrize(
    ("member", "value"),
    [("OK", 0), ("CLOSED_WITHOUT_ANSWER", 10), ("RESET", 11), ("HANG", 12), ("UNSTABLE", 13)],
)
def test_exit_status_values(member: str, value: int) -> None:
    """The exit statuses are a documented interface: one test per code."""
    assert ProbeExit[member] == value


def test_overall_exit() -> None:
    assert overall_exit(Mode.SHUTDOWN, [Verdict.GRACEFUL] * 3) == 0
    assert overall_exit(Mode.SHUTDOWN, [Verdict.NO_ANSWER] * 2) == 12
    assert overall_exit(Mode.SHUTDOWN, [Verdict.GRACEFUL, Verdict.NO_ANSWER]) == 13
    with pytest.raises(ValueError):
        overall_exit(Mode.SHUTDOWN, [])


C, S = ("127.0.0.1", 40000), ("127.0.0.1", 8080)


def seg(t: float, src: tuple[str, int], flags: Flag, length: int = 0) -> Packet:
    dst = S if src == C else C
    return Packet(t, src[0], src[1], dst[0], dst[1], int(flags), 0, 0, 65535, length)


A = Flag.ACK


def test_packet_facts_half_close_then_answer() -> None:
    packets = [
        seg(0.0, C, Flag.SYN),
        seg(0.1, S, Flag.SYN | A),
        seg(0.2, C, A | Flag.PSH, 10),
        seg(0.3, C, Flag.FIN | A),
        seg(0.5, S, A | Flag.PSH, 30),
        seg(0.6, S, Flag.FIN | A),
        seg(0.7, C, A),
        seg(0.8, ("127.0.0.1", 1), A, 99),  # another connection: ignored
    ]
    f = packet_facts(packets, C, S)
    assert (f.packets, f.peer_bytes, f.peer_bytes_after_our_close) == (7, 30, 30)
    assert (f.our_close, f.first_closer) == ("FIN", "client")
    assert f.close_to_peer_end == pytest.approx(0.3)


def test_packet_facts_server_closes_first_and_our_rst() -> None:
    packets = [
        seg(0.0, C, Flag.SYN),
        seg(0.1, S, Flag.SYN | A),
        seg(0.2, S, Flag.FIN | A),
        seg(0.3, C, Flag.RST | A),
    ]
    f = packet_facts(packets, C, S)
    assert (f.first_closer, f.our_close, f.our_rst_t) == ("server", "RST", 0.3)
    assert f.close_to_peer_end is None
    assert packet_facts([], C, S).first_closer is None


def test_first_line_is_printable() -> None:
    sock = SocketFacts(Mode.NONE, C, S, 1, 9, b"+PO\x1bNG\r\nmore", ReadEnd.EOF)
    assert sock.first_line == "+PO\\x1bNG"
