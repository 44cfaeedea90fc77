"""Child programs that end with the tcpclose process that started them, and never import code
from the working directory.

`tcpclose lab` (and demo, claims, report) starts each program as

    python -P -m tcpclose.lifeline MODULE ARGS...      (cwd: the run's private temp directory)

`-P` keeps the working directory off `sys.path`, so a `tcpclose/` package lying in the
directory root runs tcpclose from is never imported; the child's own working directory is the
run's temp directory besides.

A tcpclose killed by SIGKILL cannot end its children, so each child asks the kernel itself:
at start-up `hold()` calls prctl(PR_SET_PDEATHSIG, SIGTERM), so the kernel sends SIGTERM when
the thread that started it dies, then checks that getppid() is still the pid the parent wrote
into TCPCLOSE_PARENT_PID (if the parent died before prctl, the signal would never come: the
child ends at once). Its SIGTERM handler SIGKILLs the child's whole process group, which ends
an actor's forked children too (each child runs in a session of its own). preexec_fn would run
prctl between fork and exec, which is unsafe in a process with threads; this does not need it.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys
from pathlib import Path
from types import FrameType

import tcpclose

#: the variable holding the pid of the tcpclose process that started the child
PARENT_ENV = "TCPCLOSE_PARENT_PID"
#: the directory holding the `tcpclose` package, for children started with `python -P -m`
PACKAGE_ROOT = str(Path(tcpclose.__file__).resolve().parent.parent)
_PR_SET_PDEATHSIG = 1  #: from <linux/prctl.h>


def child_argv(module: str, args: list[str]) -> list[str]:
    """The command line that runs `python -m MODULE ARGS` held by a lifeline."""
    return [sys.executable, "-P", "-m", "tcpclose.lifeline", module, *args]


def child_env() -> dict[str, str]:
    """This process's environment plus the package's location and the parent's pid."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env[PARENT_ENV] = str(os.getpid())
    return env


def _end_process_group(signum: int, frame: FrameType | None) -> None:
    """The parent is gone: SIGKILL this process's group (itself and what it forked)."""
    os.killpg(os.getpgrp(), signal.SIGKILL)


def hold() -> None:
    """Ask for SIGTERM when the parent dies; end now if it already has. Does nothing unless
    TCPCLOSE_PARENT_PID is set (a program run by hand has no lifeline)."""
    expected = os.environ.pop(PARENT_ENV, "")
    if not expected.isdigit():
        return
    signal.signal(signal.SIGTERM, _end_process_group)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), "prctl")
    if os.getppid() != int(expected):  # the parent died before prctl: no signal will come
        _end_process_group(signal.SIGTERM, None)


def main() -> None:
    """`python -P -m tcpclose.lifeline MODULE ARGS`: hold(), then run MODULE as __main__."""
    if len(sys.argv) < 2:
        sys.exit("usage: python -P -m tcpclose.lifeline MODULE [ARGS...]")
    hold()
    module = sys.argv[1]
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
