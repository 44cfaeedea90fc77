"""Socket options the project sets in more than one place."""

from __future__ import annotations

import socket
import struct

#: struct linger {int l_onoff; int l_linger;} = {1, 0}
_LINGER_ZERO = struct.pack("ii", 1, 0)


def linger_zero(sock: socket.socket) -> None:
    """setsockopt(SO_LINGER, {on, 0}): the next close() discards what is queued and sends RST
    instead of FIN (an abortive close)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
