"""The analyser's compiled core (`_fastscan.c`, built by setup.py when gcc is there), if it is
built and matches this Python code.

An editable install keeps the extension it built until it is rebuilt: after an update the
Python code may call a function an old build lacks. Such a build is set aside (one warning
line on standard error) and the Python path, which gives the same output, runs instead.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

#: Must equal FASTSCAN_API in _fastscan.c: bump both whenever a compiled function changes.
API = 7


def _load() -> ModuleType | None:
    try:
        from tcpclose.analyze import _fastscan  # type: ignore[attr-defined]  # compiled
    except ImportError:
        return None
    if getattr(_fastscan, "API", None) != API:
        sys.stderr.write(
            "tcpclose: warning: the compiled analyser is out of date (reinstall: "
            "pip install -e . or make demo); using the slower Python path\n"
        )
        return None
    return _fastscan


#: the extension module, or None; Any: it has no type stub
fastscan: Any = _load()
