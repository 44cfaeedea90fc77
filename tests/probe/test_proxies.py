"""Real proxies in front of a backend that answers late: does the answer survive our half-close?

For each proxy (tests/probe/proxies.py), 10 single runs of `tcpclose probe` in the direct mode
(the test's own backend behind the proxy) and 10 in the proxy-bench mode (`--backend`: the
probe itself is the backend). A good proxy passes every run, a broken one fails every run, and
every run must have exercised the half-close (our FIN at the proxy before its first reply).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from support.net import free_port, wait_listening
from tcpclose.cli import main
from tcpclose.probe.backend import Backend, BackendKind

from .conftest import stop
from .proxies import PROXIES, Proxy, start_proxy

RUNS = 10
#: exit statuses of a broken half-close: closed without answer, reset, hang, answer changed
BROKEN = {10, 11, 12, 14}


def _probe(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    status = main(["probe", *args, "--json", "--timeout", "5"])
    return status, json.loads(capsys.readouterr().out)


def _judge(proxy: Proxy, mode: str, results: list[tuple[int, dict[str, Any]]]) -> str:
    statuses = Counter(rc for rc, _ in results)
    verdicts = Counter(doc["runs"][0]["verdict"] for _, doc in results)
    line = f"{proxy.name} {mode}: statuses {dict(statuses)}, verdicts {dict(verdicts)}"
    print(line)
    for rc, doc in results:
        run = doc["runs"][0]
        assert run["half_close_exercised"] is True, (line, run)
        assert rc == doc["exit_status"]
        if proxy.good:
            assert (rc, run["verdict"]) == (0, "graceful"), (line, run)
            assert run["hints"] == []
        else:
            assert rc in BROKEN, (line, run)
            assert run["hints"], run
            assert run["termination"] is None or "graceful" not in json.dumps(run["hints"])
    return line


@pytest.mark.slow
@pytest.mark.parametrize("proxy", PROXIES, ids=[p.name for p in PROXIES])
def test_proxy_half_close_ten_runs_each_mode(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, proxy: Proxy
) -> None:
    port, backend_port = free_port(), free_port()
    proc = start_proxy(proxy, port, backend_port, tmp_path)
    target = f"127.0.0.1:{port}"
    kind = ["--preset", proxy.preset]
    try:
        wait_listening(port, proc)
        # Direct mode: a real backend of the test's own behind the proxy, answering late.
        with Backend("127.0.0.1", backend_port, BackendKind(proxy.backend_kind), proxy.delay, 5):
            direct = [_probe(capsys, target, *kind) for _ in range(RUNS)]
        bench = [
            _probe(
                capsys,
                target,
                *kind,
                "--backend",
                f"127.0.0.1:{backend_port}",
                "--backend-kind",
                proxy.backend_kind,
                "--backend-delay",
                str(proxy.delay),
            )
            for _ in range(RUNS)
        ]
    finally:
        stop(proc)
    _judge(proxy, "direct", direct)
    _judge(proxy, "bench", bench)
    for _, doc in bench:
        run = doc["runs"][0]
        assert doc["backend"]["address"] == ["127.0.0.1", backend_port]
        assert run["where"]
        if proxy.good:
            assert run["backend_legs"] and run["backend_legs"][0]["write_errno"] is None
