"""Request/response types reject bad input with messages that name the problem."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pahf.context import RunContext
from pahf.eval.methods import context_for_method
from pahf.human import FeedbackReply, parse_clarification, parse_feedback
from pahf.memory.schema import MemoryOp, NewMemory, memory_id_for
from pahf.request import Request, validate_user_id


def _request(**kw: object) -> Request:
    base: dict[str, object] = {
        "task": "bring me a drink",
        "candidates": [{"id": "a", "text": "tea"}, {"id": "b", "text": "coffee"}],
    }
    base.update(kw)
    return Request.model_validate(base)


def test_request_requires_candidates_and_unique_ids() -> None:
    with pytest.raises(ValidationError, match="candidates"):
        _request(candidates=[])
    with pytest.raises(ValidationError, match="repeated"):
        _request(candidates=[{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    ids = ["a", "b", "a", "c", "b", "a"]
    with pytest.raises(ValidationError, match=r"repeated: \['a', 'b'\]"):
        _request(candidates=[{"id": i, "text": f"option {n}"} for n, i in enumerate(ids)])
    with pytest.raises(ValidationError, match="extra"):
        _request(gt="a")  # ground-truth style fields cannot sneak into a request


def test_request_topic_and_situation() -> None:
    req = _request(context="Dehydrated")
    assert req.topic() == req.situation() == "Dehydrated: bring me a drink"
    assert _request().topic() == "bring me a drink"
    with pytest.raises(KeyError, match="no candidate"):
        req.candidate("zzz")


@pytest.mark.parametrize("bad", ["", "   ", "x" * 300, "a\x00b", 5])
def test_bad_user_ids_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        validate_user_id(bad)


@pytest.mark.parametrize("bad", ["\u202ealice", "al\u200bice", "bob\u2066", "\ufeffcarol"])
def test_user_ids_with_format_characters_are_refused(bad: str) -> None:
    """Bidirectional overrides and zero-width characters make two ids print alike."""
    with pytest.raises(ValueError, match="format characters"):
        validate_user_id(bad)


@pytest.mark.parametrize("ok", ["alice", "Ünïcødé 用户", "a/b\\c", "$where", "{'$ne': 1}", "x'\"y"])
def test_unusual_but_printable_user_ids_are_accepted(ok: str) -> None:
    assert validate_user_id(ok) == ok


def test_resume_value_parsing() -> None:
    assert parse_clarification("tea please").answer == "tea please"
    assert parse_clarification({"answer": "tea"}).answer == "tea"
    with pytest.raises(ValueError, match="ask_user"):
        parse_clarification(42)
    with pytest.raises(ValueError, match="ask_user"):
        parse_clarification({"answer": ""})
    assert parse_feedback("").accepted
    assert parse_feedback(True).accepted
    assert parse_feedback({"accepted": True}).accepted
    fb = parse_feedback("no, tea")
    assert not fb.accepted and fb.correction == "no, tea"
    # A typed reply that only approves is an acceptance, not a preference to store.
    for praise in ("Perfect, thanks!", "Yes, that's exactly what I wanted.", "Great job"):
        assert parse_feedback(praise) == FeedbackReply(accepted=True)
    for correction in ("Not that one.", "Yes, but colder.", "The green one is fine.", "What?"):
        assert parse_feedback(correction).correction == correction
    assert FeedbackReply(correction="   ").accepted
    with pytest.raises(ValueError, match="ingest_feedback"):
        parse_feedback(3.5)
    with pytest.raises(ValueError, match="ingest_feedback"):
        parse_feedback({"correction": 7})


def test_memory_text_is_bounded_and_ops_are_consistent() -> None:
    assert len(NewMemory(text="x" * 10_000).text) == 2000
    with pytest.raises(ValidationError):
        NewMemory(text="   ")
    with pytest.raises(ValidationError, match="needs a memory"):
        MemoryOp(kind="add")
    with pytest.raises(ValidationError, match="target_id"):
        MemoryOp(kind="supersede", memory=NewMemory(text="x"))


def test_methods_are_configurations() -> None:
    assert context_for_method("no-memory").use_memory is False
    assert context_for_method("pre-only").post_action is False
    assert context_for_method("post-only").pre_action is False
    pahf = context_for_method("pahf", top_k=3)
    assert pahf.pre_action and pahf.post_action and pahf.top_k == 3
    with pytest.raises(ValueError, match="unknown method"):
        context_for_method("magic")
    with pytest.raises(ValidationError):
        RunContext(question_budget=-1)


def test_memory_ids_are_deterministic_and_distinct() -> None:
    a = memory_id_for("u", "r", "feedback", 0)
    assert a == memory_id_for("u", "r", "feedback", 0)
    assert a != memory_id_for("v", "r", "feedback", 0)
    assert a != memory_id_for("u", "r", "feedback", 1)
