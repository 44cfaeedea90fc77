"""Fallback capture through Debian's tcpdump, for a process that may not open AF_PACKET itself
(tcpdump may hold the capability through file capabilities or sudo rules)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from tcpclose.capture.frames import Frame
from tcpclose.capture.pcapfile import read_pcap_frames

READY_TIMEOUT = 10.0


class TcpdumpUnavailable(Exception):
    """tcpdump is missing or refused to capture; the message says which, in one line."""


class TcpdumpCapture:
    """`tcpdump -i lo -U -w FILE 'tcp and (port A or port B)'` in a child process."""

    method = "tcpdump"

    def __init__(self, ports: Iterable[int], interface: str = "lo") -> None:
        binary = shutil.which("tcpdump") or next(
            (p for p in ("/usr/bin/tcpdump", "/usr/sbin/tcpdump") if Path(p).exists()), None
        )
        if binary is None:
            raise TcpdumpUnavailable("tcpdump is not installed")
        self._dir = tempfile.TemporaryDirectory(prefix="tcpclose-tcpdump-")
        self.path = Path(self._dir.name) / "capture.pcap"
        expression = "tcp and (" + " or ".join(f"port {p}" for p in sorted(set(ports))) + ")"
        self.proc = subprocess.Popen(
            [
                binary,
                "-i",
                interface,
                "-U",
                "--immediate-mode",
                "-n",
                "-s",
                "0",
                "--time-stamp-precision=nano",
                "-w",
                str(self.path),
                expression,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """tcpdump says `listening on lo` on stderr once its filter is in place."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "listening on" in line:
                return
            if not line and self.proc.poll() is not None:
                break
        self.proc.kill()
        self.proc.wait()
        self._dir.cleanup()
        message = (line or "").strip() or "tcpdump did not start"
        raise TcpdumpUnavailable(f"tcpdump cannot capture: {message}")

    def stop(self) -> tuple[list[Frame], int]:
        time.sleep(0.05)  # tcpdump -U writes each packet as it arrives; let the last land
        self.proc.send_signal(signal.SIGINT)
        try:
            _out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        dropped = 0
        for line in (err or "").splitlines():
            if "dropped by kernel" in line:
                dropped = int(line.split()[0])
        try:
            frames = read_pcap_frames(self.path) if self.path.exists() else []
        except ValueError:
            frames = []
        self._dir.cleanup()
        return frames, dropped
