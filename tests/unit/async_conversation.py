"""One PAHF conversation driven from an event loop, as an async host application drives it.

Each human turn is a separate ``ainvoke`` on a saver opened afresh from its URL, as when every
web request of the person opens its own connection (or the app restarted in between): only the
checkpointer carries the paused run from one turn to the next. The request and the person's
words are also those of the process-restart tests (tests/integration/test_persistence.py).
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from pahf.context import RunContext
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import open_async_checkpointer
from pahf.memory.base import PreferenceMemory
from pahf.reasoners.offline import OfflineReasoner

REQUEST: dict[str, Any] = {
    "request_id": "drink-1",
    "user_id": "dana",
    "task": "get me a drink",
    "context": "dehydrated after a run",
    "candidates": [
        {"id": "coffee", "text": "hot coffee", "attributes": ["hot coffee"]},
        {"id": "water", "text": "ice water", "attributes": ["ice water"]},
    ],
}
ANSWER = "ice water, never coffee when I am dehydrated"
CORRECTION = "actually I want hot coffee now, even when dehydrated"


async def converse(url: str, memory: PreferenceMemory, thread: str) -> list[dict[str, Any]]:
    """Request -> question; answer -> feedback prompt; correction -> done. The three outputs."""
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    context = RunContext(user_id="dana")
    inputs: list[Any] = [{"request": REQUEST}, Command(resume=ANSWER), Command(resume=CORRECTION)]
    outputs = []
    for turn in inputs:
        async with open_async_checkpointer(url) as saver:
            graph = build_graph(OfflineReasoner(memory.encoder), memory, saver)
            outputs.append(await graph.ainvoke(turn, config, context=context))
    return outputs


def check_conversation(outputs: list[dict[str, Any]]) -> None:
    first, second, third = outputs
    assert first["__interrupt__"][0].value["type"] == "question"
    assert second["__interrupt__"][0].value["type"] == "feedback"
    assert second["action"].candidate_id == "water"  # the answer reached the paused run
    assert "__interrupt__" not in third
    kinds = [op.kind for op in third["memory_ops"]]
    assert kinds == ["add", "supersede"]  # the correction revised what the answer taught
    assert third["memory_ops"][1].target_id == second["memory_ops"][0].memory_id
