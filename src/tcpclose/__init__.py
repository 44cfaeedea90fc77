"""tcpclose: see how TCP connections end, gracefully (half-close) or brutally (close, RST)."""

__version__ = "0.1.0"
