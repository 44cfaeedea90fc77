"""Output files and standard streams: refused before any work is done when they could not be
written, and their write errors reported in one line, never as a traceback."""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from tcpclose.errors import InputError, describe_oserror, from_oserror


def check_writable(path: Path) -> None:
    """Raise the error writing `path` would meet (a directory, a missing, untraversable or
    read-only parent), so that a command fails at once instead of after its runs."""
    parent = path.parent
    try:
        target = os.stat(path)
    except FileNotFoundError:
        target = None
    except OSError as exc:  # EACCES: a parent cannot be traversed; ENOTDIR: one is a file
        raise from_oserror(exc, f"cannot write {path}") from exc
    code = None
    try:
        parent_is_dir = stat.S_ISDIR(os.stat(parent).st_mode)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise from_oserror(exc, f"cannot write {path}") from exc
        parent_is_dir = False
    if target is not None and stat.S_ISDIR(target.st_mode):
        code = errno.EISDIR
    elif not parent_is_dir:
        code = errno.ENOENT
    elif not os.access(parent, os.W_OK | os.X_OK) or (
        target is not None and not os.access(path, os.W_OK)
    ):
        code = errno.EACCES
    if code is not None:
        error = OSError(code, os.strerror(code), str(path))
        raise from_oserror(error, f"cannot write {path}")


class OutputError(InputError):
    """Standard output cannot be written: closed, or its device is full (status 5)."""


class BrokenStdout(Exception):
    """The reader of standard output went away (EPIPE). Not an OSError, so that no library
    on the way (argparse's help, rich) swallows it or exits in its own way."""


def stdout_error(exc: OSError) -> BrokenStdout | OutputError:
    """What a failed write to standard output means: EPIPE is a BrokenStdout (the reader went
    away: not an error of ours); anything else (ENOSPC, EIO, EBADF...) is an OutputError."""
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        return BrokenStdout(str(exc))
    return OutputError(f"cannot write standard output: {describe_oserror(exc)}")


class _GuardedStdout:
    """sys.stdout, whose write errors become `stdout_error(exc)` (every other attribute is the
    stream's own, so rich and json see the real stream)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise stdout_error(exc) from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise stdout_error(exc) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def open_missing_standard_fds() -> set[int]:
    """Open /dev/null on each of descriptors 0, 1, 2 that is closed (`>&-`), so that no socket
    or file opened later takes its number (a closed stdout would otherwise receive our output
    into whatever took descriptor 1); give Python streams to those it had set to None.
    Returns the descriptors that were closed."""
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            closed.add(fd)
    if sys.stdin is None and 0 in closed:
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - descriptor 0 stays open
    if sys.stdout is None and 1 in closed:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    if sys.stderr is None and 2 in closed:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    return closed


@contextmanager
def guarded_stdout() -> Iterator[None]:
    """Within: sys.stdout's write errors are `OutputError`s or BrokenPipeErrors (see
    `stdout_error`); the real stream is put back and flushed on the way out."""
    real = sys.stdout
    sys.stdout = _GuardedStdout(real)  # type: ignore[assignment]
    try:
        yield
        sys.stdout.flush()
    finally:
        sys.stdout = real


@contextmanager
def unguarded_stdout() -> Iterator[None]:
    """Within: the real sys.stdout (for the lesson's programs, which treat their own write
    errors as the C originals do)."""
    guarded = sys.stdout
    if isinstance(guarded, _GuardedStdout):
        sys.stdout = guarded._stream
    try:
        yield
    finally:
        sys.stdout = guarded


def silence_stdout() -> None:
    """After a broken pipe: point descriptor 1 at /dev/null, so that the interpreter's final
    flush of what is still buffered does not fail again (Python's documented remedy)."""
    if not _has_fileno(sys.stdout):  # an in-process caller's stream: nothing to protect
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


def _has_fileno(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.fileno() >= 0
    except (OSError, ValueError, AttributeError):
        return False
