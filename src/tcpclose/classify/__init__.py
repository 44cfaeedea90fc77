"""The one classifier: how a TCP connection ended, in the lesson's terms, plus Zeek's columns.

Pure functions, no I/O. Used by the lab, the probe and the capture analyser.
"""

from tcpclose.classify.connection import (
    RULES,
    ConnectionTracker,
    ConnectionVerdict,
    Side,
    Termination,
    classify_packets,
)

__all__ = [
    "RULES",
    "ConnectionTracker",
    "ConnectionVerdict",
    "Side",
    "Termination",
    "classify_packets",
]
