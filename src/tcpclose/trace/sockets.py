"""From strace records to each TCP socket's story, in the lab's event vocabulary (pure).

A socket is known by what strace's `-yy` prints for its fd: `TCP:[17100]` (an inode, before it
is connected), `TCP:[127.0.0.1:42646->127.0.0.1:43211]` (its two endpoints), `TCPv6:[[::1]:80]`
(bound or listening). Every fd of every process maps to one `SocketRef`; fork and dup share the
ref (one socket, several references), so SO_LINGER set before a fork is still known at close.

Calls become the lab's events (`connected`, `accepted`, `received`, `sent`, `eof`, `shutdown`,
`close`, `abort`, `error`, `call`), each stamped when the call returned (`t_ns`) with the moment
it began (`started_ns`): a segment the kernel sent between the two was sent by that call.
Processes add `fork`, `signal` (a handler ran), `exit` and `killed` to every socket they held.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tcpclose.render.labels import abbreviate
from tcpclose.trace.procnet import Endpoint, SocketName, normal_host
from tcpclose.trace.strace import (
    ProcessEnded,
    Record,
    SignalDelivered,
    Syscall,
    split_fd,
    string_args,
)

READS = frozenset({"read", "recv", "recvfrom", "recvmsg", "readv", "recvmmsg"})
WRITES = frozenset({"write", "send", "sendto", "sendmsg", "writev", "sendfile", "sendmmsg"})
#: calls that return a count of messages; the bytes are each message's `msg_len=N`
MULTI_MESSAGE = frozenset({"sendmmsg", "recvmmsg"})
#: calls whose data strace does not print (it moves between fds inside the kernel)
NO_DATA = frozenset({"sendfile", "splice"})
#: errnos of calls that only say "not yet" (non-blocking sockets): not worth a note
NOT_YET = frozenset({"EAGAIN", "EWOULDBLOCK", "EINTR", "ERESTARTSYS", "ERESTARTNOHAND"})

_SOCKET = re.compile(r"^(TCP|TCPv6):\[(.*)\]$")
_PLAIN_SOCKET = re.compile(r"^socket:\[(\d+)\]$")
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
_ADDR4 = re.compile(r'sin_addr=inet_addr\("([^"]+)"\)')
_ADDR6 = re.compile(r'inet_pton\(AF_INET6, "([^"]+)"')
_LINGER = re.compile(r"SO_LINGER, \{l_onoff=(\d+), l_linger=(\d+)\}")
_SHUT = re.compile(r"\b(SHUT_RDWR|SHUT_WR|SHUT_RD)\b")
_MSG_LEN = re.compile(r"\bmsg_len=(\d+)")
_EXECVE = re.compile(r'^"(?:[^"\\]|\\.)*", \[(.*?)\]')


def parse_endpoint(text: str) -> Endpoint | None:
    """`127.0.0.1:42646` or `[::1]:35705` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return normal_host(host.strip("[]")), int(port)


def parse_socket_name(decoding: str | None) -> SocketName | None:
    """`TCP:[17100]`, `TCP:[a:1->b:2]`, `TCPv6:[[::1]:80]`; None for anything not TCP."""
    if decoding is None:
        return None
    found = _SOCKET.match(decoding)
    if found is None:
        return None
    inner = found.group(2)
    if inner.isdigit():
        return SocketName(int(inner), None, None)
    local_text, _, remote_text = inner.partition("->")
    return SocketName(
        None, parse_endpoint(local_text), parse_endpoint(remote_text) if remote_text else None
    )


def peer_of(args: str) -> Endpoint | None:
    """The address in a connect() call's sockaddr."""
    port = _PORT.search(args)
    addr = _ADDR4.search(args) or _ADDR6.search(args)
    if port is None or addr is None:
        return None
    return normal_host(addr.group(1)), int(port.group(1))


@dataclass
class TracedEvent:
    """An event of one socket before roles are known: `local` says which end made it."""

    t_ns: int
    event: str
    pid: int
    fields: dict[str, Any]


@dataclass(eq=False)
class SocketRef:
    """One TCP socket of the traced program, shared by every fd (and process) referring to it."""

    inode: int | None = None
    local: Endpoint | None = None
    remote: Endpoint | None = None
    connected_by_us: bool = False  #: this end called connect(): it is the client
    accepted_by_us: bool = False  #: accept() returned it: this end is the server
    connect_window: tuple[int, int] | None = None  #: when connect() ran (finds its SYN)
    accepted_ns: int | None = None  #: when accept() returned it (its SYN came before)
    linger_zero: bool = False
    listening: bool = False
    events: list[TracedEvent] = field(default_factory=list)

    @property
    def key(self) -> tuple[Endpoint, Endpoint] | None:
        if self.local is None or self.remote is None:
            return None
        a, b = self.local, self.remote
        return (a, b) if a <= b else (b, a)


@dataclass
class ProcessInfo:
    """A traced process (or thread group): how it started and how it ended."""

    pid: int
    parent: int | None = None
    argv: tuple[str, ...] = ()
    started_ns: int | None = None
    ended_ns: int | None = None
    exit_status: int | None = None
    signal: str | None = None
    core_dumped: bool = False
    exit_started_ns: int | None = None  #: when exit_group() was entered

    @property
    def ended(self) -> bool:
        return self.ended_ns is not None


class SocketTracker:
    """Follows fds through socket, connect, accept, dup, fork and close; collects events."""

    def __init__(self, names: dict[int, SocketName] | None = None) -> None:
        #: what -y's `socket:[INODE]` stands for, resolved beside the trace (see procnet.py)
        self.names = names or {}
        self.refs: list[SocketRef] = []
        self.processes: dict[int, ProcessInfo] = {}
        self._leader: dict[int, int] = {}  #: thread id -> its process (thread group) id
        self._tables: dict[int, dict[int, SocketRef]] = {}  #: process id -> fd table
        self._touched: dict[int, list[SocketRef]] = {}  #: process id -> sockets it held
        self._by_inode: dict[int, SocketRef] = {}
        self._by_ends: dict[tuple[Endpoint, Endpoint | None], SocketRef] = {}
        self._pending_signal: dict[int, tuple[int, str]] = {}
        self.first_ns: int | None = None

    # --- processes -------------------------------------------------------------------------

    def process_of(self, tid: int) -> int:
        return self._leader.get(tid, tid)

    def _process(self, tid: int, t_ns: int) -> ProcessInfo:
        pid = self.process_of(tid)
        info = self.processes.get(pid)
        if info is None:
            info = self.processes[pid] = ProcessInfo(pid, started_ns=t_ns)
        return info

    def _table(self, tid: int) -> dict[int, SocketRef]:
        return self._tables.setdefault(self.process_of(tid), {})

    def _touch(self, tid: int, ref: SocketRef) -> None:
        held = self._touched.setdefault(self.process_of(tid), [])
        if ref not in held:
            held.append(ref)

    # --- sockets ---------------------------------------------------------------------------

    def _new_ref(self) -> SocketRef:
        ref = SocketRef()
        self.refs.append(ref)
        return ref

    def _learn(self, ref: SocketRef | None, name: SocketName) -> SocketRef:
        """The ref an fd decoding names: the one we had, told its endpoints, or another."""
        if name.inode is not None:
            known = self._by_inode.get(name.inode)
            if known is None:
                if ref is None or ref.inode not in (None, name.inode) or ref.local is not None:
                    ref = self._new_ref()
                ref.inode = name.inode
                self._by_inode[name.inode] = ref
                known = ref
            if name.local is not None:
                self._set_ends(known, name.local, name.remote)
            return known
        known = self._by_ends.get((name.local, name.remote)) if name.local is not None else None
        if known is not None:
            return known
        if (
            ref is None
            or (ref.local is not None and ref.local != name.local)
            or (ref.remote is not None and name.remote is not None and ref.remote != name.remote)
        ):
            ref = self._new_ref()
        if name.local is not None:
            self._set_ends(ref, name.local, name.remote)
        return ref

    def _set_ends(self, ref: SocketRef, local: Endpoint, remote: Endpoint | None) -> None:
        self._by_ends.pop((ref.local, ref.remote), None) if ref.local is not None else None
        ref.local = local
        ref.remote = remote or ref.remote
        self._by_ends[(ref.local, ref.remote)] = ref

    def _ref_for_fd(self, call: Syscall) -> tuple[int, SocketRef] | None:
        """The TCP socket a call's first argument names, or None (a file, a pipe, UDP...)."""
        parsed = split_fd(call.args)
        if parsed is None:
            return None
        fd, decoding, _rest = parsed
        table = self._table(call.pid)
        name = self._name(decoding)
        if name is None:
            if decoding is None and fd in table:  # no -yy decoding: trust our fd table
                return fd, table[fd]
            table.pop(fd, None) if decoding is not None else None
            return None
        ref = self._learn(table.get(fd), name)
        table[fd] = ref
        self._touch(call.pid, ref)
        return fd, ref

    def _name(self, decoding: str | None, *, tcp: bool = False) -> SocketName | None:
        """The socket an fd decoding names, if it is TCP: -yy says so itself; -y's
        `socket:[INODE]` is TCP when resolved, already known, or `tcp` (socket(AF_INET,
        SOCK_STREAM) or accept() on a TCP listener returned it)."""
        if decoding is None:
            return None
        found = _PLAIN_SOCKET.match(decoding)
        if found is None:
            return parse_socket_name(decoding)
        inode = int(found.group(1))
        resolved = self.names.get(inode)
        if resolved is not None:
            return resolved
        if inode in self._by_inode or tcp:
            return SocketName(inode, None, None)
        return None

    def _ref_for_result(self, call: Syscall, tcp: bool = False) -> tuple[int, SocketRef] | None:
        parsed = split_fd(call.result)
        if parsed is None or parsed[0] < 0:
            return None
        fd, decoding, _rest = parsed
        name = self._name(decoding, tcp=tcp)
        if name is None:
            return None
        ref = self._learn(None, name)
        self._table(call.pid)[fd] = ref
        self._touch(call.pid, ref)
        return fd, ref

    # --- events ----------------------------------------------------------------------------

    def _emit(
        self, ref: SocketRef, by: Syscall | None, t_ns: int, event: str, pid: int, **fields: Any
    ) -> None:
        """An event of `ref`; `by` (the call that made it) gives its start and syscall name."""
        if by is not None:
            fields.setdefault("started_ns", by.t_ns)
            fields.setdefault("syscall", by.name)
        ref.events.append(TracedEvent(t_ns, event, pid, fields))

    def feed(self, record: Record) -> None:
        if self.first_ns is None:
            self.first_ns = record.t_ns
        info = self._process(record.pid, record.t_ns)
        if isinstance(record, SignalDelivered):
            self._pending_signal[record.pid] = (record.t_ns, record.signal)
            return
        if isinstance(record, ProcessEnded):
            self._ended(record, info)
            return
        self._call(record, info)

    def _ended(self, record: ProcessEnded, info: ProcessInfo) -> None:
        if self.process_of(record.pid) != record.pid:
            return  # a thread ended; its process goes on (or ends on its own line)
        info.ended_ns = record.t_ns
        info.exit_status = record.status
        info.signal = record.signal
        info.core_dumped = record.core_dumped
        for ref in self._touched.get(info.pid, []):
            if record.signal:
                text = f"killed by {record.signal}" + (
                    " (core dumped)" if record.core_dumped else ""
                )
                self._emit(
                    ref, None, record.t_ns, "killed", info.pid, signal=record.signal, text=text
                )
            else:
                self._emit(
                    ref,
                    None,
                    record.t_ns,
                    "exit",
                    info.pid,
                    status=record.status,
                    started_ns=info.exit_started_ns or record.t_ns,
                )
        self._tables.pop(info.pid, None)

    def _process_event(self, tid: int, t_ns: int, event: str, **fields: Any) -> None:
        pid = self.process_of(tid)
        for ref in self._touched.get(pid, []):
            if ref in self._tables.get(pid, {}).values() or event != "fork":
                self._emit(ref, None, t_ns, event, pid, **fields)

    def _call(self, call: Syscall, info: ProcessInfo) -> None:
        name = call.name
        pending = self._pending_signal.pop(call.pid, None)
        if pending is not None and name == "rt_sigreturn":
            self._process_event(call.pid, pending[0], "signal", signal=pending[1])
            return
        if name == "exit_group":
            info.exit_started_ns = call.t_ns
            return
        if name == "execve":
            if call.errno is None:
                found = _EXECVE.match(call.args)
                if found:
                    info.argv = tuple(
                        s.data.decode("utf-8", "replace") for s in string_args(found.group(1))
                    )
            return
        if name in ("clone", "clone3", "fork", "vfork"):
            self._forked(call)
            return
        if name == "socket":
            stream = "SOCK_STREAM" in call.args
            self._ref_for_result(call, tcp=stream and call.args.startswith(("AF_INET", "PF_INET")))
            return
        if name == "accept" or name == "accept4":
            listener = self._ref_for_fd(call)
            if listener is not None:
                listener[1].listening = True
            # accept() returns stream sockets; with an IP peer, TCP (even when the listener
            # was closed before its inode could be looked up)
            ip_peer = "sa_family=AF_INET" in call.args
            accepted = self._ref_for_result(call, tcp=listener is not None or ip_peer)
            if accepted is not None:
                fd, ref = accepted
                ref.accepted_by_us = True
                ref.accepted_ns = call.end_ns
                if ref.remote is None:
                    ref.remote = peer_of(call.args)
                self._emit(
                    ref,
                    call,
                    call.end_ns,
                    "accepted",
                    call.pid,
                    **self._ends(ref),
                    text=f"{name}() = {fd}",
                )
            return
        if name in ("dup", "dup2", "dup3") or (name == "fcntl" and "F_DUPFD" in call.args):
            source = self._ref_for_fd(call)
            value = call.value
            if source is not None and value is not None and value >= 0:
                self._table(call.pid)[value] = source[1]
            return
        if name == "splice":
            self._on_splice(call)
            return
        named = self._ref_for_fd(call)
        if named is None:
            return
        fd, ref = named
        handler = getattr(self, f"_on_{name}", None)
        if handler is not None:
            handler(call, fd, ref)
        elif name in READS:
            self._on_read(call, fd, ref)
        elif name in WRITES:
            self._on_write(call, fd, ref)

    def _forked(self, call: Syscall) -> None:
        child = call.value
        if child is None or child <= 0:
            return
        parent = self.process_of(call.pid)
        if "CLONE_THREAD" in call.args:
            self._leader[child] = parent
            return
        info = self.processes.setdefault(child, ProcessInfo(child, started_ns=call.end_ns))
        info.parent = parent
        parent_table = self._tables.get(parent, {})
        table = self._tables.setdefault(child, {})
        if "CLONE_FILES" in call.args:
            self._tables[child] = parent_table
        else:
            for fd, ref in parent_table.items():
                table.setdefault(fd, ref)
        held = self._touched.setdefault(child, [])
        for ref in dict.fromkeys(parent_table.values()):
            if ref not in held:
                held.append(ref)
            if ref.key is not None or ref.inode is not None:
                self._emit(
                    ref,
                    call,
                    call.end_ns,
                    "fork",
                    parent,
                    child=child,
                    text=f"{call.name}() = {child}: two processes hold the socket",
                )

    @staticmethod
    def _ends(ref: SocketRef) -> dict[str, Any]:
        local = ref.local or ("", 0)
        remote = ref.remote or ("", 0)
        return {
            "local": local[0],
            "local_port": local[1],
            "peer": remote[0],
            "peer_port": remote[1],
        }

    def _failed(self, call: Syscall, ref: SocketRef, fd: int) -> bool:
        errno = call.errno
        if errno is None:
            return False
        if errno not in NOT_YET:
            self._emit(
                ref,
                call,
                call.end_ns,
                "error",
                call.pid,
                call=call.name,
                errno=errno,
                text=f"{call.name}() = -1 {errno}",
            )
        return True

    def _on_connect(self, call: Syscall, fd: int, ref: SocketRef) -> None:
        ref.connected_by_us = True
        ref.connect_window = (call.t_ns, call.end_ns)
        peer = peer_of(call.args)
        if peer is not None and ref.remote is None:
            ref.remote = peer
        errno = call.errno
        if errno is None or errno == "EINPROGRESS":
            result = "0" if errno is None else "-1 EINPROGRESS"
            self._emit(
                ref,
                call,
                call.end_ns,
                "connected",
                call.pid,
                **self._ends(ref),
                text=f"connect() = {result}",
            )
        elif errno not in NOT_YET:
            self._failed(call, ref, fd)

    def _on_splice(self, call: Syscall) -> None:
        """splice(fd_in, off_in, fd_out, off_out, len, flags): from the socket (a read) when
        it is fd_in, to it (a write) when it is fd_out; the bytes never reach user space."""
        named = self._ref_for_fd(call)
        if named is not None:
            self._on_read(call, *named)
            return
        out = _splice_out(call.args)
        if out is None:
            return
        as_out = Syscall(call.pid, call.t_ns, call.name, out, call.result, call.duration_ns)
        named = self._ref_for_fd(as_out)
        if named is not None:
            self._on_write(call, *named)

    def _count(self, call: Syscall) -> int:
        """The bytes a read or write moved: its result, or for sendmmsg/recvmmsg (which return
        how many messages) the sum of the messages' lengths."""
        if call.name in MULTI_MESSAGE:
            return sum(int(n) for n in _MSG_LEN.findall(call.args))
        return call.value or 0

    def _data(self, call: Syscall, count: int) -> tuple[str | None, bool]:
        if call.name in NO_DATA:
            return None, False
        pieces = string_args(call.args)
        data = b"".join(p.data for p in pieces)[:count]
        cut = any(p.truncated for p in pieces) or len(data) < count
        return data.decode("utf-8", "replace"), cut

    def _on_read(self, call: Syscall, fd: int, ref: SocketRef) -> None:
        if self._failed(call, ref, fd):
            return
        count = self._count(call)
        if count == 0:
            result = call.value or 0
            self._emit(
                ref, call, call.end_ns, "eof", call.pid, text=f"{call.name}() = {result} (EOF)"
            )
            return
        data, cut = self._data(call, count)
        shown = self._shown(call, count, data)
        self._emit(
            ref,
            call,
            call.end_ns,
            "received",
            call.pid,
            bytes=count,
            data=data,
            truncated=cut,
            text=shown,
        )

    @staticmethod
    def _shown(call: Syscall, count: int, data: str | None) -> str:
        """`read() = 9: Hi, data1`; `recvmmsg() = 2 (11 bytes): ...`; `splice() = 6`."""
        head = f"{call.name}() = {call.value}"
        if call.name in MULTI_MESSAGE:
            head += f" ({count} bytes)"
        if data is None:
            return head
        return head + ": " + abbreviate(data.replace("\r", "\\r").replace("\n", "\\n"), 14)

    def _on_write(self, call: Syscall, fd: int, ref: SocketRef) -> None:
        if self._failed(call, ref, fd):
            return
        count = self._count(call)
        data, cut = self._data(call, count)
        self._emit(
            ref,
            call,
            call.end_ns,
            "sent",
            call.pid,
            bytes=count,
            data=data,
            truncated=cut,
            text=f"{call.name}() = {call.value}"
            + (f" ({count} bytes)" if call.name in MULTI_MESSAGE else ""),
        )

    def _on_shutdown(self, call: Syscall, fd: int, ref: SocketRef) -> None:
        if self._failed(call, ref, fd):
            return
        found = _SHUT.search(call.args)
        how = found.group(1) if found else "?"
        self._emit(ref, call, call.end_ns, "shutdown", call.pid, how=how, text=f"shutdown({how})")

    def _on_close(self, call: Syscall, fd: int, ref: SocketRef) -> None:
        self._table(call.pid).pop(fd, None)
        if ref.listening or self._failed(call, ref, fd):
            return
        if ref.linger_zero:
            self._emit(ref, call, call.end_ns, "abort", call.pid, text="close() with SO_LINGER 0")
        else:
            self._emit(ref, call, call.end_ns, "close", call.pid, text="close()")

    def _on_setsockopt(self, call: Syscall, fd: int, ref: SocketRef) -> None:
        found = _LINGER.search(call.args)
        if found is None:
            return
        onoff, seconds = int(found.group(1)), int(found.group(2))
        label = f"setsockopt(SO_LINGER, {{{onoff}, {seconds}}})"
        if call.errno is None:
            ref.linger_zero = bool(onoff) and seconds == 0
        self._emit(
            ref,
            call,
            call.end_ns,
            "call",
            call.pid,
            call=label,
            result=call.value,
            errno=call.errno,
            text=f"{label} = {call.result}",
        )

    def _on_listen(self, call: Syscall, fd: int, ref: SocketRef) -> None:
        ref.listening = True


def _splice_out(args: str) -> str | None:
    """splice()'s arguments from fd_out on: past fd_in and off_in (`NULL`, `[0]`, or
    `[0] => [6]` for an offset the call moved), at the first comma outside brackets."""
    first = split_fd(args)
    if first is None:
        return None
    rest = first[2].lstrip(", ")
    depth = 0
    for i, ch in enumerate(rest):
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            return rest[i + 1 :].lstrip()
    return None


def track(records: Iterable[Record]) -> SocketTracker:
    tracker = SocketTracker()
    for record in records:
        tracker.feed(record)
    return tracker
