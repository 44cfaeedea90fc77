"""The `tcpclose` command: parse, dispatch to one subcommand, report errors in one line.

Each subcommand lives in its own module exposing::

    def configure(parser: Parser) -> None  # add its arguments
    def execute(args: Namespace) -> int    # turn args into typed options, run, return a status

Modules are imported only when their command runs, so `tcpclose --help` stays instant: the
one-line help of each command is in the COMMANDS table below, not in its module.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from tcpclose import __version__
from tcpclose.argparsing import Parser
from tcpclose.errors import TcpcloseError, UsageError
from tcpclose.status import ExitStatus

#: command name -> (module, one-line help). The table is the single source of `--help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "server": ("tcpclose.lesson.commands", "the lesson's server (same as graceserver)"),
    "client": ("tcpclose.lesson.commands", "the lesson's client (same as graceclient HOST)"),
    "demo": ("tcpclose.lab.demo", "both lesson experiments, run for real, side by side"),
    "lab": ("tcpclose.lab.command", "every close scenario, run, captured, drawn and judged"),
    "claims": ("tcpclose.claims.command", "each claim of the lesson checked on this kernel"),
    "report": ("tcpclose.render.report_command", "one self-contained HTML report"),
    "probe": ("tcpclose.probe.command", "how a server or proxy handles a client's half-close"),
    "analyze": ("tcpclose.analyze.command", "how every TCP connection in a capture ended"),
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
        "`tcpclose COMMAND --help` tells more. Exit statuses: 0 ok, 1 failure, 2 usage, "
        "3 network, 4 permission, 5 file (unreadable, not a capture, unwritable), "
        "6 address in use, 130 interrupted.\n"
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run `tcpclose` with `argv` (without the program name); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(args)
    except SystemExit as exc:  # argparse's --help and --version end with exit(0)
        return exc.code if isinstance(exc.code, int) else ExitStatus.USAGE
    except TcpcloseError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"tcpclose: error: {exc.message}\n")
        return int(exc.status)
    except KeyboardInterrupt:
        sys.stderr.write("tcpclose: interrupted\n")
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        # Output piped into `head` or similar that stopped reading: not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(ExitStatus.OK)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
