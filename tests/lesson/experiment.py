"""The lesson's two experiments, scripted: type `data1`, `data2`, then `close` or `shutdown`.

Typing is paced on what the programs print, as a person watching both terminals would:
`data2` is typed only once the server has printed `received ... data1` (so the server reads
two messages, not one), and the ending only once the client has printed its second
`send bytes`. Works for any pair of server and client, Python or C, whose stdout is
line-buffered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lesson.driver import Proc

SENDS = b"now sending data1\nsend bytes: 5 \nnow sending data2\nsend bytes: 5 \n"
TWO_ANSWERED = b"received 5 bytes: data1\nsend bytes: 9 \nreceived 5 bytes: data2\nsend bytes: 9 \n"
CLIENT_CLOSED = b"graceserver: client closed \n\n"
SERVER_TERMINATED = b"graceclient: server terminated \n\n"
_LISTENING = re.compile(rb"^graceserver: listening on \S+\n", re.MULTILINE)


@dataclass(frozen=True)
class Transcript:
    """What both programs printed and how they ended (a negative status: killed by signal)."""

    client_status: int
    client_out: bytes
    client_err: bytes
    server_status: int
    server_out: bytes
    server_err: bytes


def server_err(raw: bytes) -> bytes:
    """The server's stderr without the `listening on` line that `--port 0` adds."""
    return _LISTENING.sub(b"", raw)


def type_data(
    client: Proc, server: Proc, messages: tuple[bytes, ...] = (b"data1", b"data2")
) -> None:
    """Type each message; wait for the server to read it before typing the next one."""
    for number, message in enumerate(messages, 1):
        client.write(message + b"\n")
        client.wait_output(b"send bytes: ", number)
        if number < len(messages):
            server.wait_output(b"received ", number)


def finish(client: Proc, server: Proc) -> Transcript:
    client_status = client.wait()
    server_status = server.wait()
    return Transcript(
        client_status,
        client.stdout,
        client.stderr,
        server_status,
        server.stdout,
        server_err(server.stderr),
    )


def experiment(client: Proc, server: Proc, ending: bytes) -> Transcript:
    """data1, data2, then `ending` (b"close" or b"shutdown"); both programs run to their end."""
    type_data(client, server)
    client.write(ending + b"\n")
    return finish(client, server)
