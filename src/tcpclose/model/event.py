"""Application events: what a program did, as JSON lines with wall-clock nanosecond timestamps.

The lesson's programs write one line per step with `--events FILE`, for example::

    {"t_ns": 1764104580123456789, "role": "server", "event": "received",
     "bytes": 5, "data": "data1"}

`t_ns` comes from `time.time_ns()` (CLOCK_REALTIME), the clock the kernel stamps captured packets
with, so events and packets line up on one time axis.

Event names (the `event` field) and their own keys:

    listening  bound and listening (address, port)
    connected  connect() returned (local, local_port, peer, peer_port)
    accepted   accept() returned (peer, peer_port, local, local_port)
    received   a read returned data (bytes, data)
    sent       a write returned (bytes, data)
    eof        a read returned 0
    shutdown   shutdown() was called (how: SHUT_WR; reason: command | stdin-eof; started_ns)
    close      close() was called (started_ns)
    abort      SO_LINGER {on, 0}, then close(): the kernel sends RST (started_ns)
    error      a call failed (call: bind|connect|read|write|shutdown, errno: its name, message)
    signal     a signal handler ran (signal)
    exit       the program is about to exit (status); absent when a signal killed it

`started_ns` is when the call began: the segment a call makes leaves between its start and the
event's own `t_ns`. The lab and the probe add events of their own on the same model:

    call       one call of a lab actor (call: its label, result or errno, data, started_ns)
    fork       an actor forked: the socket now has two references
    killed     a process died of a signal (signal), noted by whoever waited for it
    timeout    the probe stopped waiting (after: seconds)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


@dataclass(frozen=True, slots=True)
class AppEvent:
    """One step of one program. `fields` holds the event's own keys (bytes, data, errno...)."""

    t_ns: int
    role: str
    event: str
    fields: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def t(self) -> float:
        """Seconds since the epoch, as a float (the packet clock's unit)."""
        return self.t_ns / 1e9

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def to_json(self) -> dict[str, Any]:
        return {"t_ns": self.t_ns, "role": self.role, "event": self.event, **self.fields}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> AppEvent:
        rest = {k: v for k, v in obj.items() if k not in ("t_ns", "role", "event")}
        return cls(
            t_ns=int(obj["t_ns"]), role=str(obj["role"]), event=str(obj["event"]), fields=rest
        )


def read_events(path: Path) -> list[AppEvent]:
    """Parse an --events file; a torn last line (the writer was killed mid-line) is skipped."""
    events: list[AppEvent] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return events
    for line in text.splitlines():
        try:
            events.append(AppEvent.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue
    return events


class EventLog:
    """Writes AppEvents as JSON lines, flushed line by line so a killed process loses nothing.

    A log opened on no path is a no-op, so programs can call `emit` unconditionally.
    """

    def __init__(self, role: str, path: str | Path | None = None) -> None:
        self.role = role
        self._file: IO[str] | None = None
        if path is not None:
            self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def emit(self, event: str, **fields: Any) -> AppEvent:
        record = AppEvent(time.time_ns(), self.role, event, fields)
        if self._file is not None:
            self._file.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
        return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
