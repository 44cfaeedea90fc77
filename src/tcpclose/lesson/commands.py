"""`tcpclose server` and `tcpclose client`: the lesson's programs under tcpclose's conventions
(errors are `tcpclose: error: ...`, usage errors exit 2); the programs themselves are the same."""

from __future__ import annotations

import argparse

from tcpclose.lesson import client, server

HELP = "the lesson's programs"

configure_server = server.add_arguments
configure_client = client.add_arguments


def execute_server(args: argparse.Namespace) -> int:
    return server.serve(server.options_from(args))


def execute_client(args: argparse.Namespace) -> int:
    return client.connect_and_run(client.options_from(args))
