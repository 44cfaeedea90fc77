"""What tracing costs: bench/trace/run.py [--rounds N] [--requests N] [--json]

1. A request/response loop (one connection, 32-byte request, 32-byte answer, N times) run by
   a small Python client against a server outside the trace, plain and under
   `tcpclose trace`, alternating, `--rounds` times each. The client times its own loop, so the
   figure is what the traced program feels: requests per second, medians, ratio.
2. The lesson's close experiment with the C programs (tests/interop, built with gcc): the C
   client run plainly and under `tcpclose trace`, typed the same script, wall time from start to
   exit. The trace must not take more than the experiment plus 0.5 s.

Run as root (packet capture). Numbers go to bench/trace/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
INTEROP = ROOT / "tests" / "interop"

CLIENT = r"""
import socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
conn = socket.create_connection(("127.0.0.1", port))
request = b"x" * 32
start = time.perf_counter()
for _ in range(count):
    conn.sendall(request)
    got = 0
    while got < 32:
        got += len(conn.recv(64))
elapsed = time.perf_counter() - start
conn.close()
print(f"{count / elapsed:.1f}")
"""


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), e.get("PYTHONPATH")]))
    return e


def serve_forever(listener: socket.socket) -> None:
    """Answers every 32-byte request with 32 bytes, one connection at a time."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            buffered = b""
            while chunk := conn.recv(4096):
                buffered += chunk
                while len(buffered) >= 32:
                    buffered = buffered[32:]
                    conn.sendall(b"y" * 32)


def tcpclose(*args: str) -> list[str]:
    return [sys.executable, "-m", "tcpclose", "trace", "-o", os.devnull, *args]


def loop_once(script: Path, port: int, requests: int, traced: bool) -> float:
    argv = [sys.executable, str(script), str(port), str(requests)]
    if traced:
        argv = tcpclose("--", *argv)
    done = subprocess.run(argv, capture_output=True, env=env(), timeout=600, check=True)
    return float(done.stdout.decode().split()[-1])


def build_c(tmp: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("bench/trace: gcc is not installed")
    for name in ("graceserver", "graceclient"):
        subprocess.run([gcc, "-O2", "-o", str(tmp / name), str(INTEROP / f"{name}.c")], check=True)
    return tmp


def read_until(stream, needle: bytes, timeout: float = 30.0) -> bytes:  # type: ignore[no-untyped-def]
    """Read a pipe until `needle` appeared (bounded in time)."""
    seen = b""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    import select

    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"waited for {needle!r}, got {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"stream ended before {needle!r}: {seen!r}")
            seen += chunk
    return seen


def experiment_once(c_dir: Path, traced: bool) -> float:
    """The close experiment (server answers after 0.5 s, client waits 0.6 s after close):
    seconds from starting the client (or its trace) to its end."""
    server_env = {**env(), "GRACE_PORT": "0", "GRACE_BIND": "127.0.0.1"}
    server_env |= {"GRACE_DELAY_MS": "500", "GRACE_SIGPIPE": "default"}
    server = subprocess.Popen(
        ["stdbuf", "-oL", str(c_dir / "graceserver")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env,
    )
    try:
        said = read_until(server.stderr, b"\n")
        port = said.decode().strip().rsplit(":", 1)[1]
        client_env = {**env(), "GRACE_PORT": port, "GRACE_CLOSE_WAIT_MS": "600"}
        argv = ["stdbuf", "-oL", str(c_dir / "graceclient"), "127.0.0.1"]
        if traced:
            argv = tcpclose("--", *argv)
        start = time.monotonic()
        client = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=client_env
        )
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write(b"data1\n")
        client.stdin.flush()
        read_until(server.stdout, b"received 5 bytes: data1\n")
        client.stdin.write(b"data2\n")
        client.stdin.flush()
        got = b""
        while got.count(b"send bytes: 5") < 2:
            got += read_until(client.stdout, b"send bytes: 5")
        client.stdin.write(b"close\n")
        client.stdin.close()
        client.wait(60)
        elapsed = time.monotonic() - start
        client.stdout.close()
        return elapsed
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/trace: run as root (packet capture, ptrace)")

    results: dict[str, list[float]] = {"plain": [], "traced": [], "exp_plain": [], "exp_traced": []}
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        tmp_path = Path(tmp)
        script = tmp_path / "client.py"
        script.write_text(CLIENT)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        threading.Thread(target=serve_forever, args=(listener,), daemon=True).start()
        for _ in range(args.rounds):
            results["plain"].append(loop_once(script, port, args.requests, traced=False))
            results["traced"].append(loop_once(script, port, args.requests, traced=True))
        listener.close()
        c_dir = build_c(tmp_path)
        for _ in range(args.rounds):
            results["exp_plain"].append(experiment_once(c_dir, traced=False))
            results["exp_traced"].append(experiment_once(c_dir, traced=True))

    med = {k: statistics.median(v) for k, v in results.items()}
    summary = {
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "requests_per_second_plain": med["plain"],
        "requests_per_second_traced": med["traced"],
        "slowdown": med["plain"] / med["traced"],
        "experiment_seconds_plain": med["exp_plain"],
        "experiment_seconds_traced": med["exp_traced"],
        "experiment_extra_seconds": med["exp_traced"] - med["exp_plain"],
        "runs": results,
    }
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(f"request/response loop, {args.requests} requests, median of {args.rounds}:")
    print(f"  plain   {med['plain']:10.0f} requests/s")
    print(f"  traced  {med['traced']:10.0f} requests/s   ({summary['slowdown']:.1f}x slower)")
    print("lesson close experiment (C client), wall time, median:")
    print(f"  plain   {med['exp_plain']:.3f} s")
    print(f"  traced  {med['exp_traced']:.3f} s   (+{summary['experiment_extra_seconds']:.3f} s)")


if __name__ == "__main__":
    main()
