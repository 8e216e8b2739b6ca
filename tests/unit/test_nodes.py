"""Each node on its own: what it reads, what it calls, what it writes."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from pydantic import BaseModel

from pahf.context import RunContext
from pahf.decisions import Action, Assessment, Turn
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.schema import MemoryOp, NewMemory, RetrievedMemory
from pahf.nodes import (
    Services,
    make_act,
    make_ambiguity_detect,
    make_ask_user,
    make_ingest_feedback,
    make_retrieve_memory,
    route_after_action,
    route_after_assessment,
)
from pahf.nodes.services import MAX_INVALID_REPLIES
from pahf.request import Request
from pahf.state import PahfState


class ScriptedReasoner:
    """A reasoner whose decisions are set by the test; records every call."""

    def __init__(self, ambiguous: bool = False, choice: str = "a") -> None:
        self.ambiguous = ambiguous
        self.choice = choice
        self.calls: list[str] = []
        self.turns: list[Turn] = []

    def assess(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Assessment:
        self.calls.append("assess")
        return Assessment(
            ambiguous=self.ambiguous, question="Tea or coffee?" if self.ambiguous else ""
        )

    def choose(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Action:
        self.calls.append("choose")
        return Action(candidate_id=self.choice, candidate_text=self.choice)

    def learn(
        self, request: Request, turn: Turn, memories: Sequence[RetrievedMemory]
    ) -> list[MemoryOp]:
        self.calls.append("learn")
        self.turns.append(turn)
        return [MemoryOp(kind="add", memory=NewMemory(text=turn.text, topic=request.topic()))]


def _state(**kw: Any) -> PahfState:
    request = Request(
        request_id="r1",
        user_id="alice",
        task="bring me a drink",
        context="Morning",
        candidates=[{"id": "a", "text": "tea"}, {"id": "b", "text": "coffee"}],  # type: ignore[list-item]
    )
    return PahfState(request=request, **kw)


def _runtime(**kw: Any) -> SimpleNamespace:
    return SimpleNamespace(context=RunContext(**kw))


@pytest.fixture
def services(
    hashing_memory: ChromaPreferenceMemory,
) -> tuple[ScriptedReasoner, ChromaPreferenceMemory, Any]:
    reasoner = ScriptedReasoner()
    return reasoner, hashing_memory, lambda ctx: Services(reasoner=reasoner, memory=hashing_memory)


def test_retrieve_memory_searches_this_user_and_resets_per_request(services: Any) -> None:
    _, memory, provider = services
    memory.add("alice", NewMemory(text="tea in the morning", topic="Morning"))
    memory.add("bob", NewMemory(text="coffee in the morning", topic="Morning"))
    node = make_retrieve_memory(provider)
    stale = _state(questions_asked=1, active_request_id="older")
    command = node(stale, _runtime())
    update = command.update
    assert update["user_id"] == "alice"
    # Nodes write plain JSON (what a checkpoint stores); the state's channels type it again.
    assert [m["record"]["text"] for m in update["memories"]] == ["tea in the morning"]
    assert command.goto == "ambiguity_detect"
    # the stale count was reset, so a question can follow on the new request
    assert update["questions_asked"] == 0 and update["active_request_id"] == "r1"
    assert update["assessment"] is None
    assert node(_state(), _runtime(use_memory=False)).update["memories"] == []
    # the same request again (after an answer): its count and answers are kept
    again = node(
        _state(questions_asked=1, active_request_id="r1", after_question=True), _runtime()
    ).update
    assert "questions_asked" not in again and "clarifications" not in again


def test_retrieve_memory_keeps_a_request_only_on_the_loop_back_from_ask_user(
    services: Any,
) -> None:
    _, _, provider = services
    node = make_retrieve_memory(provider)
    # back from ask_user, its one question already asked: the count and answers are kept
    asked = node(
        _state(questions_asked=1, active_request_id="r1", after_question=True), _runtime()
    ).update
    assert "questions_asked" not in asked and asked["after_question"] is False
    # the same request id as a new input (not from ask_user): it starts afresh
    resent = node(_state(questions_asked=1, active_request_id="r1"), _runtime()).update
    assert resent["questions_asked"] == 0 and resent["clarifications"] == []


def test_the_graph_reads_top_to_bottom_with_one_clarification_gate(services: Any) -> None:
    """retrieve_memory -> ambiguity_detect -> ask_user | act -> ingest_feedback | END: the only
    branches are the nodes' typed destinations, and nothing skips ambiguity_detect (the entry
    node's other way out is END, when the input holds no usable request)."""
    from pahf.graphs import build_graph

    reasoner, memory, _ = services
    drawn = build_graph(reasoner, memory).get_graph()
    edges = {(e.source, e.target, e.conditional) for e in drawn.edges}
    assert edges == {
        ("__start__", "retrieve_memory", False),
        ("retrieve_memory", "ambiguity_detect", True),
        ("retrieve_memory", "__end__", True),
        ("ambiguity_detect", "ask_user", True),
        ("ambiguity_detect", "act", True),
        ("ask_user", "retrieve_memory", False),
        ("act", "ingest_feedback", True),
        ("act", "__end__", True),
        ("ingest_feedback", "__end__", False),
    }


def test_retrieve_memory_user_resolution(services: Any) -> None:
    _, _, provider = services
    node = make_retrieve_memory(provider)
    state = _state()

    def refused(command: Any, named: str) -> bool:
        said = command.update["messages"][-1].content
        return command.goto == "__end__" and named in said and command.update["request"] is None

    assert refused(node(state, _runtime(user_id="bob")), "disagree")
    state.current().user_id = None
    assert node(state, _runtime(user_id="carol")).update["user_id"] == "carol"
    assert refused(node(state, _runtime()), "no user id")
    assert node(state, SimpleNamespace(context={"user_id": "dave"})).update["user_id"] == "dave"


def test_nodes_of_a_graph_no_saver_keeps_hand_over_typed_values(services: Any) -> None:
    """json_writes=False: the same update, typed instead of dumped to JSON."""
    _, memory, provider = services
    memory.add("alice", NewMemory(text="tea in the morning", topic="Morning"))
    for make in (make_retrieve_memory, make_act, make_ambiguity_detect):
        typed = make(provider, json_writes=False)(_state(), _runtime()).update
        json = make(provider)(_state(), _runtime()).update
        assert typed.keys() == json.keys()
        for key, value in typed.items():
            if isinstance(value, BaseModel) and key != "messages":
                assert value.model_dump(mode="json") == json[key]
            elif isinstance(value, list) and value and isinstance(value[0], RetrievedMemory):
                assert [v.model_dump(mode="json") for v in value] == json[key]
            elif key != "messages":
                assert value == json[key]
    act = make_act(provider, json_writes=False)
    assert isinstance(act(_state(), _runtime()).update["action"], Action)
    with pytest.raises(ValueError, match="without a checkpointer"):
        build_graph(ScriptedReasoner(), memory, memory_checkpointer(), json_writes=False)


def test_ambiguity_detect_consults_reasoner_only_when_a_question_is_possible(services: Any) -> None:
    reasoner, _, provider = services
    node = make_ambiguity_detect(provider)
    reasoner.ambiguous = True
    command = node(_state(), _runtime())
    got = Assessment.model_validate(command.update["assessment"])
    assert got.ambiguous and reasoner.calls == ["assess"]
    assert command.goto == "ask_user" == route_after_assessment(got)
    off = node(_state(), _runtime(pre_action=False))
    spent = node(_state(questions_asked=1), _runtime(question_budget=1))
    for command in (off, spent):
        assert not command.update["assessment"]["ambiguous"] and command.goto == "act"
    assert reasoner.calls == ["assess"]
    reasoner.ambiguous = False
    assert node(_state(), _runtime()).goto == "act"


def test_act_returns_a_candidate_and_refuses_others(services: Any) -> None:
    reasoner, _, provider = services
    node = make_act(provider)
    command = node(_state(), _runtime())
    assert command.update["action"]["candidate_id"] == "a"
    assert command.goto == "ingest_feedback" == route_after_action(RunContext())
    assert node(_state(), _runtime(post_action=False)).goto == END
    reasoner.choice = "zzz"
    with pytest.raises(ValueError, match="not one of the candidates"):
        node(_state(), _runtime())


def _single_node_graph(name: str, fn: Any) -> Any:
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(PahfState, context_schema=RunContext)
    builder.add_node(name, fn)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile(checkpointer=memory_checkpointer())


def test_ask_user_interrupts_then_stores_the_answer(services: Any) -> None:
    reasoner, memory, provider = services
    graph = _single_node_graph("ask_user", make_ask_user(provider))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "t"}}
    state = _state(
        user_id="alice", assessment=Assessment(ambiguous=True, question="Tea or coffee?")
    )
    out = graph.invoke(state, cfg)
    payload = out["__interrupt__"][0].value
    assert payload["type"] == "question" and payload["question"] == "Tea or coffee?"
    assert memory.count("alice") == 0  # nothing stored before the answer
    out = graph.invoke(Command(resume=12), cfg)  # malformed: asked again, with the error
    again = out["__interrupt__"][0].value
    assert again["question"] == "Tea or coffee?" and "got int" in again["error"]
    assert memory.count("alice") == 0  # a malformed resume stores nothing
    out = graph.invoke(Command(resume="Tea, always"), cfg)
    assert out["questions_asked"] == 1 and out["clarifications"][0].text == "Tea, always"
    assert [r.text for r in memory.get_all("alice")] == ["Tea, always"]
    assert reasoner.turns[0].kind == "clarification"


def test_persistently_malformed_replies_are_asked_again_never_failing_the_run(
    services: Any,
) -> None:
    _, memory, provider = services
    graph = _single_node_graph("ask_user", make_ask_user(provider))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "bad"}}
    graph.invoke(_state(user_id="alice", assessment=Assessment(ambiguous=True, question="Q?")), cfg)
    for _ in range(10):
        out = graph.invoke(Command(resume=3), cfg)
        assert out["__interrupt__"][0].value["error"].startswith("ask_user: resume value")
    assert memory.count("alice") == 0
    out = graph.invoke(Command(resume="tea"), cfg)
    assert out["clarifications"][0].text == "tea"


def test_an_in_process_human_that_keeps_replying_unusably_is_an_error(services: Any) -> None:
    """A HumanService is code: after MAX_INVALID_REPLIES re-asks its bug shows as an error."""
    _, memory, provider = services
    replies: list[dict[str, Any]] = []

    def broken(payload: dict[str, Any]) -> Any:
        replies.append(payload)
        return 3

    graph = _single_node_graph("ask_user", make_ask_user(provider, broken))
    cfg: dict[str, Any] = {"configurable": {"thread_id": "broken"}}
    with pytest.raises(ValueError, match="ask_user: resume value"):
        state = _state(user_id="alice", assessment=Assessment(ambiguous=True, question="Q?"))
        graph.invoke(state, cfg)
    assert len(replies) == MAX_INVALID_REPLIES + 1 and "error" in replies[-1]
    assert memory.count("alice") == 0


def test_ingest_feedback_accept_and_correct(services: Any) -> None:
    reasoner, memory, provider = services
    graph = _single_node_graph("ingest_feedback", make_ingest_feedback(provider))
    action = Action(candidate_id="b", candidate_text="coffee")
    cfg: dict[str, Any] = {"configurable": {"thread_id": "accept"}}
    out = graph.invoke(_state(user_id="alice", action=action), cfg)
    assert out["__interrupt__"][0].value["action"]["candidate_id"] == "b"
    out = graph.invoke(Command(resume=["not", "valid"]), cfg)
    assert "ingest_feedback" in out["__interrupt__"][0].value["error"]
    out = graph.invoke(Command(resume=""), cfg)
    assert out["feedback"].accepted and memory.count("alice") == 0 and "learn" not in reasoner.calls
    cfg = {"configurable": {"thread_id": "correct"}}
    graph.invoke(_state(user_id="alice", action=action), cfg)
    out = graph.invoke(Command(resume="No, I wanted tea"), cfg)
    assert out["feedback"].correction == "No, I wanted tea"
    assert reasoner.turns[-1].kind == "correction" and reasoner.turns[-1].action == action
    assert [op.kind for op in out["memory_ops"]] == ["add"]
    assert memory.count("alice") == 1
