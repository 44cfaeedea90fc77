"""The wide capture's end: every packet a program sent before it ended is read, once, with
the kernel's stamp of when it passed (not when tcpclose read it).

On lo a packet's arriving copy is queued to the capture by the receive softirq, which a loaded
machine runs late; the capture's end waits for the arriving twin of every outgoing copy it has
seen, instead of a fixed grace period (the old 20 ms lost a FIN now and then). Its kernel
stamps are proved by a probe socket read only after the clock reading they must precede.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from tcpclose.capture import parse_frame
from tcpclose.trace.capture import TraceCapture, frame_ports

MESSAGES = 300
SIZE = 10


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("AF_PACKET needs root or CAP_NET_RAW")


def test_every_packet_sent_before_the_end_is_read_once_with_its_kernel_stamp() -> None:
    capture = TraceCapture.start()
    assert capture.method == "af_packet" and capture.kernel_stamps
    began = time.time_ns()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        port = client.getsockname()[1]
        for i in range(MESSAGES):
            client.sendall(b"%09d\n" % i)
        received = 0
        while received < MESSAGES * SIZE:
            received += len(server.recv(65536))
        client.close()  # its FIN is the last packet sent: the end must have it
        server.close()
    ended = time.time_ns()
    result = capture.stop()  # at once: no wait of our own for the kernel to deliver
    ours = [
        p
        for f in result.frames
        if (ports := frame_ports(f.data)) is not None and port in ports
        if (p := parse_frame(f)) is not None
    ]
    sent = [p for p in ours if p.sport == port]
    assert sum(p.length for p in sent) == MESSAGES * SIZE  # each byte once: no outgoing copy
    assert sum(p.fin for p in sent) == 1
    # the client's data and FIN left within its calls (its pure ACKs may answer the server's
    # FIN later, from the kernel's own context)
    within = [p for p in sent if p.length or p.fin]
    assert all(began <= p.t * 1e9 <= ended for p in within), "stamped when read, not when sent"
    assert result.note is None


def test_the_probe_proves_kernel_stamps() -> None:
    capture = TraceCapture.start()
    try:
        assert capture.wait_for_kernel_stamps()
    finally:
        capture.close()
