"""Bad input: one line each, bounded in time, never a traceback; documented exit statuses."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator

import pytest

from support.net import free_port
from tcpclose.cli import main

from .helpers import probe_subprocess


def one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tcpclose: error: ")
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["nohost"], ["is not HOST:PORT"]),
        (["127.0.0.1"], ["is not HOST:PORT"]),
        (["::1:80"], ["brackets", "[::1]:PORT"]),
        (["[::1]80"], ["[IPV6]:PORT"]),
        (["[127.0.0.1]:80"], ["not an IPv6 address"]),
        (["host:99999"], ["out of range"]),
        (["host:0"], ["out of range"]),
        (["host:http"], ["is not a number"]),
        (["bad host:80"], ["not an IP address or a host name"]),
        (["127.0.0.1:80", "--mode", "half"], ["invalid choice"]),
        (["127.0.0.1:80", "--repeat", "0"], ["out of range 1-1000"]),
        (["127.0.0.1:80", "--repeat", "1001"], ["out of range 1-1000"]),
        (["127.0.0.1:80", "--timeout", "0"], ["more than 0 seconds"]),
        (["127.0.0.1:80", "--timeout", "soon"], ["not a number of seconds"]),
        (["127.0.0.1:80", "--send", "a\\q"], ["unknown escape \\q"]),
        (["127.0.0.1:80", "--send", "\\x4"], ["bad escape"]),
        (["127.0.0.1:80", "--send", ""], ["empty"]),
        (["127.0.0.1:80", "--send", "x", "--preset", "redis"], ["not allowed with"]),
        (["127.0.0.1:80", "--no-capture", "--pcap", "x.pcap"], ["--pcap"]),
    ],
)
def test_usage_errors_exit_2(capsys, argv: list[str], words: list[str]) -> None:
    started = time.monotonic()
    assert main(["probe", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    one_error_line(captured.err, *words)
    assert time.monotonic() - started < 1


def test_missing_send_file_exits_5(capsys, tmp_path) -> None:
    assert main(["probe", "127.0.0.1:80", "--send-file", str(tmp_path / "none")]) == 5
    one_error_line(capsys.readouterr().err, "cannot read", "ENOENT")


def test_refused_exits_3(capsys) -> None:
    port = free_port()  # bound then closed: nothing listens there
    assert main(["probe", f"127.0.0.1:{port}"]) == 3
    one_error_line(capsys.readouterr().err, f"cannot connect to 127.0.0.1:{port}", "refused")


def test_refused_ipv6_literal(capsys) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
    except OSError:
        pytest.skip("no ::1 on this machine")
    assert main(["probe", f"[::1]:{port}"]) == 3
    one_error_line(capsys.readouterr().err, f"[::1]:{port}", "refused")


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A listener that never accepts, its queue filled until SYNs go unanswered (timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(16):
            filler = socket.socket()
            filler.settimeout(0.5)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.skip("the accept queue never filled")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_connect_timeout_exits_3_in_bounded_time(capsys, full_backlog: int) -> None:
    started = time.monotonic()
    assert main(["probe", f"127.0.0.1:{full_backlog}", "--connect-timeout", "1"]) == 3
    elapsed = time.monotonic() - started
    one_error_line(capsys.readouterr().err, "timed out after 1 s")
    assert 0.9 <= elapsed < 10


needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare(1) for a private network namespace",
)
#: a fresh network namespace: lo down, no routes, so nothing can leave the machine
NETNS = ("unshare", "--net")


@needs_netns
def test_unresolvable_name_exits_3(tmp_path) -> None:
    """In an empty namespace the resolver's server is unreachable: the lookup fails at once."""
    started = time.monotonic()
    result = probe_subprocess("no-such-host.invalid:80", "--connect-timeout", "3", prefix=NETNS)
    assert result.returncode == 3, result
    one_error_line(result.stderr, "cannot resolve 'no-such-host.invalid'")
    assert time.monotonic() - started < 30


@needs_netns
def test_unreachable_exits_3() -> None:
    """No route in an empty namespace: connect() fails with ENETUNREACH."""
    result = probe_subprocess("10.20.30.40:80", "--connect-timeout", "3", prefix=NETNS)
    assert result.returncode == 3, result
    one_error_line(result.stderr, "cannot connect to 10.20.30.40:80", "unreachable")


def test_help_documents_verdicts_and_exit_statuses(capsys) -> None:
    assert main(["probe", "--help"]) == 0
    out = capsys.readouterr().out
    for word in (
        "graceful",
        "closed-without-answer",
        "answer-lost",
        "10 closed_without_answer",
        "11 reset",
        "12 hang",
        "13 unstable",
        "--repeat",
        "--pcap",
    ):
        assert word in out
