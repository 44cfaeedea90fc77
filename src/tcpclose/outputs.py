"""Output files: refused before any work is done when they could not be written."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from tcpclose.errors import from_oserror


def check_writable(path: Path) -> None:
    """Raise the error writing `path` would meet (a directory, a missing or read-only parent),
    so that a command fails at once instead of after its runs."""
    parent = path.parent
    if path.is_dir():
        code = errno.EISDIR
    elif not parent.is_dir():
        code = errno.ENOENT
    elif not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        code = errno.EACCES
    else:
        return
    exc = OSError(code, os.strerror(code), str(path))
    raise from_oserror(exc, f"cannot write {path}")
