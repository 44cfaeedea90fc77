"""A classic-BPF program for "TCP over IPv4 or IPv6 on Ethernet framing, to or from these ports".

The loopback interface hands AF_PACKET sockets Ethernet-framed packets (14-byte header, zero
MACs). The kernel runs this program on every packet before queuing it to our socket, so
unrelated traffic never reaches user space (and never fills our receive buffer).

Instructions are `struct sock_filter {u16 code; u8 jt; u8 jf; u32 k;}`; jumps are relative.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

# opcodes (linux/filter.h)
_LD_H_ABS = 0x28  # A = half-word at [k]
_LD_B_ABS = 0x30  # A = byte at [k]
_LD_H_IND = 0x48  # A = half-word at [X + k]
_LDX_B_MSH = 0xB1  # X = 4 * ([k] & 0x0f): the IPv4 header length
_JEQ_K = 0x15  # if A == k goto jt else jf
_JSET_K = 0x45  # if A & k goto jt else jf
_RET_K = 0x06  # accept k bytes (0: drop)

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPPROTO_TCP = 6
SNAPLEN = 0x40000  # keep whole packets (loopback MTU is 64 KiB)


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def tcp_ports_program(ports: Iterable[int]) -> list[tuple[int, int, int, int]]:
    """Instructions accepting TCP segments whose source or destination port is in `ports`.

    IPv4 fragments other than the first are dropped (they carry no TCP header); IPv6 is matched
    when TCP is the first next-header (no extension headers), which is all loopback sends.
    """
    port_list = sorted(set(ports))
    if not port_list:
        raise ValueError("a capture filter needs at least one port")
    n = len(port_list)
    # Assembled with labels (resolved to relative jump offsets below) rather than hand-counted.
    prog: list[tuple[str, int, object, object, int]] = []

    def emit(code: int, k: int = 0, jt: object = 0, jf: object = 0, label: str = "") -> None:
        prog.append((label, code, jt, jf, k))

    emit(_LD_H_ABS, 12)
    emit(_JEQ_K, ETH_P_IP, jt=0, jf="ipv6")
    # IPv4
    emit(_LD_B_ABS, 14 + 9)  # protocol
    emit(_JEQ_K, IPPROTO_TCP, jt=0, jf="drop")
    emit(_LD_H_ABS, 14 + 6)  # flags + fragment offset
    emit(_JSET_K, 0x1FFF, jt="drop", jf=0)
    emit(_LDX_B_MSH, 14)
    emit(_LD_H_IND, 14)  # source port at X + 14
    for port in port_list:
        emit(_JEQ_K, port, jt="accept", jf=0)
    emit(_LD_H_IND, 16)  # destination port at X + 16
    for i, port in enumerate(port_list):
        emit(_JEQ_K, port, jt="accept", jf="drop" if i == n - 1 else 0)
    # IPv6
    emit(_JEQ_K, ETH_P_IPV6, jt=0, jf="drop", label="ipv6")
    emit(_LD_B_ABS, 14 + 6)  # next header
    emit(_JEQ_K, IPPROTO_TCP, jt=0, jf="drop")
    emit(_LD_H_ABS, 14 + 40)
    for port in port_list:
        emit(_JEQ_K, port, jt="accept", jf=0)
    emit(_LD_H_ABS, 14 + 42)
    for i, port in enumerate(port_list):
        emit(_JEQ_K, port, jt="accept", jf="drop" if i == n - 1 else 0)
    emit(_RET_K, SNAPLEN, label="accept")
    emit(_RET_K, 0, label="drop")

    labels = {label: index for index, (label, *_rest) in enumerate(prog) if label}
    assembled: list[tuple[int, int, int, int]] = []
    for index, (_label, code, jt, jf, k) in enumerate(prog):

        def resolve(target: object, here: int = index) -> int:
            if isinstance(target, str):
                offset = labels[target] - here - 1
            else:
                offset = int(target)  # type: ignore[call-overload]
            if not 0 <= offset <= 255:
                raise ValueError("capture filter too long for 8-bit jumps: too many ports")
            return offset

        assembled.append((code, resolve(jt), resolve(jf), k))
    return assembled


def assemble(program: list[tuple[int, int, int, int]]) -> bytes:
    """The instructions as the kernel's `struct sock_filter` array."""
    return b"".join(_insn(*insn) for insn in program)
