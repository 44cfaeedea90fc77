"""Fuzzing the reader: any bytes give verdicts or one InputError, never a traceback."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpclose.analyze import analyze_files
from tcpclose.errors import TcpcloseError

DATA = Path(__file__).parents[1] / "data" / "analyze"
SEEDS = [(DATA / "three-closes.pcap").read_bytes(), (DATA / "three-closes.pcapng").read_bytes()]


def _analyse(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f"
        path.write_bytes(content)
        try:
            rows, analysis = analyze_files(path)
        except TcpcloseError as exc:
            assert exc.message and "\n" not in exc.message
            return
        for row in rows:
            assert row.verdict.reason and row.verdict.packets >= 1
        assert all("\n" not in w for w in analysis.warnings)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=12),
    cut=st.integers(0, 4000),
    compress=st.booleans(),
)
def test_mutated_captures(
    seed: bytes, edits: list[tuple[int, int]], cut: int, compress: bool
) -> None:
    data = bytearray(seed)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    content = bytes(data[: max(cut, 0)] if cut < len(data) else data)
    _analyse(gzip.compress(content) if compress else content)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(content: bytes) -> None:
    _analyse(content)
