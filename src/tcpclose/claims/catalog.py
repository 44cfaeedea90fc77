"""Every claim of the lesson (see the project's LESSON.md), as data: words, source, scenarios,
judge. The order is the lesson's."""

from __future__ import annotations

from tcpclose.claims import judges as j
from tcpclose.claims.model import Claim

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "close-refcount",
        "close() only decrements the reference count: while another process holds the socket, "
        "it sends no FIN",
        "close(fd)",
        ("fork-close",),
        j.close_refcount,
    ),
    Claim(
        "close-both-directions",
        "when the count reaches 0, close() stops both directions: FIN goes out, input is refused",
        "close(fd)",
        ("close",),
        j.close_both_directions,
    ),
    Claim(
        "close-draws-rst",
        "a peer that keeps sending to a closed socket gets an RST back",
        "close(fd)",
        ("close", "close-late"),
        j.closed_socket_rst,
    ),
    Claim(
        "close-flushes",
        "close(): the kernel sends what is still in the send buffer, then a FIN",
        "close(fd)",
        ("close-flushes", "unread-data-close"),
        j.close_flushes,
    ),
    Claim(
        "shut-rd-eof",
        "shutdown(SHUT_RD): reads return EOF",
        "shutdown(fd, how)",
        ("shut-rd",),
        j.shut_rd_eof,
    ),
    Claim(
        "shut-rd-discard",
        "shutdown(SHUT_RD): buffered data is discarded; new data is ACKed and silently dropped",
        "shutdown(fd, how)",
        ("shut-rd",),
        j.shut_rd_discard,
    ),
    Claim(
        "shut-wr-fin",
        "shutdown(SHUT_WR) sends FIN whatever the reference count (the half-close)",
        "shutdown(fd, how)",
        ("fork-shutdown",),
        j.shut_wr_refcount,
    ),
    Claim(
        "shut-wr-write",
        "after shutdown(SHUT_WR), writing is an error (reading still works)",
        "shutdown(fd, how)",
        ("shut-wr-write",),
        j.shut_wr_write_fails,
    ),
    Claim(
        "rdwr-vs-close-release",
        "difference 1: close releases the socket and its resources; shutdown does not",
        "close vs shutdown(SHUT_RDWR)",
        ("shut-rdwr", "fork-close"),
        j.rdwr_releases,
    ),
    Claim(
        "rdwr-vs-close-refcount",
        "difference 2: close obeys the reference count; shutdown makes the socket unusable "
        "for every process sharing it",
        "close vs shutdown(SHUT_RDWR)",
        ("fork-close", "shut-rdwr"),
        j.rdwr_refcount,
    ),
    Claim(
        "rdwr-vs-close-fin",
        "difference 3: close may send no FIN at all; shutdown always sends one",
        "close vs shutdown(SHUT_RDWR)",
        ("fork-close", "shut-rdwr", "fork-shutdown"),
        j.rdwr_fin,
    ),
    Claim(
        "rst-write-sigpipe",
        "writing onto a reset connection makes the kernel raise SIGPIPE",
        "the close experiment",
        ("sigpipe-default", "abort", "write-after-rst"),
        j.rst_write_sigpipe,
    ),
    Claim(
        "close-explanation",
        "close experiment: the client's kernel answers Hi, data1 with RST, the server's next "
        "write raises SIGPIPE and kills it, the client sees no answer",
        "the close experiment",
        ("close",),
        j.close_explanation,
    ),
    Claim(
        "close-transcript",
        "close experiment transcript: the client shows Hi,data1; the server prints send bytes "
        "twice, then client closed",
        "the close experiment",
        ("close", "close-late"),
        j.close_transcript,
    ),
    Claim(
        "shutdown-experiment",
        "shutdown experiment: both answers come back, the server reads EOF and exits, its FIN "
        "ends the client",
        "the shutdown experiment",
        ("shutdown",),
        j.shutdown_experiment,
    ),
    Claim(
        "exit-sends-fin",
        "thought question 1: a server ending with exit(0), no close(), still sends FIN: the "
        "kernel closes its descriptors",
        "thought question 1",
        ("exit-without-close",),
        j.exit_sends_fin,
    ),
    Claim(
        "sigpipe-dispositions",
        "thought question 2: SIG_IGN: the write returns EPIPE; default: the process is killed; "
        "a handler runs, then the write returns EPIPE",
        "thought question 2",
        ("sigpipe-ignore", "sigpipe-default", "sigpipe-handler"),
        j.sigpipe_dispositions,
    ),
    Claim(
        "hi-data1-timing",
        "readers' question: with close, Hi, data1 was shown because it arrived before close "
        "was typed",
        "readers' question 1",
        ("close-late", "close"),
        j.timing_shows_hi_data1,
    ),
    Claim(
        "half-close-eof-fin",
        "readers' question: with shutdown, the half-close's FIN made the server read EOF; its "
        "exit made its kernel send FIN",
        "readers' question 2",
        ("shutdown",),
        j.half_close_then_exit,
    ),
    Claim(
        "who-closes",
        "readers' question: who closes a TCP connection in a browser?",
        "readers' question 3",
        ("close", "shutdown", "exit-without-close", "fork-close", "fork-shutdown"),
        j.who_closes,
    ),
    Claim(
        "sigint-typo",
        "readers' note: signal(SIGINT, sig_pipe) was meant to be signal(SIGPIPE, sig_pipe); "
        "with the typo, SIGPIPE still kills",
        "readers' question 4",
        ("sigpipe-default", "sigpipe-handler"),
        j.sigint_typo,
    ),
    Claim(
        "exit-unread-rst",
        "kernel fact: a process that exits with unread input sends RST, not FIN (its kernel "
        "closes the socket as close() would)",
        "thought question 1 (unread input)",
        ("exit-unread",),
        j.exit_unread_rst,
    ),
    Claim(
        "rst-keeps-queued-data",
        "kernel fact: after the peer's RST, read() still returns the data already queued, then "
        "reports the reset (ECONNRESET)",
        "close(fd) (the peer's RST)",
        ("read-after-rst-queued",),
        j.rst_keeps_queued_data,
    ),
    Claim(
        "rst-in-close-wait",
        "kernel fact: an RST arriving after the peer's FIN (CLOSE_WAIT) is never reported to "
        "read(), which keeps returning EOF",
        "shutdown(fd, how) (the peer's RST)",
        ("read-after-rst-close-wait",),
        j.rst_in_close_wait,
    ),
)

BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}
