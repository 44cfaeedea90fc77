"""`tcpclose serve`: a small concurrent HTTP/1.1 server that drains the right way on SIGTERM.

It is the control for `tcpclose drain` and a lesson in itself: `tcpclose.serve.server` is
documented line by line in docs/serve.md. `--abrupt` shows the wrong way.
"""

from tcpclose.serve.server import ServeOptions, ServeStats, serve

__all__ = ["ServeOptions", "ServeStats", "serve"]
