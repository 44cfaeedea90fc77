"""Fallback capture through Debian's tcpdump, for a process that may not open AF_PACKET itself
(tcpdump may hold the capability through file capabilities or sudo rules)."""

from __future__ import annotations

import os
import select
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
SNAPLEN = 2048
BUFFER_KIB = 32 * 1024


def _lifeline() -> list[str]:
    """`setpriv --pdeathsig TERM --` when util-linux's setpriv is here: the kernel ends tcpdump
    when this process dies, even by SIGKILL (see tcpclose.lifeline for our own children)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


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
        # The pid in the name lets the next lab run remove it if this process is SIGKILLed.
        self._dir = tempfile.TemporaryDirectory(prefix=f"tcpclose-tcpdump-{os.getpid()}-")
        self.path = Path(self._dir.name) / "capture.pcap"
        expression = "tcp and (" + " or ".join(f"port {p}" for p in sorted(set(ports))) + ")"
        self.proc = subprocess.Popen(
            [
                # The kernel SIGTERMs tcpdump if we die (even by SIGKILL); `-Z root` keeps it
                # from changing user, which would clear that parent-death signal.
                *_lifeline(),
                binary,
                *(["-Z", "root"] if os.geteuid() == 0 else []),
                "-i",
                interface,
                "-U",
                "--immediate-mode",
                "-n",
                # The ring's slots are snaplen-sized: with -s 0 (256 KiB) a burst on lo fills
                # it at once. 2 KiB keeps every header and the start of every payload.
                "-s",
                str(SNAPLEN),
                "-B",
                str(BUFFER_KIB),
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
        said = ""
        while (remaining := deadline - time.monotonic()) > 0:
            # select() first: a tcpdump that neither speaks nor exits must not block us.
            readable, _, _ = select.select([self.proc.stderr], [], [], min(remaining, 0.1))
            if not readable:
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stderr.readline()
            if "listening on" in line:
                return
            if line.strip() and not said:  # the first line says why; the rest is detail
                said = line.strip().removeprefix("tcpdump: ")
            elif not line:  # end of its stderr: it exited
                break
        self.proc.kill()
        self.proc.wait()
        self._dir.cleanup()
        raise TcpdumpUnavailable(f"tcpdump cannot capture: {said or 'it did not start'}")

    def _wait_until_written(self, quiet: float = 0.15, limit: float = 3.0) -> None:
        """tcpdump -U writes each packet as it reads it, but may still be reading its ring:
        SIGINT ends it at once, so wait until the file has stopped growing."""
        deadline = time.monotonic() + limit
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.path.stat().st_size if self.path.exists() else 0
            if now != size:
                size, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.02)

    def stop(self) -> tuple[list[Frame], int]:
        self._wait_until_written()
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
