"""A run that did not follow its script is refused, not judged as another experiment."""

from __future__ import annotations

import pytest

from tcpclose.cli import main
from tcpclose.lab.runner import LabError, check_script_followed
from tcpclose.lab.scenarios import BY_NAME
from tcpclose.model.event import AppEvent


def ev(t: int, role: str, name: str) -> AppEvent:
    return AppEvent(t, role, name, {})


def test_close_typed_before_any_answer_is_as_scripted() -> None:
    events = [ev(1, "client", "sent"), ev(2, "client", "close"), ev(3, "client", "received")]
    check_script_followed(BY_NAME["close"], events, 0.1)


def test_an_answer_that_slipped_in_before_close_is_refused() -> None:
    events = [ev(1, "client", "sent"), ev(2, "client", "received"), ev(3, "client", "close")]
    with pytest.raises(LabError, match="1 answers had arrived when `close` was typed, not 0"):
        check_script_followed(BY_NAME["close"], events, 0.1)


def test_close_late_expects_exactly_the_first_answer() -> None:
    late = BY_NAME["close-late"]
    check_script_followed(late, [ev(1, "client", "received"), ev(2, "client", "close")], 0.1)
    both = [ev(1, "client", "received"), ev(2, "client", "received"), ev(3, "client", "close")]
    with pytest.raises(LabError, match="not 1"):
        check_script_followed(late, both, 0.1)


def test_speed_below_the_floor_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "close", "--speed", "0.01"]) == 2
    assert "speed must be between 0.05 and 10" in capsys.readouterr().err
