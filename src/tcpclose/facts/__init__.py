"""Run facts: a timeline in, typed facts out, computed once (`RunFacts.of`).

The only place that interprets a timeline: who sent the first FIN and RST, which call of the
sender's made its kernel send each segment, which peer segment an RST answered, which answers
were delivered and lost, which calls failed with which errno, which signals arrived, how each
process ended, and the shared classifier's termination. Lab verdicts, claim judges (and the
probe, trace and drain) read these facts; renderers turn them into words. Facts hold values and
stable identifiers (`Call.call_id`, `Role`, `SegmentKind`), never display text to parse.
"""

from tcpclose.facts.run import (
    CallFact,
    Ending,
    RunFacts,
    SegmentKind,
    SignalFact,
    TerminationFact,
    WireFact,
    segment_kind,
)

__all__ = [
    "CallFact",
    "Ending",
    "RunFacts",
    "SegmentKind",
    "SignalFact",
    "TerminationFact",
    "WireFact",
    "segment_kind",
]
