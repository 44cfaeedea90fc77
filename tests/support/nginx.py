"""One nginx for every test that needs a real HTTP server (Debian's nginx, not a mock).

from support.nginx import nginx           # in a conftest.py: the fixture
with run_nginx(tmp_path, body="hi") as port: ...   # or by hand
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.net import free_port, wait_listening

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_conf(
    tmp: Path,
    port: int,
    body: str,
    extra: str = "",
    *,
    worker_connections: int = 64,
    access_log: bool = True,
) -> str:
    """A minimal nginx.conf: one worker, logs in `tmp`, every request answered with `body`.

    Heavy traffic (the analyze benchmark) wants more connections and no access log."""
    log = f"{tmp}/access.log" if access_log else "off"
    return (
        "worker_processes 1;\n"
        f"events {{ worker_connections {worker_connections}; }}\n"
        "http {\n"
        f"  access_log {log};\n"
        f"  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;\n"
        f"  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi;\n"
        f"  scgi_temp_path {tmp}/scgi;\n"
        f"  server {{ listen 127.0.0.1:{port}; {extra}\n"
        f'    location / {{ return 200 "{body}\\n"; }} }}\n'
        "}\n"
    )


@contextlib.contextmanager
def run_nginx(
    tmp: Path,
    *,
    body: str = "hello from nginx",
    extra: str = "",
    port: int | None = None,
    worker_connections: int = 64,
    access_log: bool = True,
) -> Iterator[int]:
    """nginx in the foreground on loopback (on `port`, else a free one); yields the port once
    it listens, stops it after (SIGQUIT: graceful)."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (make test installs it)")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port() if port is None else port
    conf = tmp / "nginx.conf"
    conf.write_text(
        nginx_conf(
            tmp, port, body, extra, worker_connections=worker_connections, access_log=access_log
        )
    )
    directives = f"daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;"
    proc = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-c", str(conf), "-g", directives],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(port, proc)
        yield port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a running nginx answering `hello from nginx`."""
    with run_nginx(tmp_path_factory.mktemp("nginx")) as port:
        yield port
