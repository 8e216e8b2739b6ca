"""Noisy feedback: one contradicting signal does not overturn an established preference, a
genuine change of mind is still followed at once.

Mechanism under test: accepting an action reinforces the memories that led to it (so what the
person keeps accepting becomes established); a correction against an established memory that
does not itself point at another option (a remark about some other situation, the typical
noise) only *challenges* it; a second such correction in a row, a correction that does point
at another option, or a direct answer to a question revise it at once.
"""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.types import Command

from pahf.context import RunContext
from pahf.decisions import Action, Turn
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import MiniLMEmbeddingFunction
from pahf.memory.schema import (
    CONFIDENCE_CEILING,
    HistoryEntry,
    MemoryRecord,
    NewMemory,
    RetrievedMemory,
)
from pahf.reasoners.offline import OfflineReasoner
from pahf.request import Request

TEA = "In the morning I want green tea, not coffee."
# An off-topic remark that names no situation of its own: nothing tells it from a change of mind
# but its not pointing at another option.
OFF_TOPIC = "That's not what I wanted. I want ice-cold water."
# The same remark stated for another situation: a preference of that situation.
OTHER_SITUATION = "That's not what I wanted. When I'm dehydrated, I want ice-cold water."
GENUINE_CHANGE = "Not that one: my preference has changed. In the morning I want black coffee now."
REQUEST = Request(
    request_id="r-1",
    user_id="ana",
    task="make me a drink",
    context="Morning",
    candidates=[
        {"id": "tea", "text": "green tea"},
        {"id": "coffee", "text": "black coffee"},
    ],
)


@pytest.fixture(scope="module")
def reasoner() -> OfflineReasoner:
    return OfflineReasoner(MiniLMEmbeddingFunction().encoder)


def memory(reasoner: OfflineReasoner, confidence: float, last: str = "reinforced") -> RetrievedMemory:
    """The tea preference as the reasoner itself would store it, with a given standing."""
    [op] = reasoner.learn(REQUEST, Turn(kind="clarification", text=TEA), [])
    assert op.kind == "add" and op.memory is not None
    history = [HistoryEntry(at="t0", event="created"), HistoryEntry(at="t1", event=last)]
    record = MemoryRecord(
        id="m-tea",
        user_id="ana",
        text=op.memory.text,
        topic=op.memory.topic,
        confidence=confidence,
        created_at="t0",
        history=history,
    )
    return RetrievedMemory(record=record, score=1.0)


def correction(text: str) -> Turn:
    return Turn(kind="correction", text=text, action=Action(candidate_id="tea", candidate_text="tea"))


def test_the_memory_behind_an_action_is_named(reasoner: OfflineReasoner) -> None:
    action = reasoner.choose(REQUEST, [memory(reasoner, 1.0)], [])
    assert action.candidate_id == "tea" and action.memory_ids == ["m-tea"]


def test_one_off_topic_correction_only_challenges_an_established_memory(
    reasoner: OfflineReasoner,
) -> None:
    [op] = reasoner.learn(REQUEST, correction(OFF_TOPIC), [memory(reasoner, 2.0)])
    assert op.kind == "challenge" and op.target_id == "m-tea"


def test_a_remark_stated_for_another_situation_is_its_own_preference(
    reasoner: OfflineReasoner,
) -> None:
    for standing in ((2.0, "reinforced"), (1.0, "challenged"), (1.0, "created")):
        [op] = reasoner.learn(REQUEST, correction(OTHER_SITUATION), [memory(reasoner, *standing)])
        assert op.kind == "add" and op.memory is not None
        assert op.memory.text == "When I'm dehydrated, I want ice-cold water."


def test_a_second_contradiction_in_a_row_revises_it(reasoner: OfflineReasoner) -> None:
    [op] = reasoner.learn(REQUEST, correction(OFF_TOPIC), [memory(reasoner, 1.0, "challenged")])
    assert op.kind == "supersede" and op.target_id == "m-tea"


def test_a_correction_pointing_at_another_option_revises_at_once(
    reasoner: OfflineReasoner,
) -> None:
    [op] = reasoner.learn(REQUEST, correction(GENUINE_CHANGE), [memory(reasoner, 5.0)])
    assert op.kind == "supersede" and op.memory is not None and "black coffee" in op.memory.text


def test_an_answer_to_a_question_revises_at_once(reasoner: OfflineReasoner) -> None:
    answer = Turn(kind="clarification", text="In the morning I want black coffee, not tea.")
    [op] = reasoner.learn(REQUEST, answer, [memory(reasoner, 5.0)])
    assert op.kind == "supersede"


def test_a_new_memory_is_not_established(reasoner: OfflineReasoner) -> None:
    [op] = reasoner.learn(REQUEST, correction(OFF_TOPIC), [memory(reasoner, 1.0, "created")])
    assert op.kind == "supersede"


# --------------------------------------------------------------------------- through the graph


def teach(graph: Any, n: int, answer: str) -> dict[str, Any]:
    """Episode ``n``: answer the question with ``answer``; return the feedback prompt."""
    cfg: Any = {"configurable": {"thread_id": f"ep-{n}"}}
    req = {**REQUEST.model_dump(), "request_id": f"r-{n}"}
    out = graph.invoke({"request": req}, cfg, context=RunContext())
    if out["__interrupt__"][0].value["type"] == "question":
        out = graph.invoke(Command(resume=answer), cfg, context=RunContext())
    prompt: dict[str, Any] = out["__interrupt__"][0].value
    return prompt


def finish(graph: Any, n: int, feedback: str) -> dict[str, Any]:
    cfg: Any = {"configurable": {"thread_id": f"ep-{n}"}}
    out: dict[str, Any] = graph.invoke(Command(resume=feedback), cfg, context=RunContext())
    return out


def test_accepting_reinforces_the_memories_behind_the_action_once(
    minilm_memory: ChromaPreferenceMemory,
) -> None:
    store = minilm_memory
    bob = store.add("bob", NewMemory(text="Bob wants coffee in the morning", topic="Morning"))
    graph = build_graph(OfflineReasoner(store.encoder), store, memory_checkpointer())
    prompt = teach(graph, 0, TEA)
    [tea] = store.get_all("ana")
    assert prompt["type"] == "feedback" and prompt["action"]["candidate_id"] == "tea"
    assert prompt["action"]["memory_ids"] == [tea.id]
    out = finish(graph, 0, "")
    # Accepting the action the answer of this same request led to is no confirmation yet.
    assert [op.kind for op in out["memory_ops"]] == ["add"]
    assert store.get("ana", tea.id).confidence == 1.0
    teach(graph, 1, TEA)
    out = finish(graph, 1, "")  # a later request, accepted: confirmed
    assert [(op.kind, op.memory_id) for op in out["memory_ops"]] == [("reinforce", tea.id)]
    assert store.get("ana", tea.id).confidence == 2.0
    assert store.get("bob", bob.id).confidence == 1.0
    # The same signal applied again (a node re-run) does not count twice.
    finish(graph, 1, "")
    assert store.get("ana", tea.id).confidence == 2.0


def test_confirmations_stop_at_the_confidence_ceiling(
    minilm_memory: ChromaPreferenceMemory,
) -> None:
    """Accepted again and again, a memory climbs to the ceiling and then stops being written:
    a preference in daily use does not grow its history, or cost a write, per accepted action.
    A challenge takes it below the ceiling, and the next acceptance confirms it again."""
    store = minilm_memory
    graph = build_graph(OfflineReasoner(store.encoder), store, memory_checkpointer())
    kinds = []
    for n in range(6):
        teach(graph, n, TEA)
        kinds.append([op.kind for op in finish(graph, n, "")["memory_ops"]])
    [tea] = store.get_all("ana")
    assert tea.confidence == CONFIDENCE_CEILING == 2.0
    assert kinds[0] == ["add"]  # learned (its own request's accept is no confirmation)
    assert kinds[1] == ["reinforce"]  # confirmed by a later request: established
    assert kinds[2:] == [[]] * 4  # at the ceiling: nothing written
    events = [h.event for h in tea.history]
    assert events.count("reinforced") == int(CONFIDENCE_CEILING - 1.0)
    store.challenge("ana", tea.id, detail="off-topic remark")
    teach(graph, 6, TEA)
    assert [op.kind for op in finish(graph, 6, "")["memory_ops"]] == ["reinforce"]
    assert store.get("ana", tea.id).confidence == CONFIDENCE_CEILING


def test_noise_then_honest_feedback_keeps_the_preference(
    minilm_memory: ChromaPreferenceMemory,
) -> None:
    """Learned and accepted, corrected once off-topic, accepted again: tea is still the choice
    and the memory was never replaced; a genuine change is then followed at the first
    correction."""
    store = minilm_memory
    graph = build_graph(OfflineReasoner(store.encoder), store, memory_checkpointer())

    def episode(n: int, feedback: str) -> str:
        action: str = teach(graph, n, TEA)["action"]["candidate_id"]
        finish(graph, n, feedback)
        return action

    assert [episode(n, "") for n in range(2)] == ["tea", "tea"]
    [tea] = store.get_all("ana")
    assert episode(2, OFF_TOPIC) == "tea"  # the noisy correction
    assert store.get("ana", tea.id).status == "active"
    assert episode(3, "") == "tea"
    assert episode(4, GENUINE_CHANGE) == "tea"  # the person really changed their mind
    assert store.get("ana", tea.id).status == "superseded"
    assert episode(5, "") == "coffee"


class _Learning(OfflineReasoner):
    """The offline reasoner, counting the corrections it is asked to learn from."""

    corrections = 0

    def learn(self, request: Request, turn: Turn, memories: Any) -> Any:
        if turn.kind == "correction":
            type(self).corrections += 1
        return super().learn(request, turn, memories)


def test_an_action_turned_down_without_a_reason_challenges_its_memories(
    minilm_memory: ChromaPreferenceMemory,
) -> None:
    """A bare "Not that one." teaches nothing, so no reasoner is asked to learn from it; the
    memories behind the action are challenged and the next request asks instead of repeating
    the action."""
    store = minilm_memory
    graph = build_graph(_Learning(store.encoder), store, memory_checkpointer())
    teach(graph, 0, TEA)
    finish(graph, 0, "")
    [tea] = store.get_all("ana")
    prompt = teach(graph, 1, TEA)
    assert prompt["type"] == "feedback" and prompt["action"]["memory_ids"] == [tea.id]
    out = finish(graph, 1, "Not that one.")
    assert [(op.kind, op.memory_id) for op in out["memory_ops"]] == [("challenge", tea.id)]
    assert _Learning.corrections == 0
    assert f'no longer sure of: "{tea.text}"' in out["messages"][-1].content
    assert store.get("ana", tea.id).confidence == 0.0
    assert [r.id for r in store.get_all("ana")] == [tea.id]  # nothing stored
    cfg: Any = {"configurable": {"thread_id": "ep-2"}}
    out = graph.invoke({"request": {**REQUEST.model_dump(), "request_id": "r-2"}}, cfg,
                       context=RunContext())
    assert out["__interrupt__"][0].value["type"] == "question"
