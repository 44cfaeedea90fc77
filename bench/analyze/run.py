"""Benchmark `tcpclose analyze` against tshark and tcpdump on a capture of >= 1,000,000 packets.

    .venv/bin/python bench/analyze/run.py     # generates bench/data/analyze-1x.pcap if missing
    .venv/bin/python bench/analyze/run.py --runs 5

The capture: many short HTTP/1.0 exchanges with nginx on 127.0.0.1 (a free port), from
several client processes and source addresses 127.0.0.2-127.0.0.250, one in ten half-closing,
one in ten resetting, captured by `tcpdump -i lo`. The 2x file is the 1x file followed by
itself shifted in time (the same 4-tuples reused: new connections, as tshark's tcp.stream).
Three 30 MB files are cut from the 1x file's first records (the size the issue's targets
start at): as pcap, as pcapng (what Wireshark and dumpcap write), and as pcap with every
packet in IPv6 behind an 802.1Q tag (2001:db8::<IPv4> addresses).

Measured in one run, each command `--runs` times, in rounds (each round runs every command
once), median wall time, peak RSS of the largest process and summed over the command's
processes (`tcpclose analyze` forks a worker on files of 4 MB and more; each process's
VmHWM, read every 10 ms): tshark -T fields (tcp.stream, tcp.flags, tcp.len), tcpdump -r -nn,
and `tcpclose analyze` in every mode (the default view, --all, --json, --csv, --zeek), all
with output to /dev/null; on the 2x file tcpclose only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tests" / "analyze")]

from livetraffic import exchange, free_port, nginx, tcpdump  # noqa: E402

DATA = ROOT / "bench" / "data"
TARGET_PACKETS = 1_000_000
#: the size of the smaller files, cut from the 1x file
SMALL_BYTES = 30_000_000


def _client(args: tuple[int, int, int]) -> int:
    port, worker, count = args
    done = 0
    for i in range(count):
        kind = "half-close" if i % 10 == 3 else "reset" if i % 10 == 7 else "graceful"
        source = f"127.0.0.{2 + (worker * 37 + i) % 248}"
        try:
            exchange(port, kind, source)
            done += 1
        except OSError:
            pass
    return done


def count_packets(path: Path) -> int:
    """Records in a pcap file (reads only the record headers); packets in a pcapng file."""
    if path.suffix == ".pcapng":
        from tcpclose.analyze.capfile import open_capture

        capture = open_capture(path)
        try:
            return sum(len(batch[2]) for batch in capture.batches())
        finally:
            capture.close()
    n = 0
    with open(path, "rb") as f:
        f.seek(24)
        while header := f.read(16):
            if len(header) < 16:
                break
            f.seek(struct.unpack("<IIII", header)[2], 1)
            n += 1
    return n


def generate(path: Path, target: int = TARGET_PACKETS) -> int:
    """Capture short connections until the file holds `target` packets (bounded: 6 rounds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (
        tempfile.TemporaryDirectory() as tmp,
        nginx(Path(tmp) / "nginx", port),
        tcpdump(path, port),
    ):
        total = 0
        workers = max(2, os.cpu_count() or 2)
        for _ in range(6):
            with multiprocessing.Pool(workers) as pool:
                per = 30_000 // workers
                total += sum(pool.map(_client, [(port, w, per) for w in range(workers)]))
            packets = count_packets(path)
            print(f"  {total} connections, {packets} packets so far", flush=True)
            if packets >= target:
                break
    return count_packets(path)


def double(src: Path, dst: Path) -> None:
    """dst = src's records, then the same records shifted by the capture's span + 1 s."""
    data = src.read_bytes()
    header, body = data[:24], data[24:]
    first = struct.unpack_from("<I", body, 0)[0]
    pos, last = 0, first
    while pos + 16 <= len(body):
        sec, _, incl, _ = struct.unpack_from("<IIII", body, pos)
        last = sec
        pos += 16 + incl
    shift = last - first + 1
    out = bytearray(body)
    pos = 0
    while pos + 16 <= len(out):
        sec, _usec, incl, _orig = struct.unpack_from("<IIII", out, pos)
        struct.pack_into("<I", out, pos, sec + shift)
        pos += 16 + incl
    dst.write_bytes(header + body + bytes(out))


def cut(src: Path, dst: Path, size: int = SMALL_BYTES) -> None:
    """dst = src's header and its first records, up to `size` bytes."""
    data = src.read_bytes()
    pos = 24
    while pos + 16 <= len(data):
        end = pos + 16 + struct.unpack_from("<I", data, pos + 8)[0]
        if end > size:
            break
        pos = end
    dst.write_bytes(data[:pos])


def ipv6_behind_vlan(src: Path, dst: Path) -> None:
    """dst = src (Ethernet, IPv4 without options) with every packet in IPv6, tagged 802.1Q."""
    data = src.read_bytes()
    out = [data[:24]]
    pos = 24
    prefix = b"\x20\x01\x0d\xb8" + b"\0" * 8
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ip = frame[14:]
        total = struct.unpack_from("!H", ip, 2)[0]
        segment = ip[20:total] if total else ip[20:]
        v6 = struct.pack("!IHBB", 6 << 28, len(segment), 6, 64)
        v6 += prefix + ip[12:16] + prefix + ip[16:20]
        tagged = frame[:12] + b"\x81\x00\x00\x07\x86\xdd" + v6 + segment
        out.append(struct.pack("<IIII", sec, frac, len(tagged), len(tagged)) + tagged)
    dst.write_bytes(b"".join(out))


#: run in a fresh Python: the command's wall time, then the sum over the command's processes
#: (itself and its descendants, found every 10 ms) of each one's peak RSS (VmHWM, kB)
_PROBE = """
import os, subprocess, sys, time

def tree(pid):
    todo, found = [pid], []
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found

def hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0

peaks = {}
t = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while child.poll() is None:
    for p in tree(child.pid):
        peaks[p] = max(peaks.get(p, 0), hwm(p))
    time.sleep(0.01)
wall = time.perf_counter() - t
assert child.returncode == 0, child.returncode
print(wall, sum(peaks.values()), max(peaks.values()))
"""


def measure(cmd: list[str]) -> tuple[float, int, int]:
    """Wall seconds and the peak RSS in MB summed over the command's processes (its own and
    any it forks: each one's VmHWM, read every 10 ms while it runs), through a fresh Python."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *cmd], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]) // 1024, int(out[2]) // 1024


def commands(path: Path) -> dict[str, list[str]]:
    env_python = [
        sys.executable,
        "-c",
        f"import sys;sys.path.insert(0,{str(ROOT / 'src')!r});"
        "from tcpclose.cli import main;sys.exit(main(sys.argv[1:]))",
    ]
    return {
        "tshark -T fields": [
            "tshark",
            "-n",
            "-r",
            str(path),
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.flags",
            "-e",
            "tcp.len",
        ],
        "tcpdump -r -nn": ["tcpdump", "-r", str(path), "-nn"],
        **{
            f"tcpclose analyze {mode}".rstrip(): [*env_python, "analyze", str(path), *mode.split()]
            for mode in MODES
        },
    }


#: every output mode of `tcpclose analyze` ("": the default view)
MODES = ("", "--all", "--json", "--csv", "--zeek")


def bench_file(
    path: Path,
    references: bool,
    runs_wanted: int,
    results: dict[tuple[str, str], tuple[float, int, int, int]],
) -> None:
    """Run every command on one file (`references`: tshark and tcpdump too), `runs_wanted`
    times, in rounds; results[(file name, command)] = (median wall, summed RSS, largest RSS,
    packets)."""
    packets = count_packets(path)
    print(f"\n{path.name}: {packets} packets, {path.stat().st_size / 1e6:.0f} MB")
    todo = {
        name: cmd
        for name, cmd in commands(path).items()
        if references or name.startswith("tcpclose")
    }
    # Round-robin: each round runs every command once, so that a burst of load from
    # other jobs falls on all of them alike.
    runs: dict[str, list[tuple[float, int, int]]] = {name: [] for name in todo}
    for _ in range(runs_wanted):
        for name, cmd in todo.items():
            runs[name].append(measure(cmd))
    for name, measured in runs.items():
        wall = statistics.median(r[0] for r in measured)
        summed = max(r[1] for r in measured)
        largest = max(r[2] for r in measured)
        results[(path.name, name)] = (wall, summed, largest, packets)
        print(
            f"  {name:<28} median {wall:7.2f} s  {packets / wall / 1000:8.0f} kpkt/s  "
            f"peak RSS {largest} MB per process, {summed} MB summed  "
            f"(runs: {', '.join(f'{r[0]:.2f}' for r in measured)})",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()
    one, two = DATA / "analyze-1x.pcap", DATA / "analyze-2x.pcap"
    if args.regenerate or not one.exists():
        print(f"generating {one} (nginx + tcpdump on lo)...", flush=True)
        started = time.monotonic()
        generate(one)
        print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    if args.regenerate or not two.exists():
        double(one, two)
    small = DATA / "analyze-30mb.pcap"
    small_ng, small_v6 = small.with_suffix(".pcapng"), DATA / "analyze-30mb-ipv6-vlan.pcap"
    if args.regenerate or not small.exists():
        cut(one, small)
    if args.regenerate or not small_ng.exists():
        from test_pcapng_walk import pcap_to_pcapng

        small_ng.write_bytes(pcap_to_pcapng(small.read_bytes()))
    if args.regenerate or not small_v6.exists():
        ipv6_behind_vlan(small, small_v6)
    results: dict[tuple[str, str], tuple[float, int, int, int]] = {}
    for path in (one, two, small, small_ng, small_v6):
        bench_file(path, path is not two, args.runs, results)
    print()
    for path in (one, small, small_ng, small_v6):
        tshark = results[(path.name, "tshark -T fields")][0]
        tcpdump_s = results[(path.name, "tcpdump -r -nn")][0]
        print(f"{path.name}:")
        for mode in MODES:
            name = f"tcpclose analyze {mode}".rstrip()
            ours = results[(path.name, name)]
            line = (
                f"  {name:<28} {tshark / ours[0]:6.2f}x tshark, {tcpdump_s / ours[0]:5.2f}x "
                f"tcpdump; peak RSS {ours[2]}/{ours[1]} MB (per process/summed)"
            )
            if path is one:
                ours2 = results[(two.name, name)]
                line += f"; {ours2[2]}/{ours2[1]} MB on the 2x file"
            print(line)
    print(json.dumps({f"{k[0]} {k[1]}": v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
