"""The lesson's two programs, `graceserver` and `graceclient`, ported faithfully to Python.

Constants come from the course's common header. Exit statuses are the C originals':

=========  ===========================================================================
program    status
=========  ===========================================================================
server     0 after SIGINT (`received <count> datagrams`); 1 after `client closed `, a
           read or write error, or a bad argument; killed by SIGPIPE (-13, shell 141)
           with `--sigpipe default` when it writes to a reset connection
client     0 after `close` / `abort` (and the 6 s wait); 1 after `server terminated `,
           a read error, a refused or failed connect, or a bad argument
=========  ===========================================================================
"""

SERV_PORT = 43211
MAXLINE = 4096
LISTENQ = 1024
