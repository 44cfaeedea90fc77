"""The `tcpclose` command: parse, dispatch to one subcommand, report errors in one line.

Each subcommand lives in its own module exposing::

    def configure(parser: Parser) -> None  # add its arguments
    def execute(args: Namespace) -> int    # turn args into typed options, run, return a status

Modules are imported only when their command runs, so `tcpclose --help` stays instant: the
one-line help of each command is in the COMMANDS table below, not in its module.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from tcpclose import __version__
from tcpclose.argparsing import Parser
from tcpclose.errors import TcpcloseError, Terminated, UsageError, sigterm_raises
from tcpclose.outputs import (
    BrokenStdout,
    OutputError,
    guarded_stdout,
    open_missing_standard_fds,
    silence_stdout,
)
from tcpclose.status import ExitStatus, overview_lines

#: command name -> (module, one-line help). The table is the single source of `--help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "server": ("tcpclose.commands.lesson", "the lesson's server (same as graceserver)"),
    "client": ("tcpclose.commands.lesson", "the lesson's client (same as graceclient HOST)"),
    "demo": ("tcpclose.commands.demo", "both lesson experiments, run for real, side by side"),
    "lab": ("tcpclose.commands.lab", "every close scenario, run, captured, drawn and judged"),
    "claims": ("tcpclose.commands.claims", "each claim of the lesson checked on this kernel"),
    "report": ("tcpclose.commands.report", "one self-contained HTML report"),
    "probe": ("tcpclose.commands.probe", "how a server or proxy handles a client's half-close"),
    "analyze": ("tcpclose.commands.analyze", "how every TCP connection in a capture ended"),
    "trace": ("tcpclose.commands.trace", "any program's socket calls and packets, one diagram"),
    "drain": ("tcpclose.commands.drain", "requests lost when a server stops or reloads, and why"),
    "serve": ("tcpclose.commands.serve", "a small HTTP/1.1 server that drains the right way"),
}


def _overview() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return (
        "usage: tcpclose COMMAND [options]\n\n"
        "See how TCP connections end: graceful half-close or brutal close, from real packets.\n\n"
        f"commands:\n{rows}\n\n"
        "`tcpclose COMMAND --help` tells more.\n\n" + overview_lines()
    )


def _dispatch(argv: list[str]) -> int:
    if not argv:  # a usage error: the overview goes to standard error
        sys.stderr.write(_overview())
        return ExitStatus.USAGE
    if argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(_overview())
        return ExitStatus.OK
    if argv[0] == "--version":
        sys.stdout.write(f"tcpclose {__version__}\n")
        return ExitStatus.OK
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise UsageError(f"unknown command {name!r} (try: {', '.join(COMMANDS)})")
    module_name, help_ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise TcpcloseError(f"command {name!r} is not available in this build") from exc
        raise
    parser = Parser(prog=f"tcpclose {name}", description=help_)
    configure = getattr(module, f"configure_{name}", None) or module.configure
    execute = getattr(module, f"execute_{name}", None) or module.execute
    configure(parser)
    return int(execute(parser.parse_args(rest)))


def _report(message: str) -> None:
    """One line on standard error (nothing if standard error itself cannot be written)."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run `tcpclose` with `argv` (without the program name); return the exit status.

    Whatever happens, the user sees at most one line on standard error and a status of
    `ExitStatus`, never a traceback: errors of ours, Ctrl-C, SIGTERM during runs, a standard
    output that is closed, full or whose reader went away (broken pipe: no message, 141)."""
    args = list(sys.argv[1:] if argv is None else argv)
    closed = open_missing_standard_fds()
    try:
        if 1 in closed:
            raise OutputError("cannot write standard output: it is closed")
        with sigterm_raises(), guarded_stdout():
            return _dispatch(args)
    except SystemExit as exc:  # argparse's --help and --version end with exit(0)
        if isinstance(exc.__context__, BrokenPipeError):  # rich's on_broken_pipe() exits 1
            silence_stdout()
            return int(ExitStatus.BROKEN_PIPE)
        return exc.code if isinstance(exc.code, int) else ExitStatus.USAGE
    except TcpcloseError as exc:
        _report(f"tcpclose: error: {exc.message}")
        return int(exc.status)
    except KeyboardInterrupt:
        _report("tcpclose: interrupted")
        return int(ExitStatus.INTERRUPTED)
    except Terminated:
        _report("tcpclose: terminated")
        return int(ExitStatus.TERMINATED)
    except (BrokenStdout, BrokenPipeError):
        # The reader of our output (`| head`) stopped reading: say nothing, as a program
        # killed by SIGPIPE would, and exit with the status such a program has.
        silence_stdout()
        return int(ExitStatus.BROKEN_PIPE)
    except UnicodeEncodeError as exc:
        # An argument holds bytes that are not UTF-8 (argv decoded with surrogateescape)
        # and a command needed it as text.
        bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else ""
        shown = bad.encode("utf-8", "surrogateescape") if bad else b""
        _report(
            f"tcpclose: error: an argument holds bytes that are not UTF-8 ({shown!r}); "
            "give it as UTF-8 text"
        )
        return int(ExitStatus.USAGE)
    except Exception as exc:  # a bug of ours: one line, the traceback kept in a file
        if os.environ.get("TCPCLOSE_TRACEBACK"):
            raise
        where = _save_traceback(exc)
        _report(
            f"tcpclose: internal error: {type(exc).__name__}: {exc} (a bug: please report it"
            + (f" with {where})" if where else "; TCPCLOSE_TRACEBACK=1 shows the traceback)")
        )
        return int(ExitStatus.FAILURE)


def _save_traceback(exc: Exception) -> str | None:
    """The traceback in a new file of the temp directory (its path), or None if it cannot be
    written there either."""
    try:
        import tempfile  # only here: with traceback, they cost every command's start ~12 ms
        import traceback

        fd, path = tempfile.mkstemp(prefix="tcpclose-traceback-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
            f.write("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return path


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
