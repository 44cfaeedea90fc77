"""The whole run's packets: Debian's tcpdump writing a pcap file, its drops counted.

tcpdump runs as a separate process, so capturing costs the load generator no CPU time of its
own (the machine has two cores: tcpdump mostly sleeps in the kernel's ring). The file then goes
through the analyser's reader (`tcpclose.analyze.read_connections`).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT = 10.0
#: Headers plus the first bytes of each payload (the diagrams' labels): 66 bytes of headers
#: on lo (Ethernet 14, IPv4 20, TCP with timestamps 32), the rest payload.
SNAPLEN = 200
#: The kernel ring, in KiB: large, so that a burst at the bench's rate drops nothing.
BUFFER_KIB = 64 * 1024


@dataclass(frozen=True)
class CaptureStats:
    method: str  #: "tcpdump" or "none"
    path: Path | None
    received: int = 0  #: packets tcpdump saw
    dropped: int = 0  #: packets the kernel dropped for lack of ring space
    note: str | None = None


class RunCapture:
    """`tcpdump -i lo -w FILE 'tcp port P'` for the length of the run."""

    def __init__(self, port: int, path: Path, interface: str = "lo") -> None:
        self.path = path
        self.proc: subprocess.Popen[str] | None = None
        self.note: str | None = None
        binary = shutil.which("tcpdump") or (
            "/usr/bin/tcpdump" if Path("/usr/bin/tcpdump").exists() else None
        )
        if binary is None:
            self.note = "tcpdump is not installed: no capture, no causes"
            return
        # The kernel SIGTERMs tcpdump if drain dies, even by SIGKILL (`setpriv --pdeathsig`);
        # `-Z root` keeps it from changing user, which would clear that parent-death signal.
        setpriv = shutil.which("setpriv")
        argv = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        argv += [binary, *(["-Z", "root"] if os.geteuid() == 0 else [])]
        argv += ["-i", interface, "-n", "-s", str(SNAPLEN), "-B", str(BUFFER_KIB)]
        argv += ["--time-stamp-precision=nano", "-w", str(path), f"tcp port {port}"]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """tcpdump says `listening on lo` once its filter is in place."""
        assert self.proc is not None and self.proc.stderr is not None
        deadline = time.monotonic() + READY_TIMEOUT
        said = ""
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.proc.stderr], [], [], min(remaining, 0.1))
            if not readable:
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stderr.readline()
            if "listening on" in line:
                return
            if line.strip() and not said:
                said = line.strip().removeprefix("tcpdump: ")
            elif not line:
                break
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.note = f"tcpdump cannot capture: {said or 'it did not start'}: no causes"

    def _wait_caught_up(self, limit: float = 15.0) -> None:
        """SIGINT stops tcpdump at once, and the packets still in the kernel's ring or in its
        output buffer would be lost (uncounted). SIGUSR2 makes tcpdump flush its file: once
        the file stops growing across flushes, tcpdump has written all the run's packets."""
        assert self.proc is not None
        deadline = time.monotonic() + limit
        size, stable = -1, 0
        while time.monotonic() < deadline and stable < 2:
            self.proc.send_signal(signal.SIGUSR2)
            time.sleep(0.1)
            now = self.path.stat().st_size if self.path.exists() else 0
            stable = stable + 1 if now == size else 0
            size = now

    def stop(self) -> CaptureStats:
        """SIGINT: tcpdump flushes the file and prints its counts."""
        if self.proc is None:
            return CaptureStats("none", None, note=self.note)
        self._wait_caught_up()
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        received = dropped = 0
        for line in (err or "").splitlines():
            words = line.split()
            if not words or not words[0].isdigit():
                continue
            if "dropped by kernel" in line:
                dropped = int(words[0])
            elif "received by filter" in line:
                received = int(words[0])
        self.proc = None
        return CaptureStats("tcpdump", self.path, received, dropped)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
