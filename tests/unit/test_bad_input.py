"""Malformed requests and resume values: a clear message naming the problem, nothing stored lost.

Fuzzed with hypothesis over the request schema (missing fields, wrong types, empty or too many
candidates, duplicate ids, oversized strings, unknown fields, bad user ids, non-objects) and over
resume values for both human turns. Each bad request must end its run with an AI message that
names the offending field (not a failed run), leave every user's memory exactly as it was, and
leave the thread usable: the next valid request on the same thread runs normally. (Once, one bad
request was checkpointed and every later call on that thread failed with the first error,
whatever it was sent; then a bad request failed the run.) A malformed resume value is asked
again, as often as it is sent.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.types import Command

from pahf.context import RunContext
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.memory.schema import NewMemory
from pahf.nodes.services import MAX_INVALID_REPLIES
from pahf.reasoners.offline import OfflineReasoner
from pahf.request import MAX_REQUEST_TEXT_CHARS, MAX_USER_ID_CHARS

VALID: dict[str, Any] = {
    "request_id": "r-valid",
    "user_id": "alice",
    "task": "bring me something to read",
    "context": "long train journey",
    "candidates": [
        {"id": "novel", "text": "a thick novel", "attributes": ["thick novel"]},
        {"id": "magazine", "text": "a news magazine", "attributes": ["news magazine"]},
    ],
}
#: Text fields and their length limits (what an oversized value must be refused for).
TEXT_LIMITS = {
    "task": MAX_REQUEST_TEXT_CHARS,
    "context": MAX_REQUEST_TEXT_CHARS,
    "subject": MAX_REQUEST_TEXT_CHARS,
    "request_id": 200,
    "domain": 64,
}


class World:
    """One store (alice and bob already have memories) and one graph over it."""

    def __init__(self) -> None:
        self.store = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
        self.store.add("alice", NewMemory(text="I like green tea", topic="morning drink"))
        self.store.add("bob", NewMemory(text="Bob wants espresso", topic="morning drink"))
        self.graph = build_graph(
            OfflineReasoner(self.store.encoder), self.store, memory_checkpointer()
        )
        self._threads = itertools.count()

    def thread(self) -> dict[str, Any]:
        return {"configurable": {"thread_id": f"t-{next(self._threads)}"}}

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {u: [r.model_dump() for r in self.store.get_all(u)] for u in self.store.users()}

    def start(self, request: Any, cfg: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.graph.invoke({"request": request}, cfg, context=RunContext())
        return out

    def refused(self, request: Any, cfg: dict[str, Any]) -> str:
        """Start ``request``; it must end at once with an AI message: return its text."""
        out = self.start(request, cfg)
        assert "__interrupt__" not in out and out.get("action") is None
        said = out["messages"][-1]
        assert said.type == "ai" and said.content.startswith("Sorry, I cannot start on that")
        assert self.graph.get_state(cfg).next == ()
        return str(said.content)

    def resume(self, value: Any, cfg: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.graph.invoke(Command(resume=value), cfg, context=RunContext())
        return out


WORLD = World()


@pytest.fixture(scope="module", autouse=True)
def _forget_everyone() -> Iterator[None]:
    """Drop this module's users: the in-memory Chroma client is shared by the whole process."""
    yield
    for user in WORLD.store.users():
        WORLD.store.forget(user)


# --------------------------------------------------------------------------- request fuzz

#: Integers stay within 64 bits: LangGraph's checkpoint serializer refuses a larger one in the
#: run's input itself (see test_an_input_the_checkpointer_cannot_store_changes_nothing).
wrong_types = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=2),
)


@st.composite
def bad_requests(draw: st.DrawFn) -> tuple[Any, str]:
    """(a malformed request, a word its error must contain)."""
    req = copy.deepcopy(VALID)
    kind = draw(
        st.sampled_from(
            (
                *("missing", "wrong_type", "empty_candidates", "duplicate_ids", "too_long"),
                *("empty_text", "bad_candidate", "extra_field", "bad_user", "too_many"),
                "not_an_object",
            )
        )
    )
    if kind == "missing":
        key = draw(st.sampled_from(("task", "candidates")))
        del req[key]
        return req, key
    if kind == "wrong_type":
        key = draw(
            st.sampled_from(
                ("task", "context", "subject", "domain", "request_id", "user_id", "candidates")
            )
        )
        req[key] = draw(wrong_types)
        return req, key
    if kind == "empty_candidates":
        req["candidates"] = []
        return req, "candidates"
    if kind == "duplicate_ids":
        req["candidates"][1]["id"] = req["candidates"][0]["id"]
        return req, "unique"
    if kind == "too_long":
        key = draw(st.sampled_from(sorted(TEXT_LIMITS)))
        req[key] = "y" * draw(st.integers(TEXT_LIMITS[key] + 1, TEXT_LIMITS[key] + 3000))
        return req, key
    if kind == "empty_text":
        key = draw(st.sampled_from(("task", "request_id", "domain")))
        req[key] = ""
        return req, key
    if kind == "bad_candidate":
        cand = req["candidates"][0]
        field = draw(st.sampled_from(("id", "text", "attributes", "extra")))
        if field == "extra":
            cand["ground_truth"] = True
            return req, "ground_truth"
        if field == "attributes":
            cand["attributes"] = draw(st.one_of(st.integers(-(2**63), 2**63 - 1), st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1)))
        elif draw(st.booleans()):
            del cand[field]
        else:
            cand[field] = draw(st.one_of(st.just(""), wrong_types, st.just("z" * 5000)))
        return req, f"candidates.0.{field}"
    if kind == "extra_field":
        key = draw(st.sampled_from(("ground_truth", "memories", "user", "preferred")))
        req[key] = draw(st.one_of(st.text(max_size=5), wrong_types))
        return req, key
    if kind == "bad_user":
        req["user_id"] = draw(
            st.sampled_from(("", "   ", "a\x00b", "tab\tuser", "x" * (MAX_USER_ID_CHARS + 1)))
        )
        return req, "user id"
    if kind == "too_many":
        req["candidates"] = [{"id": f"c{i}", "text": f"option {i}"} for i in range(201)]
        return req, "candidates"
    return draw(st.one_of(st.text(max_size=10), st.none(), wrong_types)), "Request"


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(case=bad_requests())
def test_malformed_requests_name_the_problem_and_change_nothing(case: tuple[Any, str]) -> None:
    request, names = case
    before = WORLD.snapshot()
    cfg = WORLD.thread()
    assert names.lower() in WORLD.refused(request, cfg).lower()
    assert WORLD.snapshot() == before
    # The thread is not poisoned: a valid request on it runs (to its first question).
    out = WORLD.start({**VALID, "request_id": f"ok-{cfg['configurable']['thread_id']}"}, cfg)
    assert out["__interrupt__"][0].value["type"] == "question"
    assert WORLD.snapshot() == before


def test_a_refused_request_does_not_replace_a_pending_question_error() -> None:
    """Two different bad requests on one thread each get their own error (the second used to
    repeat the first's, because the first had been checkpointed)."""
    cfg = WORLD.thread()
    assert "task" in WORLD.refused({**VALID, "task": 5}, cfg)
    second = WORLD.refused({**VALID, "candidates": []}, cfg)
    assert "candidates" in second and "task" not in second


def test_inputs_that_are_not_a_request_are_refused() -> None:
    before = WORLD.snapshot()
    cfg = WORLD.thread()
    out = WORLD.graph.invoke({"req": VALID}, cfg, context=RunContext())
    assert "no new request" in out["messages"][-1].content and out.get("action") is None
    # Keys other than "request" are not graph input: they cannot smuggle state in.
    out = WORLD.graph.invoke(
        {"request": {**VALID, "request_id": "smuggle"}, "user_id": "bob", "questions_asked": 9},
        WORLD.thread(),
        context=RunContext(),
    )
    prompt = out["__interrupt__"][0].value
    assert prompt["user_id"] == "alice" and prompt["type"] == "question"
    assert WORLD.snapshot() == before


def test_an_input_the_checkpointer_cannot_store_changes_nothing() -> None:
    """An integer beyond 64 bits in the input cannot be checkpointed: LangGraph's serializer
    refuses it (TypeError) before any node runs; nothing is saved, the thread stays usable."""
    cfg = WORLD.thread()
    before = WORLD.snapshot()
    with pytest.raises(TypeError, match="64-bit"):
        WORLD.start({**VALID, "task": 2**70}, cfg)
    assert WORLD.snapshot() == before
    out = WORLD.start({**VALID, "request_id": "after-huge"}, cfg)
    assert out["__interrupt__"][0].value["type"] == "question"


#: Strings pydantic's lax mode accepts for a boolean or the reasoner choice.
LAX_VALID = {"0", "1", "t", "f", "y", "n", "on", "off", "yes", "no", "true", "false"} | {
    "offline",
    "llm",
}


@settings(max_examples=40, deadline=None)
@given(
    field=st.sampled_from(("use_memory", "pre_action", "question_budget", "top_k", "reasoner")),
    value=st.one_of(
        st.text(min_size=1, max_size=5).filter(lambda s: not s.isdigit()),
        st.integers(101, 10**6),
        st.lists(st.integers(), max_size=1),
    ),
)
def test_malformed_run_context_is_refused(field: str, value: Any) -> None:
    if isinstance(value, str) and value.lower() in LAX_VALID:
        return  # pydantic's lax mode reads these as valid values
    if isinstance(value, int) and field in ("use_memory", "pre_action"):
        return  # 0/1 are booleans in lax mode; larger ints are refused below anyway
    before = WORLD.snapshot()
    with pytest.raises(ValueError, match=field):
        WORLD.graph.invoke({"request": VALID}, WORLD.thread(), context={field: value})
    assert WORLD.snapshot() == before


# --------------------------------------------------------------------------- resume fuzz

#: Integers stay within 64 bits: a larger one is refused by LangGraph's checkpoint serializer
#: before the node sees it (see test_resume_values_the_checkpointer_cannot_store).
ints = st.integers(-(2**63), 2**63 - 1)
bad_answers = st.one_of(
    ints,
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.text(max_size=4), max_size=3),
    st.just(""),
    # (Not ``{}``: LangGraph reads an empty dict as an empty map of interrupt ids, so the
    # question simply stays pending, unchanged.)
    st.dictionaries(st.sampled_from(("user_id", "text", "reply")), st.text(max_size=4), min_size=1),
    st.fixed_dictionaries({"answer": st.one_of(ints, st.just(""), st.none())}),
    st.integers(20_001, 25_000).map(lambda n: "a" * n),
)
bad_feedback = st.one_of(
    ints.filter(lambda i: i not in (0, 1)),
    st.floats(allow_nan=False),
    st.just(False),
    st.lists(st.text(max_size=4), max_size=3),
    st.dictionaries(
        st.sampled_from(("user_id", "text", "pre_action")), st.text(max_size=4), min_size=1
    ),
    st.fixed_dictionaries({"correction": st.one_of(ints, st.lists(st.text(max_size=4)))}),
    st.fixed_dictionaries({"accepted": st.sampled_from(("maybe", "later", 7))}),
    st.integers(20_001, 25_000).map(lambda n: "b" * n),
)


def _request(tag: str) -> dict[str, Any]:
    """A request of a new user (empty memory, so the agent asks)."""
    return {**VALID, "request_id": f"resume-{tag}", "user_id": f"reader-{tag}"}


def others(snapshot: dict[str, Any], user: str) -> dict[str, Any]:
    return {u: v for u, v in snapshot.items() if u != user}


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    answers=st.lists(bad_answers, min_size=1, max_size=MAX_INVALID_REPLIES),
    feedback=st.lists(bad_feedback, min_size=1, max_size=MAX_INVALID_REPLIES),
)
def test_malformed_resume_values_are_asked_again_then_a_valid_one_proceeds(
    answers: list[Any], feedback: list[Any]
) -> None:
    cfg = WORLD.thread()
    tag = cfg["configurable"]["thread_id"]
    user = f"reader-{tag}"
    before = WORLD.snapshot()
    out = WORLD.start(_request(tag), cfg)
    question = out["__interrupt__"][0].value
    for value in answers:
        out = WORLD.resume(value, cfg)
        again = out["__interrupt__"][0].value
        assert again["type"] == "question" and again["question"] == question["question"]
        assert again["error"].startswith("ask_user:")
        assert WORLD.snapshot() == before  # nothing stored from a malformed answer
    out = WORLD.resume("a thick novel, never magazines", cfg)
    prompt = out["__interrupt__"][0].value
    assert prompt["type"] == "feedback" and "error" not in prompt
    after_answer = WORLD.snapshot()
    assert others(after_answer, user) == before  # only this user's memory changed
    assert [r["text"] for r in after_answer[user]] == ["a thick novel, never magazines"]
    for value in feedback:
        out = WORLD.resume(value, cfg)
        again = out["__interrupt__"][0].value
        assert again["type"] == "feedback" and again["action"] == prompt["action"]
        assert again["error"].startswith("ingest_feedback:")
        assert WORLD.snapshot() == after_answer
    out = WORLD.resume("", cfg)
    assert out["feedback"].accepted and "__interrupt__" not in out
    # Accepting may reinforce this user's memory; nothing else changes.
    final = WORLD.snapshot()
    assert others(final, user) == before
    assert [r["text"] for r in final[user]] == ["a thick novel, never magazines"]


@pytest.mark.parametrize("turn", ["question", "feedback"])
def test_persistently_malformed_resume_values_are_asked_again_every_time(turn: str) -> None:
    cfg = WORLD.thread()
    tag = f"persist-{turn}"
    out = WORLD.start(_request(tag), cfg)
    if turn == "feedback":
        out = WORLD.resume("a thick novel", cfg)
    before = WORLD.snapshot()
    node = "ask_user" if turn == "question" else "ingest_feedback"
    assert out["__interrupt__"][0].value["type"] == turn
    for _ in range(MAX_INVALID_REPLIES + 3):  # never a failed run, however often
        out = WORLD.resume(12345, cfg)
        assert out["__interrupt__"][0].value["error"].startswith(f"{node}: resume value")
    assert WORLD.snapshot() == before
    # The thread takes the next request normally.
    out = WORLD.start({**_request(tag), "request_id": f"{tag}-next"}, cfg)
    assert out["__interrupt__"][0].value["type"] == turn


def test_resume_values_the_checkpointer_cannot_store() -> None:
    """An integer beyond 64 bits cannot be checkpointed: LangGraph's serializer refuses it
    (TypeError "Integer exceeds 64-bit range") before the node runs. Nothing is stored, and the
    question stays pending for a valid answer."""
    cfg = WORLD.thread()
    out = WORLD.start(_request("huge-int"), cfg)
    before = WORLD.snapshot()
    with pytest.raises(TypeError, match="64-bit"):
        WORLD.resume(2**70, cfg)
    assert WORLD.snapshot() == before
    assert WORLD.graph.get_state(cfg).next == ("ask_user",)
    out = WORLD.resume("a thick novel", cfg)
    assert out["__interrupt__"][0].value["type"] == "feedback"
