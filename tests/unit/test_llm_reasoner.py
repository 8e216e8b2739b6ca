"""LLM reasoner, usage accounting and response cache, without a socket.

Two kinds of model stand in for the LLM: ``ChatOpenAI`` over an ``httpx.MockTransport`` (the
real client, request and response format; used for the full graph episodes), and a generic
``BaseChatModel`` that only implements ``bind_tools`` (proves "any chat model" works through
LangChain's default function-calling structured output).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.exceptions import ModelConnectionError, ModelTimeoutError
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult, LLMResult
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI
from langgraph.types import Command
from pydantic import SecretStr

from pahf.context import RunContext
from pahf.decisions import Action, Turn
from pahf.eval.methods import context_for_method
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.memory.schema import MemoryRecord, RetrievedMemory
from pahf.reasoners.accounting import OUTSIDE_GRAPH, UsageTracker
from pahf.reasoners.base import Reasoner
from pahf.reasoners.cache import SQLiteResponseCache
from pahf.reasoners.llm import (
    LLMCallError,
    LLMConfigError,
    LLMDecisionError,
    LLMOutputError,
    LLMOverrunError,
    LLMReasoner,
    LLMSettings,
    chat_model_from_settings,
)
from pahf.request import Candidate, Request

# --------------------------------------------------------------------------- OpenAI over MockTransport


@dataclass
class Reply:
    """One scripted chat.completion: JSON content (dict), raw text, or an HTTP error status."""

    content: dict[str, Any] | str = ""
    status: int = 200
    usage: tuple[int, int] = (100, 20)


class ScriptedOpenAI:
    """An ``httpx.MockTransport`` handler speaking POST /v1/chat/completions from a script."""

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies = list(replies or [])
        self.bodies: list[dict[str, Any]] = []

    def add(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    @property
    def schemas(self) -> list[str]:
        """The structured-output schema each request asked for, in order."""
        return [b["response_format"]["json_schema"]["name"] for b in self.bodies]

    def prompt(self, index: int) -> str:
        return "\n".join(str(m["content"]) for m in self.bodies[index]["messages"])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/chat/completions"), request.url
        self.bodies.append(json.loads(request.content))
        if not self.replies:
            return httpx.Response(500, json={"error": {"message": "script exhausted"}})
        reply = self.replies.pop(0)
        if reply.status != 200:
            return httpx.Response(reply.status, json={"error": {"message": "scripted failure"}})
        content = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        prompt_tokens, completion_tokens = reply.usage
        return httpx.Response(
            200,
            json={
                "id": f"chatcmpl-{uuid.uuid4().hex[:8]}",
                "object": "chat.completion",
                "created": 0,
                "model": "scripted",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )


def mock_openai(script: ScriptedOpenAI, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model=kwargs.pop("model", "scripted-model"),
        api_key="test-key",
        base_url="http://llm.invalid/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(script)),
        max_retries=0,
        temperature=0,
        **kwargs,
    )


def assess(
    ambiguous: bool, candidate: str | None = None, question: str = "", reason: str = "r"
) -> dict[str, Any]:
    return {
        "reason": reason,
        "ambiguous": ambiguous,
        "question": question,
        "candidate_id": candidate,
    }


def choose(candidate: str, rationale: str = "because") -> dict[str, Any]:
    return {"rationale": rationale, "candidate_id": candidate}


def learn(wants: str = "", refuses: str = "", revises: str | None = None) -> dict[str, Any]:
    return {"wants": wants, "refuses": refuses, "revises_memory_id": revises}


def drink_request(request_id: str | None = None) -> Request:
    return Request(
        request_id=request_id or uuid.uuid4().hex,
        domain="embodied",
        task="Could you bring me something to drink?",
        context="Dehydrated",
        candidates=[
            Candidate(id="A", text="ice-cold water"),
            Candidate(id="B", text="black coffee"),
            Candidate(id="C", text="orange juice"),
        ],
    )


def run_episode(
    graph: Any, request: Request, replies: list[str], context: RunContext, tracker: UsageTracker
) -> tuple[dict[str, Any], list[str]]:
    """Invoke one request and answer each interrupt with the next reply; returns the final
    output and the interrupt types seen."""
    config: dict[str, Any] = {
        "configurable": {"thread_id": uuid.uuid4().hex},
        "callbacks": [tracker],
    }
    result = graph.invoke({"request": request.model_dump(mode="json")}, config, context=context)
    seen: list[str] = []
    pending = list(replies)
    while result.get("__interrupt__"):
        seen.append(result["__interrupt__"][0].value["type"])
        result = graph.invoke(Command(resume=pending.pop(0)), config, context=context)
    assert not pending, f"unused replies {pending}"
    return result, seen


@pytest.fixture
def memory() -> ChromaPreferenceMemory:
    return ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())


# --------------------------------------------------------------------------- full episodes


def test_full_episodes_ask_clear_and_correction_paths_with_call_counts(
    memory: ChromaPreferenceMemory,
) -> None:
    """Ask path = 3 calls, clear path = 1 call, correction path = 2 calls; memory evolves."""
    script = ScriptedOpenAI()
    reasoner = LLMReasoner(mock_openai(script))
    assert isinstance(reasoner, Reasoner)
    graph = build_graph(reasoner, memory, memory_checkpointer())
    ctx = RunContext(user_id="alex", reasoner="llm")

    # 1. Ask path: nothing known -> question, answer is learned, then a choice with it.
    script.add(
        Reply(assess(True, question="What do you like to drink when dehydrated?"), usage=(120, 30)),
        Reply(learn("ice-cold water"), usage=(140, 25)),
        Reply(choose("A"), usage=(160, 10)),
    )
    tracker = UsageTracker()
    out, seen = run_episode(
        graph, drink_request(), ["I want ice-cold water, lots of ice.", ""], ctx, tracker
    )
    assert seen == ["question", "feedback"]
    assert out["action"].candidate_id == "A"
    assert script.schemas == ["AssessDecision", "LearnDecision", "ChooseDecision"]
    usage = tracker.snapshot()
    assert usage.total.calls == 3
    assert {n: u.calls for n, u in usage.by_node.items()} == {
        "ambiguity_detect": 1,
        "ask_user": 1,
        "act": 1,
    }
    assert (usage.total.input_tokens, usage.total.output_tokens) == (420, 65)
    assert usage.by_node["ask_user"].input_tokens == 140
    # The re-choice sees the answer and the memory just stored.
    assert "I want ice-cold water, lots of ice." in script.prompt(2)
    assert "M1: I want ice-cold water, lots of ice." in script.prompt(2)
    # ... and the option it names carries what the person said about it.
    assert "- A: ice-cold water (they said: 'I want ice-cold water, lots of ice.')" in (
        script.prompt(2)
    )
    [stored] = memory.get_all("alex")  # the person's own words, not the model's
    assert (stored.text, stored.topic, stored.source) == (
        "I want ice-cold water, lots of ice.",
        "Dehydrated: Could you bring me something to drink?",
        "clarification",
    )

    # 2. Clear path: memory settles it -> one call; act reuses the choice made by assess.
    script.bodies.clear()
    script.add(Reply(assess(False, "A"), usage=(130, 15)))
    tracker = UsageTracker()
    out, seen = run_episode(graph, drink_request(), [""], ctx, tracker)
    assert seen == ["feedback"]
    assert out["action"].candidate_id == "A"
    assert out["action"].candidate_text == "ice-cold water"
    assert tracker.snapshot().total.calls == 1
    assert set(tracker.snapshot().by_node) == {"ambiguity_detect"}
    assert "M1: I want ice-cold water, lots of ice." in script.prompt(0)

    # 3. Correction path: one call to act, one to learn; the old memory is superseded.
    script.bodies.clear()
    script.add(
        Reply(assess(False, "A"), usage=(130, 15)),
        Reply(learn("orange juice", "ice-cold water", "M1")),
    )
    tracker = UsageTracker()
    said = "No, these days I want orange juice, not ice-cold water."
    out, seen = run_episode(graph, drink_request(), [said], ctx, tracker)
    assert seen == ["feedback"]
    assert tracker.snapshot().total.calls == 2
    assert {n: u.calls for n, u in tracker.snapshot().by_node.items()} == {
        "ambiguity_detect": 1,
        "ingest_feedback": 1,
    }
    assert "these days I want orange juice" in script.prompt(1)
    records = {r.text: r for r in memory.get_all("alex")}
    old = records["I want ice-cold water, lots of ice."]
    new = records[said]
    assert old.status == "superseded" and old.superseded_by == new.id
    assert new.supersedes == stored.id and new.source == "feedback"
    assert [op.kind for op in out["memory_ops"]] == ["supersede"]
    assert not script.replies


def test_post_only_and_no_memory_runs_make_one_call(memory: ChromaPreferenceMemory) -> None:
    """Without the question channel the graph never calls assess: choose is the only call."""
    script = ScriptedOpenAI([Reply(choose("B")), Reply(choose("C"))])
    graph = build_graph(LLMReasoner(mock_openai(script)), memory, memory_checkpointer())
    for method, replies in (("post-only", [""]), ("no-memory", [])):
        tracker = UsageTracker()
        ctx = context_for_method(method, user_id="alex", reasoner="llm")
        run_episode(graph, drink_request(), replies, ctx, tracker)
        assert tracker.snapshot().total.calls == 1
        assert set(tracker.snapshot().by_node) == {"act"}
    assert script.schemas == ["ChooseDecision", "ChooseDecision"]
    # post-only with a correction: +1 learn.
    script.add(Reply(choose("B")), Reply(learn(refuses="coffee")))
    tracker = UsageTracker()
    ctx = context_for_method("post-only", user_id="alex", reasoner="llm")
    run_episode(graph, drink_request(), ["No coffee when I'm dehydrated."], ctx, tracker)
    assert {n: u.calls for n, u in tracker.snapshot().by_node.items()} == {
        "act": 1,
        "ingest_feedback": 1,
    }


def test_ask_then_correction_is_four_calls_and_test_phase_is_one(
    memory: ChromaPreferenceMemory,
) -> None:
    script = ScriptedOpenAI(
        [
            Reply(assess(True, question="Anything you avoid?")),
            Reply(learn(refuses="coffee")),
            Reply(choose("C")),
            Reply(learn("water", "juice")),
        ]
    )
    graph = build_graph(LLMReasoner(mock_openai(script)), memory, memory_checkpointer())
    tracker = UsageTracker()
    ctx = RunContext(user_id="bea")
    out, seen = run_episode(
        graph, drink_request(), ["No coffee.", "Water, not juice, please."], ctx, tracker
    )
    assert seen == ["question", "feedback"]
    assert {n: u.calls for n, u in tracker.snapshot().by_node.items()} == {
        "ambiguity_detect": 1,
        "ask_user": 1,
        "act": 1,
        "ingest_feedback": 1,
    }
    assert [op.kind for op in out["memory_ops"]] == ["add", "add"]
    # Test phase: memory read, no question, no feedback -> one choose call.
    script.add(Reply(choose("A")))
    tracker = UsageTracker()
    test_phase = RunContext(user_id="bea", pre_action=False, post_action=False)
    out, seen = run_episode(graph, drink_request(), [], test_phase, tracker)
    assert seen == [] and out["action"].candidate_id == "A"
    assert {n: u.calls for n, u in tracker.snapshot().by_node.items()} == {"act": 1}
    assert "M1: No coffee." in script.prompt(4) or "M2: No coffee." in script.prompt(4)


def test_accepted_feedback_and_no_preference_answers_cost_no_memory_write(
    memory: ChromaPreferenceMemory,
) -> None:
    script = ScriptedOpenAI(
        [
            Reply(assess(True, question="Any preference?")),
            Reply(learn()),
            Reply(choose("C")),
        ]
    )
    graph = build_graph(LLMReasoner(mock_openai(script)), memory, memory_checkpointer())
    tracker = UsageTracker()
    out, _ = run_episode(
        graph, drink_request(), ["whatever you think", ""], RunContext(user_id="u"), tracker
    )
    assert out["action"].candidate_id == "C"
    assert out["memory_ops"] == []
    assert memory.count("u") == 0
    assert tracker.snapshot().total.calls == 3


def test_invalid_choice_is_retried_with_the_error_then_used(memory: ChromaPreferenceMemory) -> None:
    script = ScriptedOpenAI([Reply(choose("Z")), Reply(choose("b"))])
    graph = build_graph(LLMReasoner(mock_openai(script)), memory, memory_checkpointer())
    tracker = UsageTracker()
    ctx = context_for_method("no-memory", user_id="u")
    out, _ = run_episode(graph, drink_request(), [], ctx, tracker)
    assert out["action"].candidate_id == "B"  # case-tolerant match of "b"
    assert tracker.snapshot().by_node["act"].calls == 2
    retry = script.bodies[1]["messages"]
    assert retry[-2]["role"] == "assistant" and '"Z"' in retry[-2]["content"]
    assert "candidate_id 'Z': Input should be 'A', 'B' or 'C'" in retry[-1]["content"]


def test_malformed_twice_raises_error_naming_node_and_decision(
    memory: ChromaPreferenceMemory,
) -> None:
    script = ScriptedOpenAI([Reply("this is not json"), Reply('{"candidate_id": ')])
    graph = build_graph(LLMReasoner(mock_openai(script)), memory, memory_checkpointer())
    with pytest.raises(LLMOutputError) as info:
        run_episode(
            graph, drink_request(), [], context_for_method("no-memory", user_id="u"), UsageTracker()
        )
    err = info.value
    assert (err.decision, err.node, err.attempts) == ("choose", "act", 2)
    assert str(err).startswith("act: LLM decision 'choose' failed after 2 attempt(s)")
    assert err.errors[0].startswith("the reply is not valid ChooseDecision JSON")
    assert "not a valid ChooseDecision: candidate_id: Field required" in str(err)
    assert err.replies == ["this is not json", '{"candidate_id": ']


def test_failed_learn_leaves_memory_untouched(memory: ChromaPreferenceMemory) -> None:
    """A correction whose analysis fails raises out of ingest_feedback with nothing written."""
    script = ScriptedOpenAI(
        [
            Reply(assess(True, question="What do you like?")),
            Reply(learn("ice-cold water")),
            Reply(choose("A")),
        ]
    )
    graph = build_graph(LLMReasoner(mock_openai(script)), memory, memory_checkpointer())
    ctx = RunContext(user_id="u")
    run_episode(graph, drink_request(), ["ice-cold water, please", ""], ctx, UsageTracker())
    before = [r.model_dump() for r in memory.get_all("u")]
    # Supersede a memory id the model was never shown, twice: invalid both times.
    script.add(
        Reply(assess(False, "A")),
        Reply(learn("orange juice", "ice-cold water", "M7")),
        Reply(learn("orange juice", "ice-cold water", "m-unknown")),
    )
    with pytest.raises(LLMOutputError) as info:
        said = "no ice-cold water, orange juice now"
        run_episode(graph, drink_request(), [said], ctx, UsageTracker())
    assert info.value.node == "ingest_feedback" and info.value.decision == "learn"
    assert "revises_memory_id 'm-unknown': Input should be 'M1'" in str(info.value)
    # The raw replies of the failed attempts are kept for the episode record.
    assert [json.loads(r)["revises_memory_id"] for r in info.value.replies] == ["M7", "m-unknown"]
    assert [r.model_dump() for r in memory.get_all("u")] == before


def test_http_errors_become_call_errors_without_retrying_output(
    memory: ChromaPreferenceMemory,
) -> None:
    script = ScriptedOpenAI([Reply(status=401)])
    reasoner = LLMReasoner(mock_openai(script))
    with pytest.raises(LLMCallError) as info:
        reasoner.choose(drink_request(), [], [])
    assert "AuthenticationError" in str(info.value) and info.value.node == "act"
    assert len(script.bodies) == 1  # not retried: a 401 will not heal


# --------------------------------------------------------------------------- any BaseChatModel


class ToolCallingFake(BaseChatModel):
    """A chat model implementing only ``bind_tools``: LangChain's default
    ``with_structured_output`` then works through tool calls. Replies: a dict (valid call),
    a string (malformed arguments), or an exception to raise."""

    replies: list[Any]
    log: list[list[BaseMessage]]

    @property
    def _llm_type(self) -> str:
        return "tool-calling-fake"

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.log.append(list(messages))
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        name = kw["tools"][0]["function"]["name"]
        usage = UsageMetadata(input_tokens=11, output_tokens=4, total_tokens=15)
        if isinstance(reply, dict):
            msg = AIMessage(
                content="",
                tool_calls=[{"name": name, "args": reply, "id": "call-1"}],
                usage_metadata=usage,
            )
        else:
            msg = AIMessage(
                content="",
                invalid_tool_calls=[
                    {"name": name, "args": reply, "id": "call-1", "error": "bad json"}
                ],
                usage_metadata=usage,
            )
        return ChatResult(generations=[ChatGeneration(message=msg)])


def fake(*replies: Any) -> ToolCallingFake:
    return ToolCallingFake(replies=list(replies), log=[])


DRINK_TOPIC = "Dehydrated: Could you bring me something to drink?"


def memory_record(
    memory_id: str, text: str, topic: str = DRINK_TOPIC, request_id: str = "earlier"
) -> RetrievedMemory:
    rec = MemoryRecord(
        id=memory_id,
        user_id="u",
        text=text,
        topic=topic,
        request_id=request_id,
        created_at="2024-01-01T00:00:00+00:00",
    )
    return RetrievedMemory(record=rec, score=0.9)


def test_assess_proposes_its_choice_in_the_assessment_and_keeps_nothing() -> None:
    model = fake(assess(False, "B"), choose("C"))
    reasoner = LLMReasoner(model)
    req = drink_request("r1")
    mems = [memory_record("m-1", "In the morning: black coffee")]
    assessment = reasoner.assess(req, mems, [])
    assert not assessment.ambiguous and assessment.confidence == 1.0
    assert assessment.proposed is not None and assessment.proposed.candidate_id == "B"
    assert assessment.proposed.candidate_text == "black coffee"
    # The reasoner hands nothing over on the side: choose asks the model.
    assert reasoner.choose(req, mems, []).candidate_id == "C"
    assert len(model.log) == 2
    assert not [k for k in vars(reasoner) if "handoff" in k or "cache" in k]


def test_assess_validation_rules_are_enforced_with_one_retry() -> None:
    # Not ambiguous without a candidate, then ambiguous without a question: both invalid.
    model = fake(assess(False, None), assess(True, None, question=""))
    with pytest.raises(LLMOutputError) as info:
        LLMReasoner(model).assess(drink_request(), [], [])
    assert info.value.errors == [
        "ambiguous is false but candidate_id is null: give the option to take",
        "ambiguous is true but question is empty: write the question to ask",
    ]
    assert info.value.node == "ambiguity_detect"
    # The retry carried the first error back to the model.
    assert "candidate_id is null" in str(model.log[1][-1].content)


def test_ambiguous_assessment_keeps_question_and_proposes_nothing() -> None:
    model = fake(assess(True, None, question="  Hot or cold?  "))
    out = LLMReasoner(model).assess(drink_request(), [], [])
    assert out.ambiguous and out.question == "Hot or cold?" and out.proposed is None


def test_malformed_tool_arguments_are_retried() -> None:
    model = fake("{not json", choose("C"))
    action = LLMReasoner(model).choose(drink_request(), [], [])
    assert action == Action(candidate_id="C", candidate_text="orange juice", rationale="because")
    assert "ChooseDecision arguments are not valid JSON" in str(model.log[1][-1].content)


def test_learn_stores_the_persons_words_when_a_phrase_of_theirs_names_a_preference() -> None:
    req = drink_request("r9")
    said = "I want orange juice now, not ice-cold water."
    turn = Turn(kind="correction", text=f"  {said} ", action=None)
    mems = [memory_record("m-aaa", "likes black coffee"), memory_record("m-bbb", "ice-cold water")]
    # supersede by alias M2 -> the second record's id; the text stored is the message
    model = fake(learn("orange juice", "ice-cold water", "M2"))
    [op] = LLMReasoner(model).learn(req, turn, mems)
    assert (op.kind, op.target_id) == ("supersede", "m-bbb")
    assert op.memory is not None
    assert (op.memory.text, op.memory.topic, op.memory.source, op.memory.request_id) == (
        said,
        "Dehydrated: Could you bring me something to drink?",
        "feedback",
        "r9",
    )
    # case, whitespace and quotes around an alias are repaired; "none" is null (an add,
    # unless the words turn a stored preference around: see the test below)
    [op] = LLMReasoner(fake(learn("Orange Juice", "", " 'm2' "))).learn(req, turn, mems)
    assert (op.kind, op.target_id) == ("supersede", "m-bbb")
    agreeing = [mems[0], memory_record("m-bbb", "No ice-cold water.")]
    for null in ("none", None):
        [op] = LLMReasoner(fake(learn("orange juice", "", null))).learn(req, turn, agreeing)
        assert (op.kind, op.target_id) == ("add", None)
    # a phrase counts when its words are the message's, in any order and case
    [op] = LLMReasoner(fake(learn(refuses="WATER ice-cold"))).learn(req, turn, agreeing)
    assert op.kind == "add"
    # nothing named, or only words the message does not say: no preference, no memory
    for wants, refuses in (("", ""), ("none", "n/a"), ("fits my style preferences", "")):
        assert LLMReasoner(fake(learn(wants, refuses))).learn(req, turn, mems) == []
    # a message of only whitespace stores nothing either
    blank = Turn(kind="correction", text="   ", action=None)
    assert LLMReasoner(fake(learn("juice"))).learn(req, blank, mems) == []


def test_learn_revises_only_earlier_preferences_of_the_same_situation_and_thing() -> None:
    """A correction may supersede what was learned in this situation in an earlier request
    about one of the options it names; a preference of another situation, one learned earlier
    in this same request, or one about other options is not on offer (the 1.5B model
    superseded stored preferences with nearly every new one)."""
    req = drink_request("r9")
    mems = [
        memory_record("m-other", "When drowsy: ice-cold water", topic="Drowsy: bring me a drink"),
        memory_record("m-same", "When dehydrated: ice-cold water"),
        memory_record("m-now", "When dehydrated: ice-cold water, no coffee", request_id="r9"),
        memory_record("m-else", "When dehydrated: no black coffee"),
    ]
    turn = Turn(kind="correction", text="I want orange juice now, not ice-cold water", action=None)
    model = fake(learn("orange juice", "", "M2"))
    [op] = LLMReasoner(model).learn(req, turn, mems)
    assert (op.kind, op.target_id) == ("supersede", "m-same")
    prompt = str(model.log[0][-1].content)
    assert "- M2: When dehydrated: ice-cold water" in prompt
    assert "M1" not in prompt and "M3" not in prompt and "M4" not in prompt
    # The grammar's enum offers only M2: another one is rejected (and re-asked).
    model = fake(learn("juice", "", "M4"), learn("juice", "", "M1"))
    with pytest.raises(LLMOutputError, match="revises_memory_id 'M1': Input should be 'M2'"):
        LLMReasoner(model).learn(req, turn, mems)
    # Nothing revisable: no id in the schema or the prompt, so every preference is an add.
    model = fake(learn("orange juice", "", "M1"))
    [op] = LLMReasoner(model).learn(req, turn, [mems[0], mems[2], mems[3]])
    assert (op.kind, op.target_id) == ("add", None)
    assert "learned earlier" not in str(model.log[0][-1].content)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (learn("x", "", "M3"), "revises_memory_id 'M3': Input should be 'M1'"),
        ({"wants": 7, "refuses": "", "revises_memory_id": None}, "wants 7: Input should be"),
    ],
)
def test_learn_rejects_what_it_cannot_use(bad: dict[str, Any], message: str) -> None:
    model = fake(bad, bad)
    turn = Turn(kind="clarification", text="No black coffee, ever.", question="q")
    with pytest.raises(LLMOutputError) as info:
        LLMReasoner(model).learn(drink_request(), turn, [memory_record("m-1", "black coffee")])
    assert message in str(info.value)
    assert info.value.node == "ask_user"
    assert len(model.log) == 2


def test_transient_errors_are_retried_with_backoff_and_others_are_not() -> None:
    refused = ModelConnectionError("Connection refused.")
    model = fake(refused, choose("A"))
    reasoner = LLMReasoner(model, transport_retries=1, backoff_seconds=0.0)
    assert reasoner.choose(drink_request(), [], []).candidate_id == "A"
    # Out of transport retries: a clear error naming the decision.
    model = fake(refused, refused)
    with pytest.raises(LLMCallError) as info:
        LLMReasoner(model, transport_retries=1, backoff_seconds=0.0).choose(drink_request(), [], [])
    assert "ModelConnectionError: Connection refused." in str(info.value)
    assert info.value.attempts == 2 and info.value.errors == [
        "ModelConnectionError: Connection refused."
    ] * 2
    # A timeout is an overrun: that decision fails at once (an episode failure, not a stop).
    model = fake(ModelTimeoutError("Request timed out."), choose("A"))
    with pytest.raises(LLMOverrunError) as overrun:
        LLMReasoner(model, transport_retries=3, backoff_seconds=0.0).choose(drink_request(), [], [])
    assert isinstance(overrun.value, LLMOutputError) and len(model.log) == 1
    assert "did not answer in time" in str(overrun.value)
    # A programming error is not transient: no retry.
    model = fake(KeyError("boom"), choose("A"))
    with pytest.raises(LLMCallError):
        LLMReasoner(model, transport_retries=3, backoff_seconds=0.0).choose(drink_request(), [], [])
    assert len(model.log) == 1


def test_decision_errors_share_one_base_class() -> None:
    assert issubclass(LLMOutputError, LLMDecisionError)
    assert issubclass(LLMCallError, LLMDecisionError)


# --------------------------------------------------------------------------- settings


def test_from_settings_reads_arguments_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("PAHF_MODEL", "qwen2.5-7b-instruct")
    monkeypatch.delenv("PAHF_LLM_CACHE", raising=False)
    monkeypatch.delenv("PAHF_STRUCTURED_OUTPUT", raising=False)
    reasoner = LLMReasoner.from_settings(timeout=5, max_retries=3)
    chat = reasoner.chat_model
    assert isinstance(chat, ChatOpenAI)
    assert chat.model_name == "qwen2.5-7b-instruct"
    assert chat.openai_api_base == "http://127.0.0.1:9/v1"
    assert isinstance(chat.openai_api_key, SecretStr)
    assert chat.openai_api_key.get_secret_value() == "not-needed"
    # The client does not retry: the reasoner does, so usage counts every attempt.
    assert (chat.request_timeout, chat.max_retries, chat.temperature) == (5, 0, 0.0)
    assert chat.max_tokens == 256 and reasoner.transport_retries == 3
    assert reasoner.method is None
    # Arguments win over the environment.
    monkeypatch.setenv("PAHF_STRUCTURED_OUTPUT", "function_calling")
    reasoner = LLMReasoner.from_settings(model="gpt-4o", api_key="sk-test")
    assert isinstance(reasoner.chat_model, ChatOpenAI)
    assert reasoner.chat_model.model_name == "gpt-4o"
    assert reasoner.method == "function_calling"


def test_from_settings_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="set OPENAI_API_KEY"):
        chat_model_from_settings()
    with pytest.raises(LLMConfigError, match="unknown structured-output method 'xml'"):
        LLMReasoner.from_settings(api_key="k", method="xml")
    with pytest.raises(LLMConfigError, match="timeout must be positive"):
        chat_model_from_settings(api_key="k", timeout=0)


def test_settings_read_the_environment_and_say_which_value_is_bad() -> None:
    env = {
        "PAHF_MODEL": "qwen2.5-coder-1.5b-instruct",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "PAHF_LLM_TIMEOUT": "300",
        "PAHF_LLM_MAX_TOKENS": "128",
        "PAHF_LLM_TEMPERATURE": "0.2",
        "PAHF_LLM_RETRIES": "0",
    }
    settings = LLMSettings.resolve(env=env)
    assert (settings.timeout, settings.max_tokens, settings.temperature, settings.retries) == (
        300.0, 128, 0.2, 0,
    )
    assert settings.base_url == "http://127.0.0.1:9/v1" and settings.provider == ""
    # PAHF_LLM_BASE_URL beats OPENAI_BASE_URL; arguments beat both.
    settings = LLMSettings.resolve(env={**env, "PAHF_LLM_BASE_URL": "http://h:1/v1"}, timeout=7)
    assert (settings.base_url, settings.timeout) == ("http://h:1/v1", 7.0)
    # What the settings write to the environment reads back the same (worker processes).
    assert LLMSettings.resolve(env=settings.environ()) == settings
    defaults = LLMSettings.resolve(env={})
    assert (defaults.model, defaults.timeout, defaults.max_tokens, defaults.retries) == (
        "gpt-4o-mini", 120.0, 256, 2,
    )
    for var, value, message in [
        ("PAHF_LLM_TIMEOUT", "soon", "PAHF_LLM_TIMEOUT: 'soon' is not a valid timeout"),
        ("PAHF_LLM_MAX_TOKENS", "0", "max_tokens must be at least 1"),
        ("PAHF_LLM_MAX_TOKENS", "2.5", "not a valid max_tokens"),
        ("PAHF_LLM_RETRIES", "-1", "retries must be >= 0"),
        ("PAHF_LLM_TEMPERATURE", "9", "temperature must be in [0, 2]"),
    ]:
        with pytest.raises(LLMConfigError, match=re.escape(message)):
            LLMSettings.resolve(env={var: value})


def test_provider_model_names_go_through_init_chat_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = LLMSettings.resolve(env={}, model="openai:gpt-4o", max_tokens=64, timeout=9)
    assert (settings.provider, settings.model_name) == ("openai", "gpt-4o")
    chat = settings.chat_model()
    assert isinstance(chat, ChatOpenAI) and chat.model_name == "gpt-4o"
    assert (chat.max_tokens, chat.request_timeout, chat.max_retries) == (64, 9.0, 0)
    assert chat.disable_streaming is True
    # A provider whose package is missing: a clear configuration error, not an ImportError.
    with pytest.raises(LLMConfigError, match="cannot build the chat model 'xai:grok'"):
        LLMSettings.resolve(env={}, model="xai:grok").chat_model()
    # Names with a colon that are not a provider prefix stay OpenAI-protocol model names.
    for name in ("qwen2.5:1.5b", "org/model:tag", "llama3:8b"):
        settings = LLMSettings.resolve(env={}, model=name)
        assert (settings.provider, settings.model_name) == ("", name)


def test_from_settings_with_cache_path_uses_the_disk_cache(tmp_path: Path) -> None:
    chat = chat_model_from_settings(api_key="k", cache_path=tmp_path / "c.sqlite")
    assert isinstance(chat.cache, SQLiteResponseCache)


# --------------------------------------------------------------------------- accounting


def _llm_result(inp: int, out: int, cached: bool = False) -> LLMResult:
    meta = {"pahf_cache_hit": True} if cached else {}
    msg = AIMessage(
        content="x",
        usage_metadata={"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out},
        response_metadata=meta,
    )
    return LLMResult(generations=[[ChatGeneration(message=msg)]])


def test_usage_tracker_is_thread_safe_and_counts_per_node() -> None:
    tracker = UsageTracker()
    nodes = ["act", "ask_user", "ingest_feedback", None]

    def worker(index: int) -> None:
        for _ in range(250):
            run_id = uuid.uuid4()
            node = nodes[index % 4]
            tracker.on_chat_model_start(
                {}, [[]], run_id=run_id, metadata={"langgraph_node": node} if node else {}
            )
            tracker.on_llm_end(_llm_result(3, 2), run_id=run_id)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = tracker.snapshot()
    assert snap.total.calls == 2000
    assert (snap.total.input_tokens, snap.total.output_tokens) == (6000, 4000)
    assert {n: u.calls for n, u in snap.by_node.items()} == {
        "act": 500,
        "ask_user": 500,
        "ingest_feedback": 500,
        OUTSIDE_GRAPH: 500,
    }
    tracker.reset()
    assert tracker.snapshot().total.calls == 0


def test_usage_tracker_counts_errors_fallback_usage_and_cache_hits() -> None:
    tracker = UsageTracker()
    ids = [uuid.uuid4() for _ in range(4)]
    for run_id in ids:
        tracker.on_chat_model_start({}, [[]], run_id=run_id, metadata={"langgraph_node": "act"})
    tracker.on_llm_error(TimeoutError("slow"), run_id=ids[0])
    tracker.on_llm_end(
        LLMResult(
            generations=[[ChatGeneration(message=AIMessage(content="x"))]],
            llm_output={"token_usage": {"prompt_tokens": 7, "completion_tokens": 1}},
        ),
        run_id=ids[1],
    )
    tracker.on_llm_end(_llm_result(50, 5, cached=True), run_id=ids[2])
    tracker.on_llm_end(
        LLMResult(generations=[[ChatGeneration(message=AIMessage(content="x"))]]), run_id=ids[3]
    )
    act = tracker.snapshot().by_node["act"]
    assert (act.calls, act.failed_calls, act.cached_calls, act.calls_without_usage) == (4, 1, 1, 1)
    assert (act.input_tokens, act.output_tokens) == (7, 1)
    before = tracker.snapshot()
    tracker.on_chat_model_start({}, [[]], run_id=ids[0], metadata={})
    tracker.on_llm_end(_llm_result(2, 2), run_id=ids[0])
    delta = tracker.snapshot().minus(before)
    assert delta.total.calls == 1 and set(delta.by_node) == {OUTSIDE_GRAPH}


# --------------------------------------------------------------------------- disk cache


def test_disk_cache_replays_responses_without_a_request(tmp_path: Path) -> None:
    script = ScriptedOpenAI([Reply(choose("B"), usage=(90, 9)), Reply(choose("C"))])
    path = tmp_path / "llm-cache.sqlite"
    tracker = UsageTracker()
    config = RunnableConfig(callbacks=[tracker])

    def decide(model: ChatOpenAI) -> str:
        """One choice, run inside a runnable so the tracker sees the model call."""

        def choose_once(_: Any) -> str:
            return LLMReasoner(model).choose(drink_request("same"), [], []).candidate_id

        return str(RunnableLambda(choose_once).invoke(None, config))

    assert decide(mock_openai(script, cache=SQLiteResponseCache(path))) == "B"
    # A new process would reopen the file: a fresh cache object on the same path hits.
    assert decide(mock_openai(script, cache=SQLiteResponseCache(path))) == "B"
    assert len(script.bodies) == 1
    snap = tracker.snapshot().total
    assert (snap.calls, snap.cached_calls, snap.input_tokens) == (2, 1, 90)
    # Another model name is another key: a miss, a real request.
    assert decide(mock_openai(script, model="other", cache=SQLiteResponseCache(path))) == "C"
    assert len(script.bodies) == 2
    assert len(SQLiteResponseCache(path)) == 2
    SQLiteResponseCache(path).clear()
    assert len(SQLiteResponseCache(path)) == 0


def test_json_mode_states_the_schema_in_the_prompt() -> None:
    """Servers with only JSON mode get the schema in the prompt, since the API cannot carry it."""
    script = ScriptedOpenAI([Reply(choose("C"))])
    reasoner = LLMReasoner(mock_openai(script), method="json_mode")
    assert reasoner.choose(drink_request(), [], []).candidate_id == "C"
    [body] = script.bodies
    assert body["response_format"] == {"type": "json_object"}
    assert '"candidate_id"' in body["messages"][-1]["content"]
    assert '"rationale"' in body["messages"][-1]["content"]


def test_assess_asks_about_one_feature_only_when_options_have_features() -> None:
    from pahf.reasoners.prompts import assess_messages

    plain = str(assess_messages(drink_request(), [], [])[-1].content)
    assert "what they like in this situation" in plain and "feature" not in plain.split("\n")[-1]
    product = drink_request().model_copy(
        update={
            "candidates": [
                Candidate(id="A", text="kettle", attributes=["steel", "1.7 l"]),
                Candidate(id="B", text="kettle", attributes=["glass", "1.7 l"]),
            ]
        }
    )
    featured = str(assess_messages(product, [], [])[-1].content)
    assert "the one feature that would decide it" in featured


def _headphones() -> Request:
    return drink_request().model_copy(
        update={
            "context": "headphones",
            "candidates": [
                Candidate(id="A", text="a", attributes=["in-ear design", "wired connection"]),
                Candidate(id="B", text="b", attributes=["ear-hook in-ear design", "USB-C port"]),
                Candidate(id="none", text="Do not buy anything"),
            ],
        }
    )


def test_options_carry_what_the_person_said_about_their_features() -> None:
    """Each feature a stored preference names carries that preference's words: whole words,
    any case, plural; a feature inside a longer named feature counts for the longer one."""
    from pahf.reasoners.prompts import choose_messages, option_mentions

    mems = [
        memory_record("m-1", "I won't accept Ear-hook in-ear designs."),
        memory_record("m-2", "I like a wired connection best."),
        memory_record("m-3", "Nothing about wireless connections."),  # not "wired connection"
    ]
    assert option_mentions(_headphones(), mems) == {
        "B": {"ear-hook in-ear design": ["M1"]},
        "A": {"wired connection": ["M2"]},
    }
    prompt = str(choose_messages(_headphones(), mems, [])[-1].content)
    assert "- A: in-ear design, wired connection (they said: 'I like a wired connection best.')" in (
        prompt
    )
    assert "- B: ear-hook in-ear design (they said: \"I won't accept Ear-hook in-ear designs.\")" in (
        prompt
    )
    assert "- none: Do not buy anything\n" in prompt
    # products: refusals rule options out, and declining is named by its id
    assert "a feature a stored preference refuses is wrong" in prompt
    assert "If every option with features has a refused feature, choose 'none'." in prompt
    # an option without features is named by its text (embodied requests)
    drinks = choose_messages(drink_request(), [memory_record("m-1", "Not the Black Coffee.")], [])
    assert "- B: black coffee (they said: 'Not the Black Coffee.')" in str(drinks[-1].content)
    assert "refused feature" not in str(drinks[-1].content)
    assert "learned when" not in str(drinks[-1].content)


def test_what_the_person_said_later_about_an_option_comes_last_and_holds() -> None:
    """A change of mind stored beside the old preference (not superseding it) must not read
    as the older words: the quotes go oldest first whatever the relevance order, and the model
    is told the later one holds. One quote per option adds no such line."""
    from pahf.reasoners.prompts import assess_messages, choose_messages

    old = memory_record("m-old", "When working late I want black coffee.")
    new = memory_record("m-new", "Not the black coffee any more: herbal tea when working late.")
    new = new.model_copy(
        update={"record": new.record.model_copy(update={"created_at": "2024-02-01T00:00:00+00:00"})}
    )
    for build in (choose_messages, assess_messages):
        for mems in ([new, old], [old, new]):  # relevance order must not matter
            prompt = str(build(drink_request(), mems, [])[-1].content)
            assert (
                "- B: black coffee (they said: 'When working late I want black coffee.', later: "
                "'Not the black coffee any more: herbal tea when working late.')"
            ) in prompt
            assert "the later one holds" in prompt
    single = str(choose_messages(drink_request(), [old], [])[-1].content)
    assert "later" not in single


@pytest.mark.parametrize("ids", [("A",), ("A", "B"), ("x 1", "y-2", "Z"), tuple(f"c{i}" for i in range(7))])
def test_schemas_per_id_set_are_what_pydantic_renders(ids: tuple[str, ...]) -> None:
    """The per-id-set JSON schemas come from a template (building a pydantic class per request
    was most of a decision's CPU): they must be exactly pydantic's rendering of the enum, and
    the shared template must not pick up one request's ids."""
    from typing import Literal

    from pahf.reasoners import prompts

    request = Request(
        task="t", candidates=[Candidate(id=i, text=f"option {i}") for i in ids]
    )
    enum = Literal[ids]  # type: ignore[valid-type]
    for schema, build in [
        (prompts.assess_schema(request), prompts._assess_model),
        (prompts.choose_schema(request), prompts._choose_model),
    ]:
        assert schema.json == build(enum).model_json_schema()
        assert schema.name == build(enum).__name__
    other = Request(task="t", candidates=[Candidate(id="Q", text="q"), Candidate(id="R", text="r")])
    assert prompts.choose_schema(other).json["properties"]["candidate_id"]["enum"] == ["Q", "R"]
    assert prompts.choose_schema(request).json == prompts._choose_model(enum).model_json_schema()


class WrappedOnlyFake(ToolCallingFake):
    """A provider whose structured output is not LangChain's usual ``model | parser``
    sequence: the reasoner must then call the ``include_raw`` wrapper it returns as a whole."""

    wrapper_calls: int = 0

    def with_structured_output(self, schema: Any, *, include_raw: bool = False, **kw: Any) -> Any:
        inner = super().with_structured_output(schema, include_raw=include_raw, **kw)

        def call(messages: Any) -> Any:
            self.wrapper_calls += 1
            return inner.invoke(messages)

        return RunnableLambda(call)


def test_a_structured_output_of_another_shape_is_called_whole() -> None:
    model = WrappedOnlyFake(replies=[choose("Z"), choose("C")], log=[])
    retry = LLMReasoner(model).choose(drink_request(), [], [])
    assert retry.candidate_id == "C"
    assert model.wrapper_calls == 2  # the invalid id was sent back through the same wrapper
    assert "Input should be 'A', 'B' or 'C'" in str(model.log[-1][-1].content)


# --------------------------------------------------------------------------- the person's words


def test_a_change_of_mind_the_model_did_not_mark_still_revises_the_old_preference() -> None:
    """The 1.5B model rarely names the preference a correction replaces; when the message
    refuses what an earlier preference of this situation wanted (or the reverse), that
    preference is superseded all the same. Agreement, another option, or another situation
    leave it."""
    req = drink_request("r9")
    turn = Turn(
        kind="correction",
        text="Not the black coffee. When dehydrated, I prefer orange juice.",
        action=None,
    )
    old = memory_record("m-old", "When I'm dehydrated, I like black coffee.")
    [op] = LLMReasoner(fake(learn("orange juice"))).learn(req, turn, [old])
    assert (op.kind, op.target_id) == ("supersede", "m-old")
    # The model's own choice stands where it made one (a correction may revise another).
    both = [old, memory_record("m-two", "When dehydrated, no orange juice.")]
    [op] = LLMReasoner(fake(learn("orange juice", "", "M2"))).learn(req, turn, both)
    assert (op.kind, op.target_id) == ("supersede", "m-two")
    for kept in (
        memory_record("m-same", "When dehydrated, I never want black coffee."),
        memory_record("m-else", "When dehydrated, I like orange juice."),
        memory_record("m-away", "I like black coffee.", topic="Drowsy: bring me a drink"),
        memory_record("m-now", "I like black coffee.", request_id="r9"),
    ):
        [op] = LLMReasoner(fake(learn("orange juice"))).learn(req, turn, [kept])
        assert (op.kind, op.target_id) == ("add", None), kept.record.id


def shoe_request(request_id: str = "r5") -> Request:
    return Request(
        request_id=request_id,
        domain="shopping",
        task="Help me buy running shoes.",
        context="running shoes",
        candidates=[
            Candidate(id="A", text="A", attributes=["mesh upper", "carbon plate"]),
            Candidate(id="B", text="B", attributes=["leather upper", "foam sole"]),
            Candidate(id="C", text="C", attributes=["mesh upper", "foam sole"]),
            Candidate(id="none", text="Do not buy anything"),
        ],
    )


SHOE_TOPIC = "running shoes: Help me buy running shoes."


def test_options_the_persons_latest_word_refuses_are_not_offered() -> None:
    """An option with a feature the person refused in this situation is not in the prompt or
    the schema's enum; where their latest word on it is a liking again, it is back."""
    req = shoe_request()
    refusal = memory_record("m-1", "For the upper, I won't accept leather upper.", SHOE_TOPIC)
    model = fake(choose("C"))
    assert LLMReasoner(model).choose(req, [refusal], []).candidate_id == "C"
    prompt = str(model.log[0][-1].content)
    assert "- B:" not in prompt and "- A:" in prompt and "- C:" in prompt
    # The model cannot name it either: the reply is re-asked, then the decision fails.
    model = fake(choose("B"), choose("B"))
    with pytest.raises(LLMOutputError, match="candidate_id 'B'"):
        LLMReasoner(model).choose(req, [refusal], [])
    # A later liking in the same situation lifts the refusal; another situation's refusal,
    # or the check turned off, leaves every option on offer.
    later = memory_record("m-2", "Now I like leather upper best.", SHOE_TOPIC)
    later.record.created_at = "2024-02-01T00:00:00+00:00"
    elsewhere = memory_record("m-3", "I won't accept leather upper.", "hiking boots: Buy boots.")
    for mems, enforce in (([refusal, later], True), ([elsewhere], True), ([refusal], False)):
        model = fake(choose("B"))
        reasoner = LLMReasoner(model, enforce_refusals=enforce)
        assert reasoner.choose(req, mems, []).candidate_id == "B"
        assert "- B:" in str(model.log[0][-1].content)


def test_an_answer_given_now_counts_and_a_single_option_left_needs_no_call() -> None:
    req = shoe_request()
    refusal = memory_record("m-1", "I won't accept carbon plate.", SHOE_TOPIC)
    answer = Turn(
        kind="clarification", text="I don't want foam sole or leather upper.", question="Sole?"
    )
    model = fake()
    action = LLMReasoner(model).choose(req, [refusal], [answer])
    assert action.candidate_id == "none" and model.log == []
    assessment = LLMReasoner(model).assess(req, [refusal], [answer])
    assert not assessment.ambiguous and assessment.proposed == action
    # Everything refused and nothing to decline with: the model decides among all of them.
    drinks = drink_request()
    said = Turn(kind="clarification", text="Not black coffee, orange juice or ice-cold water.")
    model = fake(choose("A"))
    assert LLMReasoner(model).choose(drinks, [], [said]).candidate_id == "A"
    assert "- B:" in str(model.log[0][-1].content)
