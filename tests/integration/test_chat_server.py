"""A chat conversation against the real ``langgraph dev`` server, as a chat UI holds it.

What Agent Chat UI sends: ``{"messages": [...]}`` as input, ``{"decisions": [...]}`` (or an Agent
Inbox response list) as resumes, and it reads ``values.messages`` and the thread's interrupts.
No input can brick a thread: every bad one ends its run with an AI message, and the thread's
state, history and next input keep working. Checkpoints hold plain JSON: the server's log has
no "Deserializing unregistered type" warning, also under ``LANGGRAPH_STRICT_MSGPACK=true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from .conftest import LangGraphServer, start_langgraph

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRAPH_ID = "pahf"
DRINK = "Bring me a drink | situation: dehydrated after a run | options: hot coffee; ice water"
ANSWER = "When I am dehydrated I want ice water, never hot coffee."


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"type": "human", "content": text}]}


def run(client: SyncLangGraphClient, thread: str, **kwargs: Any) -> dict[str, Any]:
    result = client.runs.wait(thread, GRAPH_ID, **kwargs)
    assert isinstance(result, dict), f"unexpected run result {result!r}"
    return result


def pending(result: dict[str, Any]) -> dict[str, Any] | None:
    interrupts = result.get("__interrupt__") or []
    return interrupts[0]["value"] if interrupts else None


def last_ai(result: dict[str, Any]) -> str:
    message = result["messages"][-1]
    assert message["type"] == "ai", message
    return str(message["content"])


def converse(client: SyncLangGraphClient, user: str) -> str:
    """The full loop on a new thread: request, answer, approve; then a second request answered
    from memory and corrected. Returns the thread id."""
    thread = client.threads.create()["thread_id"]
    ctx = {"user_id": user}
    out = run(client, thread, input=human(DRINK), context=ctx)
    question = pending(out)
    assert question is not None and question["type"] == "question"
    assert question["action_requests"][0]["name"] == "answer_question"
    state = client.threads.get_state(thread)
    interrupts: Any = state["interrupts"]
    assert interrupts[0]["response_schema"]["required"] == ["decisions"]
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai"]

    out = run(client, thread, command={"resume": {"decisions": [
        {"type": "reject", "message": ANSWER}]}}, context=ctx)  # fmt: skip
    feedback = pending(out)
    assert feedback is not None and feedback["action"]["candidate_id"] == "ice-water"
    # Agent Inbox's response list (the npm build of Agent Chat UI) approves it.
    out = run(client, thread, command={"resume": [{"type": "accept", "args": None}]}, context=ctx)
    assert pending(out) is None and "Done: Bring me a drink" in last_ai(out)
    assert f'remembered: "{ANSWER}"' in last_ai(out)

    out = run(client, thread, input=human(DRINK.replace("Bring", "Fetch")), context=ctx)
    again = pending(out)
    assert again is not None and again["type"] == "feedback"  # no question: from memory
    assert again["action"]["candidate_id"] == "ice-water"
    out = run(client, thread, command={"resume": {"decisions": [{"type": "approve"}]}},
              context=ctx)  # fmt: skip
    assert client.threads.get(thread)["status"] == "idle"
    return thread


BAD_INPUTS = [
    ({}, "no new request"),
    (human("hello there"), "could not read a request"),
    ({"request": {"task": "t", "candidates": []}}, "candidates"),
    ({"request": {"task": "t", "candidates": [{"id": "a", "text": "a"}]}}, "no user id"),
]


def test_a_chat_conversation_and_no_input_bricks_a_thread(
    langgraph_server: LangGraphServer,
) -> None:
    client = get_sync_client(url=langgraph_server.url)
    thread = converse(client, "ana")
    for inp, said in BAD_INPUTS:
        for _ in range(2):
            out = run(client, thread, input=inp)
            assert said in last_ai(out) and pending(out) is None
            assert client.threads.get(thread)["status"] == "idle"
        assert client.threads.get_state(thread)["values"]["messages"][-1]["type"] == "ai"
        assert len(client.threads.get_history(thread, limit=5)) == 5
    # A fresh thread whose very first input is bad is usable too.
    fresh = client.threads.create()["thread_id"]
    out = run(client, fresh, input=human("hi"))
    assert "could not read a request" in last_ai(out)
    out = run(client, fresh, input=human(DRINK), context={"user_id": "ana"})
    assert pending(out) is not None and pending(out)["type"] == "feedback"  # type: ignore[index]


def test_malformed_and_null_resumes_are_asked_again(langgraph_server: LangGraphServer) -> None:
    client = get_sync_client(url=langgraph_server.url)
    thread = client.threads.create()["thread_id"]
    ctx = {"user_id": "bo"}
    run(client, thread, input=human(DRINK), context=ctx)
    out = run(client, thread, command={"resume": {"decisions": [{"type": "approve"}]}},
              context=ctx)  # fmt: skip
    question = pending(out)
    assert question is not None and "cannot be approved" in question["error"]
    out = run(client, thread, command={"resume": None}, context=ctx)  # "nothing to add"
    question = pending(out)
    assert question is not None and question["type"] == "question"
    assert client.threads.get(thread)["status"] == "interrupted"
    out = run(client, thread, command={"resume": ANSWER}, context=ctx)
    out = run(client, thread, command={"resume": {"decisions": [{"type": "reject"}]}}, context=ctx)
    feedback = pending(out)
    assert feedback is not None and "message" in feedback["error"]
    out = run(client, thread, command={"resume": ""}, context=ctx)
    assert "Done:" in last_ai(out)


@pytest.mark.parametrize("strict", [False, True])
def test_checkpoints_hold_no_unregistered_types(tmp_path: Path, strict: bool) -> None:
    """The whole loop plus state and history reads, then the server's log: no warning about
    (or block of) an unregistered type, with and without strict msgpack."""
    env = {"LANGGRAPH_STRICT_MSGPACK": "true"} if strict else {}
    server = start_langgraph(tmp_path / "langgraph", env=env)
    try:
        client = get_sync_client(url=server.url)
        thread = converse(client, "cy")
        history = client.threads.get_history(thread, limit=50)
        assert len(history) > 10
        values: Any = history[0]["values"]
        assert values["action"]["candidate_id"] == "ice-water"
        assert any(h["values"].get("memory_ops") for h in history)  # typed values read back
    finally:
        server.stop()
    log = server.server.log.read_text(errors="replace")
    assert "Traceback" not in log
    assert "unregistered type" not in log and "Blocked deserialization" not in log


def test_the_one_interrupt_per_node_relay_carries_both_turns_to_a_remote_graph(
    langgraph_server: LangGraphServer,
) -> None:
    """docs/deploy.md's relay (examples/remote_relay.py): a parent app with its own
    checkpointer asks pahf's question and feedback through the server's thread."""
    import importlib.util

    from langgraph.types import Command

    spec = importlib.util.spec_from_file_location(
        "remote_relay", Path(__file__).resolve().parents[2] / "examples" / "remote_relay.py"
    )
    assert spec is not None and spec.loader is not None
    relay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(relay)
    host = relay.build_host(langgraph_server.url, context={"user_id": "dee"})
    config: Any = {"configurable": {"thread_id": "host-thread"}}
    request = {"task": "get me a drink", "context": "dehydrated after a run",
               "candidates": [{"id": "coffee", "text": "hot coffee"},
                              {"id": "water", "text": "ice water"}]}  # fmt: skip
    out = host.invoke({"request": request}, config)
    assert out["__interrupt__"][0].value["type"] == "question"
    out = host.invoke(Command(resume=ANSWER), config)
    assert out["__interrupt__"][0].value["type"] == "feedback"
    out = host.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
    assert "__interrupt__" not in out and out["action"]["candidate_id"] == "water"
    client = get_sync_client(url=langgraph_server.url)
    remote = client.threads.get(out["remote_thread"])
    assert remote["status"] == "idle"
