"""`tcpclose analyze` from pipes and FIFOs (live), its output formats and its hostile paths.

Every run here is a real `tcpclose` process (the venv's Python, `tcpclose.cli.run`), reading a
capture through a pipe, a FIFO or a file; waits are on events (a line on stdout, the
process's exit), with generous deadlines.
"""

from __future__ import annotations

import csv
import fcntl
import gzip
import io
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_fast_path import conversation_frames, ethernet, handshake_then, write_pcap
from test_pcapng_walk import pcap_to_pcapng

from tcpclose.analyze.output import json_row, record
from tcpclose.analyze.reading import read_rows
from tcpclose.cli import main

DATA = Path(__file__).parents[1] / "data" / "analyze"
THREE = DATA / "three-closes.pcap"
TCPCLOSE = [sys.executable, "-P", "-c", "from tcpclose.cli import run; run()"]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}


def tcpclose(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    kwargs.setdefault("env", ENV)
    return subprocess.run([*TCPCLOSE, *args], capture_output=True, timeout=120, **kwargs)  # type: ignore[call-overload]


def csv_rows(text: bytes) -> list[list[str]]:
    return sorted(csv.reader(io.StringIO(text.decode())), key=lambda r: (r[0] != "number", r))


def many_connections(path: Path, count: int, t0: float = 1.7e9, gap: float = 0.001) -> Path:
    """`count` short connections (graceful, aborted, half-closed in turn) on several 4-tuples."""
    frames: list[tuple[float, bytes]] = []
    t = t0
    for n in range(count):
        client = (f"10.0.{n % 50}.{1 + n % 200}", 20000 + n % 30000)
        segments = [(True, 0x18, 0, 0, 65535, 40, 0.0001), (False, 0x18, 0, 40, 65535, 300, 0.0001)]
        if n % 3 == 0:
            segments += [(True, 0x11, 40, 300, 65535, 0, 0.0001), (False, 0x11, 300, 41, 9, 0, 0)]
            segments += [(True, 0x10, 41, 301, 65535, 0, 0.0001)]
        elif n % 3 == 1:
            segments += [(True, 0x14, 40, 300, 0, 0, 0.0001)]
        else:
            segments += [(True, 0x11, 40, 300, 65535, 0, 0.0001), (False, 0x18, 300, 41, 9, 7, 0)]
            segments += [(False, 0x11, 307, 41, 9, 0, 0.0001), (True, 0x10, 41, 308, 9, 0, 0)]
        for t_at, ip, _ in conversation_frames(
            client, ("10.9.0.1", 80), handshake_then(segments), t
        ):
            frames.append((t_at, ethernet(ip)))
        t += gap
    return write_pcap(path, frames)


# -- pipes and FIFOs -------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["pcap", "pcapng"])
@pytest.mark.parametrize("mode", ["--csv", "--zeek", "--json", "--all", None])
def test_pipe_gives_the_files_rows(tmp_path: Path, mode: str | None, form: str) -> None:
    path = many_connections(tmp_path / "many.pcap", 400)
    if form == "pcapng":
        path = path.with_suffix(".pcapng")
        path.write_bytes(pcap_to_pcapng(path.with_suffix(".pcap").read_bytes()))
    args = [mode] if mode else []
    from_file = tcpclose("analyze", str(path), *args)
    from_pipe = tcpclose("analyze", "-", *args, stdin=path.open("rb"))
    assert from_file.returncode == from_pipe.returncode == 0, from_pipe.stderr
    assert from_pipe.stderr == from_file.stderr == b""
    if mode == "--csv":
        assert csv_rows(from_pipe.stdout) == csv_rows(from_file.stdout)
        assert len(csv_rows(from_file.stdout)) == 401
    elif mode == "--zeek":  # the #open and #close lines carry the time of the run
        strip = [
            ln for ln in from_file.stdout.splitlines() if not ln.startswith((b"#open", b"#close"))
        ]
        strip2 = [
            ln for ln in from_pipe.stdout.splitlines() if not ln.startswith((b"#open", b"#close"))
        ]
        assert sorted(strip) == sorted(strip2)
    else:
        assert sorted(from_pipe.stdout.splitlines()) == sorted(from_file.stdout.splitlines())


def test_fifo_gives_the_files_rows(tmp_path: Path) -> None:
    path = many_connections(tmp_path / "many.pcap", 300)
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as w:
            data = path.read_bytes()
            for at in range(0, len(data), 4096):  # in small pieces, as a capture arrives
                w.write(data[at : at + 4096])

    writer = threading.Thread(target=feed)
    writer.start()
    from_fifo = tcpclose("analyze", str(fifo), "--csv")
    writer.join(timeout=60)
    from_file = tcpclose("analyze", str(path), "--csv")
    assert from_fifo.returncode == 0, from_fifo.stderr
    assert csv_rows(from_fifo.stdout) == csv_rows(from_file.stdout)


def test_gzip_through_a_pipe(tmp_path: Path) -> None:
    packed = gzip.compress(THREE.read_bytes())
    done = tcpclose("analyze", "-", "--csv", input=packed)
    assert done.returncode == 0 and done.stderr == b""
    assert csv_rows(done.stdout) == csv_rows(tcpclose("analyze", str(THREE), "--csv").stdout)


def _live_connection(t0: float, client_port: int) -> list[tuple[float, bytes]]:
    segments = [(True, 0x18, 0, 0, 65535, 5, 0.001), (False, 0x18, 0, 5, 65535, 9, 0.001)]
    segments += [(True, 0x11, 5, 9, 65535, 0, 0.001), (False, 0x11, 9, 6, 65535, 0, 0.001)]
    segments += [(True, 0x10, 6, 10, 65535, 0, 0.001)]
    frames = conversation_frames(
        ("127.0.0.1", client_port), ("127.0.0.1", 43211), handshake_then(segments), t0
    )
    return [(t, ethernet(ip)) for t, ip, _ in frames]


def _records(frames: list[tuple[float, bytes]]) -> bytes:
    out = []
    for t, data in frames:
        sec = int(t)
        out.append(struct.pack("<IIII", sec, round((t - sec) * 1e6), len(data), len(data)))
        out.append(data)
    return b"".join(out)


def _read_line(stream: io.BufferedReader, deadline: float) -> bytes:
    """One line from a process's stdout, waiting for it at most until `deadline`."""
    line = b""
    fd = stream.fileno()
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no line in time (so far {line!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            byte = os.read(fd, 1)
            if not byte:
                raise EOFError(f"stdout ended (so far {line!r})")
            line += byte
    return line


@pytest.mark.parametrize(
    ("stop", "form"),
    [(None, "pcap"), (signal.SIGINT, "pcap"), (signal.SIGTERM, "pcap"), (None, "pcapng")],
)
def test_live_rows_come_before_the_end_of_the_stream(
    stop: signal.Signals | None, form: str
) -> None:
    """A connection that ended gets its row while the stream is still open (its capture time
    goes on while the stream is silent); the summary comes at EOF, Ctrl-C or SIGTERM."""
    proc = subprocess.Popen(
        [*TCPCLOSE, "analyze", "-", "--csv", "--linger", "0.3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
        now = time.time()
        # one connection that ends, one that stays open
        frames = _live_connection(now, 40001)
        frames += _live_connection(now, 40002)[:4]
        content = header + _records(frames)
        proc.stdin.write(content if form == "pcap" else pcap_to_pcapng(content))
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        assert _read_line(proc.stdout, deadline).startswith(b"number,")
        row = _read_line(proc.stdout, deadline)
        assert row.startswith(b"0,127.0.0.1:40001,") and b",graceful," in row
        assert proc.poll() is None  # still reading: the row came before the end
        if stop is None:
            proc.stdin.close()
        else:
            proc.send_signal(stop)
        rest = proc.stdout.read()
        status = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"1,127.0.0.1:40002," in rest and b",open," in rest
    err = proc.stderr.read() if proc.stderr else b""
    expected = {None: 0, signal.SIGINT: 130, signal.SIGTERM: 143}[stop]
    assert status == expected, err
    if stop is not None:
        assert err.count(b"\n") == 1 and b"interrupted" in err


def test_live_default_view_summary_on_sigterm() -> None:
    proc = subprocess.Popen(
        [*TCPCLOSE, "analyze", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdin is not None
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    proc.stdin.write(header + _records(_live_connection(time.time(), 40003)))
    proc.stdin.flush()
    # The CLI catches SIGTERM from its start (children of other commands); analyze's own
    # handler, which writes the summary, is in place once it has read from the stream.
    wait_drained(proc.stdin.fileno())
    wait_catching(proc.pid, signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)  # the stream stays open: the signal ends the run
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=60)
    proc.stdin.close()
    assert proc.returncode == 143, err
    assert b"connection" in out and b"packets read" in out


def wait_drained(write_end: int, timeout: float = 60.0) -> None:
    """Wait until the reader has taken every byte written into the pipe (FIONREAD on it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = struct.unpack("i", fcntl.ioctl(write_end, termios.FIONREAD, b"\0" * 4))[0]
        if pending == 0:
            return
        time.sleep(0.01)
    raise TimeoutError("the reader never drained the pipe")


def wait_catching(pid: int, signum: int, timeout: float = 60.0) -> None:
    """Wait until the process has a handler for `signum` (its SigCgt mask in /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            caught = next(int(ln.split()[1], 16) for ln in f if ln.startswith("SigCgt:"))
        if caught & (1 << (signum - 1)):
            return
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} never caught signal {signum}")


# -- formats ---------------------------------------------------------------------------------


def test_zeek_conn_log_header_and_rows(tmp_path: Path) -> None:
    done = tcpclose("analyze", str(THREE), "--zeek")
    assert done.returncode == 0, done.stderr
    log = tmp_path / "conn.log"
    log.write_bytes(done.stdout)
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "#separator \\x09"
    assert lines[4] == "#path\tconn"
    # As zeek-cut does: the #fields line names the columns of the tab-separated rows.
    fields = next(ln for ln in lines if ln.startswith("#fields\t")).split("\t")[1:]
    types = next(ln for ln in lines if ln.startswith("#types\t")).split("\t")[1:]
    assert len(fields) == len(types)
    rows = [dict(zip(fields, ln.split("\t"), strict=True)) for ln in lines if ln[:1] != "#"]
    assert lines[-1].startswith("#close\t")
    expected = list(read_rows(THREE))
    assert [r["conn_state"] for r in rows] == [r.verdict.conn_state for r in expected]
    assert [r["history"] for r in rows] == [r.verdict.history for r in expected]
    assert [int(r["orig_bytes"]) for r in rows] == [r.verdict.bytes_originator for r in expected]
    assert len({r["uid"] for r in rows}) == len(rows)
    for r, row in zip(rows, expected, strict=True):
        v = row.verdict
        assert int(r["orig_pkts"]) + int(r["resp_pkts"]) == v.packets
        assert (r["id.orig_h"], int(r["id.orig_p"])) == v.originator
        assert r["proto"] == "tcp" and float(r["ts"]) == pytest.approx(v.start, abs=1e-6)
    # A maintained reader of Zeek logs from PyPI reads it, with typed values.
    parsezeeklogs = pytest.importorskip("parsezeeklogs")
    records = list(parsezeeklogs.read_zeek(str(log)))
    assert [rec["conn_state"] for rec in records] == [r["conn_state"] for r in rows]
    assert [int(rec["id.resp_p"]) for rec in records] == [v.verdict.responder[1] for v in expected]


def test_json_rows_are_json_dumps_of_the_record(tmp_path: Path) -> None:
    path = many_connections(tmp_path / "many.pcap", 120)
    import json

    for row in read_rows(path):
        assert json_row(row) == json.dumps(record(row), ensure_ascii=False)


# -- correctness -----------------------------------------------------------------------------


def test_gzip_without_false_warning(tmp_path: Path) -> None:
    packed = tmp_path / "three.pcap.gz"
    packed.write_bytes(gzip.compress(THREE.read_bytes()))
    done = tcpclose("analyze", str(packed), "--csv")
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    # two members (as `cat a.gz b.gz`), then zero padding: no warning either
    packed.write_bytes(
        gzip.compress(THREE.read_bytes()[:100])
        + gzip.compress(THREE.read_bytes()[100:])
        + b"\0" * 512
    )
    done = tcpclose("analyze", str(packed), "--csv")
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    # a real cut still warns
    whole = gzip.compress(THREE.read_bytes())
    packed.write_bytes(whole[: len(whole) - 12])
    done = tcpclose("analyze", str(packed), "--csv")
    assert done.returncode == 0 and b"warning" in done.stderr


def test_out_of_order_bytes_through_the_command(tmp_path: Path) -> None:
    """300 bytes sent as 3 segments of 100, the second captured last: 300 bytes, both paths."""
    segments = [
        (True, 0x18, 0, 0, 65535, 100, 0.001),
        (True, 0x18, 200, 0, 65535, 100, 0.001),
        (True, 0x18, 100, 0, 65535, 100, 0.001),
        (False, 0x10, 0, 300, 65535, 0, 0.001),
        (True, 0x11, 300, 0, 65535, 0, 0.001),
        (False, 0x11, 0, 301, 65535, 0, 0.001),
        (True, 0x10, 301, 1, 65535, 0, 0.001),
    ]
    base = handshake_then([])
    frames = conversation_frames(("10.0.0.1", 5000), ("10.0.0.2", 80), base + segments, 1.7e9)
    path = write_pcap(tmp_path / "ooo.pcap", [(t, ethernet(ip)) for t, ip, _ in frames])
    for reference in (True, False):
        (only,) = read_rows(path, reference=reference)
        assert only.verdict.bytes_originator == 300
    done = tcpclose("analyze", str(path), "--csv")
    (row,) = csv.DictReader(io.StringIO(done.stdout.decode()))
    assert row["bytes_originator"] == "300"


def test_files_out_of_time_order_are_read_in_time_order(tmp_path: Path) -> None:
    early = many_connections(tmp_path / "early.pcap", 30, t0=1.7e9)
    late = many_connections(tmp_path / "late.pcap", 30, t0=1.7e9 + 100)
    given = tcpclose("analyze", str(late), str(early), "--csv")
    ordered = tcpclose("analyze", str(early), str(late), "--csv")
    assert given.stdout == ordered.stdout and ordered.stderr == b""
    assert b"out of time order" in given.stderr and given.stderr.count(b"\n") == 1
    # overlapping files: read one after the other, with a warning
    overlap = many_connections(tmp_path / "overlap.pcap", 30, t0=1.7e9 + 0.01)
    done = tcpclose("analyze", str(early), str(overlap), "--csv")
    assert done.returncode == 0 and b"overlap in time" in done.stderr


# -- layout ----------------------------------------------------------------------------------


def test_eighty_columns_drop_whole_columns_never_cut(tmp_path: Path) -> None:
    segments = [(True, 0x18, 0, 0, 65535, 1448, 0.001)] * 1
    frames = []
    client, server = ("10.200.200.200", 65001), ("10.100.100.100", 64999)
    big = [(True, 0x18, i * 1448, 0, 65535, 1448, 0.0001) for i in range(182)]
    big += [(True, 0x14, 182 * 1448, 0, 0, 0, 0.0001)]
    for t, ip, _ in conversation_frames(client, server, handshake_then(big), 1.7e9):
        frames.append((t, ethernet(ip)))
    del segments
    path = write_pcap(tmp_path / "wide.pcap", frames)
    for view in ([], ["--all"]):
        done = tcpclose("analyze", str(path), "--width", "80", *view)
        text = done.stdout.decode()
        assert done.returncode == 0, done.stderr
        table = [ln for ln in text.splitlines() if "10.200.200.200:65001" in ln]
        assert table and all(len(ln) <= 80 for ln in table), table
        assert "263536" in table[0]  # 182 * 1448 bytes, whole
        assert "10.100.100.100:64999" in table[0]
        assert "columns left out to fit 80 columns:" in text
        wide = tcpclose("analyze", str(path), "--width", "0", *view).stdout.decode()
        assert "columns left out" not in wide and "RSTO" in wide


# -- hostile paths ---------------------------------------------------------------------------


def test_full_disk_is_one_line_and_status_5() -> None:
    with open("/dev/full", "w") as full:
        for mode in ([], ["--all"], ["--csv"], ["--json"], ["--zeek"]):
            done = subprocess.run(
                [*TCPCLOSE, "analyze", str(THREE), *mode],
                stdout=full,
                stderr=subprocess.PIPE,
                env=ENV,
                timeout=120,
            )
            assert done.returncode == 5, (mode, done.stderr)
            assert done.stderr.decode().splitlines() == [
                "tcpclose: error: cannot write standard output: no space left on device (ENOSPC)"
            ]


def test_closed_stdout_is_one_line() -> None:
    closed = subprocess.run(
        ["bash", "-c", 'exec "$@" >&-', "bash", *TCPCLOSE, "analyze", str(THREE), "--json"],
        stderr=subprocess.PIPE,
        env=ENV,
        timeout=120,
    )
    assert closed.returncode == 5
    assert closed.stderr.decode().count("\n") == 1 and b"Traceback" not in closed.stderr


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    path = many_connections(tmp_path / "many.pcap", 3000)
    done = subprocess.run(
        ["bash", "-c", '"$@" | head -1', "bash", *TCPCLOSE, "analyze", str(path), "--all"],
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    assert done.stdout.count(b"\n") == 1 and done.stderr == b""


#: root without the capabilities that let it ignore file permissions: it meets EACCES as any
#: user would, yet still reads the checkout wherever it lies (nobody cannot read a clone in a
#: 0700 mktemp directory)
NO_DAC_OVERRIDE = [
    "setpriv",
    "--inh-caps=-all",
    "--bounding-set=-dac_override,-dac_read_search",
    "--",
]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_unreadable_capture_as_non_root_is_status_5(tmp_path: Path) -> None:
    secret = tmp_path / "secret.pcap"
    secret.write_bytes(THREE.read_bytes())
    secret.chmod(0)
    done = subprocess.run(
        [*NO_DAC_OVERRIDE, *TCPCLOSE, "analyze", str(secret)],
        capture_output=True,
        env=ENV,
        timeout=120,
    )
    assert done.returncode == 5, done.stderr
    assert done.stderr.decode().splitlines() == [
        f"tcpclose: error: cannot open {secret}: permission denied (EACCES)"
    ]


def test_worker_failure_is_one_line_and_status_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tcpclose.analyze import parallel

    monkeypatch.setenv("TCPCLOSE_WORKERS", "2")
    monkeypatch.setattr(parallel, "_child", _child_crash)
    path = many_connections(tmp_path / "many.pcap", 200)
    assert main(["analyze", str(path), "--csv"]) == 1
    err = capsys.readouterr().err
    assert main(["analyze", str(path)]) == 1  # the default view takes two processes too
    assert capsys.readouterr().err == err
    assert err.splitlines() == [
        "tcpclose: error: a worker process failed: MemoryError: worker out of memory"
    ]


def _child_crash(
    paths: object, index: int, workers: int, fd: int, fmt: object, stop: object, linger: float
) -> None:
    """A worker whose analysis fails at once, reported as the real `_child` reports it."""
    from tcpclose.analyze import parallel

    class Failing(parallel._Share):
        def messages(self):  # type: ignore[no-untyped-def]
            raise MemoryError("worker out of memory")
            yield

    saved = parallel._Share
    parallel._Share = Failing  # type: ignore[misc]
    try:
        parallel.__dict__["_real_child"](paths, index, workers, fd, fmt, stop, linger)
    finally:
        parallel._Share = saved  # type: ignore[misc]


INTERRUPTED = (
    "tcpclose: interrupted: the rows so far and the summary are above (connections still "
    "open listed as open)"
)


def _two_processes_signalled(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    signals: Callable[[int, int], None],
) -> tuple[int, str, str, list[tuple[int, int]]]:
    """`tcpclose analyze --csv` of 3,000 connections on two processes, read in small chunks;
    after its 4th chunk, each process calls signals(command's pid, its own pid). Returns the
    status, stdout, stderr and the signals the command sent (to whom, which)."""
    from tcpclose.analyze import capfile, parallel

    path = many_connections(tmp_path / "many.pcap", 3000)
    monkeypatch.setenv("TCPCLOSE_WORKERS", "2")
    monkeypatch.setattr(capfile, "CHUNK", 1 << 14)  # many read chunks (in the worker too)
    command = os.getpid()
    sent: list[tuple[int, int]] = []
    kill = os.kill

    def recorded_kill(pid: int, signum: int) -> None:
        sent.append((pid, signum))
        kill(pid, signum)

    monkeypatch.setattr(parallel.os, "kill", recorded_kill)
    messages = parallel._Share.messages

    def then_signals(self: parallel._Share) -> Iterator[parallel.Message]:
        for n, message in enumerate(messages(self)):
            yield message
            if n == 3:
                signals(command, os.getpid())

    monkeypatch.setattr(parallel._Share, "messages", then_signals)
    status = main(["analyze", str(path), "--csv"])
    out, err = capsys.readouterr()
    return status, out, err, [(pid, signum) for pid, signum in sent if pid != command]


def _rows_so_far(out: str) -> None:
    rows = csv_rows(out.encode())
    assert rows[0][0] == "number" and 1 < len(rows) - 1 < 3000
    numbers = sorted(int(r[0]) for r in rows[1:])
    assert numbers == list(range(len(numbers)))  # numbered as one process numbers them


def test_two_processes_stop_on_sigterm_with_the_summary_so_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGTERM to the command (not to its worker) while two processes read a file: both stop
    (the command passes the SIGTERM on), the rows and summary so far are written, then one
    line on stderr and status 143, as with one process."""

    def to_the_command(command: int, me: int) -> None:
        if me == command:
            os.kill(command, signal.SIGTERM)

    status, out, err, passed_on = _two_processes_signalled(
        tmp_path, monkeypatch, capsys, to_the_command
    )
    assert status == 143 and err.splitlines() == [INTERRUPTED]
    _rows_so_far(out)
    assert [signum for _, signum in passed_on] == [signal.SIGTERM]


def test_two_processes_stop_on_ctrl_c_to_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A terminal's Ctrl-C reaches the command and its worker; the command passes a SIGTERM on
    as well (the worker's second signal): still the rows and summary so far, status 130."""

    def to_both(command: int, me: int) -> None:
        if me != command:  # the worker, while the command still reads
            os.kill(command, signal.SIGINT)
            os.kill(me, signal.SIGINT)

    status, out, err, _ = _two_processes_signalled(tmp_path, monkeypatch, capsys, to_both)
    assert status == 130 and err.splitlines() == [INTERRUPTED]
    _rows_so_far(out)


def test_a_worker_signalled_alone_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGTERM to the worker alone stops its reading: its rows are incomplete, so the run
    fails with one line (status 1) instead of passing a partial result as whole."""

    def to_the_worker(command: int, me: int) -> None:
        if me != command:
            os.kill(me, signal.SIGTERM)

    status, _, err, _ = _two_processes_signalled(tmp_path, monkeypatch, capsys, to_the_worker)
    assert status == 1
    assert err.splitlines() == [
        "tcpclose: error: a worker process was stopped by a signal sent to it alone: its rows "
        "are incomplete (signal the command instead: it stops both)"
    ]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_linger_is_the_same_on_two_processes(tmp_path: Path, workers: str) -> None:
    """--linger 1: a connection that ended is finished at the next sweep more than 1 s later
    (65,536 packets of another connection between), so its late ACK starts a row of its
    own; with the default 5 s it joins its connection. One process and two alike."""
    from tcpclose.analyze.table import SWEEP

    ended = handshake_then([(True, 0x11, 0, 0, 512, 0, 0.01), (False, 0x11, 0, 1, 512, 0, 0.01)])
    frames = [
        (t, ethernet(ip))
        for t, ip, _ in conversation_frames(("10.0.0.1", 40000), ("10.0.9.9", 80), ended, 1.7e9)
    ]
    late_ack = frames[-1][1]
    filler = handshake_then([(True, 0x18, 5 * i, 0, 512, 5, 0.0) for i in range(SWEEP + 10)])
    for i, (_, ip, _) in enumerate(
        conversation_frames(("10.0.0.2", 40001), ("10.0.9.9", 80), filler, 1.7e9)
    ):
        frames.append((1.7e9 + 0.1 + 2.0 * i / len(filler), ethernet(ip)))
    frames.append((1.7e9 + 2.5, late_ack))
    path = write_pcap(tmp_path / "late.pcap", frames)
    for linger, rows in (("1", 3), ("5", 2)):
        done = tcpclose(
            "analyze",
            str(path),
            "--csv",
            "--linger",
            linger,
            env={**ENV, "TCPCLOSE_WORKERS": workers},
        )
        assert done.returncode == 0, done.stderr
        assert len(csv_rows(done.stdout)) - 1 == rows, (linger, done.stdout[-400:])


def test_vanished_worker_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tcpclose.analyze import parallel

    monkeypatch.setenv("TCPCLOSE_WORKERS", "2")
    monkeypatch.setattr(parallel, "_child", lambda *a: os._exit(9))
    path = many_connections(tmp_path / "many.pcap", 200)
    assert main(["analyze", str(path), "--csv"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "tcpclose: error: a worker process ended without its results"
    ]


# -- progress --------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_progress_bar_only_on_a_terminal(tmp_path: Path, workers: str) -> None:
    import pty

    path = many_connections(tmp_path / "many.pcap", 200)
    controller, terminal = pty.openpty()
    try:
        env = {**ENV, "TCPCLOSE_PROGRESS_DELAY": "0", "TCPCLOSE_WORKERS": workers}
        done = subprocess.run(
            [*TCPCLOSE, "analyze", str(path), "--csv"],
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=env,
            timeout=120,
        )
        os.close(terminal)
        terminal = -1
        drawn = b""
        while select.select([controller], [], [], 0.5)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if terminal >= 0:
            os.close(terminal)
        os.close(controller)
    assert done.returncode == 0
    assert b"packets" in drawn and b"connections" in drawn and b"\r" in drawn
    assert b" connections" not in done.stdout  # the bar is on stderr only
    piped = tcpclose("analyze", str(path), "--csv", env={**ENV, "TCPCLOSE_PROGRESS_DELAY": "0"})
    assert piped.stderr == b""


# -- memory ----------------------------------------------------------------------------------

_RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_rss_is_flat_in_text_mode(tmp_path: Path, workers: str) -> None:
    """The default (text) view on a capture and on one twice its size: the same peak RSS
    (that of the largest process), in one process and in two."""
    one = many_connections(tmp_path / "one.pcap", 15_000, gap=0.01)
    frames_one = one.read_bytes()
    # twice: the records again, 1000 s later (new connections on the same 4-tuples)
    two = tmp_path / "two.pcap"
    body = bytearray(frames_one[24:])
    pos = 0
    while pos + 16 <= len(body):
        sec, _, incl, _ = struct.unpack_from("<IIII", body, pos)
        struct.pack_into("<I", body, pos, sec + 1000)
        pos += 16 + incl
    two.write_bytes(frames_one + bytes(body))
    peaks = []
    for path in (one, two):
        done = subprocess.run(
            [sys.executable, "-c", _RSS, *TCPCLOSE, "analyze", str(path)],
            capture_output=True,
            env={**ENV, "TCPCLOSE_WORKERS": workers},
            timeout=300,
            check=True,
        )
        peaks.append(int(done.stdout))
    assert peaks[1] <= peaks[0] * 1.1 + 4096, peaks  # kB: flat, within 10% and 4 MB
