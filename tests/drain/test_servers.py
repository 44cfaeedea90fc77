"""drain against real servers started by the tests, on free loopback ports: the accounting
identity, causes that match the packets, and 0 lost where a server's graceful path holds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.drain.helpers import (
    APPS,
    BIN,
    SHORT,
    DrainResult,
    check_accounting,
    check_causes_against_packets,
    drain,
    free_port,
    need,
)

pytestmark = pytest.mark.slow


def _checked(result: DrainResult, port: int) -> DrainResult:
    check_accounting(result)
    check_causes_against_packets(result, port)
    return result


def _lost_by(result: DrainResult, kind: str) -> int:
    return int(result.summary["by_client"][kind]["lost"])


def _nginx_conf(tmp_path: Path, port: int) -> Path:
    www = tmp_path / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("hello from nginx\n")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    temp = tmp_path / "tmp"
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        # Workers run as root: pytest's tmp_path (0700) is not readable by nobody.
        "user root;\ndaemon off;\nmaster_process on;\nworker_processes 2;\n"
        f"pid {tmp_path / 'nginx.pid'};\nerror_log stderr warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n  access_log off;\n"
        + "".join(
            f"  {kind}_temp_path {temp};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  server {{ listen 127.0.0.1:{port}; root {www}; }}\n}}\n"
    )
    return conf


def _nginx(tmp_path: Path, port: int) -> list[str]:
    conf = _nginx_conf(tmp_path, port)
    return [need("nginx"), "-p", str(tmp_path), "-c", str(conf)]


def test_nginx_reload_by_sighup_loses_nothing_on_new_connections(tmp_path: Path) -> None:
    port = free_port()
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                "--signal",
                "HUP",
                *SHORT,
                "--",
                *_nginx(tmp_path, port),
            ],
            tmp_path,
        ),
        port,
    )
    assert result.doc["action"]["expect"] == "reload"
    assert result.summary["ok"] > 100
    # nginx's listener survives a reload: connections opened per request lose nothing. Old
    # workers close their idle keep-alive connections: only blind reuse can race that.
    assert _lost_by(result, "new") == 0
    assert set(result.causes) <= {"keepalive-race"}


def test_nginx_reload_without_keepalive_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                "--signal",
                "HUP",
                "--keepalive-share",
                "0",
                *SHORT,
                "--",
                *_nginx(tmp_path, port),
            ],
            tmp_path,
        ),
        port,
    )
    assert result.lost == 0 and result.status == 0


def test_nginx_graceful_sigquit(tmp_path: Path) -> None:
    port = free_port()
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                "--signal",
                "QUIT",
                *SHORT,
                "--",
                *_nginx(tmp_path, port),
            ],
            tmp_path,
        ),
        port,
    )
    assert result.doc["server"]["end"] == "exited 0"
    # Graceful: every request nginx had read is answered. What it loses never reached it: the
    # idle keep-alive race, the accept queue of the listener it closes, and (rarely) a new
    # connection it closes as idle before its request arrives.
    assert set(result.causes) <= {"keepalive-race", "never-accepted", "closed-before-request"}
    assert sum(result.summary["expected"].values()) > 0  # refused once it stopped listening


def test_nginx_fast_sigterm(tmp_path: Path) -> None:
    port = free_port()
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                "--signal",
                "TERM",
                *SHORT,
                "--",
                *_nginx(tmp_path, port),
            ],
            tmp_path,
        ),
        port,
    )
    assert result.doc["server"]["end"] == "exited 0"
    assert result.summary["ok"] > 100


def _gunicorn(port: int, worker: str) -> list[str]:
    return [
        need("gunicorn"),
        "--chdir",
        str(APPS),
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        "2",
        "-k",
        worker,
        "--threads",
        "4",
        "apps:wsgi",
    ]


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_gunicorn_sighup_loses_nothing(tmp_path: Path, worker: str) -> None:
    port = free_port()
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                "--signal",
                "HUP",
                "--at",
                "1.5",
                "--after",
                "1",
                "--concurrency",
                "12",
                "--",
                *_gunicorn(port, worker),
            ],
            tmp_path,
        ),
        port,
    )
    assert result.summary["ok"] > 50
    assert result.lost == 0, result.summary


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_gunicorn_sigterm(tmp_path: Path, worker: str) -> None:
    port = free_port()
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                "--at",
                "1.5",
                "--after",
                "0.8",
                "--concurrency",
                "12",
                "--",
                *_gunicorn(port, worker),
            ],
            tmp_path,
        ),
        port,
    )
    assert result.doc["server"]["end"] is not None


def test_uvicorn_sigterm(tmp_path: Path) -> None:
    port = free_port()
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                *SHORT,
                "--",
                need("uvicorn"),
                "--app-dir",
                str(APPS),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "apps:asgi",
            ],
            tmp_path,
        ),
        port,
    )
    assert result.doc["server"]["end"] is not None
    assert result.summary["ok"] > 50


def test_http_server_sigterm_loses_what_is_in_flight(tmp_path: Path) -> None:
    port = free_port()
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                "--at",
                "0.8",
                "--after",
                "0.8",
                "--concurrency",
                "20",
                "--",
                sys.executable,
                "-m",
                "http.server",
                "-b",
                "127.0.0.1",
                "-d",
                str(APPS),
                str(port),
            ],
            tmp_path,
        ),
        port,
    )
    server = result.doc["server"]
    assert server["end"] == "killed SIGTERM"  # no handler: the default action kills it
    assert result.lost > 0 and result.status == 7
    # Nothing was answered after it died: every request still in flight then was lost.
    died = server["end_at"]
    for r in result.doc["requests"]:
        if r["outcome"] == "ok":
            assert r["start"] + r["duration"] <= died + 0.05, r


def test_haproxy_soft_reload(tmp_path: Path) -> None:
    haproxy = need("haproxy")
    port = free_port()
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(
        "global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 5s\n"
        "  timeout client 30s\n  timeout server 30s\nfrontend web\n"
        f"  bind 127.0.0.1:{port}\n"
        '  http-request return status 200 content-type text/plain string "hello"\n'
    )
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                *SHORT,
                "--reload",
                f"{haproxy} -f {conf} -sf $TCPCLOSE_PID",
                "--",
                haproxy,
                "-f",
                str(conf),
            ],
            tmp_path,
        ),
        port,
    )
    assert result.doc["action"]["expect"] == "reload"
    assert result.doc["server"]["end"] == "exited 0"  # the old process finished softly
    assert result.summary["ok"] > 100
    assert set(result.causes) <= {"keepalive-race", "never-accepted"}


@pytest.mark.parametrize("run", range(5))
def test_tcpclose_serve_sigterm_loses_nothing(tmp_path: Path, run: int) -> None:
    port = free_port()
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                *SHORT,
                "--",
                str(BIN / "tcpclose"),
                "serve",
                "--port",
                str(port),
                "--delay",
                "0.005",
            ],
            tmp_path,
        ),
        port,
    )
    assert result.doc["server"]["end"] == "exited 0"
    assert result.summary["ok"] > 100
    assert result.lost == 0 and result.status == 0, result.summary


def test_tcpclose_serve_abrupt_loses_requests_with_causes(tmp_path: Path) -> None:
    port = free_port()
    result = _checked(
        drain(
            [
                "--target",
                f"127.0.0.1:{port}",
                *SHORT,
                "--",
                str(BIN / "tcpclose"),
                "serve",
                "--port",
                str(port),
                "--delay",
                "0.05",
                "--abrupt",
            ],
            tmp_path,
        ),
        port,
    )
    assert result.lost > 0 and result.status == 7
    assert "closed-unanswered" in result.causes  # in flight when it closed
    for cause, entry in result.doc["diagrams"].items():
        assert cause in result.causes
        assert "client" in entry["text"] and "server" in entry["text"]
