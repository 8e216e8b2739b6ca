"""Streaming a chat run with the LLM reasoner (``stream_mode="messages"``, what chat UIs and Studio
ask for) against the OpenAI-protocol stub server: the model reads the request from free text,
the reasoner decides, and only the agent's own messages reach the stream; the structured calls
are never sent with ``stream: true`` and their JSON never shows up as a reply."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langgraph.types import Command

from pahf.context import RunContext
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.reasoners.llm import LLMReasoner

from .test_openai_server import Stub, assess, stub  # noqa: F401 - the stub server fixture

pytestmark = pytest.mark.integration

FREE_TEXT = "I just got back from a run and I'm parched. Coffee or water, what would you bring?"


def test_stream_mode_messages_shows_the_agents_messages_and_never_the_reasoners_json(
    stub: Stub,  # noqa: F811
) -> None:
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    graph = build_graph(LLMReasoner(stub.chat()), memory, memory_checkpointer())
    cfg: dict[str, Any] = {"configurable": {"thread_id": uuid.uuid4().hex}}
    ctx = RunContext(user_id="lee", reasoner="llm")
    draft = {"task": "bring me a drink", "situation": "after a run, parched",
             "options": ["black coffee", "ice water"]}  # fmt: skip
    stub.script({"content": draft}, {"content": assess(False, "ice-water")})

    streamed: list[Any] = []
    custom: list[str] = []
    inp = {"messages": [{"role": "user", "content": FREE_TEXT}]}
    for mode, chunk in graph.stream(inp, cfg, context=ctx, stream_mode=["messages", "custom"]):
        if mode == "messages":
            streamed.append(chunk[0])
        else:
            custom.append(chunk["pahf"])
    state = graph.get_state(cfg)
    prompt = state.interrupts[0].value
    assert prompt["type"] == "feedback" and prompt["action"]["candidate_id"] == "ice-water"
    assert [c.text for c in state.values["request"].candidates] == ["black coffee", "ice water"]
    assert state.values["request"].context == "after a run, parched"

    # The model was asked twice (read the request, assess), never to stream.
    requests = stub.log()["requests"]
    assert len(requests) == 2 and not any(r.get("stream") for r in requests)
    # Only the agent's own message reached the stream: no JSON of a decision, no chunks.
    texts = [str(m.content) for m in streamed]
    assert texts == [str(state.values["messages"][-1].content)]
    assert texts[0].startswith("I choose: **ice water**")
    assert not any("candidate_id" in t or '"task"' in t or "{" in t for t in texts)
    assert custom == ["searching memory", "asking"]

    streamed.clear()
    for message, _meta in graph.stream(
        Command(resume={"decisions": [{"type": "approve"}]}), cfg, stream_mode="messages"
    ):
        streamed.append(message)
    assert [m.type for m in streamed] == ["human", "ai"]
    assert str(streamed[-1].content).startswith("Done: bring me a drink -> **ice water**")
    assert stub.log()["pending"] == 0 and len(stub.log()["requests"]) == 2  # no learn call
    assert memory.users() == []  # nothing learned from an accepted, memory-less action


def test_a_free_text_message_the_model_cannot_read_ends_with_a_message(
    stub: Stub,  # noqa: F811
) -> None:
    """A graph built with the LLM reasoner reads free text with it, whatever the context's
    reasoner field says (that field picks the reasoner only where none was given)."""
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    graph = build_graph(LLMReasoner(stub.chat()), memory, memory_checkpointer())
    cfg: dict[str, Any] = {"configurable": {"thread_id": uuid.uuid4().hex}}
    stub.script({"content": {"task": "", "situation": "", "options": []}})
    out = graph.invoke({"messages": [{"role": "user", "content": "thanks, bye!"}]}, cfg,
                       context=RunContext(user_id="lee"))  # fmt: skip
    said = str(out["messages"][-1].content)
    assert "could not read a request" in said and "does not read as a request" in said
    assert graph.get_state(cfg).next == ()
