"""Benchmark of `tcpclose probe`: wall time of one direct probe and of one proxy-bench probe,
side by side with curl making the same request in the same run, and the peak memory of
`--repeat 1000` next to `--repeat 10`.

    .venv/bin/python bench/probe/run.py [--runs 20] [--repeat 1000]

Traffic: loopback only. nginx (http, and stream with proxy_half_close on) on free ports, with
throwaway configs; every loop is bounded by --runs / --repeat.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from tcpclose.probe.backend import Backend, BackendKind  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
TCPCLOSE = [sys.executable, "-P", "-m", "tcpclose"]
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def nginx(tmp: Path, body: str) -> subprocess.Popen[bytes]:
    (tmp / "nginx.conf").write_text(body)
    directives = f"daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;"
    return subprocess.Popen(
        ["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", directives],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def timed(argv: list[str], runs: int) -> tuple[float, set[int]]:
    """Median wall time of `runs` runs of argv, and the exit statuses seen."""
    times, statuses = [], set()
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        statuses.add(done.returncode)
    return statistics.median(times), statuses


def peak_rss_mib(argv: list[str]) -> tuple[float, float, int]:
    """Peak RSS (MiB) of one child run, its wall time, its status (RUSAGE_CHILDREN after it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024, wall, done.returncode


def rss_of(argv: list[str]) -> tuple[float, float, int]:
    """Each measurement in a fresh interpreter, so RUSAGE_CHILDREN's maximum is its own."""
    here = str(Path(__file__).parent)
    code = (
        f"import json,sys;sys.path.insert(0,{here!r});"
        f"from run import peak_rss_mib;print(json.dumps(peak_rss_mib({argv!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True)
    import json

    rss, wall, status = json.loads(out.stdout)
    return rss, wall, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1000)
    args = parser.parse_args()
    if shutil.which("nginx") is None or shutil.which("curl") is None:
        raise SystemExit("needs nginx and curl (scripts/install-system-deps)")
    web, proxy, backend_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as t1, tempfile.TemporaryDirectory() as t2:
        http = nginx(
            Path(t1),
            "worker_processes 1; events { worker_connections 64; }\n"
            f"http {{ access_log off; server {{ listen 127.0.0.1:{web}; "
            'location / { return 200 "hello\\n"; } } }\n',
        )
        stream = nginx(
            Path(t2),
            f"load_module {STREAM_MODULE}; worker_processes 1;\n"
            "events { worker_connections 64; }\n"
            f"stream {{ server {{ listen 127.0.0.1:{proxy}; proxy_pass 127.0.0.1:{backend_port};"
            " proxy_half_close on; } }\n",
        )
        try:
            wait_port(web)
            wait_port(proxy)
            direct, s1 = timed([*TCPCLOSE, "probe", f"127.0.0.1:{web}"], args.runs)
            curl_direct, _ = timed(["curl", "-s", f"http://127.0.0.1:{web}/"], args.runs)
            bench, s2 = timed(
                [
                    *TCPCLOSE,
                    "probe",
                    f"127.0.0.1:{proxy}",
                    "--backend",
                    f"127.0.0.1:{backend_port}",
                ],
                args.runs,
            )
            with Backend("127.0.0.1", backend_port, BackendKind.HTTP, 0.5, 5):
                curl_proxy, _ = timed(["curl", "-s", f"http://127.0.0.1:{proxy}/"], args.runs)
            small = rss_of([*TCPCLOSE, "probe", f"127.0.0.1:{web}", "--repeat", "10", "--json"])
            big = rss_of(
                [*TCPCLOSE, "probe", f"127.0.0.1:{web}", "--repeat", str(args.repeat), "--json"]
            )
        finally:
            for proc in (http, stream):
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
    print(
        f"direct probe (nginx http, shutdown + control), median of {args.runs}: "
        f"{direct:.3f} s (exit {sorted(s1)}); curl, same server: {curl_direct:.3f} s; "
        f"ratio {direct / curl_direct:.1f}x"
    )
    print(
        f"proxy bench (nginx stream half-close, backend delay 0.5 s), median of {args.runs}: "
        f"{bench:.3f} s (exit {sorted(s2)}); curl through the same proxy and backend: "
        f"{curl_proxy:.3f} s; ratio {bench / curl_proxy:.1f}x"
    )
    print(
        f"--repeat 10: peak RSS {small[0]:.1f} MiB ({small[1]:.1f} s, exit {small[2]}); "
        f"--repeat {args.repeat}: peak RSS {big[0]:.1f} MiB ({big[1]:.1f} s, exit {big[2]})"
    )


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
