"""Benchmark of the lab: wall time of the whole catalog and of `tcpclose demo`, and packets
missed or duplicated by the lab's capture compared with tcpdump watching the same runs.

    .venv/bin/python bench/lab/run.py [--runs 50] [--timing-runs 5]

Traffic: only the lab's own scenarios on 127.0.0.1, bounded by --runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from tcpclose.capture.frames import parse_frame  # noqa: E402
from tcpclose.capture.pcapfile import read_pcap_frames  # noqa: E402
from tcpclose.lab.runner import run_many  # noqa: E402
from tcpclose.lab.scenarios import CATALOG  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
#: the reference capture: immediate delivery, 2 KiB slots in a 64 MiB ring (no drops on bursts)
TCPDUMP = [
    "tcpdump",
    "-i",
    "lo",
    "-U",
    "--immediate-mode",
    "-n",
    "-s",
    "2048",
    "-B",
    "65536",
    "--time-stamp-precision=nano",
]


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start


def key(p: object) -> tuple[object, ...]:
    return (p.src, p.sport, p.dst, p.dport, p.flags, p.seq, p.ack, p.length)  # type: ignore


def compare_with_tcpdump(runs: int) -> tuple[int, int, int, int]:
    """(scenario runs, packets, missed, duplicated) over `runs` runs of the catalog."""
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "all.pcap"
        dump = subprocess.Popen(
            [*TCPDUMP, "-w", str(pcap), "tcp and host 127.0.0.1"], stderr=subprocess.PIPE, text=True
        )
        assert dump.stderr is not None
        while "listening on" not in dump.stderr.readline():
            pass
        lab = []
        for _ in range(runs):
            lab += run_many(CATALOG, jobs=8)
        time.sleep(1.0)
        dump.terminate()
        dump.wait(10)
        reference = [p for p in map(parse_frame, read_pcap_frames(pcap)) if p is not None]
    # Ephemeral ports are reused across 850 runs: a run's packets in tcpdump's file are those
    # of its server port, within the run's own time span (first event to last process exit).
    by_port: dict[int, list[object]] = {}
    for p in reference:
        by_port.setdefault(p.sport, []).append(p)
        by_port.setdefault(p.dport, []).append(p)
    packets = missed = duplicated = 0
    for run in lab:
        port = run.timeline.server[1] if run.timeline.server else 0
        first = min(e.t_ns for e in run.events) / 1e9 - 0.01
        last = max(run.client.ended_ns, run.server.ended_ns) / 1e9 + 0.01
        ours = Counter(key(p) for p in run.capture.packets)
        theirs = Counter(key(p) for p in by_port.get(port, ()) if first <= p.t <= last)
        packets += sum(theirs.values())
        missed += sum((theirs - ours).values())
        duplicated += sum((ours - theirs).values())
    return len(lab), packets, missed, duplicated


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--timing-runs", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    catalog = [wall([py, "-m", "tcpclose", "lab"]) for _ in range(args.timing_runs)]
    with tempfile.TemporaryDirectory() as tmp:
        report = str(Path(tmp) / "report.html")  # the demo as `make demo` runs it: report too
        demo = [wall([py, "-m", "tcpclose", "demo", "-o", report]) for _ in range(args.timing_runs)]
    print(
        f"catalog ({len(CATALOG)} scenarios), wall s: median {statistics.median(catalog):.2f} "
        f"min {min(catalog):.2f} max {max(catalog):.2f} (target < 5)"
    )
    print(
        f"demo, wall s: median {statistics.median(demo):.2f} min {min(demo):.2f} "
        f"max {max(demo):.2f} (target < 3)"
    )
    if args.runs < 1:
        return
    n, packets, missed, dup = compare_with_tcpdump(args.runs)
    print(
        f"capture vs tcpdump over {args.runs} catalog runs ({n} scenario runs, "
        f"{packets} packets): missed {missed}, duplicated {dup}"
    )


if __name__ == "__main__":
    main()
