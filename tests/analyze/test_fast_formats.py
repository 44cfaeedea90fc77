"""The shortcuts of the row formatting give the plain code's text: the time of day without a
datetime, the text layout's line from a format template, the CSV, JSON and Zeek rows in C."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpclose.analyze import output
from tcpclose.analyze.output import clock, time_of_day
from tcpclose.analyze.reading import read_rows
from tcpclose.analyze.table import Row
from tcpclose.analyze.textview import COLUMNS, GAP, Layout, cells, layout, streamed_layout
from tcpclose.classify import ConnectionVerdict, Side, Termination

DATA = Path(__file__).parents[1] / "data" / "analyze"


@pytest.mark.parametrize("compiled", [True, False])
def test_time_of_day_is_the_clocks(compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random times, times a hair either side of a microsecond's half (where the rounding
    goes to even), a second's end (where the microseconds carry), a day's end, 0, negative
    and huge times (which take the datetime path); in C (when built) and in Python."""
    if not compiled:
        monkeypatch.setattr(output, "_fastscan", None)
    rng = random.Random(12)
    times = [rng.uniform(0, 2e9) for _ in range(20_000)]
    times += [k + 0.9999995 for k in range(0, 10**6, 997)]
    times += [k / 2e6 for k in range(3_000_000, 3_002_000)]
    times += [0.0, 86399.9999995, 1764912345.0000005, 1764912345.0000015, -1.5, 2.4e11 + 0.5e-6]
    times += [math.nextafter(t, 0.0) for t in times[-3000:]]
    times += [math.nextafter(t, 3e9) for t in times[-3000:]]
    for t in times:
        assert time_of_day(t) == clock(t)[11:], t


@given(st.floats(min_value=-1e10, max_value=4e9, allow_nan=False))
def test_time_of_day_any_float(t: float) -> None:
    assert time_of_day(t) == clock(t)[11:]
    saved = output._fastscan
    output._fastscan = None  # type: ignore[assignment]
    try:
        assert time_of_day(t) == clock(t)[11:]
    finally:
        output._fastscan = saved  # type: ignore[assignment]


def plain_line(lay: Layout, values: dict[str, str]) -> str:
    """`Layout.line` as it was written before the template: column by column."""
    parts = []
    last = len(lay.columns) - 1
    for i, (column, width) in enumerate(zip(lay.columns, lay.widths, strict=True)):
        text = values[column.name]
        if column.right:
            parts.append(text.rjust(width))
        elif i == last:
            parts.append(text)
        else:
            parts.append(text.ljust(width))
    return (" " * GAP).join(parts).rstrip()


@given(
    st.dictionaries(st.sampled_from([c.name for c in COLUMNS]), st.text(max_size=40), min_size=0),
    st.sampled_from([None, 0, 40, 80, 120, 200]),
)
def test_layout_line_is_the_plain_one(given_values: dict[str, str], width: int | None) -> None:
    """Values of any length (wider than their columns, empty, with braces), every layout."""
    values = {c.name: given_values.get(c.name, "") for c in COLUMNS}
    widths = {c.name: max(c.width, len(c.name)) for c in COLUMNS}
    for lay in (
        streamed_layout(width or None),
        layout([c.name for c in COLUMNS], widths, width or None),
        layout(["#", "reason"], widths, width or None),
    ):
        assert lay.line(values) == plain_line(lay, values)
        assert lay.header() == plain_line(lay, {c.name: c.name for c in lay.columns})


VERDICT_PARTS = st.tuples(
    st.integers(min_value=0, max_value=10**9),
    st.sampled_from(["127.0.0.1", "::1", "a{b}c"]),
    st.floats(min_value=0, max_value=1e6),
    st.tuples(st.sampled_from([0, 7, 10**12]), st.sampled_from([0, 160])),
    st.sampled_from([(None, None), (Side.ORIGINATOR, None), (None, Side.RESPONDER)]),
    st.sampled_from(list(Termination)),
    st.sampled_from(["", "ShADadFf", "{}"]),
    st.sampled_from(["", "plain", "é {0} and a long reason " * 3]),
    st.sampled_from(["SF", "S0", "RSTO"]),
)


@given(
    parts=st.lists(VERDICT_PARTS, min_size=1, max_size=6),
    width=st.sampled_from([None, 40, 80, 120, 200]),
)
def test_verdict_line_is_the_layouts_line(parts: list[tuple], width: int | None) -> None:
    """`--all`'s line with its shared columns cached is the line of the row's cells, for
    rows that share some columns and not others, through one layout each (columns left out
    at every width), each row twice (the second from the cache)."""
    widths = {c.name: max(c.width, len(c.name)) for c in COLUMNS}
    layouts = (
        streamed_layout(width),
        layout([c.name for c in COLUMNS], widths, width),
        layout(["#", "reason"], widths, width),
        layout(["#", "originator"], widths, width),
    )
    for _ in range(2):
        for number, host, duration, bytes_, ends, termination, history, reason, state in parts:
            verdict = ConnectionVerdict(
                (host, 40000),
                ("10.0.0.9", 80),
                1.7e9,
                1.7e9 + duration,
                7,
                bytes_[0],
                bytes_[1],
                ends[0],
                ends[1],
                False,
                termination,
                reason,
                state,
                history,
                4,
                3,
            )
            for lay in layouts:
                expected = lay.line(cells(Row(number, verdict)))
                assert lay.verdict_line(str(number), verdict) == expected


# -- the rows' text in C (`_fastscan.text_row`) -----------------------------------------------


def python_texts(row: Row) -> tuple[str, ...]:
    """csv_row, json_row and zeek_row of the row, then the same without its number
    (csv_tail, json_tail, zeek_blank), by the Python code alone."""
    saved = output._fastscan
    output._fastscan = None  # type: ignore[assignment]
    try:
        return (
            output.csv_row(row),
            output.json_row(row),
            output.zeek_row(row),
            output.csv_tail(row),
            output.json_tail(row),
            output.zeek_blank(row),
        )
    finally:
        output._fastscan = saved  # type: ignore[assignment]


def compiled_texts(row: Row) -> tuple[str | None, ...]:
    """The same from C: None where it leaves the row to Python (after Python's csv_row and
    json_row have cached the row's tail, as they do for the first row of its kind)."""
    compiled = output._fastscan
    assert compiled is not None
    return (
        compiled.text_row(0, row, output._TAILS),
        compiled.text_row(1, row, output._JSON_TAILS),
        compiled.text_row(2, row, output._TAILS),
        compiled.text_row(0, row, output._TAILS, True),
        compiled.text_row(1, row, output._JSON_TAILS, True),
        compiled.text_row(2, row, output._TAILS, True),
    )


HOSTS = ["127.0.0.1", "10.1.2.3", "::1", "fe80::1%lo", "a,b", 'q"uote', "line\nbreak", "é"]


@pytest.mark.skipif(output._fastscan is None, reason="no C compiler: the Python code only")
@given(
    number=st.integers(min_value=0, max_value=62**17 + 5),
    hosts=st.tuples(st.sampled_from(HOSTS), st.sampled_from(HOSTS)),
    ports=st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    start=st.one_of(st.floats(min_value=0, max_value=4e9), st.just(1.0), st.just(-0.0)),
    duration=st.floats(min_value=-1.0, max_value=1e6),
    history=st.sampled_from(["", "ShADadFf", "^hR"]),
    reason=st.sampled_from(["", "plain", 'with, comma and "quotes"', "line\nbreak", "é"]),
    bytes_=st.tuples(st.integers(0, 10**12), st.integers(0, 10**12)),
)
def test_text_row_is_the_python_text(
    number: int,
    hosts: tuple[str, str],
    ports: tuple[int, int],
    start: float,
    duration: float,
    history: str,
    reason: str,
    bytes_: tuple[int, int],
) -> None:
    """Any verdict: the C text is the Python text, or None (then Python's is used)."""
    verdict = ConnectionVerdict(
        (hosts[0], ports[0]),
        (hosts[1], ports[1]),
        start,
        start + duration,
        7,
        bytes_[0],
        bytes_[1],
        Side.ORIGINATOR,
        None,
        False,
        Termination.GRACEFUL,
        reason,
        "SF",
        history,
        4,
        3,
    )
    row = Row(number, verdict)
    expected = python_texts(row)
    for got, want in zip(compiled_texts(row), expected, strict=True):
        assert got is None or got == want
    both = hosts[0] + hosts[1]
    if not any(c in both for c in ',"\n') and number < min(62**17, 2**63):
        assert None not in compiled_texts(row)  # the common row is C's


@pytest.mark.skipif(output._fastscan is None, reason="no C compiler: the Python code only")
def test_text_row_on_the_committed_captures() -> None:
    for path in sorted(DATA.glob("*.pcap*")):
        for row in read_rows(path):
            expected = python_texts(row)
            assert compiled_texts(row) == expected
