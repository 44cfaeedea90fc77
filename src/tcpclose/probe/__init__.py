"""`tcpclose probe HOST:PORT`: how a real server or proxy reacts to a client's half-close.

Layout (sans-IO where it can be):

  target.py     HOST:PORT text -> Target; name resolution with a bounded wait
  presets.py    request presets and `--send` escapes (pure)
  facts.py      what one run observed: socket-level facts, packet-level facts (pure data)
  verdict.py    facts -> Verdict -> exit class (pure functions, the documented tables)
  sockets.py    the probe itself: connect, send, shutdown/close/abort, read (the syscalls)
  report.py     results -> text and JSON (pure)

The `tcpclose probe` command (options, capture, repeat, output, exit status) is
tcpclose.commands.probe.
"""
