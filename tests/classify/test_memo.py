"""The memo of tracker states gives a tracker's answers, whatever its limits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpclose.classify import ConnectionTracker
from tcpclose.classify.memo import MemoTracker, TrackerMemo

FLAGS = st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x19, 0x04, 0x14, 0x01, 0x05, 0x03, 0x08])
#: (from the first sender?, flags, seq offset, ack offset, window 0?, length)
SEGMENT = st.tuples(
    st.booleans(),
    FLAGS,
    st.sampled_from([0, 1, 5, 6, 100, 2**31, 2**32 - 1]),
    st.sampled_from([0, 1, 5, 6, 100, 2**32 - 3]),
    st.booleans(),
    st.sampled_from([0, 0, 1, 5, 100]),
)
CONNECTION = st.tuples(
    st.integers(0, 2**32 - 1),  # ISN of the first sender
    st.integers(0, 2**32 - 1),  # ISN of the other side
    st.sampled_from([(40000, 80), (80, 40000), (5000, 5001)]),
    st.lists(SEGMENT, min_size=1, max_size=14),
)


@settings(max_examples=200, deadline=None)
@given(
    connections=st.lists(CONNECTION, min_size=1, max_size=12),
    max_nodes=st.sampled_from([1, 3, 20, 20_000]),
    max_misses=st.sampled_from([0, 1, 3, 100]),
)
def test_memo_answers_as_the_tracker(
    connections: list[tuple[int, int, tuple[int, int], list[tuple]]],
    max_nodes: int,
    max_misses: int,
) -> None:
    """Connections one after the other through one memo (so later ones meet the states of
    earlier ones, with other ISNs): after every packet, the same `ended`, the same answer to
    a SYN with either ISN, and at the end the same verdict."""
    memo = TrackerMemo(max_nodes, max_misses)
    shared = 0
    for number, (isn_a, isn_b, (sport, dport), segments) in enumerate(connections):
        t0 = 1e9 + number
        first = segments[0]
        a, b = ("10.0.0.1", sport), ("10.0.0.2", dport)
        reference = ConnectionTracker.from_fields(t0, a[0], a[1], b[0], b[1], first[1])
        fast = memo.tracker(t0, a[0], a[1], b[0], b[1], first[1])
        shared += isinstance(fast, MemoTracker)
        assert fast.first_is_originator == reference.first_is_originator
        for i, (from_a, flags, dseq, dack, zero, length) in enumerate(segments):
            t = t0 + i * 0.001
            is_orig = reference.first_is_originator == (from_a or i == 0)
            seq = ((isn_a if from_a else isn_b) + dseq) & 0xFFFFFFFF
            ack = ((isn_b if from_a else isn_a) + dack) & 0xFFFFFFFF
            win = 0 if zero else 512
            for syn_seq in (seq, isn_a, isn_b):
                assert fast.starts_new_connection(
                    is_orig, 0x02, syn_seq
                ) == reference.starts_new_connection(is_orig, 0x02, syn_seq)
            reference.feed_reference(t, is_orig, flags, seq, ack, win, length)
            fast.feed_fields(t, is_orig, flags, seq, ack, win, length)
            assert fast.ended == reference.ended and fast.end == reference.end
        assert fast.verdict() == reference.verdict()
    assert shared == len(connections) or memo.misses > 0


def _feed_both(memo: TrackerMemo, packets: list) -> None:
    p0 = packets[0]
    reference = ConnectionTracker.from_fields(p0.t, p0.src, p0.sport, p0.dst, p0.dport, p0.flags)
    fast = memo.tracker(p0.t, p0.src, p0.sport, p0.dst, p0.dport, p0.flags)
    for p in packets:
        is_orig = (p.src, p.sport) == reference.originator
        reference.feed_reference(p.t, is_orig, p.flags, p.seq, p.ack, p.win, p.length)
        fast.feed_fields(p.t, is_orig, p.flags, p.seq, p.ack, p.win, p.length)
    assert fast.verdict() == reference.verdict()


def test_same_shape_other_numbers_and_last_acks() -> None:
    """Connections alike up to their FINs, then one ACKs the last FIN and one does not, with
    other ISNs (one wrapping around 2**32): the memo must tell them apart, also when it
    hands a connection a real tracker in the middle (max_misses 0)."""
    from tcpconv import conversation

    from tcpclose.model.packet import Packet

    script = [
        ("c", "S", 0),
        ("s", "SA", 0),
        ("c", "A", 0),
        ("c", "PA", b"data1"),
        ("c", "FA", 0),
        ("s", "PA", b"Hi, data1"),
        ("c", "A", 0),
        ("s", "FA", 0),
        ("c", "A", 0),
    ]
    warm = [(1000 + 7919 * i, 5000 + 104729 * i, True) for i in range(10)]
    for max_misses in (0, 1, 3):
        memo = TrackerMemo(max_misses=max_misses)
        for isn_c, isn_s, ack_fin in [*warm, (2**32 - 3, 7, False), (9, 2**32 - 2, True)]:
            packets = conversation(script, isn_c=isn_c, isn_s=isn_s)
            if not ack_fin:
                last = packets[-1]
                packets[-1] = Packet(
                    last.t, last.src, last.sport, last.dst, last.dport, last.flags, last.seq,
                    (last.ack - 1) & 0xFFFFFFFF, last.win, last.length, last.payload,
                )  # fmt: skip
            _feed_both(memo, packets)
        assert memo.hits > 0 or max_misses == 0
