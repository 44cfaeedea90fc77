"""Real captures off loopback, in network namespaces the tests make: a link that is not
Ethernet (two tun devices, ARPHRD_NONE: raw IP, no link header, whose packets this test carries
from one to the other), read with an AF_PACKET SOCK_DGRAM socket or tcpdump's cooked v2 frames;
and a bridge with a veth port, where each packet passes two interfaces and must be drawn once.
The traced client in one namespace talks to a server in the other."""

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
from typing import Any

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
BRIDGED_CLIENT, BRIDGED_SERVER = "10.202.0.1", "10.202.0.2"


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


def converse(
    spaces: Namespaces, server_address: str, method: str, procs: Procs, tmp_path: Path
) -> tuple[str, dict[str, Any]]:
    """The server in its namespace, the client traced in its own; (the server's port, the
    trace's only run)."""
    need_strace()
    if method == "tcpdump" and shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    netns = ["ip", "netns", "exec"]
    server = procs.start([*netns, spaces.server, sys.executable, "-c", SERVER, server_address])
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
        "open(sys.argv[1], 'w').write(json.dumps(result_json(result, runs)))\n"
    )
    done = subprocess.run(
        [
            *netns,
            spaces.client,
            sys.executable,
            str(driver),
            str(out),
            sys.executable,
            str(client),
            server_address,
            port,
        ],
        capture_output=True,
        env=python_env(),
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert server.wait() == 0
    doc = json.loads(out.read_text())
    assert doc["trace"]["capture"]["method"] == method, doc["trace"]["capture"]
    run = only_run(doc)
    assert run["summary"].endswith(f"-> {server_address}:{port}")
    assert run["verdicts"]["first_fin"]["by"] == "server"
    assert [e["event"] for e in run["events"] if e["role"] == "client"][:3] == [
        "connected",
        "sent",
        "received",
    ]
    return port, run


CONVERSATION = [
    ("client", "S", None),
    ("server", "S", None),
    ("client", "", "data1"),
    ("server", "", "Hi, data1"),
    ("server", "F", None),
    ("client", "F", None),
]


@pytest.mark.parametrize("method", ["af_packet", "tcpdump"])
def test_a_conversation_over_tun_devices(
    method: str, tun_pair: Namespaces, procs: Procs, tmp_path: Path
) -> None:
    _port, run = converse(tun_pair, SERVER_ADDRESS, method, procs, tmp_path)
    assert run["summary"].startswith(f"{CLIENT_ADDRESS}:")
    # each packet once (a retransmission, if the loaded machine made one, counts once: this
    # test's forwarder is a Python thread)
    assert list(dict.fromkeys(wire(run))) == CONVERSATION, run["packets"]


@pytest.fixture
def bridged() -> Iterator[Namespaces]:
    """The client's namespace holds a bridge with a veth port; the server's namespace the
    veth's other end. Each packet passes the port and the bridge: captured twice."""
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip")
    tag = f"{os.getpid() % 100000}"
    spaces = Namespaces(f"tcpclose-bc{tag}", f"tcpclose-bs{tag}", f"tcb{tag}")
    made: list[str] = []
    try:
        for space in (spaces.client, spaces.server):
            _ip("netns", "add", space)
            made.append(space)
        port, peer = f"tcp{tag}", f"tcq{tag}"
        _ip("-n", spaces.client, "link", "add", spaces.device, "type", "bridge")
        _ip("-n", spaces.client, "link", "add", port, "type", "veth", "peer", "name", peer)
        _ip("-n", spaces.client, "link", "set", peer, "netns", spaces.server)
        _ip("-n", spaces.client, "link", "set", port, "master", spaces.device)
        _ip("-n", spaces.client, "addr", "add", f"{BRIDGED_CLIENT}/24", "dev", spaces.device)
        _ip("-n", spaces.server, "addr", "add", f"{BRIDGED_SERVER}/24", "dev", peer)
        for space, devices in (
            (spaces.client, (port, spaces.device, "lo")),
            (spaces.server, (peer, "lo")),
        ):
            for device in devices:
                _ip("-n", space, "link", "set", device, "up")
        yield spaces
    finally:
        for space in made:
            subprocess.run(["ip", "netns", "del", space], capture_output=True, timeout=TIMEOUT)


@pytest.mark.parametrize("method", ["af_packet", "tcpdump"])
def test_a_packet_on_a_bridge_and_its_port_is_drawn_once(
    method: str, bridged: Namespaces, procs: Procs, tmp_path: Path
) -> None:
    _port, run = converse(bridged, BRIDGED_SERVER, method, procs, tmp_path)
    assert run["summary"].startswith(f"{BRIDGED_CLIENT}:")
    assert wire(run) == CONVERSATION, run["packets"]
