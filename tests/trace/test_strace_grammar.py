"""strace's output grammar and the socket story built from it, on lines strace 6 really wrote
(pure: no process runs here)."""

from __future__ import annotations

import socket

import dpkt
import pytest

from tcpclose.capture import CaptureResult
from tcpclose.capture.frames import Frame
from tcpclose.trace.procnet import parse_proc_net_tcp
from tcpclose.trace.runs import build_runs
from tcpclose.trace.sockets import SocketName, SocketTracker, parse_socket_name, track
from tcpclose.trace.strace import (
    ProcessEnded,
    SignalDelivered,
    StraceParser,
    Syscall,
    decode_c_string,
    parse_lines,
    split_fd,
    string_args,
)

T = "1796237774."


def one(line: str) -> object:
    records = list(parse_lines([line]))
    assert len(records) == 1, records
    return records[0]


def test_a_whole_call_with_its_result_and_time() -> None:
    call = one(
        '9018  1796237774.952806 sendto(4<TCP:[127.0.0.1:33407->127.0.0.1:42646]>, "Hi, data1",'
        " 9, 0, NULL, 0) = 9 <0.000078>"
    )
    assert isinstance(call, Syscall)
    assert (call.pid, call.name, call.value, call.errno) == (9018, "sendto", 9, None)
    assert call.t_ns == 1796237774_952806000
    assert call.duration_ns == 78_000
    assert call.end_ns == call.t_ns + 78_000


def test_nanosecond_stamps_and_failed_calls() -> None:
    call = one(
        '9018 1796237775.253182123 sendto(4<socket:[17100]>, "Hi, data2", 9, 0, NULL, 0)'
        " = -1 EPIPE (Broken pipe) <0.000019000>"
    )
    assert isinstance(call, Syscall)
    assert call.t_ns == 1796237775_253182123
    assert (call.value, call.errno) == (-1, "EPIPE")


def test_a_string_holding_an_equals_sign_and_parentheses() -> None:
    call = one('7 1.5 write(3<socket:[9]>, "a) = 5 (\\"x\\"", 12) = 12 <0.000001>')
    assert isinstance(call, Syscall)
    assert call.value == 12
    assert string_args(call.args)[0].data == b'a) = 5 ("x"'


def test_unfinished_and_resumed_calls_join_on_their_thread() -> None:
    parser = StraceParser()
    lines = [
        "100 10.000001 accept(3<socket:[5]>,  <unfinished ...>",
        '101 10.000002 write(4<socket:[6]>, "x", 1) = 1 <0.000001>',
        "100 10.500000 <... accept resumed>{sa_family=AF_INET, sin_port=htons(40000), "
        'sin_addr=inet_addr("127.0.0.1")}, [16]) = 7<socket:[8]> <0.499999>',
    ]
    records = [r for r in map(parser.feed, lines) if r is not None]
    assert [r.name for r in records if isinstance(r, Syscall)] == ["write", "accept"]
    accept = records[1]
    assert isinstance(accept, Syscall)
    assert accept.t_ns == 10_000_001_000  # stamped when it began
    assert accept.value == 7
    assert "htons(40000)" in accept.args


def test_signals_exits_and_deaths() -> None:
    assert one(
        "9018 1796237775.253327 --- SIGPIPE {si_signo=SIGPIPE, si_code=SI_USER, si_pid=9018} ---"
    ) == SignalDelivered(9018, 1796237775_253327000, "SIGPIPE")
    assert one("9018 1796237775.253628 +++ killed by SIGPIPE +++") == ProcessEnded(
        9018, 1796237775_253628000, None, "SIGPIPE"
    )
    assert one("5 2.0 +++ killed by SIGSEGV (core dumped) +++") == ProcessEnded(
        5, 2_000_000_000, None, "SIGSEGV", True
    )
    assert one("9030 1796237775.376882 +++ exited with 0 +++") == ProcessEnded(
        9030, 1796237775_376882000, 0, None
    )


def test_lines_without_pid_and_terminal_style_pid_prefixes() -> None:
    parser = StraceParser(default_pid=42)
    call = parser.feed("1.25 close(3) = 0 <0.000002>")
    assert isinstance(call, Syscall) and call.pid == 42
    call = parser.feed("[pid  77] 1.25 close(3) = 0 <0.000002>")
    assert isinstance(call, Syscall) and call.pid == 77


def test_garbage_and_cut_lines_are_skipped_and_counted() -> None:
    parser = StraceParser()
    assert parser.feed("strace: Process 5 attached") is None
    assert parser.feed('5 1.0 write(1, "never closed') is None
    assert parser.skipped == 2


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ('ab\\0\\n\\"q', b'ab\x00\n"q'),
        ("\\177ELF\\2\\1", b"\x7fELF\x02\x01"),
        ("\\x1b[0m", b"\x1b[0m"),
        ("tab\\there\\\\", b"tab\there\\"),
        ("caf\u00e9", "caf\u00e9".encode()),
    ],
)
def test_c_string_escapes(literal: str, expected: bytes) -> None:
    assert decode_c_string(literal) == expected


def test_truncated_strings_are_marked() -> None:
    pieces = string_args('[{iov_base="xxxx"..., iov_len=300}, {iov_base="y", iov_len=1}]')
    assert [(p.data, p.truncated) for p in pieces] == [(b"xxxx", True), (b"y", False)]


def test_fd_decodings_with_arrows_and_ipv6_brackets() -> None:
    assert split_fd("5<TCPv6:[[::1]:35705->[::1]:38744]>, x") == (
        5,
        "TCPv6:[[::1]:35705->[::1]:38744]",
        ", x",
    )
    assert split_fd("3, 4") == (3, None, ", 4")
    assert parse_socket_name("TCPv6:[[::1]:35705->[::ffff:127.0.0.1]:38744]") == SocketName(
        None, ("::1", 35705), ("127.0.0.1", 38744)
    )
    assert parse_socket_name("TCP:[17100]") == SocketName(17100, None, None)
    assert parse_socket_name("UNIX-STREAM:[1->2]") is None


def test_proc_net_tcp_rows() -> None:
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n"
        "   0: 0100007F:B1E0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
        "        0 17078 1 0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:A696 0100007F:B1E0 01 00000000:00000000 00:00000000 00000000     0"
        "        0 17100 1 0000000000000000 20 4 30 10 -1\n"
    )
    names = parse_proc_net_tcp(text)
    assert names[17078] == SocketName(17078, ("127.0.0.1", 0xB1E0), None)
    assert names[17100] == SocketName(17100, ("127.0.0.1", 0xA696), ("127.0.0.1", 0xB1E0))
    v6 = (
        "header\n   0: 00000000000000000000000001000000:1F90 "
        "00000000000000000000000001000000:9C40 01 0:0 0:0 0 0 0 555 1\n"
    )
    assert parse_proc_net_tcp(v6)[555] == SocketName(555, ("::1", 8080), ("::1", 40000))


# A client and a server of one process (-yy decodings), the client forking before it closes
# with SO_LINGER 0: the events each socket collects, in the lab's vocabulary.
STORY = [
    "10 1.000 socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 4<TCPv6:[22884]> <0.000001>",
    "10 1.001 connect(4<TCPv6:[22884]>, {sa_family=AF_INET6, sin6_port=htons(35705), "
    'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28)'
    " = 0 <0.000300>",
    "10 1.002 accept4(3<TCPv6:[[::1]:35705]>, {sa_family=AF_INET6, sin6_port=htons(38744), "
    'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, [28],'
    " SOCK_CLOEXEC) = 5<TCPv6:[[::1]:35705->[::1]:38744]> <0.000400>",
    "10 1.003 setsockopt(4<TCPv6:[[::1]:38744->[::1]:35705]>, SOL_SOCKET, SO_LINGER, "
    "{l_onoff=1, l_linger=0}, 8) = 0 <0.000010>",
    '10 1.004 sendmsg(4<TCPv6:[[::1]:38744->[::1]:35705]>, {msg_name=NULL, msg_iov=[{iov_base="ab",'
    ' iov_len=2}, {iov_base="cd", iov_len=2}], msg_iovlen=2}, 0) = 4 <0.000010>',
    '10 1.005 recvfrom(5<TCPv6:[[::1]:35705->[::1]:38744]>, "abcd", 10, 0, NULL, NULL)'
    " = 4 <0.000010>",
    "10 1.006 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD,"
    " child_tidptr=0x7f) = 11 <0.000100>",
    "10 1.007 close(4<TCPv6:[[::1]:38744->[::1]:35705]>) = 0 <0.000010>",
    "11 1.100 exit_group(3) = ?",
    "11 1.101 +++ exited with 3 +++",
    "10 1.200 exit_group(0) = ?",
    "10 1.201 +++ exited with 0 +++",
]


def test_a_socket_story_in_the_labs_vocabulary() -> None:
    tracker = track(parse_lines(STORY))
    client = next(r for r in tracker.refs if r.connected_by_us)
    server = next(r for r in tracker.refs if r.accepted_by_us)
    assert client.local == ("::1", 38744) and client.remote == ("::1", 35705)
    assert client.key == server.key
    assert [e.event for e in client.events] == [
        "connected",
        "call",
        "sent",
        "fork",
        "abort",  # SO_LINGER 0 was set: close() would reset (the fork holds it: it does not)
        "exit",  # the child's
        "exit",  # the parent's
    ]
    sent = client.events[2]
    assert (sent.fields["bytes"], sent.fields["data"], sent.fields["text"]) == (
        4,
        "abcd",
        "sendmsg() = 4",
    )
    assert sent.fields["started_ns"] == 1_004_000_000
    assert [e.fields.get("status") for e in client.events[-2:]] == [3, 0]
    # the child inherited the accepted socket too: it is forked, and both exits count
    assert [e.event for e in server.events] == ["accepted", "received", "fork", "exit", "exit"]
    assert tracker.processes[11].parent == 10


def test_plain_socket_inodes_need_a_name_or_a_tcp_socket_call() -> None:
    lines = [
        "1 1.0 socket(AF_UNIX, SOCK_STREAM, 0) = 3<socket:[70]> <0.000001>",
        '1 1.1 write(3<socket:[70]>, "x", 1) = 1 <0.000001>',
        "1 1.2 socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = 4<socket:[71]> <0.000001>",
        "1 1.3 connect(4<socket:[71]>, {sa_family=AF_INET, sin_port=htons(80), "
        'sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused) <0.0001>',
        '1 1.4 write(4<socket:[71]>, "y", 1) = -1 EPIPE (Broken pipe) <0.000001>',
        "1 1.5 +++ exited with 1 +++",
    ]
    tracker = track(parse_lines(lines))
    assert len(tracker.refs) == 1
    ref = tracker.refs[0]
    assert ref.remote == ("127.0.0.1", 80) and ref.local is None
    assert [(e.event, e.fields.get("errno")) for e in ref.events] == [
        ("error", "ECONNREFUSED"),
        ("error", "EPIPE"),
        ("exit", None),
    ]
    # resolved beside the trace (procnet), the same inode has its endpoints
    tracker = SocketTracker({71: SocketName(71, ("127.0.0.1", 5555), ("127.0.0.1", 80))})
    for record in parse_lines(lines):
        tracker.feed(record)
    assert [(r.inode, r.local, r.remote) for r in tracker.refs] == [
        (71, ("127.0.0.1", 5555), ("127.0.0.1", 80))
    ]


def test_a_signal_handler_that_ran_and_a_death() -> None:
    lines = [
        '1 1.0 write(4<TCP:[1.1.1.1:5->2.2.2.2:6]>, "a", 1) = 1 <0.000001>',
        "1 1.1 --- SIGPIPE {si_signo=SIGPIPE, si_code=SI_USER} ---",
        "1 1.2 rt_sigreturn({mask=[]}) = -1 EPIPE (Broken pipe) <0.000001>",
        "1 1.3 --- SIGPIPE {si_signo=SIGPIPE, si_code=SI_USER} ---",
        "1 1.4 +++ killed by SIGPIPE +++",
    ]
    ref = track(parse_lines(lines)).refs[0]
    assert [(e.event, e.fields.get("signal")) for e in ref.events] == [
        ("sent", None),
        ("signal", "SIGPIPE"),
        ("killed", "SIGPIPE"),
    ]


def test_an_accepted_socket_whose_inodes_were_never_looked_up_is_tcp() -> None:
    """Attached to a server that closes its listener at once: neither inode was resolved, yet
    accept() with an IP peer returned a TCP socket; its peer is in accept's sockaddr."""
    lines = [
        "9 1.0 accept4(4<socket:[939132]>, {sa_family=AF_INET, sin_port=htons(35534), "
        'sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC) = 5<socket:[939143]> <0.1>',
        "9 1.1 close(4<socket:[939132]>) = 0 <0.000001>",
        '9 1.2 recvfrom(5<socket:[939143]>, "data1", 4096, 0, NULL, NULL) = 5 <0.000001>',
        "9 1.3 +++ exited with 1 +++",
    ]
    ref = track(parse_lines(lines)).refs[0]
    assert ref.accepted_by_us and ref.remote == ("127.0.0.1", 35534) and ref.local is None
    assert [e.event for e in ref.events] == ["accepted", "received", "exit"]


#: strace 6.1's lines for the C program tests/trace/bytes_moved.c (`-y`, inodes resolved)
MOVED = [
    "7 1.0 sendmmsg(4<socket:[63628]>, [{msg_hdr={msg_name=NULL, msg_namelen=0, "
    'msg_iov=[{iov_base="one", iov_len=3}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, '
    'msg_len=3}, {msg_hdr={msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="two", '
    "iov_len=3}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, msg_len=3}, {msg_hdr={"
    'msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="three", iov_len=5}], msg_iovlen=1, '
    "msg_controllen=0, msg_flags=0}, msg_len=5}], 3, 0) = 3 <0.000020>",
    "7 1.1 recvmmsg(5<socket:[63629]>, [{msg_hdr={msg_name=NULL, msg_namelen=0, "
    'msg_iov=[{iov_base="onetwothree", iov_len=64}], msg_iovlen=1, msg_controllen=0, '
    "msg_flags=0}, msg_len=11}], 2, MSG_WAITFORONE, NULL) = 1 <0.000010>",
    "7 1.2 splice(5<socket:[63629]>, NULL, 6<pipe:[63632]>, NULL, 6, 0) = 6 <0.000010>",
    "7 1.3 splice(3<pipe:[63632]>, NULL, 5<socket:[63629]>, NULL, 6, 0) = 6 <0.000010>",
    "7 1.4 splice(3<pipe:[63632]>, [0] => [6], 5<socket:[63629]>, NULL, 6, 0) = 6 <0.0001>",
    "7 1.5 sendfile(5<socket:[63629]>, 7</tmp/f.txt>, [0] => [4053], 4053) = 4053 <0.0001>",
    "7 1.6 recvmmsg(4<socket:[63628]>, [{msg_hdr={msg_name=NULL, msg_namelen=0, "
    'msg_iov=[{iov_base="", iov_len=64}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, '
    "msg_len=0}], 2, MSG_WAITFORONE, NULL) = 1 <0.000010>",
]


def test_multi_message_calls_splice_and_sendfile_count_bytes() -> None:
    names = {
        63628: SocketName(63628, ("127.0.0.1", 40000), ("127.0.0.1", 40001)),
        63629: SocketName(63629, ("127.0.0.1", 40001), ("127.0.0.1", 40000)),
    }
    tracker = SocketTracker(names)
    for record in parse_lines(MOVED):
        tracker.feed(record)
    client, server = tracker.refs
    moved = [
        (e.event, e.fields.get("bytes"), e.fields.get("data"), e.fields["text"])
        for ref in (client, server)
        for e in ref.events
    ]
    assert moved == [
        ("sent", 11, "onetwothree", "sendmmsg() = 3 (11 bytes)"),
        ("eof", None, None, "recvmmsg() = 1 (EOF)"),
        ("received", 11, "onetwothree", "recvmmsg() = 1 (11 bytes): onetwothree"),
        ("received", 6, None, "splice() = 6"),
        ("sent", 6, None, "splice() = 6"),
        ("sent", 6, None, "splice() = 6"),
        ("sent", 4053, None, "sendfile() = 4053"),
    ]


def _frame(t: float, sport: int, dport: int, flags: int, payload: bytes = b"") -> Frame:
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=1, ack=1, flags=flags, win=512)
    tcp.data = payload
    ip = dpkt.ip.IP(src=socket.inet_aton("127.0.0.1"), dst=socket.inet_aton("127.0.0.1"), p=6)
    ip.data = tcp
    ip.len = 20 + len(bytes(tcp))
    eth = dpkt.ethernet.Ethernet(src=bytes(6), dst=bytes(6), type=0x0800, data=ip)
    return Frame(int(t * 1e9), bytes(eth))


def test_an_accepted_socket_is_the_connection_whose_syn_accept_answered() -> None:
    """The kernel reuses a local port toward other addresses: the peer's port 45256 is also the
    client of another program's connection to port 51285. The accepted socket (never looked up:
    the program was too quick) is the one whose SYN came last before accept() returned."""
    lines = [
        "9 1.000 accept4(3<socket:[70]>, {sa_family=AF_INET, sin_port=htons(45256), "
        'sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC) = 4<socket:[71]> <0.001>',
        '9 1.100 recvfrom(4<socket:[71]>, "data1", 4096, 0, NULL, NULL) = 5 <0.000001>',
        "9 1.200 +++ exited with 0 +++",
    ]
    tracker = SocketTracker({70: SocketName(70, ("127.0.0.1", 39591), None)})
    for record in parse_lines(lines):
        tracker.feed(record)
    syn, ack, psh = 0x02, 0x10, 0x08
    frames = [
        _frame(0.500, 45256, 51285, syn),  # the other connection, begun earlier
        _frame(0.999, 45256, 39591, syn),  # ours: accept() returned at 1.001
        _frame(1.050, 45256, 51285, psh | ack, b"other"),  # the other's data, first after ours
        _frame(1.060, 45256, 39591, psh | ack, b"data1"),
    ]
    capture = CaptureResult("af_packet", None, tuple(frames))
    runs, traced = build_runs(tracker, capture, "test", "command")
    assert [r.scenario.summary for r in runs] == ["127.0.0.1:45256 -> 127.0.0.1:39591"]
    assert traced == [("server",)]
    assert [p.payload for p in runs[0].capture.packets] == [b"", b"data1"]
