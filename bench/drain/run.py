"""Benchmarks of `tcpclose drain` and `tcpclose serve`, each beside its reference, same run.

    .venv/bin/python bench/drain/run.py [--repeat 3] [--seconds 4] [--json]

1. Load: requests/s against nginx (one worker, a static file, keep-alive) at 50 connections:
   `wrk -t2 -c50` (records nothing per request) vs `tcpclose drain` with its capture on
   (tcpdump writing the whole run), every request recorded. drain needs an action: the bench
   gives it `--reload true` (a command that does nothing), so the load is steady.
2. Server: requests/s of `tcpclose serve` at 100 keep-alive connections (wrk -t2 -c100) vs a
   bare asyncio server and a bare uvloop server written below (the same answer, no stop logic).

Each measurement is repeated; the README quotes medians and ratios of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BODY = b"hello from tcpclose serve\n"
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(port: int, path: str, connections: int, seconds: float) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Socket errors" in out:
        raise RuntimeError(f"wrk said: {out}")
    return float(match.group(1))


def nginx_conf(workdir: Path, port: int) -> list[str]:
    www = workdir / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("hello from nginx, a static file\n")
    temp = workdir / "tmp"
    temp.mkdir(exist_ok=True)
    conf = workdir / f"nginx-{port}.conf"
    conf.write_text(
        "user root;\ndaemon off;\nmaster_process on;\nworker_processes 1;\n"
        f"pid {workdir / f'nginx-{port}.pid'};\nerror_log stderr warn;\n"
        "events { worker_connections 4096; }\nhttp {\n  access_log off;\n"
        "  keepalive_requests 1000000;\n"
        + "".join(
            f"  {k}_temp_path {temp};\n"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  server {{ listen 127.0.0.1:{port}; root {www}; }}\n}}\n"
    )
    return ["nginx", "-p", str(workdir), "-c", str(conf)]


def measure_nginx(workdir: Path, seconds: float) -> dict[str, Any]:
    """wrk, then drain, against the same nginx configuration, one after the other."""
    port = free_port()
    argv = nginx_conf(workdir, port)
    server = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        reference = wrk(port, "/index.html", 50, seconds)
    finally:
        server.send_signal(signal.SIGQUIT)
        server.wait(timeout=20)
    port = free_port()
    argv = nginx_conf(workdir, port)
    done = subprocess.run(
        [
            str(BIN / "tcpclose"),
            "drain",
            "--json",
            "--target",
            f"127.0.0.1:{port}",
            "--concurrency",
            "50",
            "--keepalive-share",
            "1",
            "--check-share",
            "0",
            "--path",
            "/index.html",
            "--at",
            f"{seconds / 2:g}",
            "--after",
            f"{seconds / 2:g}",
            "--reload",
            "true",
            "--",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode not in (0, 7):
        raise RuntimeError(done.stderr)
    doc = json.loads(done.stdout)
    summary = doc["summary"]
    assert len(doc["requests"]) == summary["attempted"], "a request was not recorded"
    return {
        "wrk": reference,
        "drain": summary["requests_per_second"],
        "attempted": summary["attempted"],
        "recorded": len(doc["requests"]),
        "lost": summary["lost_total"],
        "packets": doc["capture"]["packets"],
        "dropped": doc["capture"]["dropped"],
        "capture": doc["capture"]["method"],
    }


# -- bare servers: the same answer as `tcpclose serve`, no stop logic at all -----------------

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


class BareHttp(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(ANSWER * count)  # type: ignore[attr-defined]


def bare_server(port: int, use_uvloop: bool) -> None:
    if use_uvloop:
        import uvloop

        uvloop.install()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(BareHttp, "127.0.0.1", port, backlog=1024)
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        await stop
        server.close()

    asyncio.run(main())


def measure_server(argv: list[str], port: int, seconds: float) -> float:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        return wrk(port, "/", 100, seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_servers(seconds: float) -> dict[str, float]:
    results = {}
    port = free_port()
    results["tcpclose serve"] = measure_server(
        [str(BIN / "tcpclose"), "serve", "--port", str(port)], port, seconds
    )
    for name, flag in (("bare asyncio", "asyncio"), ("bare uvloop", "uvloop")):
        port = free_port()
        results[name] = measure_server(
            [sys.executable, __file__, "--bare", flag, "--port", str(port)], port, seconds
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bare", choices=("asyncio", "uvloop"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_server(args.port, args.bare == "uvloop")
        return 0
    for tool in ("wrk", "nginx", "tcpdump"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is not installed (bash scripts/install-system-deps)")
    if os.geteuid() != 0:
        sys.exit("bench: run as root (drain's capture)")
    loads: list[dict[str, Any]] = []
    servers: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="tcpclose-bench-drain-") as tmp:
        for _ in range(args.repeat):
            loads.append(measure_nginx(Path(tmp), args.seconds))
            servers.append(measure_servers(args.seconds))
    wrk_median = statistics.median(r["wrk"] for r in loads)
    drain_median = statistics.median(r["drain"] for r in loads)
    server_medians = {k: statistics.median(s[k] for s in servers) for k in servers[0]}
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "nginx_keepalive_50": {
            "runs": loads,
            "wrk_median": wrk_median,
            "drain_median": drain_median,
            "ratio": round(drain_median / wrk_median, 3),
            "dropped_total": sum(r["dropped"] for r in loads),
        },
        "serve_100_connections": {
            "runs": servers,
            "medians": server_medians,
            "serve_vs_bare_asyncio": round(
                server_medians["tcpclose serve"] / server_medians["bare asyncio"], 3
            ),
            "serve_vs_bare_uvloop": round(
                server_medians["tcpclose serve"] / server_medians["bare uvloop"], 3
            ),
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"nginx, static file, keep-alive, 50 connections ({args.repeat} runs, medians):")
    for r in loads:
        print(
            f"  wrk {r['wrk']:>9,.0f} req/s | drain {r['drain']:>9,.0f} req/s, "
            f"{r['recorded']:,} recorded, {r['packets']:,} packets captured, "
            f"{r['dropped']} dropped"
        )
    print(
        f"  median: wrk {wrk_median:,.0f}, drain {drain_median:,.0f} req/s: "
        f"{drain_median / wrk_median:.2f}x wrk"
    )
    print(f"tcpclose serve vs bare servers, wrk -t2 -c100 ({args.repeat} runs, medians):")
    for name, value in server_medians.items():
        print(f"  {name:<15} {value:>9,.0f} req/s")
    print(
        f"  serve / bare asyncio {report['serve_100_connections']['serve_vs_bare_asyncio']:.2f}x,"
        f" serve / bare uvloop {report['serve_100_connections']['serve_vs_bare_uvloop']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
