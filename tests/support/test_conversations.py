"""Every canned conversation produces the facts and verdicts its table row says."""

from __future__ import annotations

import pytest

from support.conversations import CONVERSATIONS, Conversation, Mark
from tcpclose.classify import classify_packets
from tcpclose.facts import RunFacts, WireFact
from tcpclose.lab.scenarios import BY_NAME
from tcpclose.lab.verdicts import verdict_of
from tcpclose.model.timeline import Role
from tcpclose.render.labels import cause_label, wire_label


def as_mark(facts: RunFacts, wire: WireFact | None) -> Mark | None:
    if wire is None:
        return None
    answered = facts.segment(wire.in_reply_to)
    return Mark(wire.by.value, wire.cause_id, answered.data if answered else None)


@pytest.mark.parametrize("conv", CONVERSATIONS.values(), ids=list(CONVERSATIONS))
def test_facts(conv: Conversation) -> None:
    facts = RunFacts.of(conv.timeline())
    want = conv.expected
    assert facts.invalid == ()
    assert as_mark(facts, facts.first_fin) == want.first_fin
    assert as_mark(facts, facts.first_rst) == want.first_rst
    assert tuple(r.value for r in facts.fins) == want.fins
    assert tuple(r.value for r in facts.rsts) == want.rsts
    assert facts.answers_delivered == want.delivered
    assert facts.answers_lost == want.lost
    errors = {r.value: tuple(c.errno for c in facts.errors(r)) for r in Role}
    assert {k: v for k, v in errors.items() if v} == want.errors
    assert facts.termination is not None and facts.termination.termination == want.termination


@pytest.mark.parametrize("conv", CONVERSATIONS.values(), ids=list(CONVERSATIONS))
def test_the_classifier_agrees(conv: Conversation) -> None:
    assert str(classify_packets(conv.packets).termination) == conv.expected.termination


@pytest.mark.parametrize("conv", CONVERSATIONS.values(), ids=list(CONVERSATIONS))
def test_the_lab_verdict_names_the_same_marks(conv: Conversation) -> None:
    facts = RunFacts.of(conv.timeline())
    verdict = verdict_of(BY_NAME["close"], facts)
    for mark, wire in ((verdict.first_fin, facts.first_fin), (verdict.first_rst, facts.first_rst)):
        if wire is None:
            assert mark is None
            continue
        assert mark is not None and mark.after_id == wire.cause_id
        assert mark.after == cause_label(wire.cause)
        answered = facts.segment(wire.in_reply_to)
        assert mark.in_reply_to == (wire_label(answered) if answered else None)


def test_a_time_window_would_have_guessed_wrong() -> None:
    """close-late's FIN left 2 ms after Hi, data1 arrived, inside any plausible window; the
    close() stamps say it came from close() and answered nothing."""
    facts = RunFacts.of(CONVERSATIONS["close-late"].timeline())
    fin = facts.first_fin
    assert fin is not None and fin.in_reply_to is None and fin.cause_id == "close"
    previous = facts.segments[fin.index - 2]
    assert previous.data == "Hi, data1" and fin.t - previous.t < 0.005
