"""The lesson's two programs, `graceserver` and `graceclient`, ported faithfully to Python.

Constants come from the course's common header. Exit statuses are the C originals':

=========  ===========================================================================
program    status
=========  ===========================================================================
server     0 after SIGINT (`received <count> datagrams`); 1 after `client closed `, a
           read or write error, a failed bind (port in use, permission), or a bad
           argument; killed by SIGPIPE (-13, shell 141) with `--sigpipe default` when it
           writes to a reset connection
client     0 after `close` / `abort` (and the 6 s wait); 1 after `server terminated `,
           a read or write error, a bad address, a refused, unreachable or timed-out
           connect, or a bad argument; 130 on Ctrl-C
=========  ===========================================================================

`tcpclose server` and `tcpclose client` run the same programs but report what goes wrong
BEFORE the dialogue starts in tcpclose's voice (`tcpclose: error: ...`) with the statuses of
`tcpclose.status`: 2 bad arguments, an address that does not parse, or a --bind address that is
not this machine's, 3 refused, unreachable, timed out or unresolvable, 4 permission denied,
5 an --events file that cannot be written, 6 address in use. From the connection on they
behave, print and exit exactly as `graceserver` / `graceclient`.
"""

SERV_PORT = 43211
MAXLINE = 4096
LISTENQ = 1024
