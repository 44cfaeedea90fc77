"""Bad input to graceserver/graceclient: one line each, the C originals' status 1, no traceback.

The same cases under `tcpclose server|client` are in tests/test_cli.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator

import pytest

from lesson.driver import TIMEOUT, RunningServer, program, python_env
from tcpclose.cli import main as tcpclose_main
from tcpclose.lesson import client, server

#: root without CAP_NET_BIND_SERVICE: a privileged port is refused, while the checkout stays
#: readable wherever it lies (a user such as nobody cannot read a clone in a mktemp dir)
NO_BIND_CAP = ["setpriv", "--bounding-set=-net_bind_service", "--"]


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port with nothing listening, held (bound, not listening) so nobody takes it: RST."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def run_main(main: Callable[[list[str]], int], argv: list[str], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    "argv", [[], ["127.0.0.1", "extra"], ["--port", "9"]], ids=["none", "two", "options-only"]
)
def test_graceclient_wrong_argument_count_prints_the_usage_line(argv: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    status, out, err = run_main(client.main, argv, capsys)
    assert (status, out, err) == (1, "", "graceclient: usage: graceclient <IPaddress>\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["127.0.0.1", "--port", "70000"], "argument --port: port 70000 is out of range 0-65535"),
        (["127.0.0.1", "--port", "x"], "argument --port: port must be a number, not 'x'"),
        (["127.0.0.1", "--close-wait", "-1"], "argument --close-wait: '-1' is not a duration"),
    ],
)
def test_graceclient_bad_option_values(argv: list[str], message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    status, out, err = run_main(client.main, argv, capsys)
    assert (status, out) == (1, "")
    assert err.startswith(f"graceclient: {message}") and err.count("\n") == 1


@pytest.mark.parametrize("address", ["999.1.1.1", "1.2.3", "not an address", "::1::2", "a_b"])
def test_graceclient_address_that_does_not_parse(address: str, capsys) -> None:  # type: ignore[no-untyped-def]
    # None of these reaches the resolver: they are rejected before any lookup.
    status, out, err = run_main(client.main, [address, "--port", "9"], capsys)
    assert (status, out) == (1, "")
    assert err == f"graceclient: bad address: {address!r} is not an IP address or a host name\n"


def test_graceclient_connection_refused(refused_port: int, capsys) -> None:  # type: ignore[no-untyped-def]
    status, out, err = run_main(client.main, ["127.0.0.1", "--port", str(refused_port)], capsys)
    assert (status, out, err) == (1, "", "graceclient: connect failed : Connection refused\n")


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare --net` (root or user namespaces)")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("graceclient", (1, b"graceclient: connect failed : Network is unreachable\n")),
        (
            "tcpclose",
            (
                3,
                b"tcpclose: error: cannot connect to 127.0.0.1:9: network is unreachable "
                b"(ENETUNREACH)\n",
            ),
        ),
    ],
)
def test_unreachable_address(name: str, expected: tuple[int, bytes]) -> None:
    # A fresh network namespace: its loopback is down, so no route reaches even 127.0.0.1.
    argv = program(name, *(["client"] if name == "tcpclose" else []), "127.0.0.1", "--port", "9")
    done = subprocess.run(
        ["unshare", "--net", *argv], capture_output=True, env=python_env(), timeout=TIMEOUT
    )
    assert (done.returncode, done.stderr) == expected
    assert done.stdout == b""


def test_graceserver_port_in_use(start_graceserver: Callable[..., RunningServer], capsys) -> None:  # type: ignore[no-untyped-def]
    first = start_graceserver()
    status, out, err = run_main(server.main, ["--port", str(first.port)], capsys)
    assert (status, out, err) == (1, "", "graceserver: bind failed : Address already in use\n")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("graceserver", (1, b"graceserver: bind failed : Permission denied\n")),
        (
            "tcpclose",
            (4, b"tcpclose: error: cannot listen on 127.0.0.1:1: permission denied (EACCES)\n"),
        ),
    ],
)
def test_permission_denied_for_a_privileged_port(name: str, expected: tuple[int, bytes]) -> None:
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as limit:
        if int(limit.read()) <= 1:
            pytest.skip("this kernel lets anybody bind port 1")
    argv = program(name, *(["server"] if name == "tcpclose" else []), "--port", "1")
    prefix = NO_BIND_CAP if os.geteuid() == 0 else []
    done = subprocess.run(
        [*prefix, *argv], capture_output=True, env=python_env(), timeout=TIMEOUT, cwd="/"
    )
    assert (done.returncode, done.stderr) == expected
    assert done.stdout == b""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bind", "localhost"], "--bind: 'localhost' is not an IP address"),
        (["--sigpipe", "sometimes"], "argument --sigpipe: invalid choice: 'sometimes'"),
        (["--delay", "nan"], "argument --delay: 'nan' is not a duration"),
        (["--port", "-1"], "argument --port: port -1 is out of range 0-65535"),
        (["extra"], "unrecognized arguments: extra"),
    ],
)
def test_graceserver_bad_arguments(argv: list[str], message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    status, out, err = run_main(server.main, argv, capsys)
    assert (status, out) == (1, "")
    assert err.startswith(f"graceserver: {message}") and err.count("\n") == 1


def test_graceserver_bind_address_not_on_this_machine(capsys) -> None:  # type: ignore[no-untyped-def]
    # 192.0.2.1 (TEST-NET-1) is no address of ours: bind fails, no packet is sent.
    status, out, err = run_main(server.main, ["--bind", "192.0.2.1", "--port", "0"], capsys)
    assert (status, out) == (1, "")
    assert err == "graceserver: bind failed : Cannot assign requested address\n"


@pytest.mark.parametrize(
    ("main", "argv", "program"),
    [
        (server.main, ["--port", "0"], "graceserver"),
        (client.main, ["127.0.0.1"], "graceclient"),
    ],
    ids=["server", "client"],
)
def test_an_events_file_that_cannot_be_opened_is_one_line(  # type: ignore[no-untyped-def]
    main, argv: list[str], program: str, tmp_path, capsys
) -> None:
    path = tmp_path / "missing" / "events.jsonl"
    status, out, err = run_main(main, [*argv, "--events", str(path)], capsys)
    assert (status, out) == (1, "")
    assert err == f"{program}: cannot open {path}: No such file or directory\n"


@pytest.mark.parametrize("command", ["server", "client"])
def test_tcpclose_events_file_that_cannot_be_opened(command: str, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "missing" / "events.jsonl"
    argv = [command, *(["127.0.0.1"] if command == "client" else []), "--events", str(path)]
    status, _, err = run_main(tcpclose_main, argv, capsys)
    assert status == 5
    assert err == f"tcpclose: error: cannot write {path}: no such file or directory (ENOENT)\n"
