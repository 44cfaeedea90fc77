"""TCP segments as the whole project sees them, whether captured live or read from a file."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Flag(enum.IntFlag):
    """TCP header flags, with the bit values of the header's flags byte."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


#: the bits as plain ints: `int & IntFlag` builds an enum member per test, six times slower,
#: and Packet's flag properties run once per packet of every capture
_FIN, _SYN, _RST, _ACK = int(Flag.FIN), int(Flag.SYN), int(Flag.RST), int(Flag.ACK)

#: The order in which flag letters are written: S F R P A (then U E C), as in the lab's JSON.
_LETTERS: tuple[tuple[Flag, str], ...] = (
    (Flag.SYN, "S"),
    (Flag.FIN, "F"),
    (Flag.RST, "R"),
    (Flag.PSH, "P"),
    (Flag.ACK, "A"),
    (Flag.URG, "U"),
    (Flag.ECE, "E"),
    (Flag.CWR, "C"),
)


def flag_letters(flags: int) -> str:
    """0x19 -> "FPA"."""
    return "".join(letter for bit, letter in _LETTERS if flags & bit)


def flags_from_letters(letters: str) -> Flag:
    """ "FPA" -> Flag.FIN | Flag.PSH | Flag.ACK; unknown letters raise ValueError."""
    table = {letter: bit for bit, letter in _LETTERS}
    result = Flag(0)
    for letter in letters:
        try:
            result |= table[letter]
        except KeyError:
            raise ValueError(f"unknown TCP flag letter {letter!r}") from None
    return result


@dataclass(frozen=True, slots=True)
class Packet:
    """One TCP segment.

    `t` is seconds since the epoch (the kernel's capture timestamp). Addresses are text
    (`127.0.0.1`, `::1`). `length` is the TCP payload length as sent; `payload` holds the bytes
    that were captured, which may be fewer (snap length) or none (the analyser keeps none).
    """

    t: float
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    seq: int
    ack: int
    win: int
    length: int
    payload: bytes = b""

    @property
    def syn(self) -> bool:
        return bool(self.flags & _SYN)

    @property
    def fin(self) -> bool:
        return bool(self.flags & _FIN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & _RST)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & _ACK)

    @property
    def letters(self) -> str:
        return flag_letters(self.flags)

    @property
    def src_endpoint(self) -> tuple[str, int]:
        return (self.src, self.sport)

    @property
    def dst_endpoint(self) -> tuple[str, int]:
        return (self.dst, self.dport)

    @property
    def seq_end(self) -> int:
        """The sequence number after this segment: SYN and FIN each count as one byte."""
        return (self.seq + self.length + self.syn + self.fin) & 0xFFFFFFFF

    def text(self, limit: int = 40) -> str | None:
        """The payload as text if it is printable UTF-8 (cut to `limit` characters), else None."""
        if not self.payload:
            return None
        try:
            decoded = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not all(ch.isprintable() or ch in "\r\n\t" for ch in decoded):
            return None
        return decoded if len(decoded) <= limit else decoded[: limit - 1] + "…"
