"""Exit statuses of the `tcpclose` command, one per kind of outcome.

The lesson's programs (`graceserver`, `graceclient`) keep the C originals' statuses instead;
see `tcpclose.lesson`.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    #: the command did what was asked (whatever the verdicts it reports)
    OK = 0
    #: a run failed in a way that is not the user's input (a program crashed, a capture broke)
    FAILURE = 1
    #: the command line itself is wrong (unknown option, missing argument)
    USAGE = 2
    #: the network refused: connection refused, unreachable, name not resolved, timed out
    NETWORK = 3
    #: the operating system refused: no permission (capture without CAP_NET_RAW, port < 1024)
    PERMISSION = 4
    #: a file is missing, unreadable, empty or not what it claims to be; or an output path
    #: cannot be written (its directory does not exist)
    INPUT = 5
    #: a port or address is already in use
    ADDRESS_IN_USE = 6
    #: `tcpclose drain`: the server lost requests while it stopped or reloaded
    REQUESTS_LOST = 7
    #: interrupted by the user (Ctrl-C)
    INTERRUPTED = 130
    #: the reader of standard output went away (`| head`): nothing is printed, as for a
    #: program killed by SIGPIPE (128 + 13)
    BROKEN_PIPE = 141
    #: ended by SIGTERM (128 + 15); children ended and temp directories removed first
    TERMINATED = 143
