"""The shortcuts of the row formatting give the plain code's text: the time of day without a
datetime, the text layout's line from a format template."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from tcpclose.analyze.output import clock, time_of_day
from tcpclose.analyze.textview import COLUMNS, GAP, Layout, layout, streamed_layout


def test_time_of_day_is_the_clocks() -> None:
    """Random times, times a hair either side of a microsecond's half (where the rounding
    goes to even), a second's end (where the microseconds carry), a day's end, 0, negative
    and huge times (which take the datetime path)."""
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
