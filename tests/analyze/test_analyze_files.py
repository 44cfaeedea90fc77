"""Reading captures: formats, link types, IPv6, VLAN, gzip, bad input, the command's output."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "classify"))
from tcpconv import conversation

from support.frames import framed
from tcpclose.analyze import analyze_files, read_connections
from tcpclose.classify import Termination, classify_packets
from tcpclose.cli import main
from tcpclose.errors import InputError, UsageError
from tcpclose.model.packet import Packet

DATA = Path(__file__).parents[1] / "data" / "analyze"
CLOSE = [
    ("c", "S", 0),
    ("s", "SA", 0),
    ("c", "A", 0),
    ("c", "PA", b"data1"),
    ("s", "A", 0),
    ("c", "FA", 0),
    ("s", "A", 0),
    ("s", "PA", b"Hi, data1"),
    ("c", "R", 0),
]
SHUTDOWN = [
    ("c", "S", 0),
    ("s", "SA", 0),
    ("c", "A", 0),
    ("c", "PA", b"data1"),
    ("c", "FA", 0),
    ("s", "PA", b"Hi, data1"),
    ("c", "A", 0),
    ("s", "FA", 0),
    ("c", "A", 0),
]


def tcp_segment(p: Packet) -> bytes:
    return (
        struct.pack("!HHIIBBHHH", p.sport, p.dport, p.seq, p.ack, 5 << 4, p.flags, p.win, 0, 0)
        + p.payload
    )


def ip_packet(p: Packet, v6: bool) -> bytes:
    seg = tcp_segment(p)
    if v6:
        src = socket.inet_pton(socket.AF_INET6, "::1" if p.src == "127.0.0.1" else "::2")
        dst = socket.inet_pton(socket.AF_INET6, "::1" if p.dst == "127.0.0.1" else "::2")
        return struct.pack("!IHBB", 6 << 28, len(seg), 6, 64) + src + dst + seg
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(seg),
            0,
            0x4000,
            64,
            6,
            0,
            socket.inet_aton(p.src),
            socket.inet_aton(p.dst),
        )
        + seg
    )


def frame(linktype: int, p: Packet, v6: bool = False, vlan: bool = False) -> bytes:
    return framed(linktype, ip_packet(p, v6), 1 if vlan else 0)


def pcap(linktype: int, packets: list[Packet], **kw: bool) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for p in packets:
        data = frame(linktype, p, **kw)
        sec = int(p.t)
        out.append(struct.pack("<IIII", sec, round((p.t - sec) * 1e6), len(data), len(data)))
        out.append(data)
    return b"".join(out)


@pytest.mark.parametrize(
    ("linktype", "kw"),
    [
        (1, {}),
        (1, {"vlan": True}),
        (1, {"v6": True}),
        (113, {}),
        (276, {}),
        (0, {}),
        (0, {"v6": True}),
        (101, {}),
        (101, {"v6": True}),
    ],
)
def test_link_types_and_ip_versions(tmp_path: Path, linktype: int, kw: dict) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap(linktype, conversation(CLOSE) + conversation(SHUTDOWN, isn_c=9), **kw))
    verdicts = list(read_connections(path))
    # the same 4-tuple reused: a new SYN after the RST starts the second connection
    assert [v.termination for v in verdicts] == [
        Termination.RST_AFTER_CLOSE,
        Termination.HALF_CLOSE,
    ]
    assert verdicts[0] == classify_packets(conversation(CLOSE)) or kw.get("v6")


def test_pcapng_and_gzip_give_the_same_rows(tmp_path: Path) -> None:
    plain, _ = analyze_files(DATA / "three-closes.pcap")
    ng, _ = analyze_files(DATA / "three-closes.pcapng")
    gz = tmp_path / "x.pcapng.gz"
    gz.write_bytes(gzip.compress((DATA / "three-closes.pcapng").read_bytes()))
    zipped, _ = analyze_files(gz)
    assert len(plain) == 3
    assert plain == ng == zipped
    assert [r.verdict.termination for r in plain] == [
        Termination.HALF_CLOSE,
        Termination.RST_AFTER_CLOSE,
        Termination.RST_AFTER_CLOSE,
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "an empty file"),
        (b"hello world, not a capture", "not a pcap or pcapng"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147), "unsupported link type 147"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated pcap header"),
    ],
)
def test_bad_files_one_line_status_5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    assert main(["analyze", str(path)]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tcpclose: error: ") and message in err


def test_missing_file_status_5(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path / "nope.pcap")]) == 5
    assert "nope.pcap" in capsys.readouterr().err


def test_truncated_file_is_analysed_up_to_the_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (DATA / "three-closes.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:1000])
    assert main(["analyze", "--csv", str(path)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2  # header and the first connection
    assert "tcpclose: warning:" in err and "at byte 956 after 11 packets" in err
    gz = tmp_path / "cut.pcap.gz"
    gz.write_bytes(gzip.compress(data)[:-30])
    assert main(["analyze", "--csv", str(gz)]) == 0
    assert "compressed data ends" in capsys.readouterr().err


def test_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--json", str(DATA / "three-closes.pcap")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["termination"] for c in doc["connections"]] == [
        "half-close",
        "rst-after-close",
        "rst-after-close",
    ]
    assert doc["summary"]["terminations"] == {"rst-after-close": 2, "half-close": 1}
    assert doc["summary"]["top_resetters"][0]["resets"] == 1
    assert doc["connections"][0]["conn_state"] == "SF"


def test_table_and_timeline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(DATA / "three-closes.pcap")]) == 0
    out = capsys.readouterr().out
    # The default view: the summary, the non-graceful connections, a hint for --all.
    assert "half-close 1" in out and "who reset most" in out and "ShADaFR" not in out
    assert "ShADaFdR" in out and "ShADaFdf" not in out and "--all" in out
    assert main(["analyze", "--all", str(DATA / "three-closes.pcap")]) == 0
    out = capsys.readouterr().out
    assert "ShADaFdf" in out and "ShADaFdR" in out and "the lesson's close case" in out
    assert main(["analyze", "--connection", "1", str(DATA / "three-closes.pcap")]) == 0
    out = capsys.readouterr().out
    assert "'Hi, data1'" in out and "<-" in out and "rst-after-close" in out
    # The lab's diagram: the answer drawn from the responder, the RST from the originator.
    assert "|<------------ Hi, data1 ------------|" in out
    assert "|--------------- RST --------------->|" in out
    assert main(["analyze", "--connection", "7", str(DATA / "three-closes.pcap")]) == 5


@pytest.mark.parametrize(
    "expression", ["src host 1.2.3.4", "host example.com", "port x", "(port 1", "frob 3", ""]
)
def test_bad_filters_are_usage_errors(expression: str) -> None:
    with pytest.raises(UsageError):
        list(read_connections(DATA / "three-closes.pcap", filter=expression))


def test_filter_expressions() -> None:
    path = DATA / "three-closes.pcap"
    assert len(list(read_connections(path, "port 43299 and (host 127.0.0.1 or host ::1)"))) == 3
    assert len(list(read_connections(path, "net 10.0.0.0/8"))) == 0
    assert len(list(read_connections(path, "not portrange 42061-42100"))) == 1


def test_errors_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        list(read_connections(tmp_path / "absent"))


def test_record_is_the_verdicts_json_with_the_columns() -> None:
    """`record` builds the row directly; it must equal `to_json` plus the row's own columns."""
    from tcpclose.analyze.output import COLUMNS, closed_first, endpoint, record

    rows, _ = analyze_files(DATA / "three-closes.pcap")
    for row in rows:
        expected = row.verdict.to_json()
        expected["number"] = row.number
        expected["originator"] = endpoint(row.verdict.originator)
        expected["responder"] = endpoint(row.verdict.responder)
        expected["closed_first"] = closed_first(row.verdict)
        rec = record(row)
        assert list(rec) == list(COLUMNS)
        assert rec == {key: expected[key] for key in COLUMNS}


def test_csv_row_is_the_record() -> None:
    """`csv_row` writes the `record` values directly: the same line as from the record."""
    import csv
    import dataclasses
    import io

    from tcpclose.analyze.output import COLUMNS, csv_row, record
    from tcpclose.analyze.table import Row

    rows, _ = analyze_files(DATA / "three-closes.pcap")
    odd = dataclasses.replace(rows[0].verdict, originator=('a,"b"', 1))  # needs quoting
    for row in [*rows, Row(7, odd)]:
        rec = record(row)
        rec["start"] = f"{rec['start']:.6f}"
        rec["duration"] = f"{rec['duration']:.6f}"
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(
            ["" if rec[k] is None else rec[k] for k in COLUMNS]
        )
        assert csv_row(row) == buf.getvalue()
