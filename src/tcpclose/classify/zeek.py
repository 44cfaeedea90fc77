"""Zeek-compatible `conn_state` and `history`, computed by Zeek's published rules.

Zeek's TCP analyzer keeps one state per endpoint (originator, responder) and a history string.
This module reproduces the parts of it that decide the two conn.log columns:

* `update_history` follows Zeek's `update_history()`: one letter per kind of packet and
  direction (upper case for the originator, lower case for the responder), recorded once;
  SYN, FIN and RST are recorded again when their sequence number differs from the last one;
  retransmissions (`T`) and zero windows (`W`) are recorded at their 1st, 10th, 100th...
  occurrence.
* `update_state` follows Zeek's `UpdateStateMachine()` (endpoint states only; the weirds and
  events are left out).
* `conn_state` is Zeek's `conn_state()` script function, verbatim in logic.

Not reproduced: `C` (bad checksum: loopback captures carry offloaded checksums, and tshark
does not check them either), `G` (content gaps need reassembly) and Zeek's later role flips
(SYN/SYN-ACK reversal). The `^` letter marks our own flip (originator guessed, see
`tcpclose.classify.connection`), as Zeek does for its port heuristic.
"""

from __future__ import annotations

import enum
import re


class EndpointState(enum.IntEnum):
    """Zeek's `TCP_ENDPOINT_*` states."""

    INACTIVE = 0
    SYN_SENT = 1
    SYN_ACK_SENT = 2
    PARTIAL = 3
    ESTABLISHED = 4
    CLOSED = 5
    RESET = 6


INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = tuple(EndpointState)

# History bits, one per letter and endpoint (Zeek's HIST_* masks).
HIST_SYN, HIST_FIN, HIST_RST, HIST_FIN_RST, HIST_DATA, HIST_ACK, HIST_MULTI = (
    1,
    2,
    4,
    8,
    16,
    32,
    64,
)

#: Zeek's RSTOS0 test on the history: SYN, nothing answered, then the originator's RST.
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")

_M32 = 0xFFFFFFFF


class ZeekEndpoint:
    """One endpoint's Zeek bookkeeping: state, history bits, last SYN/FIN/RST numbers, counters."""

    __slots__ = (
        "last_fin",
        "last_rst",
        "last_syn",
        "prev",
        "rxmit",
        "rxmit_next",
        "seen",
        "state",
        "zero_win",
        "zero_win_next",
    )

    def __init__(self) -> None:
        self.state = INACTIVE
        self.prev = INACTIVE
        self.seen = 0
        self.last_syn = -1
        self.last_fin = -1
        self.last_rst = -1
        self.rxmit = 0
        self.rxmit_next = 1
        self.zero_win = 0
        self.zero_win_next = 1

    def set(self, state: EndpointState) -> None:
        self.prev = self.state
        self.state = state


def update_history(ep: ZeekEndpoint, is_orig: bool, flags: int, seq: int, length: int) -> str:
    """The letters this packet earns, to append to the history (Zeek's `update_history`)."""
    syn, fin, rst = flags & 2, flags & 1, flags & 4
    bits = (syn != 0) + (fin != 0) + (rst != 0)
    if bits == 0:
        if length:
            return _once(ep, is_orig, HIST_DATA, "D")
        if flags & 0x10:
            return _once(ep, is_orig, HIST_ACK, "A")
        return ""
    if bits > 1:
        if fin and rst:
            return _once(ep, is_orig, HIST_FIN_RST, "I")
        return _once(ep, is_orig, HIST_MULTI, "Q")
    if syn:
        code = "H" if flags & 0x10 else "S"
        letter = _once(ep, is_orig, HIST_SYN, code)
        if not letter and seq != ep.last_syn:
            letter = code if is_orig else code.lower()
        ep.last_syn = seq
    elif fin:
        end = (seq + length) & _M32
        letter = _once(ep, is_orig, HIST_FIN, "F")
        if not letter and end != ep.last_fin:
            letter = "F" if is_orig else "f"
        ep.last_fin = end
    else:
        letter = _once(ep, is_orig, HIST_RST, "R")
        if not letter and seq != ep.last_rst:
            letter = "R" if is_orig else "r"
        ep.last_rst = seq
    return letter


def _once(ep: ZeekEndpoint, is_orig: bool, bit: int, code: str) -> str:
    """`code` (lower case for the responder) the first time `bit` is seen, else ""."""
    if ep.seen & bit:
        return ""
    ep.seen |= bit
    return code if is_orig else code.lower()


def retransmitted(ep: ZeekEndpoint, is_orig: bool) -> str:
    """Count one retransmission; `T`/`t` at the 1st, 10th, 100th... (Zeek's DidRxmit)."""
    ep.rxmit += 1
    if ep.rxmit == ep.rxmit_next:
        ep.rxmit_next *= 10
        return "T" if is_orig else "t"
    return ""


def zero_window(ep: ZeekEndpoint, is_orig: bool) -> str:
    """Count one zero-window advertisement; `W`/`w` at the 1st, 10th, 100th..."""
    ep.zero_win += 1
    if ep.zero_win == ep.zero_win_next:
        ep.zero_win_next *= 10
        return "W" if is_orig else "w"
    return ""


def update_state(
    ep: ZeekEndpoint,
    peer: ZeekEndpoint,
    orig: ZeekEndpoint,
    is_orig: bool,
    flags: int,
    length: int,
) -> None:
    """Move the sending endpoint's state as Zeek's `UpdateStateMachine` does."""
    syn, fin, rst, ack = flags & 2, flags & 1, flags & 4, flags & 0x10
    state = ep.state
    if state == INACTIVE:
        if syn:
            if is_orig:
                ep.set(SYN_ACK_SENT if ack else SYN_SENT)
            else:
                if peer.state == SYN_SENT:
                    peer.set(ESTABLISHED)
                ep.set(ESTABLISHED)
        if fin:
            ep.set(CLOSED)
        if rst:
            ep.set(RESET)
        if ep.state == INACTIVE:
            if not is_orig and length == 0 and orig.state == SYN_SENT:
                pass  # an ACK for the SYN before the SYN-ACK: not a partial connection
            elif ack and peer.state == ESTABLISHED:
                ep.set(ESTABLISHED)
            else:
                ep.set(PARTIAL)
    elif state in (SYN_SENT, SYN_ACK_SENT):
        if fin:
            ep.set(CLOSED)
        if rst:
            ep.set(RESET)
    elif state in (ESTABLISHED, PARTIAL):
        if syn and state == PARTIAL and peer.state == INACTIVE and not ack:
            ep.set(SYN_SENT)
        if fin and not rst:
            ep.set(CLOSED)
            if peer.state == RESET and peer.prev == CLOSED:
                peer.set(CLOSED)  # the peer's FIN-then-RST was a normal termination
        if rst:
            ep.set(RESET)
    elif state == CLOSED and rst and peer.state != CLOSED:
        ep.set(RESET)
    # RESET: nothing changes any more.


def conn_state(
    orig: EndpointState,
    resp: EndpointState,
    orig_size: int,
    resp_size: int,
    history: str,
) -> str:
    """Zeek's `conn_state()` for TCP: S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH,
    SHR or OTH, from both endpoint states, the payload sizes and the history."""
    o_inactive = orig in (INACTIVE, PARTIAL)
    r_inactive = resp in (INACTIVE, PARTIAL)
    if resp == RESET:
        if orig in (SYN_SENT, SYN_ACK_SENT) or (
            orig == RESET and orig_size == 0 and resp_size == 0
        ):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if orig == RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0.fullmatch(history) else "OTH"
        return "RSTO"
    if resp == CLOSED and orig == CLOSED:
        return "SF"
    if orig == CLOSED:
        return "SH" if r_inactive else "S2"
    if resp == CLOSED:
        return "SHR" if o_inactive else "S3"
    if orig == SYN_SENT and resp == INACTIVE:
        return "S0"
    if orig == ESTABLISHED and resp == ESTABLISHED:
        return "S1"
    return "OTH"


#: conn_state -> Zeek's own description (conn.log documentation), for docs and --help.
CONN_STATES: dict[str, str] = {
    "S0": "connection attempt seen, no reply",
    "S1": "connection established, not terminated",
    "SF": "normal establishment and termination",
    "REJ": "connection attempt rejected",
    "S2": "established, close attempt by originator seen (but no reply from responder)",
    "S3": "established, close attempt by responder seen (but no reply from originator)",
    "RSTO": "established, originator aborted (sent a RST)",
    "RSTR": "responder sent a RST",
    "RSTOS0": "originator sent a SYN followed by a RST, no SYN-ACK from the responder",
    "RSTRH": "responder sent a SYN-ACK followed by a RST, no SYN from the originator",
    "SH": "originator sent a SYN followed by a FIN, no SYN-ACK from the responder",
    "SHR": "responder sent a SYN-ACK followed by a FIN, no SYN from the originator",
    "OTH": "no SYN seen, just midstream traffic",
}
