"""Use a deployed pahf graph from another LangGraph app: the one-interrupt-per-node relay.

A ``RemoteGraph`` added as a parent's node does not forward resumes: the parent's
``Command(resume=...)`` never reaches the remote thread, so the remote question stays pending
forever. What works is a relay: ``start`` sends the request once; ``relay`` surfaces the remote
thread's pending interrupt as the parent's own (at most one ``interrupt()`` per node run),
forwards the answer with ``Command(resume=...)`` after the local interrupt returns, and loops
back to itself until the remote run is done. The remote thread id must be a UUID (the server
refuses other ids).

    make serve &                                      # the pahf graph on 127.0.0.1:2024
    python examples/remote_relay.py http://127.0.0.1:2024
"""

import sys
import uuid
from typing import Any, Literal, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command, interrupt


class HostState(TypedDict, total=False):
    request: dict[str, Any]
    remote_thread: str
    action: dict[str, Any]


def build_host(url: str, context: dict[str, Any] | None = None) -> CompiledStateGraph:  # type: ignore[type-arg]
    """A host app whose ``pahf`` step runs on the server at ``url``."""
    remote = RemoteGraph("pahf", url=url)

    def start(state: HostState) -> dict[str, Any]:
        thread = str(uuid.uuid4())  # the server wants a UUID thread id
        remote.invoke({"request": state["request"]},
                      {"configurable": {"thread_id": thread}}, context=context)  # fmt: skip
        return {"remote_thread": thread}

    def relay(state: HostState) -> Command[Literal["relay", "__end__"]]:
        config: Any = {"configurable": {"thread_id": state["remote_thread"]}}
        snapshot = remote.get_state(config)
        if snapshot.interrupts:
            reply = interrupt(snapshot.interrupts[0].value)  # the only interrupt of this run
            remote.invoke(Command(resume=reply), config, context=context)
            return Command(goto="relay")  # the next run of this node relays the next turn
        return Command(update={"action": snapshot.values.get("action")}, goto=END)

    builder = StateGraph(HostState)
    builder.add_node("start", start)
    builder.add_node("relay", relay, destinations=("relay", END))
    builder.add_edge(START, "start")
    builder.add_edge("start", "relay")
    return builder.compile(checkpointer=InMemorySaver())


def main(url: str) -> None:
    host = build_host(url, context={"user_id": "relay-demo"})
    config: Any = {"configurable": {"thread_id": "host-1"}}
    request = {"task": "get me a drink", "context": "dehydrated after a run",
               "candidates": [{"id": "coffee", "text": "hot coffee"},
                              {"id": "water", "text": "ice water"}]}  # fmt: skip
    out = host.invoke({"request": request}, config)
    replies = iter(["Ice water when I'm dehydrated.", {"decisions": [{"type": "approve"}]}])
    while out.get("__interrupt__"):
        print("pahf asks:", out["__interrupt__"][0].value["description"].splitlines()[0])
        out = host.invoke(Command(resume=next(replies)), config)
    print("pahf did:", out["action"]["candidate_text"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:2024")
