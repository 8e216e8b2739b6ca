"""Options described by features (shopping): one preference per memory, refusals veto, unknown
features are asked about, a changed taste revises only the memory about that feature."""

from __future__ import annotations

import numpy as np
import pytest

from pahf.decisions import Action, Turn
from pahf.memory.embeddings import MiniLMEncoder
from pahf.memory.schema import HistoryEntry, MemoryRecord, MemorySource, RetrievedMemory
from pahf.reasoners import features
from pahf.reasoners.features import agreement, render
from pahf.reasoners.offline import OfflineReasoner
from pahf.reasoners.phrases import MILD, NEGATIVE, STRONG, Phrase, parse_preferences
from pahf.request import Candidate, Request


@pytest.fixture(scope="module")
def reasoner() -> OfflineReasoner:
    return OfflineReasoner(MiniLMEncoder.shared())


def _lamp(request_id: str = "r1") -> Request:
    return Request(
        request_id=request_id, user_id="u", task="Buy me a desk lamp I would like",
        context="desk lamp", domain="shopping",
        candidates=[
            Candidate(id="A", text="lamp A", attributes=["brass arm", "touch dimmer"]),
            Candidate(id="B", text="lamp B", attributes=["steel arm", "pull chain"]),
            Candidate(id="C", text="lamp C", attributes=["clamp base", "touch dimmer"]),
            Candidate(id="none", text="Do not buy anything"),
        ],
    )


def _memory(text: str, mid: str, at: str = "2026-01-01T00:00:00+00:00",
            supersedes: str | None = None, history: list[HistoryEntry] | None = None,
            confidence: float = 1.0, source: MemorySource = "manual",
            topic: str = "desk lamp: Buy me a desk lamp I would like") -> RetrievedMemory:
    record = MemoryRecord(
        id=mid, user_id="u", text=text, topic=topic, created_at=at, supersedes=supersedes,
        history=history or [], confidence=confidence, source=source,
    )
    return RetrievedMemory(record=record, score=0.9)


def _every_feature_spoken_of() -> list[RetrievedMemory]:
    """Something said about each of the lamps' features: A is the one to buy, no question."""
    return [_memory("I don't want pull chain.", "m-2"), _memory("I like touch dimmer best.", "m-1"),
            _memory("brass arm would be fine.", "m-3"), _memory("I don't want clamp base.", "m-4")]


def test_similar_names_of_different_features_are_not_the_same_feature() -> None:
    # The embedding model puts these two close together; their words tell them apart.
    assert agreement("in-ear design", "on-ear design", 0.93) < features.IDENTITY
    assert agreement("OLED panel", "QD-OLED panel", 0.83) < features.IDENTITY
    assert agreement("Wired Connection", "wired connection", 0.2) == 1.0


@pytest.mark.parametrize("phrase", [Phrase("brass arm", STRONG), Phrase("touch dimmer", MILD),
                                    Phrase("pull chain", NEGATIVE)])
def test_a_rendered_preference_reads_back_as_itself(phrase: Phrase) -> None:
    assert parse_preferences(render(phrase)) == (phrase,)


def test_a_changed_taste_refuses_what_was_liked() -> None:
    said = "My taste has changed: I used to like brass arm, but now I don't want it."
    assert parse_preferences(said) == (Phrase("brass arm", NEGATIVE),)
    assert parse_preferences("I used to love coffee.") == ()
    assert parse_preferences("I did want one: the one with clamp base would work for me.") == (
        Phrase("clamp base", MILD),
    )


def test_an_answer_is_stored_one_preference_per_memory(reasoner: OfflineReasoner) -> None:
    turn = Turn(kind="clarification", text="I won't accept steel arm or pull chain, "
                                           "and I like brass arm best.")
    ops = reasoner.learn(_lamp(), turn, [])
    assert [op.kind for op in ops] == ["add", "add", "add"]
    texts = [op.memory.text for op in ops if op.memory is not None]
    assert [parse_preferences(t) for t in texts] == [
        (Phrase("steel arm", NEGATIVE),), (Phrase("pull chain", NEGATIVE),),
        (Phrase("brass arm", STRONG),),
    ]


def test_a_refusal_vetoes_and_nothing_acceptable_means_buying_nothing(
    reasoner: OfflineReasoner,
) -> None:
    request = _lamp()
    refuse_all = [
        _memory("I don't want touch dimmer.", "m-1"),
        _memory("I don't want pull chain.", "m-2"),
    ]
    assert reasoner.choose(request, refuse_all, []).candidate_id == "none"
    liked = [*refuse_all[1:], _memory("I like touch dimmer best.", "m-1"),
             _memory("brass arm would be fine.", "m-3")]
    action = reasoner.choose(request, liked, [])
    assert action.candidate_id == "A"
    assert action.scores["B"] < 0
    # A favourite does not redeem a refused feature.
    vetoed = [_memory("I like brass arm best.", "m-5"), _memory("I don't want touch dimmer.", "m-6")]
    assert reasoner.choose(request, vetoed, []).candidate_id != "A"


def test_it_asks_about_the_unknown_features_only(reasoner: OfflineReasoner) -> None:
    request = _lamp()
    known = [_memory("I don't want pull chain.", "m-2"), _memory("I like touch dimmer best.", "m-1")]
    assessment = reasoner.assess(request, known, [])
    assert assessment.ambiguous
    assert "brass arm" in assessment.question and "clamp base" in assessment.question
    assert "pull chain" not in assessment.question and "touch dimmer" not in assessment.question
    everything = [*known, _memory("brass arm would be fine.", "m-3"),
                  _memory("I don't want clamp base.", "m-4")]
    assert not reasoner.assess(request, everything, []).ambiguous


def test_options_known_to_be_equally_fine_are_asked_apart(reasoner: OfflineReasoner) -> None:
    # A and C are both fully acceptable and neither has a known favourite: choosing between
    # them is a coin toss, and one of "brass arm" / "clamp base" may be the favourite.
    request = _lamp()
    fine = [_memory("I don't want pull chain.", "m-2"), _memory("touch dimmer would be fine.", "m-1"),
            _memory("brass arm would be fine.", "m-3"), _memory("clamp base would be fine.", "m-4")]
    assessment = reasoner.assess(request, fine, [])
    assert assessment.ambiguous
    assert "brass arm" in assessment.question and "clamp base" in assessment.question
    assert "touch dimmer" not in assessment.question  # both have it: it tells nothing apart
    favourite = [*fine, _memory("I like clamp base best.", "m-5", at="2026-02-01T00:00:00+00:00")]
    assert not reasoner.assess(request, favourite, []).ambiguous
    assert reasoner.choose(request, favourite, []).candidate_id == "C"


def test_what_is_unknown_is_asked_before_what_tells_equals_apart(
    reasoner: OfflineReasoner,
) -> None:
    # A and C are equally fine; B's features are unknown. One question names B's alone: asked
    # about many things at once, a person answers about some (the parity user, one category).
    request = _lamp()
    fine = [_memory("touch dimmer would be fine.", "m-1"), _memory("brass arm would be fine.", "m-3"),
            _memory("clamp base would be fine.", "m-4")]
    assessment = reasoner.assess(request, fine, [])
    assert assessment.ambiguous
    assert "steel arm" in assessment.question and "pull chain" in assessment.question
    assert "brass arm" not in assessment.question and "clamp base" not in assessment.question


def test_after_a_change_of_taste_older_memories_are_asked_about_again(
    reasoner: OfflineReasoner,
) -> None:
    request = _lamp()
    old = _every_feature_spoken_of()
    assert not reasoner.assess(request, old, []).ambiguous
    revised = _memory("I don't want steel arm.", "m-5", at="2026-02-01T00:00:00+00:00",
                      supersedes="m-0")
    assessment = reasoner.assess(request, [*old, revised], [])
    assert assessment.ambiguous and "brass arm" in assessment.question
    # Confirmed since the change: settled again.
    later = [HistoryEntry(at="2026-03-01T00:00:00+00:00", event="reinforced")]
    confirmed = [_memory(m.record.text, m.record.id, history=later) for m in old]
    assert not reasoner.assess(request, [*confirmed, revised], []).ambiguous


def test_a_changed_taste_revises_only_the_memory_about_that_feature(
    reasoner: OfflineReasoner,
) -> None:
    request = _lamp()
    memories = [_memory("I like brass arm best.", "m-1", confidence=3.0),
                _memory("touch dimmer would be fine.", "m-2")]
    action = Action(candidate_id="A", candidate_text="A: brass arm, touch dimmer")
    turn = Turn(kind="correction", action=action,
                text="My taste has changed: I used to like brass arm, but now I don't want it.")
    ops = reasoner.learn(request, turn, memories)
    # Established, but the user says their taste changed: revised, not merely challenged.
    assert [(op.kind, op.target_id) for op in ops] == [("supersede", "m-1")]
    assert ops[0].memory is not None
    assert parse_preferences(ops[0].memory.text) == (Phrase("brass arm", NEGATIVE),)


def test_an_acceptable_action_teaches_its_unknown_features(reasoner: OfflineReasoner) -> None:
    request = _lamp()
    action = Action(candidate_id="C", candidate_text="C: clamp base, touch dimmer")
    turn = Turn(kind="correction", action=action,
                text="That one is okay, but I'd prefer one with brass arm, which I like more.")
    ops = reasoner.learn(request, turn, [_memory("I like touch dimmer best.", "m-1")])
    learned = [parse_preferences(op.memory.text) for op in ops if op.memory is not None]
    assert (Phrase("brass arm", STRONG),) in learned
    assert (Phrase("clamp base", MILD),) in learned
    assert all(p.text != "touch dimmer" for ps in learned for p in ps)


def test_the_one_option_pointed_at_is_one_the_user_would_take(reasoner: OfflineReasoner) -> None:
    # "I'd prefer one with brass arm": only lamp A has it, so the user would take A, and its
    # features nobody spoke about are fine ...
    request = _lamp()
    bought = Action(candidate_id="B", candidate_text="B: steel arm, pull chain")
    turn = Turn(kind="correction", action=bought,
                text="That one is okay, but I'd prefer one with brass arm, which I like more.")
    learned = {p for op in reasoner.learn(request, turn, []) if op.memory is not None
               for p in parse_preferences(op.memory.text)}
    assert learned == {Phrase("brass arm", STRONG), Phrase("touch dimmer", MILD),
                       Phrase("steel arm", MILD), Phrase("pull chain", MILD)}
    # ... also after buying nothing ...
    nothing = Action(candidate_id="none", candidate_text="Do not buy anything")
    turn = Turn(kind="correction", action=nothing,
                text="I did want one: the one with brass arm would work for me.")
    learned = {p for op in reasoner.learn(request, turn, []) if op.memory is not None
               for p in parse_preferences(op.memory.text)}
    assert learned == {Phrase("brass arm", MILD), Phrase("touch dimmer", MILD)}
    # ... but a feature two options have points at neither.
    turn = Turn(kind="correction", action=nothing,
                text="I did want one: the one with touch dimmer would work for me.")
    learned = {p for op in reasoner.learn(request, turn, []) if op.memory is not None
               for p in parse_preferences(op.memory.text)}
    assert learned == {Phrase("touch dimmer", MILD)}


def _vacuum() -> Request:
    return Request(
        request_id="r1", user_id="u", task="Please pick out a vacuum cleaner for me",
        context="vacuum cleaner", domain="shopping",
        candidates=[
            Candidate(id="A", text="vacuum A",
                      attributes=["lightweight stick vac", "sealed HEPA cartridge"]),
            Candidate(id="B", text="vacuum B",
                      attributes=["lightweight stick vac", "bagless cyclone cup"]),
            Candidate(id="none", text="Do not buy anything"),
        ],
    )


def _said(text: str, mid: str, source: MemorySource) -> RetrievedMemory:
    return _memory(text, mid, source=source, topic="vacuum cleaner: pick out a vacuum cleaner")


def test_a_correction_in_the_catalogues_words_leaves_paraphrased_answers_counting(
    reasoner: OfflineReasoner,
) -> None:
    # The answer is in the user's own words; the correction points at an option as it was
    # shown. The user paraphrases, so "bagless dust cup" still names "bagless cyclone cup".
    answer = _said("I like bagless dust cup best.", "m-1", "clarification")
    pointed = _said("lightweight stick vac would be fine.", "m-2", "feedback")
    judgement = reasoner.judge(_vacuum(), [answer, pointed], [])
    liked = {v.candidate.id: v.liked for v in judgement.options}
    assert "bagless cyclone cup" in liked["B"]
    assert reasoner.choose(_vacuum(), [answer, pointed], []).candidate_id == "B"
    # The same words said unprompted show a user who speaks the catalogue's words: only the
    # same words name a feature then ("in-ear design" is not "on-ear design").
    own = _said("lightweight stick vac would be fine.", "m-2", "clarification")
    strict = reasoner.judge(_vacuum(), [answer, own], [])
    assert all("bagless cyclone cup" not in v.liked for v in strict.options)
    # Corrections alone tell nothing about the user's words: they are read word for word.
    corrections = [_said(a.record.text, a.record.id, "feedback") for a in (answer, pointed)]
    only = reasoner.judge(_vacuum(), corrections, [])
    assert all("bagless cyclone cup" not in v.liked for v in only.options)


def test_memories_challenged_since_last_confirmed_are_asked_about_again(
    reasoner: OfflineReasoner,
) -> None:
    request = _lamp()
    known = _every_feature_spoken_of()
    action = reasoner.choose(request, known, [])
    assert action.candidate_id == "A" and not reasoner.assess(request, known, []).ambiguous
    # The action was turned down without a reason: the memories behind it were challenged
    # (nodes.ingest_feedback.doubts). The next request they bear on asks about them again ...
    challenged = [HistoryEntry(at="2026-02-01T00:00:00+00:00", event="challenged")]
    doubted = [_memory(m.record.text, m.record.id, history=challenged)
               if m.record.id in action.memory_ids else m for m in known]
    assessment = reasoner.assess(request, doubted, [])
    assert assessment.ambiguous and "brass arm" in assessment.question
    # ... until they are confirmed again.
    again = [*challenged, HistoryEntry(at="2026-03-01T00:00:00+00:00", event="reinforced")]
    settled = [_memory(m.record.text, m.record.id, history=again) for m in doubted]
    assert not reasoner.assess(request, settled, []).ambiguous


def _own(text: str, mid: str, at: str) -> features.Statement:
    (phrase,) = parse_preferences(text)
    return features.Statement(phrase, mid, 1.0, (0, at, mid))


def test_read_by_meaning_a_statement_names_its_nearest_feature_and_the_nearest_decides() -> None:
    request = Request(
        request_id="r1", user_id="u", task="Find me a desk lamp", context="desk lamp",
        domain="shopping",
        candidates=[Candidate(id="A", text="lamp A", attributes=["halogen bulb"]),
                    Candidate(id="B", text="lamp B", attributes=["fluorescent tube"]),
                    Candidate(id="none", text="Do not buy anything")],
    )
    refused = _own("I don't want bright halogen light.", "m-1", "2026-01-01")
    liked = _own("incandescent bulb would be fine.", "m-2", "2026-01-02")
    # Rows: the features; columns: the statements (cosine similarities, all paraphrases).
    sims = np.array([[0.80, 0.64], [0.30, 0.66]], dtype=np.float32)
    named = features.naming(["halogen bulb", "fluorescent tube"], [refused, liked], sims)
    # "incandescent bulb" is nearest "fluorescent tube": it names that one only.
    assert named[1, 1] >= features.IDENTITY > named[0, 1]
    assert named[0, 0] >= features.IDENTITY > named[1, 0]
    # Both name the halogen bulb when it is the nearest for both; the nearer one decides,
    # even though the other was said later.
    sims = np.array([[0.80, 0.64], [0.30, 0.40]], dtype=np.float32)
    judgement = features.judge(request, [refused, liked], sims)
    lamp = next(v for v in judgement.options if v.candidate.id == "A")
    assert lamp.refused == ["halogen bulb"]


def test_pointing_at_an_option_does_not_make_a_favourite_merely_fine(
    reasoner: OfflineReasoner,
) -> None:
    # "The one with bagless cyclone cup would work for me" is stored as "... would be fine":
    # it says the option will do, not that the user now only tolerates what they like best.
    best = _memory("I like bagless dust cup best.", "m-1", at="2026-01-01T00:00:00+00:00",
                   source="clarification", topic="vacuum cleaner: pick out a vacuum cleaner")
    pointed = _memory("bagless cyclone cup would be fine.", "m-2", source="feedback",
                      at="2026-01-02T00:00:00+00:00",
                      topic="vacuum cleaner: pick out a vacuum cleaner")
    liked = {v.candidate.id: v.liked for v in reasoner.judge(_vacuum(), [best, pointed], []).options}
    assert liked["B"]["bagless cyclone cup"] == STRONG
    # A refusal in between undoes the old favourite: the pointing only says it will do.
    changed = _memory("I don't want bagless dust cup.", "m-3", source="clarification",
                      at="2026-01-01T12:00:00+00:00",
                      topic="vacuum cleaner: pick out a vacuum cleaner")
    judged = reasoner.judge(_vacuum(), [best, changed, pointed], [])
    liked = {v.candidate.id: v.liked for v in judged.options}
    assert liked["B"]["bagless cyclone cup"] == MILD


def test_a_favourite_is_undone_only_by_a_refusal_at_least_as_close() -> None:
    request = Request(
        request_id="r1", user_id="u", task="Find me a desk lamp", context="desk lamp",
        domain="shopping",
        candidates=[Candidate(id="A", text="lamp A", attributes=["halogen bulb"]),
                    Candidate(id="none", text="Do not buy anything")],
    )
    best = _own("I like halogen lamp best.", "m-1", "2026-01-01")
    other = _own("I don't want classic incandescent bulb.", "m-2", "2026-01-02")
    (phrase,) = parse_preferences("halogen bulb would be fine.")
    pointed = features.Statement(phrase, "m-3", 1.0, (0, "2026-01-03", "m-3"), own_words=False)
    said = [best, other, pointed]
    # The incandescent bulb is further from the halogen bulb than the user's halogen lamp:
    # turning it down says nothing about the halogen bulb.
    loose = np.array([[0.80, 0.70, 1.0]], dtype=np.float32)
    (lamp,) = [v for v in features.judge(request, said, loose).options if v.candidate.id == "A"]
    assert lamp.liked == {"halogen bulb": STRONG}
    close = np.array([[0.80, 0.85, 1.0]], dtype=np.float32)
    (lamp,) = [v for v in features.judge(request, said, close).options if v.candidate.id == "A"]
    assert lamp.liked == {"halogen bulb": MILD}
