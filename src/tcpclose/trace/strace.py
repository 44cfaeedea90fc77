"""strace's output, parsed into typed records (pure: lines in, records out).

strace runs as `strace -f --timestamps=unix,ns --syscall-times=ns -yy -o FILE`; each line is

    PID SECONDS.NANOS name(args) = result <duration>           a whole call
    PID SECONDS.NANOS name(args <unfinished ...>                a call another thread interrupted
    PID SECONDS.NANOS <... name resumed>rest) = result <dur>    ... and its end
    PID SECONDS.NANOS --- SIGPIPE {si_signo=SIGPIPE, ...} ---   a signal delivered
    PID SECONDS.NANOS +++ exited with 1 +++                     the process ended
    PID SECONDS.NANOS +++ killed by SIGPIPE (core dumped) +++   ... or a signal ended it

(`[pid N]` prefixes, as strace writes to a terminal, and lines without a PID, as it writes with
one tracee and no -f, are read too; `-ttt` microsecond stamps as well as nanosecond ones.)
A result is a number, `-1 EPIPE (Broken pipe)`, `? ERESTARTSYS (...)`, `?`, or with -yy an fd
and what it is: `4<TCP:[127.0.0.1:43211->127.0.0.1:50412]>`. Strings are C literals with
escapes (`"ab\\0\\n\\""`), followed by `...` when strace cut them at its `-s` limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_PREFIX = re.compile(r"^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(\d+)\.(\d+)\s+(.*)$")
_RESUMED = re.compile(r"^<\.\.\. ([\w?]+) resumed>\s?(.*)$")
_UNFINISHED = " <unfinished ...>"
_CALL = re.compile(r"^([\w?]+)\((.*)$")
_SIGNAL = re.compile(r"^--- (SIG\w+)\b")
_EXITED = re.compile(r"^\+\+\+ exited with (\d+) \+\+\+")
_KILLED = re.compile(r"^\+\+\+ killed by (SIG\w+)( \(core dumped\))? \+\+\+")
_DURATION = re.compile(r"\s<(\d+)\.(\d+)>$")
_ERRNO = re.compile(r"^(?:-1|\?) (E\w+)")
_NUMBER = re.compile(r"^(-?\d+|0x[0-9a-fA-F]+)")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\.\.\.)?')


def _ns(seconds: str, fraction: str) -> int:
    """`1796237774`, `124792` (µs) or `124792345` (ns) -> integer nanoseconds."""
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])


@dataclass(frozen=True, slots=True)
class Syscall:
    """One system call: entered at `t_ns`, took `duration_ns` (None when strace did not say)."""

    pid: int  #: the thread that made it (strace -f's PID column is the thread id)
    t_ns: int
    name: str
    args: str  #: the argument text, as strace printed it
    result: str  #: the return text: `5`, `-1 EPIPE (Broken pipe)`, `4<TCP:[...]>`, `?`
    duration_ns: int | None = None

    @property
    def end_ns(self) -> int:
        return self.t_ns + (self.duration_ns or 0)

    @property
    def errno(self) -> str | None:
        """`EPIPE` when the call failed, else None."""
        found = _ERRNO.match(self.result)
        return found.group(1) if found else None

    @property
    def value(self) -> int | None:
        """The returned number (an fd, a byte count, -1), None for `?`."""
        found = _NUMBER.match(self.result)
        return int(found.group(1), 0) if found else None


@dataclass(frozen=True, slots=True)
class SignalDelivered:
    """`--- SIGPIPE {...} ---`: the kernel delivered a signal to the thread."""

    pid: int
    t_ns: int
    signal: str


@dataclass(frozen=True, slots=True)
class ProcessEnded:
    """`+++ exited with N +++` or `+++ killed by SIGX +++`."""

    pid: int
    t_ns: int
    status: int | None
    signal: str | None
    core_dumped: bool = False


Record = Syscall | SignalDelivered | ProcessEnded


def split_call(text: str) -> tuple[str, str] | None:
    """`args) = result <dur>` -> (`args`, `= result <dur>`): the closing parenthesis that
    matches the call's, skipping strings and nested brackets; None when the line is cut."""
    depth = 0
    in_string = False
    escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return text[:i], text[i + 1 :].strip()
            depth -= 1
    return None


def _finish(pid: int, t_ns: int, name: str, text: str) -> Syscall | None:
    parts = split_call(text)
    if parts is None:
        return None
    args, rest = parts
    duration = None
    found = _DURATION.search(rest)
    if found:
        duration = _ns(found.group(1), found.group(2))
        rest = rest[: found.start()]
    rest = rest.strip()
    result = rest[1:].strip() if rest.startswith("=") else rest
    return Syscall(pid, t_ns, name, args, result, duration)


class StraceParser:
    """Feeds on lines, yields records; remembers calls left unfinished, per thread."""

    def __init__(self, default_pid: int = 0) -> None:
        self.default_pid = default_pid
        self._unfinished: dict[int, tuple[int, str, str]] = {}
        self.skipped = 0  #: lines that were not strace records (or were cut short)

    def feed(self, line: str) -> Record | None:
        line = line.rstrip("\n")
        head = _PREFIX.match(line)
        if head is None:
            self.skipped += bool(line.strip())
            return None
        pid_text = head.group(1) or head.group(2)
        pid = int(pid_text) if pid_text else self.default_pid
        t_ns = _ns(head.group(3), head.group(4))
        body = head.group(5)
        if body.startswith("---"):
            found = _SIGNAL.match(body)
            return SignalDelivered(pid, t_ns, found.group(1)) if found else None
        if body.startswith("+++"):
            if found := _EXITED.match(body):
                return ProcessEnded(pid, t_ns, int(found.group(1)), None)
            if found := _KILLED.match(body):
                return ProcessEnded(pid, t_ns, None, found.group(1), bool(found.group(2)))
            return None
        if found := _RESUMED.match(body):
            name, rest = found.group(1), found.group(2)
            started = self._unfinished.pop(pid, None)
            if started is not None and started[1] == name:
                return _finish(pid, started[0], name, started[2] + rest)
            return _finish(pid, t_ns, name, rest)  # attached mid-call: the start is lost
        if body.endswith(_UNFINISHED):
            found = _CALL.match(body[: -len(_UNFINISHED)])
            if found:
                self._unfinished[pid] = (t_ns, found.group(1), found.group(2))
            return None
        found = _CALL.match(body)
        if found is None:
            self.skipped += 1
            return None
        record = _finish(pid, t_ns, found.group(1), found.group(2))
        if record is None:
            self.skipped += 1
        return record


def parse_lines(lines: Iterable[str], default_pid: int = 0) -> Iterator[Record]:
    parser = StraceParser(default_pid)
    for line in lines:
        record = parser.feed(line)
        if record is not None:
            yield record


_SIMPLE_ESCAPES = {
    "n": 10,
    "t": 9,
    "r": 13,
    "v": 11,
    "f": 12,
    "a": 7,
    "b": 8,
    "e": 27,
    "\\": 92,
    '"': 34,
    "'": 39,
    "?": 63,
}


def decode_c_string(text: str) -> bytes:
    """The bytes of a C string literal's body as strace prints it (`\\n`, `\\0`, `\\177`,
    `\\x1b`); characters outside ASCII are UTF-8, as strace passes printable bytes through."""
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != "\\" or i + 1 == n:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt == "x":
            digits = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2 :])
            if digits:
                out.append(int(digits.group(0), 16))
                i += 2 + len(digits.group(0))
            else:
                out.append(ord("x"))
                i += 2
        elif nxt in "01234567":
            digits = re.match(r"[0-7]{1,3}", text[i + 1 :])
            assert digits is not None
            out.append(int(digits.group(0), 8) & 0xFF)
            i += 1 + len(digits.group(0))
        else:
            out += nxt.encode("utf-8", "surrogateescape")
            i += 2
    return bytes(out)


@dataclass(frozen=True, slots=True)
class StringArg:
    data: bytes
    truncated: bool  #: strace cut it at its -s limit (`"..."...`)


def string_args(args: str) -> list[StringArg]:
    """Every string literal in an argument text, in order."""
    return [
        StringArg(decode_c_string(m.group(1)), bool(m.group(2))) for m in _STRING.finditer(args)
    ]


def split_fd(text: str) -> tuple[int, str | None, str] | None:
    """`4<TCP:[a->b]>, ...` -> (4, "TCP:[a->b]", ", ..."); an fd without -yy's decoding gives
    None in the middle. A `>` ends the decoding only outside its brackets (`->` is inside)."""
    found = re.match(r"\s*(-?\d+)", text)
    if found is None:
        return None
    fd = int(found.group(1))
    i = found.end()
    if i >= len(text) or text[i] != "<":
        return fd, None, text[i:]
    depth = 0
    for j in range(i + 1, len(text)):
        ch = text[j]
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == ">" and depth <= 0:
            return fd, text[i + 1 : j], text[j + 1 :]
    return fd, None, text[i:]
