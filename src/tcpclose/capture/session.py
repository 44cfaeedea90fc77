"""One capture session: choose the best available method, start it, stop it, decode."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from tcpclose.capture.frames import Frame, parse_frame
from tcpclose.model.packet import Packet


class _Backend(Protocol):
    method: str

    def stop(self) -> tuple[list[Frame], int]: ...


@dataclass(frozen=True)
class CaptureResult:
    """What a session captured: raw frames (for pcap export) and decoded packets."""

    method: str  #: "af_packet", "tcpdump" or "none"
    note: str | None  #: one line when the capture fell back or saw nothing
    frames: tuple[Frame, ...] = ()
    packets: tuple[Packet, ...] = ()
    dropped: int = 0  #: packets the kernel dropped for lack of buffer space
    attempts: tuple[str, ...] = field(default=())  #: why better methods were not used

    @property
    def available(self) -> bool:
        return self.method != "none"


class CaptureSession:
    """A running capture; `stop()` returns the CaptureResult."""

    def __init__(self, backend: _Backend | None, note: str | None, attempts: tuple[str, ...]):
        self._backend = backend
        self.note = note
        self.attempts = attempts

    @property
    def method(self) -> str:
        return self._backend.method if self._backend is not None else "none"

    def stop(self) -> CaptureResult:
        if self._backend is None:
            return CaptureResult("none", self.note, attempts=self.attempts)
        method = self._backend.method
        frames, dropped = self._backend.stop()
        self._backend = None
        packets = tuple(p for p in map(parse_frame, frames) if p is not None)
        return CaptureResult(method, self.note, tuple(frames), packets, dropped, self.attempts)


def start_capture(
    ports: Iterable[int], interface: str = "lo", methods: Iterable[str] = ("af_packet", "tcpdump")
) -> CaptureSession:
    """Start capturing TCP to or from `ports` on `interface`, with the first method that works.

    Never raises for lack of privilege: the session then captures nothing and `note` says why.
    """
    from tcpclose.capture.live import AfPacketCapture
    from tcpclose.capture.tcpdump import TcpdumpCapture, TcpdumpUnavailable

    ports = tuple(ports)
    attempts: list[str] = []
    for method in methods:
        try:
            if method == "af_packet":
                backend: _Backend = AfPacketCapture(ports, interface)
            elif method == "tcpdump":
                backend = TcpdumpCapture(ports, interface)
            else:
                raise ValueError(f"unknown capture method {method!r}")
        except PermissionError:
            attempts.append("no permission for AF_PACKET (needs root or CAP_NET_RAW)")
            continue
        except TcpdumpUnavailable as exc:
            attempts.append(str(exc))
            continue
        except OSError as exc:
            attempts.append(f"{method}: {exc.strerror or exc}")
            continue
        note = None if not attempts else f"capturing with {method}: " + "; ".join(attempts)
        return CaptureSession(backend, note, tuple(attempts))
    note = "no packet capture (" + "; ".join(attempts) + "): socket-level events only"
    return CaptureSession(None, note, tuple(attempts))
