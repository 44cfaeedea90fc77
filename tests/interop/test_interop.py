"""The Python programs against C reconstructions of the lesson's, for both experiments.

graceserver.c and graceclient.c beside this file are written from the lesson's description
(their headers list the test-only deviations: ports, delays and SIGPIPE mode through
environment variables). They are compiled once per session with gcc. Each pairing of client
and server (Python or C) runs the same scripted experiment and must print exactly what the
all-Python pairing prints: the wire protocol (raw bytes, no newline, no framing) and every
output line are the same.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from lesson.driver import TIMEOUT, Proc, Procs, RunningServer, program, python_env
from lesson.experiment import Transcript, experiment

HERE = Path(__file__).resolve().parent
PAIRINGS = ["python-python", "python-c", "c-python", "c-c"]  # client-server


@pytest.fixture(scope="session")
def c_programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the compiled graceserver and graceclient."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the C reconstructions")
    if shutil.which("stdbuf") is None:
        pytest.skip("stdbuf (coreutils) is missing: the C programs' output cannot be paced")
    out = tmp_path_factory.mktemp("c-programs")
    for name in ("graceserver", "graceclient"):
        subprocess.run(
            [
                gcc,
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-o",
                str(out / name),
                str(HERE / f"{name}.c"),
            ],
            check=True,
            timeout=120,
        )
    return out


def c_env(c_programs: Path, **variables: str) -> dict[str, str]:
    """The C programs found first on PATH: run as `graceserver`, error(3) prints that name."""
    env = python_env(**variables)
    env["PATH"] = os.pathsep.join([str(c_programs), env.get("PATH", "")])
    return env


def start_c_server(procs: Procs, c_programs: Path, delay: float, sigpipe: str) -> tuple[Proc, int]:
    env = c_env(
        c_programs,
        GRACE_PORT="0",
        GRACE_BIND="127.0.0.1",
        GRACE_DELAY_MS=str(round(delay * 1000)),
        GRACE_SIGPIPE=sigpipe,
    )
    # stdbuf -oL: stdout line-buffered, as on a terminal, so the test can follow it live.
    proc = procs.start(["stdbuf", "-oL", "graceserver"], env=env)
    proc.wait_output(b"listening on ", stream="stderr")
    found = re.search(rb"listening on 127\.0\.0\.1:(\d+)\n", proc.stderr)
    assert found, proc.describe()
    return proc, int(found.group(1))


def run_pairing(
    pairing: str,
    ending: bytes,
    sigpipe: str,
    delay: float,
    procs: Procs,
    start_graceserver: Callable[..., RunningServer],
    c_programs: Path,
) -> Transcript:
    client_kind, server_kind = pairing.split("-")
    if server_kind == "c":
        server, port = start_c_server(procs, c_programs, delay, sigpipe)
    else:
        running = start_graceserver("--delay", str(delay), "--sigpipe", sigpipe)
        server, port = running.proc, running.port
    if client_kind == "c":
        env = c_env(c_programs, GRACE_PORT=str(port), GRACE_CLOSE_WAIT_MS="1000")
        client = procs.start(["stdbuf", "-oL", "graceclient", "127.0.0.1"], env=env)
    else:
        argv = program("graceclient", "127.0.0.1", "--port", str(port), "--close-wait", "1")
        client = procs.start(argv)
    return experiment(client, server, ending)


SENDS = b"now sending data1\nsend bytes: 5 \nnow sending data2\nsend bytes: 5 \n"
ANSWERED = b"received 5 bytes: data1\nsend bytes: 9 \n"
EXPECTED = {
    # (ending, --sigpipe): the all-Python transcript, which every pairing must reproduce
    (b"shutdown", "ignore"): Transcript(
        1,
        SENDS + b"Hi, data1\nHi, data2\n",
        b"graceclient: server terminated \n\n",
        1,
        ANSWERED + b"received 5 bytes: data2\nsend bytes: 9 \n",
        b"graceserver: client closed \n\n",
    ),
    (b"close", "ignore"): Transcript(
        0,
        SENDS,
        b"",
        1,
        # the original prints the failed send's -1 (unsigned) before its error line
        ANSWERED + b"received 5 bytes: data2\nsend bytes: 4294967295 \n",
        b"graceserver: error write: Broken pipe\n",
    ),
    (b"close", "default"): Transcript(
        0, SENDS, b"", -13, ANSWERED + b"received 5 bytes: data2\n", b""
    ),
}


@pytest.mark.parametrize("pairing", PAIRINGS)
@pytest.mark.parametrize(
    ("ending", "sigpipe"), list(EXPECTED), ids=["shutdown", "close-ignore", "close-default"]
)
def test_every_pairing_prints_what_the_python_pair_prints(
    pairing: str,
    ending: bytes,
    sigpipe: str,
    procs: Procs,
    start_graceserver: Callable[..., RunningServer],
    c_programs: Path,
) -> None:
    # close: 1 s of processing leaves the client ample time to close before `Hi, data1`.
    delay = 1.0 if ending == b"close" else 0.4
    run = run_pairing(pairing, ending, sigpipe, delay, procs, start_graceserver, c_programs)
    assert run == EXPECTED[(ending, sigpipe)]


def test_c_client_usage_line_matches(c_programs: Path) -> None:
    env = c_env(c_programs)
    c = subprocess.run(["graceclient"], capture_output=True, env=env, timeout=TIMEOUT)
    py = subprocess.run(program("graceclient"), capture_output=True, env=env, timeout=TIMEOUT)
    assert (
        (c.returncode, c.stderr)
        == (py.returncode, py.stderr)
        == (
            1,
            b"graceclient: usage: graceclient <IPaddress>\n",
        )
    )


def test_c_and_python_clients_report_a_refused_connection_alike(c_programs: Path) -> None:
    import socket

    with socket.socket() as holder:  # bound, not listening: connecting draws an RST
        holder.bind(("127.0.0.1", 0))
        port = str(holder.getsockname()[1])
        env = c_env(c_programs, GRACE_PORT=port)
        c = subprocess.run(
            ["graceclient", "127.0.0.1"], capture_output=True, env=env, timeout=TIMEOUT
        )
        argv = program("graceclient", "127.0.0.1", "--port", port)
        py = subprocess.run(argv, capture_output=True, env=env, timeout=TIMEOUT)
    assert (
        (c.returncode, c.stderr)
        == (py.returncode, py.stderr)
        == (
            1,
            b"graceclient: connect failed : Connection refused\n",
        )
    )
