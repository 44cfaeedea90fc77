"""The lesson's two experiments and their variants, end to end: real processes on loopback."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable

import pytest

from lesson.driver import TIMEOUT, Procs, RunningServer, named, program, python_env
from lesson.experiment import (
    CLIENT_CLOSED,
    SENDS,
    SERVER_TERMINATED,
    TWO_ANSWERED,
    experiment,
    finish,
    type_data,
)
from tcpclose.model.event import read_events

SIGPIPE_MODES = ("ignore", "default", "handler")
#: How each --sigpipe mode ends the server in the close experiment (measured on Linux): the
#: first `Hi, data1` draws an RST; the socket was in CLOSE_WAIT (the client's FIN had come),
#: so the kernel records EPIPE and the next send fails with EPIPE and raises SIGPIPE.
#: As the original, a failed send still prints `send bytes:` with its -1 shown unsigned.
FAILED_SEND = b"send bytes: 4294967295 \n"
CLOSE_ENDINGS = {
    # mode: (exit status, extra stdout, stderr)
    "ignore": (1, FAILED_SEND, b"graceserver: error write: Broken pipe\n"),
    "default": (-13, b"", b""),
    "handler": (1, b"caught SIGPIPE\n" + FAILED_SEND, b"graceserver: error write: Broken pipe\n"),
}


def client_for(procs: Procs, tmp_path, server: RunningServer, *options: str):  # type: ignore[no-untyped-def]
    events = tmp_path / "client.jsonl"
    argv = program("graceclient", "127.0.0.1", "--port", str(server.port), "--events", str(events))
    return procs.start([*argv, *options]), events


@pytest.mark.parametrize("mode", SIGPIPE_MODES)
def test_close_loses_both_answers_and_the_server_dies_on_its_second_write(
    mode: str, procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    # 1.5 s of processing leaves ample time to type `close` before `Hi, data1` comes back.
    server = start_graceserver("--delay", "1.5", "--sigpipe", mode)
    client, client_events = client_for(procs, tmp_path, server, "--close-wait", "1")

    run = experiment(client, server.proc, b"close")

    status, extra_out, err = CLOSE_ENDINGS[mode]
    assert (run.client_status, run.client_out, run.client_err) == (0, SENDS, b"")
    assert run.server_out == b"received 5 bytes: data1\nsend bytes: 9 \n" + (
        b"received 5 bytes: data2\n" + extra_out
    )
    assert (run.server_status, run.server_err) == (status, err)

    cevents, sevents = read_events(client_events), read_events(server.events)
    assert named(cevents, "received") == []  # no answer reached the client
    # `close` really happened before the first answer left the server.
    assert named(cevents, "close")[0].t_ns < named(sevents, "sent")[0].t_ns
    errors = [(e.get("call"), e.get("errno")) for e in named(sevents, "error")]
    if mode == "default":  # killed: no error line, no exit event
        assert errors == [] and named(sevents, "exit") == []
    else:
        assert errors == [("write", "EPIPE")]
        assert [e.get("status") for e in named(sevents, "exit")] == [1]
    signals = [e.get("signal") for e in named(sevents, "signal")]
    assert signals == (["SIGPIPE"] if mode == "handler" else [])


@pytest.mark.parametrize("mode", SIGPIPE_MODES)
def test_shutdown_delivers_both_answers(
    mode: str, procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    server = start_graceserver("--delay", "0.5", "--sigpipe", mode)
    client, client_events = client_for(procs, tmp_path, server)

    run = experiment(client, server.proc, b"shutdown")

    assert run.client_out == SENDS + b"Hi, data1\nHi, data2\n"
    assert (run.client_status, run.client_err) == (1, SERVER_TERMINATED)
    assert (run.server_status, run.server_out, run.server_err) == (1, TWO_ANSWERED, CLIENT_CLOSED)
    cevents = read_events(client_events)
    assert [(e.get("how"), e.get("reason")) for e in named(cevents, "shutdown")] == [
        ("SHUT_WR", "command")
    ]
    assert [e.event for e in cevents[-2:]] == ["eof", "exit"]
    assert [e.event for e in read_events(server.events)[-2:]] == ["eof", "exit"]


def test_close_after_the_first_answer_shows_it(
    procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    server = start_graceserver("--delay", "0.5")
    client, _ = client_for(procs, tmp_path, server, "--close-wait", "1")
    type_data(client, server.proc)
    client.wait_output(b"Hi, data1\n")
    client.write(b"close\n")
    run = finish(client, server.proc)

    assert (run.client_status, run.client_out) == (0, SENDS + b"Hi, data1\n")
    # The client's socket is gone: `Hi, data2` is sent (the kernel accepts it), draws an RST,
    # and the server's next read returns the EOF of the client's FIN, which came first.
    assert (run.server_status, run.server_out, run.server_err) == (1, TWO_ANSWERED, CLIENT_CLOSED)


@pytest.mark.parametrize("mode", ["ignore", "default"])
def test_abort_resets_the_connection_under_a_sleeping_server(
    mode: str, procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    server = start_graceserver("--delay", "1.0", "--sigpipe", mode)
    client, client_events = client_for(procs, tmp_path, server, "--close-wait", "0")
    type_data(client, server.proc, (b"data1",))
    server.proc.wait_output(b"received 5 bytes: data1\n")
    client.write(b"abort\n")
    run = finish(client, server.proc)

    assert (run.client_status, run.client_out) == (0, b"now sending data1\nsend bytes: 5 \n")
    # RST, not FIN: the write fails with ECONNRESET, which raises no SIGPIPE in either mode.
    assert run.server_out == b"received 5 bytes: data1\n" + FAILED_SEND
    assert (run.server_status, run.server_err) == (
        1,
        b"graceserver: error write: Connection reset by peer\n",
    )
    errors = [(e.get("call"), e.get("errno")) for e in named(read_events(server.events), "error")]
    assert errors == [("write", "ECONNRESET")]
    assert [e.event for e in read_events(client_events)][-2:] == ["abort", "exit"]


def test_abort_resets_the_connection_under_a_reading_server(
    procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    server = start_graceserver("--delay", "0")
    client, _ = client_for(procs, tmp_path, server, "--close-wait", "0")
    type_data(client, server.proc, (b"data1",))
    client.wait_output(b"Hi, data1\n")
    client.write(b"abort\n")
    run = finish(client, server.proc)

    assert run.client_status == 0
    assert run.server_out == b"received 5 bytes: data1\nsend bytes: 9 \n"
    assert (run.server_status, run.server_err) == (
        1,
        b"graceserver: error read: Connection reset by peer\n",
    )


def test_sigint_reports_the_count_and_exits_0(
    procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    import signal

    server = start_graceserver("--delay", "0")
    client, _ = client_for(procs, tmp_path, server)
    type_data(client, server.proc)
    client.wait_output(b"Hi, data2\n")
    server.proc.signal(signal.SIGINT)
    run = finish(client, server.proc)

    assert (run.server_status, run.server_out) == (0, TWO_ANSWERED + b"\nreceived 2 datagrams\n")
    assert run.server_err == b""
    assert [e.get("signal") for e in named(read_events(server.events), "signal")] == ["SIGINT"]
    # The server's exit closed the socket: its kernel sent FIN, the client read EOF.
    assert (run.client_status, run.client_err) == (1, SERVER_TERMINATED)


def test_sigint_before_any_connection(
    start_graceserver: Callable[..., RunningServer],
) -> None:
    import signal

    server = start_graceserver()
    server.proc.signal(signal.SIGINT)
    assert server.proc.wait() == 0
    assert server.proc.stdout == b"\nreceived 0 datagrams\n"


@pytest.mark.parametrize("last_line", [b"data1\n", b"data1"], ids=["newline", "no-newline"])
def test_stdin_eof_half_closes_like_shutdown(
    last_line: bytes, procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    server = start_graceserver("--delay", "0.3")
    client, client_events = client_for(procs, tmp_path, server)
    client.write(last_line)
    client.close_stdin()  # Ctrl-D, or the end of a pipe
    run = finish(client, server.proc)

    assert run.client_out == b"now sending data1\nsend bytes: 5 \nHi, data1\n"
    assert (run.client_status, run.client_err) == (1, SERVER_TERMINATED)
    assert run.server_out == b"received 5 bytes: data1\nsend bytes: 9 \n"
    assert (run.server_status, run.server_err) == (1, CLIENT_CLOSED)
    shutdowns = named(read_events(client_events), "shutdown")
    assert [e.get("reason") for e in shutdowns] == ["stdin-eof"]


def test_commands_match_whole_lines_only(
    procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    server = start_graceserver("--delay", "0")
    client, _ = client_for(procs, tmp_path, server)
    for line in (b"shutdownX", b"close please"):  # the C original would act on both
        client.write(line + b"\n")
        client.wait_output(b"Hi, " + line + b"\n")
    client.write(b"shutdown\n")
    run = finish(client, server.proc)

    assert run.client_out == (
        b"now sending shutdownX\nsend bytes: 9 \nHi, shutdownX\n"
        b"now sending close please\nsend bytes: 12 \nHi, close please\n"
    )
    assert run.server_out == (
        b"received 9 bytes: shutdownX\nsend bytes: 13 \n"
        b"received 12 bytes: close please\nsend bytes: 16 \n"
    )
    assert run.client_status == run.server_status == 1


def test_ipv6(procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path) -> None:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    server = start_graceserver("--bind", "::1", "--delay", "0.3")
    events = tmp_path / "client.jsonl"
    client = procs.start(
        program("graceclient", "::1", "--port", str(server.port), "--events", str(events))
    )
    run = experiment(client, server.proc, b"shutdown")

    assert run.client_out == SENDS + b"Hi, data1\nHi, data2\n"
    assert run.server_out == TWO_ANSWERED
    assert [e.get("peer") for e in named(read_events(server.events), "accepted")] == ["::1"]
    assert [e.get("peer") for e in named(read_events(events), "connected")] == ["::1"]
    listening = f"graceserver: listening on [::1]:{server.port}\n".encode()
    assert server.proc.stderr.startswith(listening)


@pytest.mark.parametrize(
    ("encoding", "shown"),
    [("utf-8", "\ufffd\ufffd\\x1b[1m".encode()), ("ascii", b"\\ufffd\\ufffd\\x1b[1m")],
)
def test_bytes_that_are_not_utf8_are_shown_safely(
    encoding: str,
    shown: bytes,
    procs: Procs,
    start_graceserver: Callable[..., RunningServer],
    tmp_path,
) -> None:
    from lesson.driver import python_env

    server = start_graceserver("--delay", "0")
    events = tmp_path / "client.jsonl"
    argv = program("graceclient", "127.0.0.1", "--port", str(server.port), "--events", str(events))
    client = procs.start(argv, env=python_env(PYTHONIOENCODING=encoding))
    client.write(b"\xff\xfe\x1b[1m\n")  # invalid UTF-8, then an escape sequence
    client.wait_output(b"Hi, ")
    client.write(b"shutdown\n")
    run = finish(client, server.proc)

    assert run.client_out == (b"now sending " + shown + b"\nsend bytes: 6 \nHi, " + shown + b"\n")
    assert (run.client_status, run.client_err) == (1, SERVER_TERMINATED)
    utf8_shown = "\ufffd\ufffd\\x1b[1m".encode()
    assert run.server_out == b"received 6 bytes: " + utf8_shown + b"\nsend bytes: 10 \n"
    received = named(read_events(server.events), "received")
    assert [e.get("data") for e in received] == ["\ufffd\ufffd\x1b[1m"]


def test_a_message_longer_than_maxline_is_read_as_two(
    procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    server = start_graceserver("--delay", "0.3")
    client, client_events = client_for(procs, tmp_path, server)
    client.write(b"a" * 5000 + b"\n")
    client.wait_output(b"send bytes: 5000 \n")
    client.write(b"shutdown\n")
    run = finish(client, server.proc)

    assert run.server_out == (
        b"received 4096 bytes: " + b"a" * 4096 + b"\nsend bytes: 4100 \n"
        b"received 904 bytes: " + b"a" * 904 + b"\nsend bytes: 908 \n"
    )
    received = named(read_events(client_events), "received")
    answers = "".join(e.get("data") for e in received)
    assert answers == "Hi, " + "a" * 4096 + "Hi, " + "a" * 904
    assert run.client_out.replace(b"\n", b"").endswith(answers.encode())
    assert (run.client_status, run.server_status) == (1, 1)


def test_tcpclose_server_and_client_run_the_same_programs(
    procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    server = start_graceserver("--delay", "0.3", name="tcpclose")
    client = procs.start(program("tcpclose", "client", "127.0.0.1", "--port", str(server.port)))
    run = experiment(client, server.proc, b"shutdown")

    assert run.client_out == SENDS + b"Hi, data1\nHi, data2\n"
    assert (run.client_status, run.client_err) == (1, SERVER_TERMINATED)
    assert (run.server_status, run.server_out, run.server_err) == (1, TWO_ANSWERED, CLIENT_CLOSED)


def test_events_are_json_lines_with_nanosecond_wall_clock(
    procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    import json
    import time

    before = time.time_ns()
    server = start_graceserver("--delay", "0")
    client, client_events = client_for(procs, tmp_path, server)
    type_data(client, server.proc, (b"data1",))
    client.wait_output(b"Hi, data1\n")
    client.write(b"shutdown\n")
    finish(client, server.proc)
    after = time.time_ns()

    for path, role in ((server.events, "server"), (client_events, "client")):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert all(r["role"] == role for r in records)
        stamps = [r["t_ns"] for r in records]
        assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after
    server_steps = [e.event for e in read_events(server.events)]
    assert server_steps == ["listening", "accepted", "received", "sent", "eof", "exit"]
    client_steps = [e.event for e in read_events(client_events)]
    assert client_steps == ["connected", "sent", "received", "shutdown", "eof", "exit"]


@pytest.mark.slow
def test_close_with_the_lessons_own_timings(
    procs: Procs, start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    """The lesson's 5 s processing and 6 s wait, the course repository's SIGPIPE default."""
    server = start_graceserver("--sigpipe", "default")
    client, _ = client_for(procs, tmp_path, server)
    run = experiment(client, server.proc, b"close")
    assert (run.client_status, run.client_out) == (0, SENDS)
    assert run.server_out == b"received 5 bytes: data1\nsend bytes: 9 \nreceived 5 bytes: data2\n"
    assert run.server_status == -13  # the shell shows 141


def test_a_closed_standard_input_half_closes_at_once(
    start_graceserver: Callable[..., RunningServer], tmp_path
) -> None:
    """`graceclient HOST <&-`: descriptor 0 is not open at all. No input is Ctrl-D at once."""
    server = start_graceserver("--delay", "0")
    events = tmp_path / "client.jsonl"
    argv = program("graceclient", "127.0.0.1", "--port", str(server.port), "--events", str(events))
    command = " ".join(shlex.quote(a) for a in argv) + " <&-"
    done = subprocess.run(
        ["sh", "-c", command], capture_output=True, env=python_env(), timeout=TIMEOUT
    )
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr == SERVER_TERMINATED
    assert [e.get("reason") for e in named(read_events(events), "shutdown")] == ["stdin-eof"]
