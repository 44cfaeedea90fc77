"""Real proxies for the probe tests, each started on a free loopback port in front of a backend
port: nginx stream (Debian's libnginx-mod-stream), HAProxy, socat, and a small Python proxy
that closes both legs on the client's FIN (the classic bug).

`PROXIES` says, for each, whether it keeps an answer that comes after the client's half-close
(good) or loses it (broken), and which request and backend fit it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")

#: the Python proxy: on the client's EOF it closes BOTH legs at once (no half-close)
CLOSING_PROXY = """
import selectors, socket, sys
listen_port, backend_port = int(sys.argv[1]), int(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(16)
sel = selectors.DefaultSelector()
sel.register(server, selectors.EVENT_READ)
pairs = {}
while True:
    for key, _ in sel.select():
        sock = key.fileobj
        if sock is server:
            client, _ = server.accept()
            try:
                upstream = socket.create_connection(("127.0.0.1", backend_port))
            except OSError:
                client.close()
                continue
            pairs[client], pairs[upstream] = upstream, client
            sel.register(client, selectors.EVENT_READ)
            sel.register(upstream, selectors.EVENT_READ)
            continue
        other = pairs.get(sock)
        if other is None:
            continue
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if data:
            try:
                other.sendall(data)
                continue
            except OSError:
                pass
        for s in (sock, other):  # EOF from either side: close both legs
            sel.unregister(s)
            pairs.pop(s, None)
            s.close()
"""


@dataclass(frozen=True)
class Proxy:
    """How to start one proxy configuration, and what it does with a half-close."""

    name: str
    good: bool  #: keeps the answer that arrives after the client's FIN
    backend_kind: str  #: what the backend behind it must speak ("http" or "echo")
    preset: str  #: the probe's request
    delay: float  #: the backend's answer delay, in both modes
    start: Callable[[int, int, Path], list[str]]  #: (port, backend port, tmp) -> argv
    needs: str  #: the binary that must be installed


def _nginx_stream(half_close: bool) -> Callable[[int, int, Path], list[str]]:
    def argv(port: int, backend: int, tmp: Path) -> list[str]:
        extra = " proxy_half_close on;" if half_close else ""
        (tmp / "nginx.conf").write_text(
            f"load_module {NGINX_STREAM_MODULE};\n"
            "worker_processes 1;\n"
            "events { worker_connections 64; }\n"
            f"stream {{ server {{ listen 127.0.0.1:{port}; "
            f"proxy_pass 127.0.0.1:{backend};{extra} }} }}\n"
        )
        directives = f"daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;"
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", directives]

    return argv


def _haproxy(mode: str, abortonclose: bool) -> Callable[[int, int, Path], list[str]]:
    def argv(port: int, backend: int, tmp: Path) -> list[str]:
        option = "  option abortonclose\n" if abortonclose else ""
        (tmp / "haproxy.cfg").write_text(
            "global\n  maxconn 64\n"
            f"defaults\n  mode {mode}\n  timeout connect 5s\n  timeout client 20s\n"
            f"  timeout server 20s\n{option}"
            f"frontend front\n  bind 127.0.0.1:{port}\n  default_backend back\n"
            f"backend back\n  server s1 127.0.0.1:{backend}\n"
        )
        return [shutil.which("haproxy") or "haproxy", "-db", "-f", str(tmp / "haproxy.cfg")]

    return argv


def _socat(timeout: str | None) -> Callable[[int, int, Path], list[str]]:
    def argv(port: int, backend: int, tmp: Path) -> list[str]:
        options = ["-t", timeout] if timeout is not None else []
        return [
            shutil.which("socat") or "socat",
            *options,
            f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
            f"TCP:127.0.0.1:{backend}",
        ]

    return argv


def _closing_proxy(port: int, backend: int, tmp: Path) -> list[str]:
    script = tmp / "closing_proxy.py"
    script.write_text(CLOSING_PROXY)
    return [sys.executable, "-I", str(script), str(port), str(backend)]


PROXIES = [
    Proxy("nginx-stream", False, "echo", "echo", 0.5, _nginx_stream(False), "nginx"),
    Proxy("nginx-stream-half-close", True, "echo", "echo", 0.5, _nginx_stream(True), "nginx"),
    Proxy("haproxy-tcp", True, "echo", "echo", 0.5, _haproxy("tcp", False), "haproxy"),
    Proxy("haproxy-http", True, "http", "http", 0.5, _haproxy("http", False), "haproxy"),
    Proxy(
        "haproxy-http-abortonclose", False, "http", "http", 0.5, _haproxy("http", True), "haproxy"
    ),
    Proxy("socat-t0", False, "echo", "echo", 0.5, _socat("0"), "socat"),
    # socat's default -t is 0.5 s: an answer 0.2 s after the FIN gets through
    Proxy("socat-default", True, "echo", "echo", 0.2, _socat(None), "socat"),
    Proxy("socat-t2", True, "echo", "echo", 0.5, _socat("2"), "socat"),
    Proxy("python-closes-both", False, "echo", "echo", 0.5, _closing_proxy, "python3"),
]


def start_proxy(proxy: Proxy, port: int, backend: int, tmp: Path) -> subprocess.Popen[bytes]:
    if shutil.which(proxy.needs) is None:
        pytest.skip(f"{proxy.needs} is not installed")
    if proxy.name.startswith("nginx") and not NGINX_STREAM_MODULE.exists():
        pytest.skip("libnginx-mod-stream is not installed")
    return subprocess.Popen(
        proxy.start(port, backend, tmp),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp,
    )
