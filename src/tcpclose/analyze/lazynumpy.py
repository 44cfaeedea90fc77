"""numpy, imported when first used: the compiled path (`_fastscan`) reads and tracks a pcap
file without it, and importing it costs about 0.1 s of every run."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule(ModuleType):
    """A module that imports `numpy` at its first attribute lookup and then is it."""

    def __getattr__(self, name: str) -> Any:
        numpy = importlib.import_module("numpy")
        self.__dict__.update(numpy.__dict__)
        return getattr(numpy, name)


np: Any = _LazyModule("numpy (imported when first used)")
