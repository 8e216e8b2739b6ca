"""Embed the PAHF graph as a subgraph node of another LangGraph app.

The host app here is a small "errand assistant": it turns an errand into a PAHF request, lets
the PAHF subgraph ask, act and take feedback, then phrases a reply. Only the parent graph has a
checkpointer; the subgraph's questions surface as the parent's interrupts and are resumed
through the parent with ``Command(resume=...)``, exactly as a chat front end would do it.

Run it (offline, a few seconds):

    python examples/subgraph_app.py                      # in-memory store and checkpoints
    python examples/subgraph_app.py --memory ./.pahf/demo --checkpointer sqlite:///.pahf/app.db
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from pahf.context import RunContext
from pahf.decisions import Action
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import checkpointer_from_url
from pahf.memory.base import PreferenceMemory
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.schema import AppliedMemoryOp
from pahf.reasoners.offline import OfflineReasoner
from pahf.request import Candidate, Request


class ErrandState(TypedDict, total=False):
    """The host app's own state. ``request``/``action``/``memory_ops`` are shared with the
    PAHF subgraph (same keys), everything else is the host's business."""

    errand: str
    situation: str
    options: list[str]
    request: Request
    action: Action | None
    memory_ops: list[AppliedMemoryOp]
    reply: str


def understand(state: ErrandState) -> dict[str, Any]:
    """Host step: turn the errand into the multiple-choice request PAHF works on."""
    candidates = [
        Candidate(id=f"option-{i}", text=text, attributes=[text])
        for i, text in enumerate(state["options"], start=1)
    ]
    return {
        "request": Request(task=state["errand"], context=state["situation"], candidates=candidates)
    }


def respond(state: ErrandState) -> dict[str, Any]:
    """Host step: phrase the outcome for the person."""
    action = state.get("action")
    if action is None:
        return {"reply": "I could not choose anything."}
    learned = [op.text for op in state.get("memory_ops", []) if op.kind in ("add", "supersede")]
    note = f" (noted: {'; '.join(learned)})" if learned else ""
    return {"reply": f"Done: {action.candidate_text.split(': ', 1)[-1]}{note}"}


def build_app(memory: PreferenceMemory, checkpointer_url: str = "memory") -> CompiledStateGraph[
    Any, Any, Any, Any
]:
    """The host graph with the compiled PAHF graph as its ``pahf`` node."""
    pahf = build_graph(OfflineReasoner(memory.encoder), memory)  # no checkpointer: the parent's
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ErrandState, context_schema=RunContext)
    builder.add_node("understand", understand)
    builder.add_node("pahf", pahf)
    builder.add_node("respond", respond)
    builder.add_edge(START, "understand")
    builder.add_edge("understand", "pahf")
    builder.add_edge("pahf", "respond")
    builder.add_edge("respond", END)
    return builder.compile(checkpointer=checkpointer_from_url(checkpointer_url), name="errands")


#: Answers the person gives in the demo (a real app shows the question and waits).
Person = Callable[[dict[str, Any]], str]


def scripted_person(answer: str, correction: str = "") -> Person:
    """A person who answers any question with ``answer`` and gives ``correction`` as feedback."""

    def reply(prompt: dict[str, Any]) -> str:
        return answer if prompt["type"] == "question" else correction

    return reply


def run_errand(
    app: CompiledStateGraph[Any, Any, Any, Any],
    errand: ErrandState,
    *,
    thread_id: str,
    context: RunContext,
    person: Person,
    transcript: list[str],
) -> dict[str, Any]:
    """Drive one errand to the end, resuming every interrupt through the parent graph."""
    config: Any = {"configurable": {"thread_id": thread_id}}
    result: dict[str, Any] = app.invoke(errand, config, context=context)
    while result.get("__interrupt__"):
        prompt = result["__interrupt__"][0].value
        if prompt["type"] == "question":
            transcript.append(f"assistant asks: {prompt['question']}")
        else:
            transcript.append(f"assistant did: {prompt['action']['candidate_text']}")
        answer = person(prompt)
        transcript.append(f"{context.user_id} says: {answer or '(accepts)'}")
        result = app.invoke(Command(resume=answer), config, context=context)
    transcript.append(f"assistant: {result['reply']}")
    return result


def main(
    memory: PreferenceMemory | None = None, checkpointer_url: str = "memory"
) -> list[str]:
    """Two errands for alice: the first teaches the assistant, the second uses what it learned."""
    store = memory if memory is not None else ChromaPreferenceMemory.in_memory()
    app = build_app(store, checkpointer_url)
    ctx = RunContext(user_id="alice")
    transcript: list[str] = []
    drinks = ["hot coffee", "ice water", "cola"]
    run_errand(
        app,
        {"errand": "get me a drink", "situation": "dehydrated after a run", "options": drinks},
        thread_id="alice-errand-1",
        context=ctx,
        person=scripted_person("ice water please, never coffee when I am dehydrated"),
        transcript=transcript,
    )
    run_errand(
        app,
        {"errand": "get me a drink", "situation": "dehydrated after a run", "options": drinks},
        thread_id="alice-errand-2",
        context=ctx,
        person=scripted_person("(not asked)"),
        transcript=transcript,
    )
    return transcript


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", default=None, help="memory store directory or Chroma URL")
    parser.add_argument("--checkpointer", default="memory", help="memory | sqlite:///f.db | ...")
    args = parser.parse_args()
    store = None if args.memory is None else ChromaPreferenceMemory(args.memory)
    for line in main(store, args.checkpointer):
        print(line)
