"""The tiny supervisor between `tcpclose drain` and a server command it starts.

    python -P -m tcpclose.drain.supervisor -- SERVER COMMAND...

Why it exists: the server must not outlive drain, however drain ends (an exception, SIGINT,
SIGTERM, or SIGKILL, which no handler sees). The supervisor starts the server in a process
group of its own (`process_group=0`: setpgid(0, 0) in the child, done by the C code of
subprocess, so no preexec_fn runs in a forked copy of a threaded parent) and then waits on two
things with poll():

- its standard input, a pipe whose only writer is drain. When drain dies by any means, the
  kernel closes that writer and the supervisor reads EOF (the parent-death signal of this
  design; unlike PR_SET_PDEATHSIG it cannot fire for the wrong thread's exit, and it works
  for any server command because nothing is set inside the server);
- the server's pidfd (pidfd_open), readable when the server exits.

On EOF (or the line `stop`) it sends SIGTERM to the server's process group, waits `grace`
seconds, then SIGKILL to the group, and exits. It reports on standard output, one line each:
`started PID`, then `exited STATUS` or `killed SIGNAME` when the server ends. The server's own
standard input is /dev/null, so the pipe's writer never leaks into the server.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

DEFAULT_GRACE = 3.0


def _report(line: str) -> None:
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass  # drain is gone: nobody to tell


def _describe(status: int) -> str:
    if status < 0:
        return f"killed {signal.Signals(-status).name}"
    return f"exited {status}"


def _kill_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the group, wait up to `grace`, then SIGKILL to whatever is left of it."""
    if _kill_group(proc.pid, signal.SIGTERM):
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    _kill_group(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        _report(_describe(proc.wait()))


def main(argv: list[str]) -> int:
    grace = DEFAULT_GRACE
    if argv[:1] == ["--grace"]:
        grace, argv = float(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: python -m tcpclose.drain.supervisor [--grace S] -- COMMAND...\n")
        return 2
    # Signals aimed at drain's terminal must not stop the supervisor before it cleans up;
    # drain is in charge of stopping it (or its pipe's EOF is).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, process_group=0)
    except OSError as exc:
        _report(f"failed {exc.strerror or exc}")
        return 1
    _report(f"started {proc.pid}")
    pidfd = os.pidfd_open(proc.pid)
    poller = select.poll()
    poller.register(sys.stdin.fileno(), select.POLLIN)
    poller.register(pidfd, select.POLLIN)

    def terminated(signum: int, frame: object) -> None:
        _stop(proc, grace)
        sys.exit(0)

    signal.signal(signal.SIGTERM, terminated)
    reported = False
    while True:
        for fd, _ in poller.poll():
            if fd == pidfd and not reported:
                proc.wait()
                _report(_describe(proc.returncode))
                reported = True
                poller.unregister(pidfd)
            elif fd == sys.stdin.fileno():
                line = os.read(fd, 512)
                if not line or b"stop" in line:
                    _stop(proc, grace)
                    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
