"""One real invocation per exit status of `tcpclose` (as httpie's tests/test_exit_status.py
does), each asserting the status and the one line on stderr; plus the one table of them
(`tcpclose.status.ExitStatus`) shared by the docs, the README and `tcpclose --help`.

Every member of ExitStatus must have a test here named `test_status_<value>_...`: a status
added without one fails `test_every_status_has_its_test`.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lesson.driver import python_env
from probe.test_endpoints import Endpoint, close_on_eof, reset_on_eof, silent
from support.commands import tcpclose_argv
from tcpclose import docs
from tcpclose.probe.verdict import ProbeExit
from tcpclose.status import ExitStatus
from test_signals import Run, a_server_listens

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "tests" / "data" / "analyze" / "three-closes.pcap"
#: a command that fails fast; runs that do real work get the lab's margin
TIMEOUT = 120.0
#: root that meets file permissions as any user does (no CAP_DAC_OVERRIDE, no
#: CAP_DAC_READ_SEARCH), yet still reads this checkout wherever it lies
NO_DAC_OVERRIDE = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
#: root that may not bind a port below 1024
NO_BIND_CAP = ["setpriv", "--inh-caps=-all", "--bounding-set=-net_bind_service"]


def tcpclose(*args: str, prefix: list[str] | None = None, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def, type-arg]
    """`tcpclose ARGS` as a real process; stdin empty; stdout and stderr captured."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("capture_output", True)
    return subprocess.run(
        [*(prefix or []), *tcpclose_argv(*args)],
        env=kw.pop("env", python_env()),
        timeout=kw.pop("timeout", TIMEOUT),
        cwd=kw.pop("cwd", "/"),
        **kw,
    )


def one_error_line(stderr: bytes) -> str:
    """The one line `tcpclose: error: ...` on stderr (fails on anything else)."""
    text = stderr.decode()
    assert "Traceback" not in text, text
    assert text.startswith("tcpclose: error: ") and text.count("\n") == 1, text
    return text


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port with nothing listening, held (bound, not listening) so nobody takes it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port with a listening socket on it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def need_root_and_setpriv() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and util-linux's setpriv, to drop a capability")


# --- one test per status ------------------------------------------------------------------


def test_status_0_ok() -> None:
    done = tcpclose("analyze", str(CAPTURE))
    assert (done.returncode, done.stderr) == (ExitStatus.OK, b"")
    assert b"connections" in done.stdout


def test_status_1_failure(tmp_path: Path) -> None:
    """`trace` with no strace to run: the run cannot happen, through no fault of the input."""
    env = python_env(PATH=str(tmp_path), TCPCLOSE_STRACE=str(tmp_path / "strace"))
    done = tcpclose("trace", "--", "/bin/true", env=env)
    assert done.returncode == ExitStatus.FAILURE
    assert "strace" in one_error_line(done.stderr)


@pytest.mark.parametrize("stderr", ["open", "closed"])
def test_status_2_usage(stderr: str) -> None:
    """An unknown option; also when stderr itself is closed (`2>&-`: nothing can be said,
    the status still tells)."""
    if stderr == "open":
        done = tcpclose("lab", "--frob")
        assert done.returncode == ExitStatus.USAGE
        assert done.stderr.decode().splitlines()[-1].endswith("unrecognized arguments: --frob")
        assert "Traceback" not in done.stderr.decode()
        return
    done = subprocess.run(
        ["sh", "-c", 'exec "$@" 2>&-', "sh", *tcpclose_argv("lab", "--frob")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=python_env(),
        timeout=TIMEOUT,
    )
    assert (done.returncode, done.stderr) == (ExitStatus.USAGE, b"")


def test_status_3_network(refused_port: int) -> None:
    done = tcpclose("probe", f"127.0.0.1:{refused_port}", "--no-capture", "--timeout", "10")
    assert done.returncode == ExitStatus.NETWORK, done.stderr
    assert "refused (ECONNREFUSED)" in one_error_line(done.stderr)


def test_status_4_permission() -> None:
    """A port below 1024 without CAP_NET_BIND_SERVICE."""
    need_root_and_setpriv()
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as limit:
        if int(limit.read()) <= 1:
            pytest.skip("this kernel lets anybody bind port 1")
    done = tcpclose("server", "--port", "1", prefix=[*NO_BIND_CAP, "--"])
    assert (done.returncode, done.stderr) == (
        ExitStatus.PERMISSION,
        b"tcpclose: error: cannot listen on 127.0.0.1:1: permission denied (EACCES)\n",
    )


def test_status_5_input(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pcap"
    done = tcpclose("analyze", str(missing))
    assert done.returncode == ExitStatus.INPUT
    assert str(missing) in one_error_line(done.stderr)


#: every output option, given a path under a directory it may not traverse
OUTPUTS: dict[str, list[str]] = {
    "report -o": ["report", "close", "--no-claims", "-o", "{out}"],
    "demo -o": ["demo", "-o", "{out}"],
    "lab --pcap": ["lab", "close", "--pcap", "{out}"],
    "lab --mermaid": ["lab", "close", "--mermaid", "{out}"],
    "probe --pcap": ["probe", "127.0.0.1:1", "--pcap", "{out}"],
    "trace --pcap": ["trace", "--pcap", "{out}", "--", "/bin/true"],
}


@pytest.mark.parametrize("option", list(OUTPUTS))
def test_status_5_output_under_an_untraversable_directory(option: str, tmp_path: Path) -> None:
    """As a user without the right to enter the directory: one line before any work."""
    need_root_and_setpriv()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    out = locked / "out"
    args = [a.replace("{out}", str(out)) for a in OUTPUTS[option]]
    done = tcpclose(*args, prefix=[*NO_DAC_OVERRIDE, "--"])
    assert (done.returncode, done.stderr.decode()) == (
        ExitStatus.INPUT,
        f"tcpclose: error: cannot write {out}: permission denied (EACCES)\n",
    )


def test_status_6_address_in_use(busy_port: int) -> None:
    done = tcpclose("server", "--port", str(busy_port))
    assert done.returncode == ExitStatus.ADDRESS_IN_USE
    assert "(EADDRINUSE)" in one_error_line(done.stderr)


def test_status_7_requests_lost(tmp_path: Path) -> None:
    """drain stops a server that closes at once on SIGTERM while requests are in flight."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = [*tcpclose_argv("serve", "--port", str(port), "--delay", "0.05", "--abrupt")]
    done = tcpclose(
        "drain",
        "--target",
        f"127.0.0.1:{port}",
        "--at",
        "0.4",
        "--after",
        "0.4",
        "--concurrency",
        "6",
        "--",
        *server,
        timeout=240.0,
    )
    assert done.returncode == ExitStatus.REQUESTS_LOST, done.stderr
    assert b"lost by cause:" in done.stdout


@pytest.mark.parametrize(
    ("signum", "status", "line"),
    [
        (signal.SIGINT, ExitStatus.INTERRUPTED, b"tcpclose: interrupted\n"),
        (signal.SIGTERM, ExitStatus.TERMINATED, b"tcpclose: terminated\n"),
    ],
    ids=["status_130", "status_143"],
)
def test_status_130_and_143_a_signal_mid_run(
    signum: int, status: ExitStatus, line: bytes, tmp_path: Path
) -> None:
    run = Run(tcpclose_argv("lab"), tmp_path / "tmp", tmp_path / "out")
    run.start()
    try:
        run.wait_until("listening", lambda: a_server_listens(run))
        assert run.proc is not None
        run.proc.send_signal(signum)
        assert (run.proc.wait(TIMEOUT), run.stderr) == (status, line)
    finally:
        run.kill_everything()


def test_status_141_broken_pipe() -> None:
    """The reader of standard output went away before anything was written: no word."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = tcpclose(
            "analyze",
            str(CAPTURE),
            "--all",
            stdout=writer,
            stderr=subprocess.PIPE,
            capture_output=False,
        )
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (ExitStatus.BROKEN_PIPE, b"")


def test_every_status_has_its_test() -> None:
    names = " ".join(name for name in globals() if name.startswith("test_status_"))
    missing = [int(s) for s in ExitStatus if not re.search(rf"_{int(s)}(_|\b)", names)]
    assert missing == []


# --- the one table ------------------------------------------------------------------------


def test_every_status_has_a_label_a_meaning_and_its_commands() -> None:
    for status in ExitStatus:
        assert status.label and status.meaning and status.commands, status.name
    assert len({s.label for s in ExitStatus}) == len(ExitStatus)


def test_the_help_overview_lists_every_status() -> None:
    done = tcpclose("--help")
    text = " ".join(done.stdout.decode().split())
    for status in ExitStatus:
        assert f"{int(status)} {status.label}" in text, status.name
    assert "docs/exit-statuses.md" in text


def test_the_docs_page_has_every_status_and_the_readme_links_it() -> None:
    page = docs.exit_statuses_page()
    for status in ExitStatus:
        assert f"| {int(status)} | `{status.name}` | " in page
    for verdict_class in ProbeExit:
        assert f"| {int(verdict_class)} | `{verdict_class.name}` | " in page
    assert (ROOT / "docs" / "exit-statuses.md").read_text() == page
    readme = (ROOT / "README.md").read_text()
    assert "(docs/exit-statuses.md)" in readme
    section = readme.split("## Exit statuses of `tcpclose`", 1)[1].split("\n## ", 1)[0]
    assert "| status |" not in section, "the README repeats the table by hand"


def test_a_status_is_an_int_for_sys_exit() -> None:
    assert ExitStatus(143) is ExitStatus.TERMINATED
    assert int(ExitStatus.REQUESTS_LOST) == 7 and ExitStatus.OK == 0
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tcpclose.status import ExitStatus as E; sys.exit(E.INPUT)",
        ],
        env=python_env(),
        timeout=TIMEOUT,
    )
    assert done.returncode == 5


# --- the probe's own statuses, one per verdict class --------------------------------------


def answer_by_half_close(conn: socket.socket, _n: int) -> None:
    """Answers differently whether the client half-closed after its request: the control
    (no half-close) gets `plain`, the probe's run `after-fin`. The control's wait for a FIN is
    a decision, not a test delay: the probe sends its FIN right after the request."""
    conn.recv(4096)
    readable, _, _ = select.select([conn], [], [], FIN_WAIT)
    half_closed = bool(readable) and conn.recv(4096) == b""
    conn.sendall(b"after-fin\n" if half_closed else b"plain\n")
    conn.close()


#: how long the answer_by_half_close endpoint waits for the probe's FIN
FIN_WAIT = 3.0

PROBE_CASES = {
    ProbeExit.CLOSED_WITHOUT_ANSWER: close_on_eof,
    ProbeExit.RESET: reset_on_eof,
    ProbeExit.HANG: silent,
    ProbeExit.ANSWER_CHANGED: answer_by_half_close,
}


@pytest.mark.parametrize(
    "expected", list(PROBE_CASES), ids=[f"status_{int(e)}" for e in PROBE_CASES]
)
def test_probe_status_per_verdict_class(expected: ProbeExit) -> None:
    """A purpose-built endpoint per class (tests/probe/test_endpoints.py has the rest, 13
    with --repeat); here `tcpclose probe` runs as a real process."""
    endpoint = Endpoint(PROBE_CASES[expected])
    try:
        # the control (the request without half-close) is needed to see a changed answer only
        control = [] if expected is ProbeExit.ANSWER_CHANGED else ["--no-control"]
        timeout = "2" if expected is ProbeExit.HANG else "15"
        target = f"127.0.0.1:{endpoint.port}"
        done = tcpclose("probe", target, "--preset", "echo", "--timeout", timeout, *control)
    finally:
        endpoint.close()
    assert done.returncode == expected, (done.stdout, done.stderr)
    assert b"Traceback" not in done.stderr
