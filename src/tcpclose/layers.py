"""The package's layers, as data: imports point down only.

A module may import modules of its own package, of the layers below its own, and the shared
base. Packages that share a layer are siblings and do not import each other (a feature never
imports another feature). `tests/test_layers.py` parses every module's imports (type-only ones
too) and fails on any import that points up or sideways; `docs/layers.md` is generated from
these tables (`python -m tcpclose.docs`).

Renderers sit low, just above the facts: they turn facts into words and pictures, and the
feature libraries above them (lab, claims, probe...) choose a renderer. They import only the
model, the facts and the base.
"""

from __future__ import annotations

#: utilities every layer may use: one error hierarchy, exit statuses, small socket helpers
BASE: tuple[str, ...] = (
    "tcpclose",
    "tcpclose.errors",
    "tcpclose.status",
    "tcpclose.addresses",
    "tcpclose.sockopts",
    "tcpclose.outputs",
    "tcpclose.lifeline",
    "tcpclose.argparsing",
    "tcpclose.layers",
)

#: lowest first; each entry is one layer: the packages (tcpclose.<name>) in it
LAYERS: tuple[tuple[str, ...], ...] = (
    ("model",),
    ("classify",),
    ("facts",),
    ("render",),
    ("capture", "lesson"),
    ("lab",),
    ("claims",),
    ("probe", "analyze", "trace", "serve"),
    ("drain",),
    ("commands", "cli", "__main__", "docs"),
)

#: what each layer is for (docs/layers.md)
ROLES: dict[str, str] = {
    "model": "packets, typed events, the timeline",
    "classify": "how a connection ended, from its packets alone (lesson terms, Zeek columns)",
    "facts": "timeline in, RunFacts out, computed once: the only reader of a timeline",
    "render": "facts in, words and pictures out (terminal, Mermaid, SVG/HTML, JSON, pcap)",
    "capture": "packets from the wire (AF_PACKET on lo, tcpdump fallback)",
    "lesson": "the faithful graceserver and graceclient",
    "lab": "runs scenarios as real processes, captures them, judges the runs",
    "claims": "the lesson's claims, judged on lab runs",
    "probe": "a real server's reaction to a half-close",
    "analyze": "how every connection in a capture ended",
    "trace": "a traced program's calls and its packets",
    "drain": "requests lost when a server stops",
    "serve": "a server that drains the right way",
    "commands": "every CLI command: options in, libraries called, a renderer chosen",
    "cli": "main(argv): dispatch, one-line errors, exit statuses",
    "__main__": "python -m tcpclose",
    "docs": "docs generated from the code's tables",
}


def layer_of(module: str) -> int | None:
    """The layer index of a tcpclose module (None for the base)."""
    if module in BASE:
        return None
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    for index, layer in enumerate(LAYERS):
        if name in layer:
            return index
    raise KeyError(f"{module} is in no layer: add its package to tcpclose.layers.LAYERS")


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""
