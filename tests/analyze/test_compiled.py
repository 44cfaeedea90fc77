"""The compiled core is used when it is current, and set aside (one warning) when it is not."""

from __future__ import annotations

import sys
import types

import pytest

from tcpclose.analyze import compiled


def test_the_installed_build_is_current_and_used() -> None:
    # make test builds the extension (gcc is installed by install-system-deps): the fast path
    # and the tests that pin it to the reference path would otherwise test nothing.
    assert compiled.fastscan is not None
    assert compiled.fastscan.API == compiled.API


def test_a_stale_build_is_set_aside_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = types.ModuleType("tcpclose.analyze._fastscan")  # an older build: no API, or another
    monkeypatch.setitem(sys.modules, "tcpclose.analyze._fastscan", stale)
    import tcpclose.analyze as package

    monkeypatch.setattr(package, "_fastscan", stale, raising=False)
    assert compiled._load() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of date" in err
    stale.API = compiled.API + 1  # type: ignore[attr-defined]
    assert compiled._load() is None
