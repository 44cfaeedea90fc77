"""Fallback capture through Debian's tcpdump, for a process that may not open AF_PACKET itself
(tcpdump may hold the capability through file capabilities or sudo rules).

Two uses: the lab's, on `lo` for the ports it knows (`TcpdumpCapture([port])`), and trace's,
on every interface before the program's ports are known (`TcpdumpCapture(None, "any",
link_type="LINUX_SLL2")`: every TCP segment, Linux's cooked v2 framing, which names the
interface and the direction, so that loopback's outgoing copies can be dropped). Frames of
other link types are turned into Ethernet ones (`frames.to_ethernet`); what cannot be is counted
in `skipped`, by link type.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import dpkt

from tcpclose.capture.frames import Frame, link_name, once_per_packet, to_ethernet

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
    """`tcpdump -i lo -U -w FILE 'tcp and (port A or port B)'` in a child process; with
    `ports=None`, every TCP segment (`tcp`)."""

    method = "tcpdump"

    def __init__(
        self, ports: Iterable[int] | None, interface: str = "lo", *, link_type: str | None = None
    ) -> None:
        binary = shutil.which("tcpdump") or next(
            (p for p in ("/usr/bin/tcpdump", "/usr/sbin/tcpdump") if Path(p).exists()), None
        )
        if binary is None:
            raise TcpdumpUnavailable("tcpdump is not installed")
        # The pid in the name lets the next lab run remove it if this process is SIGKILLed.
        self._dir = tempfile.TemporaryDirectory(prefix=f"tcpclose-tcpdump-{os.getpid()}-")
        self.path = Path(self._dir.name) / "capture.pcap"
        if ports is None:
            expression = "tcp"
        else:
            expression = "tcp and (" + " or ".join(f"port {p}" for p in sorted(set(ports))) + ")"
        self.interface = interface
        #: frames that could not be turned into Ethernet ones, by link type
        self.skipped: dict[str, int] = {}
        self.proc = subprocess.Popen(
            [
                # The kernel SIGTERMs tcpdump if we die (even by SIGKILL); `-Z root` keeps it
                # from changing user, which would clear that parent-death signal.
                *_lifeline(),
                binary,
                *(["-Z", "root"] if os.geteuid() == 0 else []),
                "-i",
                interface,
                *(["-y", link_type] if link_type else []),
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
        """tcpdump says `listening on lo` on stderr once its filter is in place (after other
        lines, such as `data link type LINUX_SLL2`). Read with os.read: a buffered readline()
        could hold the second line while select() waits on an empty pipe."""
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + READY_TIMEOUT
        said = ""
        pending = b""
        while (remaining := deadline - time.monotonic()) > 0:
            # select() first: a tcpdump that neither speaks nor exits must not block us.
            readable, _, _ = select.select([fd], [], [], min(remaining, 0.1))
            if not readable:
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(fd, 4096)
            if not chunk:  # end of its stderr: it exited
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace").strip()
                if "listening on" in line:
                    return
                if line and not said and "data link type" not in line:
                    said = line.removeprefix("tcpdump: ")  # the first line says why
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
            frames = self._read_frames() if self.path.exists() else []
        except (ValueError, dpkt.NeedData):
            frames = []
        self._dir.cleanup()
        return frames, dropped

    def _read_frames(self) -> list[Frame]:
        """The pcap file's frames as Ethernet ones, each packet once: the copy of a packet sent
        on the loopback interface is dropped (its arriving copy is the one kept), and so is a
        packet seen again on another interface (a bridge and its port: `once_per_packet`)."""
        loopback = _loopback_index()
        frames: list[tuple[Frame, object]] = []
        with open(self.path, "rb") as f:
            reader = dpkt.pcap.Reader(f)
            link_type = reader.datalink()
            # dpkt yields a Decimal for nanosecond files and a float for microsecond ones.
            for ts, buf in reader:
                unframed = to_ethernet(link_type, bytes(buf))
                if unframed is None:
                    name = link_name(link_type)
                    self.skipped[name] = self.skipped.get(name, 0) + 1
                    continue
                # (LINUX_SLL, without the interface, cannot tell lo's copies from eth0's
                # packets: trace asks for LINUX_SLL2)
                on_loopback = self.interface == "lo" or (
                    unframed.ifindex is not None and unframed.ifindex == loopback
                )
                if unframed.outgoing and on_loopback:
                    continue
                frame = Frame(int(ts * 1_000_000_000), unframed.data)
                frames.append((frame, unframed.ifindex))
        return once_per_packet(frames)


def _loopback_index() -> int | None:
    try:
        return socket.if_nametoindex("lo")
    except OSError:
        return None
