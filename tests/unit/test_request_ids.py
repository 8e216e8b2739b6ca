"""Request ids chosen by a client cannot drop or misattribute an answer, and a resume sent twice
is not taken for the next turn's reply."""

from __future__ import annotations

from typing import Any

from langgraph.types import Command

from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.reasoners.offline import OfflineReasoner


def _request(context: str) -> dict[str, Any]:
    return {
        "user_id": "ana",
        "request_id": "r-1",  # the client reuses this id for every request
        "task": "bring me a drink",
        "context": context,
        "candidates": [
            {"id": "tea", "text": "green tea"},
            {"id": "coffee", "text": "black coffee"},
            {"id": "juice", "text": "orange juice"},
        ],
    }


def _graph(memory: ChromaPreferenceMemory) -> Any:
    return build_graph(OfflineReasoner(memory.encoder), memory, memory_checkpointer())


def _answered(graph: Any, thread: str, context: str, answer: str) -> dict[str, Any]:
    cfg = {"configurable": {"thread_id": thread}}
    out = graph.invoke({"request": _request(context)}, cfg)
    assert out["__interrupt__"][0].value["type"] == "question", out
    out = graph.invoke(Command(resume=answer), cfg)
    assert out["__interrupt__"][0].value["type"] == "feedback"
    result: dict[str, Any] = graph.invoke(Command(resume=""), cfg)
    return result


def test_a_reused_request_id_still_stores_each_answer(
    hashing_memory: ChromaPreferenceMemory,
) -> None:
    """The second answer used to be dropped: its id (user, request, turn) was already used, the
    add was a no-op, and memory_ops reported an add with the *first* answer's text."""
    graph = _graph(hashing_memory)
    first = _answered(graph, "t-1", "cold winter morning", "On cold mornings I want green tea")
    second = _answered(graph, "t-2", "hot summer afternoon", "When it is hot I want orange juice")
    assert [op.text for op in first["memory_ops"]] == ["On cold mornings I want green tea"]
    assert [op.text for op in second["memory_ops"]] == ["When it is hot I want orange juice"]
    stored = {r.text for r in hashing_memory.get_all("ana")}
    assert stored == {"On cold mornings I want green tea", "When it is hot I want orange juice"}


def test_a_reused_request_id_on_the_same_thread_starts_afresh(
    hashing_memory: ChromaPreferenceMemory,
) -> None:
    """On one thread the second request inherited the first one's question count (so it could
    not ask) and its memory_ops."""
    graph = _graph(hashing_memory)
    _answered(graph, "t", "cold winter morning", "On cold mornings I want green tea")
    again = _answered(graph, "t", "hot summer afternoon", "When it is hot I want orange juice")
    assert [op.text for op in again["memory_ops"]] == ["When it is hot I want orange juice"]
    assert len(again["clarifications"]) == 1


def test_a_resume_sent_twice_is_not_the_next_turns_reply(
    hashing_memory: ChromaPreferenceMemory,
) -> None:
    """A double-submitted answer was applied to the feedback prompt as a correction. Resumed by
    interrupt id (as `pahf run` does), the second copy names an interrupt that is no longer
    pending, and the feedback prompt stays open for its own reply."""
    graph = _graph(hashing_memory)
    cfg = {"configurable": {"thread_id": "t"}}
    out = graph.invoke({"request": _request("cold winter morning")}, cfg)
    question = out["__interrupt__"][0]
    answer = {question.id: "On cold mornings I want black coffee"}
    out = graph.invoke(Command(resume=answer), cfg)
    feedback = out["__interrupt__"][0]
    assert feedback.value["type"] == "feedback" and feedback.id != question.id
    out = graph.invoke(Command(resume=answer), cfg)  # the same answer, submitted again
    assert out["__interrupt__"][0].id == feedback.id  # still waiting for the feedback
    assert [op.kind for op in out["memory_ops"]] == ["add"]
    done = graph.invoke(Command(resume={feedback.id: ""}), cfg)  # "" accepts (null is re-asked)
    assert done["feedback"].accepted
    assert [r.text for r in hashing_memory.get_all("ana")] == [
        "On cold mornings I want black coffee"
    ]


def test_established_takes_a_confirmation_in_a_later_request(
    hashing_memory: ChromaPreferenceMemory,
) -> None:
    """One answer plus the accepted action it led to made a memory "established" (confidence
    2), so the next correction only challenged it; docs/reliability.md says established means
    the person *keeps* accepting."""
    graph = _graph(hashing_memory)
    first = _answered(graph, "t-1", "cold winter morning", "On cold mornings I want green tea")
    assert [op.kind for op in first["memory_ops"]] == ["add"]
    [learned] = hashing_memory.get_all("ana")
    assert learned.confidence == 1.0
    later = {**_request("cold winter morning"), "request_id": "r-2"}
    cfg = {"configurable": {"thread_id": "t-2"}}
    out = graph.invoke({"request": later}, cfg)
    assert out["__interrupt__"][0].value["type"] == "feedback"  # no question: it has learned
    out = graph.invoke(Command(resume=""), cfg)
    assert [op.kind for op in out["memory_ops"]] == ["reinforce"]
    assert hashing_memory.get("ana", learned.id).confidence == 2.0
