"""A real capture on a link that is not Ethernet: two network namespaces joined by two tun
devices (ARPHRD_NONE: raw IP, no link header), whose packets this test carries from one to the
other. The traced client in one namespace talks to a server in the other; trace reads the tun
device with an AF_PACKET SOCK_DGRAM socket (or tcpdump's cooked v2 frames) and draws the
conversation as on loopback."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lesson.driver import TIMEOUT, Procs, python_env

from .conftest import need_strace, only_run, wire

pytestmark = pytest.mark.slow

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
#: the forwarder carries at most this many packets (the test's conversation needs about 12)
MAX_PACKETS = 1000
CLIENT_ADDRESS, SERVER_ADDRESS = "10.201.0.1", "10.201.0.2"


@dataclass
class Namespaces:
    client: str
    server: str
    device: str  #: the client side's tun device


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=TIMEOUT)


def _tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _forward(a: int, b: int, stop: threading.Event) -> None:
    """Each packet one tun device hands over is written to the other: the wire between them."""
    for _ in range(MAX_PACKETS):
        while not stop.is_set():
            readable, _, _ = select.select([a, b], [], [], 0.1)
            if readable:
                break
        if stop.is_set():
            return
        for fd in readable:
            try:
                packet = os.read(fd, 65536)
                os.write(b if fd == a else a, packet)
            except OSError:
                return


@pytest.fixture
def tun_pair() -> Iterator[Namespaces]:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and tun devices")
    if shutil.which("ip") is None or not Path("/dev/net/tun").exists():
        pytest.skip("needs iproute2's ip and /dev/net/tun")
    tag = f"{os.getpid() % 100000}"
    spaces = Namespaces(f"tcpclose-c{tag}", f"tcpclose-s{tag}", f"tcc{tag}")
    made: list[str] = []
    fds: list[int] = []
    stop = threading.Event()
    try:
        for space in (spaces.client, spaces.server):
            _ip("netns", "add", space)
            made.append(space)
        for space, device, here, there in (
            (spaces.client, spaces.device, CLIENT_ADDRESS, SERVER_ADDRESS),
            (spaces.server, f"tcs{tag}", SERVER_ADDRESS, CLIENT_ADDRESS),
        ):
            fds.append(_tun(device))  # made here, attached to our fd, then moved
            _ip("link", "set", device, "netns", space)
            _ip("-n", space, "addr", "add", here, "peer", there, "dev", device)
            _ip("-n", space, "link", "set", device, "up")
            _ip("-n", space, "link", "set", "lo", "up")
        wire_thread = threading.Thread(target=_forward, args=(*fds, stop), daemon=True)
        wire_thread.start()
        yield spaces
        stop.set()
        wire_thread.join(TIMEOUT)
    finally:
        stop.set()
        for fd in fds:
            os.close(fd)
        for space in made:
            subprocess.run(["ip", "netns", "del", space], capture_output=True, timeout=TIMEOUT)


SERVER = """
import socket, sys
listener = socket.socket()
listener.bind((sys.argv[1], 0))
listener.listen(1)
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
conn.sendall(b"Hi, " + conn.recv(100))
conn.close()
"""
CLIENT = """
import socket, sys
client = socket.create_connection((sys.argv[1], int(sys.argv[2])))
client.sendall(b"data1")
assert client.recv(100) == b"Hi, data1"
assert client.recv(100) == b""
client.close()
"""


@pytest.mark.parametrize("method", ["af_packet", "tcpdump"])
def test_a_conversation_over_tun_devices(
    method: str, tun_pair: Namespaces, procs: Procs, tmp_path: Path
) -> None:
    need_strace()
    if method == "tcpdump" and shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    netns = ["ip", "netns", "exec"]
    server = procs.start([*netns, tun_pair.server, sys.executable, "-c", SERVER, SERVER_ADDRESS])
    server.wait_output(b"\n")
    port = server.stdout.decode().strip()
    out = tmp_path / "trace.json"
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    # The capture method is chosen as the lab's tests choose it (capture_methods), through
    # the library, run in the client's namespace.
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import json, sys\n"
        "from tcpclose.trace.session import trace_command\n"
        "from tcpclose.commands.trace import result_json\n"
        f"result = trace_command(sys.argv[2:], capture_methods=({method!r},))\n"
        "runs = list(enumerate(result.runs, start=1))\n"
        "doc = result_json(result, runs)\n"
        "doc['capture'] = {'method': result.capture.method, 'note': result.capture.note}\n"
        "open(sys.argv[1], 'w').write(json.dumps(doc))\n"
    )
    done = subprocess.run(
        [
            *netns,
            tun_pair.client,
            sys.executable,
            str(driver),
            str(out),
            sys.executable,
            str(client),
            SERVER_ADDRESS,
            port,
        ],
        capture_output=True,
        env=python_env(),
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert server.wait() == 0
    doc = json.loads(out.read_text())
    assert doc["capture"]["method"] == method, doc["capture"]
    run = only_run(doc)
    assert run["summary"].startswith(f"{CLIENT_ADDRESS}:")
    assert run["summary"].endswith(f"-> {SERVER_ADDRESS}:{port}")
    # each packet once (a retransmission, if the loaded machine made one, counts once)
    assert list(dict.fromkeys(wire(run))) == [
        ("client", "S", None),
        ("server", "S", None),
        ("client", "", "data1"),
        ("server", "", "Hi, data1"),
        ("server", "F", None),
        ("client", "F", None),
    ], run["packets"]
    assert run["verdicts"]["first_fin"]["by"] == "server"
    assert [e["event"] for e in run["events"] if e["role"] == "client"][:3] == [
        "connected",
        "sent",
        "received",
    ]
