"""Real servers on loopback, probed in every mode; the verdicts asserted are the measured ones.

Measured on Debian (Linux loopback) with nginx 1.x, redis-server 7.x, Python's http.server
and the project's graceserver (--delay 0.2); see docs/probe.md for what each one does.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import GraceServer
from .helpers import probe_json

#: a short --timeout for modes where a server keeps the connection open; generous elsewhere
SHORT = "1.5"
LONG = "10"

#: (mode, verdict, exit status), measured
NGINX = [
    ("shutdown", "graceful", 0),
    ("partial", "closed-without-answer", 0),
    # Request and FIN arrive together: nginx answers (our closed socket resets it) or, when
    # it reads the EOF first, closes without answering ("client prematurely closed").
    ("close", "answer-lost|closed-without-answer", 0),
    ("abort", "aborted", 0),
    ("none", "answered-kept-open", 0),
]
REDIS = [
    ("shutdown", "graceful", 0),
    ("partial", "closed-without-answer", 0),
    ("close", "answer-lost", 0),
    ("abort", "aborted", 0),
    ("none", "answered-kept-open", 0),
]
HTTP_SERVER = [
    ("shutdown", "graceful", 0),
    # http.server reads headers line by line; EOF ends the header block, so it answers.
    ("partial", "graceful", 0),
    ("close", "answer-lost", 0),
    ("abort", "aborted", 0),
    # HTTP/1.0 answers: the server closes first, without waiting for us.
    ("none", "graceful", 0),
]
GRACESERVER = [
    ("shutdown", "graceful", 0),
    ("partial", "graceful", 0),
    ("close", "answer-lost", 0),
    ("abort", "aborted", 0),
    ("none", "answered-kept-open", 0),
]


def _timeout(mode: str) -> str:
    return SHORT if mode == "none" else LONG


#: attempts for a half-close run whose request and FIN our own kernel sent apart
ATTEMPTS = 3


def probe_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """`probe ARGS --json`; in the half-close modes, again when this run's FIN did not leave
    with the request.

    The probe corks the request and shutdown()'s FIN into one segment, but TCP_CORK holds data
    for one retransmission timeout at most (~200 ms on lo): a probe descheduled that long
    between send() and shutdown() on a loaded machine sends the request alone, a fast server
    (http.server) answers and closes before our FIN arrives, and the run is rightly
    "not-exercised". That is our stall, seen on the wire (fin_with_request false), not the
    server's behaviour: only then is the run made again. A server that answers before reading
    a FIN that did ride with the request is never retried.
    """
    for _ in range(ATTEMPTS):
        rc, doc = probe_json(capsys, *args)
        run = doc["runs"][0]
        packets = run["packets"]
        split = (
            run["verdict"] == "not-exercised"
            and packets is not None
            and packets["our_close"] == "FIN"
            and not packets["fin_with_request"]
        )
        if not split:
            break
    return rc, doc


def check_packets(run: dict[str, Any], mode: str, verdict: str) -> None:
    """With capture (we run as root), the packets must tell the same story as the verdict."""
    if run["capture"]["method"] == "none":
        return
    packets = run["packets"]
    assert packets["packets"] >= 4  # handshake + request at least
    flags = [(s["sender"], s["flags"]) for s in run["segments"]]
    assert flags[0] == ("client", "S")
    if mode in ("shutdown", "partial"):
        assert packets["our_close"] == "FIN"
        if verdict == "graceful":
            assert packets["peer_bytes"] == run["socket"]["bytes_received"] > 0
            assert packets["first_closer"] == "client"
            assert packets["close_to_peer_end_s"] >= 0
            assert packets["peer_fin_t"] is not None
    if verdict == "answer-lost":
        if packets["our_close"] == "RST":
            # The answer reached our receive buffer before close() ran (possibly just after
            # the probe looked): close() with unread data resets at once, instead of a FIN.
            assert packets["peer_bytes"] > 0
        else:
            assert packets["peer_bytes_after_our_close"] > 0
            assert packets["our_rst_t"] > packets["our_close_t"]
    if mode == "abort":
        assert packets["our_close"] == "RST"
    if mode == "none" and verdict == "answered-kept-open":
        # The server kept the connection open until we closed it after the timeout.
        assert packets["first_closer"] == "client"
        assert packets["our_close_t"] - run["socket"]["t_sent"] >= float(SHORT) - 0.1


def check(run: dict[str, Any], mode: str, verdict: str, status: int, first: str | None) -> None:
    """`verdict` may list what a timing-dependent server does, as "a|b"."""
    assert run["verdict"] in verdict.split("|") and run["exit_status"] == status, run
    verdict = run["verdict"]
    sock = run["socket"]
    if verdict in ("graceful", "answered-kept-open"):
        assert sock["bytes_received"] > 0
        if first is not None:
            assert sock["first_line"].startswith(first)
    if verdict == "graceful":
        assert sock["read_end"] == "eof"
    if verdict == "answered-kept-open":
        assert sock["read_end"] == "timeout"
    check_packets(run, mode, verdict)


@pytest.mark.parametrize(("mode", "verdict", "status"), NGINX)
def test_nginx(capsys, nginx: int, mode: str, verdict: str, status: int) -> None:
    rc, doc = probe_run(capsys, f"127.0.0.1:{nginx}", "--mode", mode, "--timeout", _timeout(mode))
    assert rc == status == doc["exit_status"]
    check(doc["runs"][0], mode, verdict, status, "HTTP/1.1 200")


@pytest.mark.parametrize(("mode", "verdict", "status"), REDIS)
def test_redis(capsys, redis: int, mode: str, verdict: str, status: int) -> None:
    rc, doc = probe_run(
        capsys,
        f"127.0.0.1:{redis}",
        "--preset",
        "redis",
        "--mode",
        mode,
        "--timeout",
        _timeout(mode),
    )
    assert rc == status
    check(doc["runs"][0], mode, verdict, status, "+PONG")


@pytest.mark.parametrize(("mode", "verdict", "status"), HTTP_SERVER)
def test_http_server(capsys, http_server: int, mode: str, verdict: str, status: int) -> None:
    rc, doc = probe_run(
        capsys, f"127.0.0.1:{http_server}", "--mode", mode, "--timeout", _timeout(mode)
    )
    assert rc == status
    check(doc["runs"][0], mode, verdict, status, "HTTP/1.0 200")
    if mode == "none":
        assert doc["runs"][0]["packets"]["first_closer"] == "server"


@pytest.mark.parametrize(("mode", "verdict", "status"), GRACESERVER)
def test_graceserver(
    capsys, graceserver: GraceServer, mode: str, verdict: str, status: int
) -> None:
    rc, doc = probe_json(
        capsys,
        f"127.0.0.1:{graceserver.port}",
        "--no-control",  # graceserver accepts one connection only
        "--preset",
        "echo",
        "--mode",
        mode,
        "--timeout",
        _timeout(mode),
    )
    assert rc == status
    run = doc["runs"][0]
    check(run, mode, verdict, status, "Hi, hello from tcp")
    server_status, out, err = graceserver.finish()
    assert "received" in out
    if mode == "shutdown":
        # The half-close delivered the answer after the 0.2 s processing delay.
        assert 0.15 <= run["socket"]["t_end"] - run["socket"]["t_sent"] < float(LONG)
        assert "client closed" in err
    if mode == "abort":
        # Our RST reached the server before its answer: its write failed.
        assert "Connection reset by peer" in err
        assert server_status == 1


def test_close_without_capture_watches_the_orphan(capsys, nginx: int) -> None:
    """Without packets, close mode still sees the reset in /proc/net/tcp (or unread data)."""
    rc, doc = probe_json(capsys, f"127.0.0.1:{nginx}", "--mode", "close", "--no-capture")
    run = doc["runs"][0]
    assert run["capture"]["method"] == "none"
    assert run["packets"] is None and run["segments"] == []
    if run["socket"]["unread_at_close"]:
        assert run["verdict"] == "answer-lost"
    else:
        assert (run["verdict"], run["socket"]["after_close"]) == ("reset-after-close", "gone")
    assert rc == 0


def test_shutdown_verdict_is_the_same_without_capture(capsys, redis: int) -> None:
    rc, doc = probe_json(capsys, f"127.0.0.1:{redis}", "--preset", "redis", "--no-capture")
    run = doc["runs"][0]
    assert (rc, run["verdict"], run["socket"]["first_line"]) == (0, "graceful", "+PONG")
    assert run["capture"]["note"].startswith("no packet capture")


def test_repeat_is_stable_on_nginx(capsys, nginx: int) -> None:
    rc, doc = probe_json(capsys, f"127.0.0.1:{nginx}", "--repeat", "5")
    assert rc == 0
    assert doc["stable"] is True
    assert doc["verdicts"] == {"graceful": 5}
    assert [run["run"] for run in doc["runs"]] == [1, 2, 3, 4, 5]
    assert len({tuple(run["socket"]["local"]) for run in doc["runs"]}) == 5


def test_text_output_summary_diagram_and_pcap(capsys, redis: int, tmp_path) -> None:
    from tcpclose.capture.pcapfile import read_pcap_frames
    from tcpclose.cli import main

    pcap = tmp_path / "probe.pcap"
    capsys.readouterr()
    rc = main(["probe", f"localhost:{redis}", "--preset", "redis", "--pcap", str(pcap)])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"target    localhost:{redis} (127.0.0.1 port {redis})")
    assert "verdict   graceful: answered, then closed its side (FIN)" in out
    assert 'first line "+PONG"' in out
    assert "\x1b[" not in out  # no colour when not a tty
    assert "client" in out and "server" in out  # the diagram's lifelines
    assert len(read_pcap_frames(pcap)) >= 8
