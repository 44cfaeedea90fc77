"""The one error hierarchy of tcpclose.

Every error a user can cause or meet is a `TcpcloseError` with a short lowercase message and an
exit status; the CLI prints `tcpclose: error: <message>` and exits with that status. `OSError`
is translated into this hierarchy at one boundary, `from_oserror`, and chained with `from`.
"""

from __future__ import annotations

import contextlib
import errno as errno_module
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from tcpclose.status import ExitStatus


class TcpcloseError(Exception):
    """Base class: a message for the user and the exit status that goes with it."""

    status: ExitStatus = ExitStatus.FAILURE

    def __init__(self, message: str, *, status: ExitStatus | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class UsageError(TcpcloseError):
    """The command line is wrong: the user's fault, fixed by reading --help."""

    status = ExitStatus.USAGE


class InputError(TcpcloseError):
    """An input file is missing, unreadable, empty or not a capture."""

    status = ExitStatus.INPUT


class NetworkError(TcpcloseError):
    """The network said no: refused, unreachable, unresolvable, timed out."""

    status = ExitStatus.NETWORK


class PermissionDenied(TcpcloseError):
    """The kernel refused for lack of privilege."""

    status = ExitStatus.PERMISSION


class AddressInUse(TcpcloseError):
    """bind() failed with EADDRINUSE."""

    status = ExitStatus.ADDRESS_IN_USE


class Terminated(BaseException):
    """SIGTERM arrived while a command had children running: like KeyboardInterrupt, it
    unwinds every `finally` (children ended, temp directories removed) and the CLI exits 143."""

    status = ExitStatus.TERMINATED


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within: SIGTERM raises `Terminated` in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so every `finally` runs (children ended, temp directories removed).
    A second SIGTERM during that clean-up is ignored. Outside the main thread: no change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_NETWORK_ERRNOS = frozenset(
    {
        errno_module.ECONNREFUSED,
        errno_module.ECONNRESET,
        errno_module.ECONNABORTED,
        errno_module.ENETUNREACH,
        errno_module.EHOSTUNREACH,
        errno_module.ENETDOWN,
        errno_module.EHOSTDOWN,
        errno_module.ETIMEDOUT,
        errno_module.EADDRNOTAVAIL,
        errno_module.EPIPE,
    }
)


def errno_name(code: int | None) -> str | None:
    """`errno.ECONNRESET` -> "ECONNRESET"; None stays None."""
    if code is None:
        return None
    return errno_module.errorcode.get(code, f"E{code}")


def describe_oserror(exc: OSError) -> str:
    """A short lowercase description: 'connection refused (ECONNREFUSED)'."""
    text = exc.strerror or str(exc)
    text = text[:1].lower() + text[1:]
    name = errno_name(exc.errno)
    return f"{text} ({name})" if name else text


#: errors met reading or writing a file: status 5 (INPUT), whatever the errno
_FILE_ERRNOS = frozenset(
    {
        errno_module.EACCES,
        errno_module.EPERM,
        errno_module.ENOENT,
        errno_module.EISDIR,
        errno_module.ENOTDIR,
        errno_module.ELOOP,
        errno_module.ENAMETOOLONG,
        errno_module.ENOSPC,
        errno_module.EDQUOT,
        errno_module.EFBIG,
        errno_module.EROFS,
        errno_module.EIO,
        errno_module.ENXIO,
        errno_module.ETXTBSY,
    }
)


def from_oserror(exc: OSError, doing: str, *, on_file: bool | None = None) -> TcpcloseError:
    """Translate an OSError met while `doing` something into the hierarchy (the one boundary).

    A file's error (`on_file`, or an OSError that names a file, as open() and stat() do) is
    status 5 even when it is EACCES: permission on a file is a file problem, while EACCES or
    EPERM on a socket (a port below 1024, a capture without CAP_NET_RAW) is status 4."""
    message = f"{doing}: {describe_oserror(exc)}"
    if on_file is None:
        on_file = exc.filename is not None
    if on_file and exc.errno in _FILE_ERRNOS:
        return InputError(message)
    if isinstance(exc, TimeoutError) or exc.errno in _NETWORK_ERRNOS:
        return NetworkError(message)
    if exc.errno == errno_module.EADDRINUSE:
        return AddressInUse(message)
    if exc.errno in (errno_module.EACCES, errno_module.EPERM):
        return PermissionDenied(message)
    if exc.errno in (errno_module.ENOENT, errno_module.EISDIR, errno_module.ENOTDIR):
        return InputError(message)
    return TcpcloseError(message)
