"""`tcpclose server` and `tcpclose client`: the lesson's programs under tcpclose's conventions.

Errors before the dialogue starts (arguments, address, bind, connect) are one line
`tcpclose: error: ...` with the status of `tcpclose.status` (2 usage, 3 network, 4 permission,
6 address in use). Once connected, the programs are the same as `graceserver`/`graceclient`:
same output, same lines on standard error, same statuses."""

from __future__ import annotations

import argparse

from tcpclose.lesson import client, server
from tcpclose.lesson.common import prepare_standard_streams
from tcpclose.outputs import unguarded_stdout

configure_server = server.add_arguments
configure_client = client.add_arguments


def execute_server(args: argparse.Namespace) -> int:
    prepare_standard_streams(dies_of_sigpipe=False)  # the --sigpipe mode decides
    with unguarded_stdout():  # a full or broken stdout is handled as graceserver handles it
        return server.serve(server.options_from(args), voice="tcpclose")


def execute_client(args: argparse.Namespace) -> int:
    prepare_standard_streams(dies_of_sigpipe=True)  # as graceclient
    with unguarded_stdout():
        return client.connect_and_run(client.options_from(args), voice="tcpclose")
