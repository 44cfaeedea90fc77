"""The command layer: every tcpclose command, above the libraries (imports point down only)."""
