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
    exit       the program is about to exit (status; started_ns: when the exit began, before
               it closed the sockets still open, sending their FIN or RST); absent when a
               signal killed it

`started_ns` is when the call began: the segment a call makes leaves between its start and the
event's own `t_ns`. The lab and the probe add events of their own on the same model:

    call       one call of a lab actor (id: stable identifier, syscall, call: its display label,
               result or errno, data, started_ns)
    fork       an actor forked: the socket now has two references
    killed     a process died of a signal (signal), noted by whoever waited for it
    timeout    the probe stopped waiting (after: seconds)

`AppEvent` is this wire record as it was read; `typed()` below turns it into one
typed, validated event per kind (the form every layer above the model reads).
"""

from __future__ import annotations

import enum
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
    #: compared (two errors with different errnos differ) but not hashed (a dict is not hashable)
    fields: dict[str, Any] = field(default_factory=dict, hash=False)

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


# --- typed events ---------------------------------------------------------------------------
#
# One frozen dataclass per kind, validated on construction. `typed()` is the one boundary where
# the JSON-lines record becomes one of them; nothing above the model reads `AppEvent.fields`.

ROLES = ("client", "server")


class EventFormatError(ValueError):
    """An --events record that does not describe a valid event (names the kind and the key)."""


class Syscall(enum.StrEnum):
    """The system call a `Call` made (abort is SO_LINGER {on, 0} then close())."""

    CONNECT = "connect"
    ACCEPT = "accept"
    BIND = "bind"
    READ = "read"
    WRITE = "write"
    SHUTDOWN = "shutdown"
    CLOSE = "close"
    ABORT = "abort"
    FORK = "fork"
    EXIT = "exit"

    @property
    def can_end(self) -> bool:
        """Whether this call can make the kernel send FIN or RST (a write onto a closed
        connection draws an RST from the peer, not from its own kernel)."""
        return self in (Syscall.SHUTDOWN, Syscall.CLOSE, Syscall.ABORT, Syscall.EXIT)


def _check(kind: str, ok: bool, what: str) -> None:
    if not ok:
        raise EventFormatError(f"{kind} event: {what}")


@dataclass(frozen=True, slots=True)
class _Base:
    t_ns: int
    role: str

    def __post_init__(self) -> None:
        name = type(self).__name__.lower()
        _check(name, isinstance(self.t_ns, int) and self.t_ns >= 0, f"bad t_ns {self.t_ns!r}")
        _check(name, self.role in ROLES, f"role must be client or server, not {self.role!r}")


@dataclass(frozen=True, slots=True)
class Listening(_Base):
    """bind() and listen() returned."""

    address: str = ""
    port: int = 0


@dataclass(frozen=True, slots=True)
class Connected(_Base):
    """connect() returned: the handshake is complete."""


@dataclass(frozen=True, slots=True)
class Accepted(_Base):
    """accept() returned a connection."""


@dataclass(frozen=True, slots=True)
class Sent(_Base):
    """A write (send()) returned `nbytes`; `data` is what it wrote, as text."""

    nbytes: int = 0
    data: str = ""

    def __post_init__(self) -> None:
        _Base.__post_init__(self)
        _check("sent", isinstance(self.nbytes, int) and self.nbytes >= 0, "bad byte count")


@dataclass(frozen=True, slots=True)
class Received(_Base):
    """A read (recv()) returned `nbytes` (0: end of file)."""

    nbytes: int = 0
    data: str = ""

    def __post_init__(self) -> None:
        _Base.__post_init__(self)
        _check("received", isinstance(self.nbytes, int) and self.nbytes >= 0, "bad byte count")

    @property
    def eof(self) -> bool:
        return self.nbytes == 0


@dataclass(frozen=True, slots=True)
class Call(_Base):
    """One system call and what it returned (`result`) or the errno it failed with.

    `call_id` is stable and is what code compares (`close.child`, `read.1`, `write`); `label`
    is only for display (`close() in child`). `started_ns` is when the call began, when known:
    a segment its kernel sent between `started_ns` and `t_ns` was sent by this call.
    """

    syscall: Syscall = Syscall.CLOSE
    call_id: str = ""
    label: str = ""
    result: int | None = None
    errno: str | None = None
    data: str | None = None
    started_ns: int | None = None

    def __post_init__(self) -> None:
        _Base.__post_init__(self)
        _check("call", isinstance(self.syscall, Syscall), f"unknown syscall {self.syscall!r}")
        _check("call", bool(self.call_id), "no call id")
        _check("call", (self.result is None) != (self.errno is None), "result xor errno")
        _check("call", self.errno is None or self.errno.startswith("E"), "bad errno name")
        _check(
            "call",
            self.started_ns is None or self.started_ns <= self.t_ns,
            "started after it returned",
        )

    @property
    def failed(self) -> bool:
        return self.errno is not None


@dataclass(frozen=True, slots=True)
class Signal(_Base):
    """A signal reached the process: its handler ran (`fatal` False) or it killed it."""

    signal: str = ""
    fatal: bool = False

    def __post_init__(self) -> None:
        _Base.__post_init__(self)
        _check("signal", self.signal.startswith("SIG"), f"bad signal name {self.signal!r}")


@dataclass(frozen=True, slots=True)
class Exit(_Base):
    """The program is about to exit with `status` (its kernel then closes every descriptor)."""

    status: int = 0
    label: str = ""
    #: when exit_group() began, when known (a traced program): its kernel closes the
    #: descriptors, and sends their FIN or RST, between this and `t_ns`
    started_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Timeout(_Base):
    """The probe stopped waiting after `after` seconds."""

    after: float = 0.0


Event = Listening | Connected | Accepted | Sent | Received | Call | Signal | Exit | Timeout


def _int(obj: dict[str, Any], key: str, kind: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    _check(kind, isinstance(value, int) and not isinstance(value, bool), f"{key} must be an int")
    assert isinstance(value, int)
    return value


def _opt_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return None if value is None else str(value)


def _lesson_call(e: AppEvent, syscall: Syscall, call_id: str, label: str) -> Call:
    return Call(
        e.t_ns,
        e.role,
        syscall=syscall,
        call_id=call_id,
        label=str(e.get("text") or label),
        result=0,
        started_ns=_opt_int(e.fields, "started_ns"),
    )


def typed(e: AppEvent) -> Event:
    """The typed event an --events record describes; EventFormatError when it is not valid.

    The lesson's own kinds map onto calls: `close` -> Call(close), `shutdown` ->
    Call(shutdown), `abort` -> Call(abort), `error` -> a failed Call, `eof` -> Received(0),
    `fork` -> Call(fork), `killed` -> a fatal Signal.
    """
    f = e.fields
    kind = e.event
    if kind == "listening":
        return Listening(e.t_ns, e.role, str(f.get("address", "")), _int(f, "port", kind, 0))
    if kind == "connected":
        return Connected(e.t_ns, e.role)
    if kind == "accepted":
        return Accepted(e.t_ns, e.role)
    if kind == "sent":
        return Sent(e.t_ns, e.role, _int(f, "bytes", kind), str(f.get("data", "")))
    if kind == "received":
        return Received(e.t_ns, e.role, _int(f, "bytes", kind), str(f.get("data", "")))
    if kind == "eof":
        return Received(e.t_ns, e.role, 0, "")
    if kind == "close":
        return _lesson_call(e, Syscall.CLOSE, "close", "close()")
    if kind == "abort":
        return _lesson_call(e, Syscall.ABORT, "abort", "SO_LINGER 0, close()")
    if kind == "shutdown":
        how = str(f.get("how", "SHUT_WR"))
        label = f"shutdown({how})" + (" on stdin EOF" if f.get("reason") == "stdin-eof" else "")
        return _lesson_call(e, Syscall.SHUTDOWN, f"shutdown.{how.lower()}", label)
    if kind == "fork":
        return _lesson_call(e, Syscall.FORK, "fork", "fork()")
    if kind == "error":
        name = str(f.get("call", ""))
        try:
            syscall = Syscall({"send": "write", "recv": "read"}.get(name, name))
        except ValueError:
            raise EventFormatError(f"error event: unknown call {name!r}") from None
        return Call(
            e.t_ns,
            e.role,
            syscall=syscall,
            call_id=syscall.value,
            label=f"{name}()",
            errno=str(f.get("errno")),
        )
    if kind == "call":
        label = str(f.get("call", ""))
        syscall_name = f.get("syscall") or _syscall_of_label(label)
        try:
            syscall = Syscall(syscall_name)
        except ValueError:
            raise EventFormatError(f"call event: unknown syscall {syscall_name!r}") from None
        errno = _str(f, "errno")
        result = None if errno else _opt_int(f, "result")
        return Call(
            e.t_ns,
            e.role,
            syscall=syscall,
            call_id=str(f.get("id") or label),
            label=label,
            result=result,
            errno=errno,
            data=_str(f, "data"),
            started_ns=_opt_int(f, "started_ns"),
        )
    if kind == "signal":
        return Signal(e.t_ns, e.role, str(f.get("signal", "")), fatal=False)
    if kind == "killed":
        return Signal(e.t_ns, e.role, str(f.get("signal", "")), fatal=True)
    if kind == "exit":
        status = _int(f, "status", kind)
        started = _opt_int(f, "started_ns")
        return Exit(e.t_ns, e.role, status, str(f.get("text") or f"exit({status})"), started)
    if kind == "timeout":
        after = f.get("after", 0.0)
        _check(kind, isinstance(after, int | float), "after must be a number")
        return Timeout(e.t_ns, e.role, float(after))
    raise EventFormatError(f"unknown event kind {kind!r}")


def _syscall_of_label(label: str) -> str:
    """For records written before calls carried `syscall`: the call named first in the label
    (`SO_LINGER 0, close()` is an abort)."""
    if label.startswith("SO_LINGER"):
        return "abort"
    return label.split("(", 1)[0].strip()
