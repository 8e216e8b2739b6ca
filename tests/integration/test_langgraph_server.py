"""The graph as deployed: ``langgraph dev`` serving ``langgraph.json``, driven with langgraph_sdk.

Covers what Studio and any SDK client do: create a thread, run a request to the ask-user
interrupt, resume with the answer, reach the feedback interrupt, resume with a correction; and
per-run configuration through the run context (user, switches, a store the operator allowed
by name), so one deployed graph serves many users. These servers run without tokens (local
development); tests/integration/test_serving_safely.py covers the authenticated set-up. The
dev server's state lives in a scratch directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from pahf.context import RunContext
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.schema import NewMemory

from .conftest import ChromaServer, LangGraphServer, start_langgraph

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRAPH_ID = "pahf"  # the key in langgraph.json
#: The name under which the operator allows runs to pick the test's Chroma server.
CHROMA_STORE = "shared-chroma"


@pytest.fixture(scope="module")
def langgraph_server(
    tmp_path_factory: pytest.TempPathFactory, chroma_server: ChromaServer
) -> Iterator[LangGraphServer]:
    """One dev server per module, allowing runs to name the module's Chroma server."""
    server = start_langgraph(
        tmp_path_factory.mktemp("langgraph"), env={"PAHF_STORES": f"{CHROMA_STORE}={chroma_server.url}"}
    )
    try:
        yield server
    finally:
        server.stop()
ANSWER = "ice water, never coffee when I am dehydrated"
CORRECTION = "I want hot coffee now, even when dehydrated"


def drink_request(request_id: str, user_id: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "request_id": request_id,
        "task": "get me a drink",
        "context": "dehydrated after a run",
        "candidates": [
            {"id": "coffee", "text": "hot coffee", "attributes": ["hot coffee"]},
            {"id": "water", "text": "ice water", "attributes": ["ice water"]},
        ],
    }
    if user_id is not None:
        request["user_id"] = user_id
    return request


def interrupt_of(result: dict[str, Any]) -> dict[str, Any] | None:
    interrupts = result.get("__interrupt__") or []
    return interrupts[0]["value"] if interrupts else None


def interrupt_type(result: dict[str, Any]) -> str | None:
    """The pending prompt's type (question / feedback), or None when the run finished."""
    prompt = interrupt_of(result)
    return None if prompt is None else str(prompt["type"])


def run(client: SyncLangGraphClient, thread: str, **kwargs: Any) -> dict[str, Any]:
    result = client.runs.wait(thread, GRAPH_ID, **kwargs)
    assert isinstance(result, dict), f"unexpected run result {result!r}"
    return result


def test_studio_sees_the_request_input_and_the_run_context_form(
    langgraph_server: LangGraphServer,
) -> None:
    client = get_sync_client(url=langgraph_server.url)
    assistant = client.assistants.search(graph_id=GRAPH_ID)[0]
    schemas = client.assistants.get_schemas(assistant["assistant_id"])
    inputs: Any = schemas["input_schema"]
    assert list(inputs["properties"]) == ["request", "messages"]  # a form, or a chat message
    context: Any = schemas["context_schema"]
    assert context is not None
    assert set(context["properties"]) == set(RunContext.model_fields)


def test_episode_over_the_server_writes_memory(tmp_path: Path) -> None:
    """Ask, answer, act, correct through the server; then read what its graph stored."""
    server = start_langgraph(tmp_path / "langgraph")
    try:
        client = get_sync_client(url=server.url)
        thread = client.threads.create()["thread_id"]
        ctx = {"top_k": 4, "question_budget": 1}

        first = run(client, thread, input={"request": drink_request("d1", "alice")}, context=ctx)
        question = interrupt_of(first)
        assert question is not None and question["type"] == "question"
        assert question["user_id"] == "alice" and question["request_id"] == "d1"
        assert client.threads.get(thread)["status"] == "interrupted"

        second = run(client, thread, command={"resume": ANSWER}, context=ctx)
        feedback = interrupt_of(second)
        assert feedback is not None and feedback["type"] == "feedback"
        assert feedback["action"]["candidate_id"] == "water"
        assert [op["kind"] for op in second["memory_ops"]] == ["add"]

        third = run(client, thread, command={"resume": CORRECTION}, context=ctx)
        assert interrupt_of(third) is None
        assert third["feedback"]["correction"] == CORRECTION
        ops = third["memory_ops"]
        assert [op["kind"] for op in ops] == ["add", "supersede"]
        assert client.threads.get(thread)["status"] == "idle"

        # A new request on the same thread uses what the server learned: no question asked.
        again = run(client, thread, input={"request": drink_request("d2", "alice")}, context=ctx)
        assert interrupt_type(again) == "feedback"
        assert again["action"]["candidate_id"] == "coffee"
        assert again["clarifications"] == []
        run(client, thread, command={"resume": ""}, context=ctx)
    finally:
        server.stop()

    # Stopped: nobody else has the embedded store open. It is where PAHF_MEMORY pointed.
    store = ChromaPreferenceMemory(str(server.memory_dir))
    records = {r.id: r for r in store.get_all("alice")}
    added, newest = ops[0]["memory_id"], ops[1]["memory_id"]
    assert set(records) == {added, newest}
    assert records[added].text == ANSWER and records[added].status == "superseded"
    assert records[newest].text == CORRECTION and records[newest].supersedes == added
    # The dev server kept its own state in the scratch directory, not in the repository.
    assert (server.workdir / ".langgraph_api").is_dir()


def test_one_deployed_graph_serves_users_with_different_switches(
    langgraph_server: LangGraphServer, chroma_server: ChromaServer
) -> None:
    """Per-run context: the user, the feedback channels, the budget and an allowed store."""
    client = get_sync_client(url=langgraph_server.url)
    where = {"memory_location": CHROMA_STORE}

    # alice: the full loop; her id comes from the context only.
    alice = client.threads.create()["thread_id"]
    out = run(client, alice, input={"request": drink_request("a1")},
              context={"user_id": "alice", **where})  # fmt: skip
    assert interrupt_type(out) == "question"
    assert out["user_id"] == "alice"

    # bob: clarification off -> straight to the action and its feedback prompt.
    bob = client.threads.create()["thread_id"]
    out = run(client, bob, input={"request": drink_request("b1")},
              context={"user_id": "bob", "pre_action": False, **where})  # fmt: skip
    assert interrupt_type(out) == "feedback"
    # nothing to assess: no question could follow, and the gate says why
    assert out["assessment"]["ambiguous"] is False
    assert out["assessment"]["reason"] == "clarification is off"
    out = run(client, bob, command={"resume": CORRECTION},
              context={"user_id": "bob", "pre_action": False, **where})  # fmt: skip
    assert [op["kind"] for op in out["memory_ops"]] == ["add"]

    # carol: no question budget and no feedback channel -> one run, no interrupt at all.
    carol = client.threads.create()["thread_id"]
    out = run(client, carol, input={"request": drink_request("c1")},
              context={"user_id": "carol", "question_budget": 0, "post_action": False, **where})  # fmt: skip
    assert interrupt_of(out) is None
    assert out["action"] is not None and out["memory_ops"] == []
    assert client.threads.get(carol)["status"] == "idle"

    # dave: asked, but memory off -> his answer is used and nothing is stored.
    dave = client.threads.create()["thread_id"]
    ctx_dave = {"user_id": "dave", "use_memory": False, "post_action": False, **where}
    out = run(client, dave, input={"request": drink_request("e1")}, context=ctx_dave)
    assert interrupt_type(out) == "question"
    out = run(client, dave, command={"resume": ANSWER}, context=ctx_dave)
    assert out["action"]["candidate_id"] == "water" and out["memory_ops"] == []

    # alice again, interleaved after the others: her paused thread is intact.
    out = run(client, alice, command={"resume": ANSWER}, context={"user_id": "alice", **where})
    assert interrupt_type(out) == "feedback"
    run(client, alice, command={"resume": ""}, context={"user_id": "alice", **where})

    # The memory the server wrote is on the Chroma server named in the context, per user.
    on_server = ChromaPreferenceMemory(chroma_server.url)
    assert on_server.users() == ["alice", "bob"]
    assert [r.text for r in on_server.get_all("alice")] == [ANSWER]
    assert [r.text for r in on_server.get_all("bob")] == [CORRECTION]
    # ...and not in the server's default store.
    assert not (langgraph_server.memory_dir / "chroma.sqlite3").exists()


def test_top_k_from_the_context_bounds_retrieval(
    langgraph_server: LangGraphServer, chroma_server: ChromaServer
) -> None:
    seeded = ChromaPreferenceMemory(chroma_server.url)
    for text in ("ice water", "sparkling water", "no coffee", "cold drinks"):
        seeded.add("fay", NewMemory(text=text, topic="dehydrated after a run"))
    client = get_sync_client(url=langgraph_server.url)
    quiet = {"user_id": "fay", "pre_action": False, "post_action": False,
             "memory_location": CHROMA_STORE}  # fmt: skip
    retrieved = []
    for top_k in (2, 8):
        thread = client.threads.create()["thread_id"]
        out = run(client, thread, input={"request": drink_request(f"f{top_k}")},
                  context={**quiet, "top_k": top_k})  # fmt: skip
        assert interrupt_of(out) is None
        state: Any = client.threads.get_state(thread)["values"]
        retrieved.append(len(state["memories"]))
    assert retrieved == [2, 4]


@pytest.mark.parametrize(
    ("context", "named"),
    [({"question_budget": 99}, "question_budget"), ({"reasoner": "gpt"}, "reasoner"),
     ({"top_k": 0}, "top_k")],
)  # fmt: skip
def test_bad_run_context_is_refused_naming_the_field(
    langgraph_server: LangGraphServer, context: dict[str, Any], named: str
) -> None:
    client = get_sync_client(url=langgraph_server.url)
    thread = client.threads.create()["thread_id"]
    with pytest.raises(Exception, match=named):
        run(client, thread, input={"request": drink_request("x1", "alice")}, context=context)
    assert client.threads.get(thread)["status"] == "error"


def test_request_and_context_disagreeing_on_the_user_are_refused(
    langgraph_server: LangGraphServer,
) -> None:
    client = get_sync_client(url=langgraph_server.url)
    thread = client.threads.create()["thread_id"]
    out = run(client, thread, input={"request": drink_request("x2", "alice")},
              context={"user_id": "mallory"})  # fmt: skip
    assert "disagree" in out["messages"][-1]["content"] and interrupt_of(out) is None
    assert client.threads.get(thread)["status"] == "idle"  # the thread stays usable


def test_without_tokens_the_server_says_it_is_unauthenticated(
    langgraph_server: LangGraphServer,
) -> None:
    assert "UNAUTHENTICATED" in langgraph_server.server.log.read_text(errors="replace")


def test_a_thread_is_not_resumed_or_reused_under_another_user(
    langgraph_server: LangGraphServer,
) -> None:
    client = get_sync_client(url=langgraph_server.url)
    thread = client.threads.create()["thread_id"]
    out = run(client, thread, input={"request": drink_request("t1")}, context={"user_id": "alice"})
    assert interrupt_type(out) == "question"
    with pytest.raises(Exception, match="belongs to another user"):
        run(client, thread, command={"resume": ANSWER}, context={"user_id": "bob"})
    with pytest.raises(Exception, match="belongs to another user"):
        run(client, thread, input={"request": drink_request("t2", "bob")})
    # alice's thread still works for alice
    out = run(client, thread, input={"request": drink_request("t3")}, context={"user_id": "alice"})
    assert interrupt_type(out) == "question"
    out = run(client, thread, command={"resume": ANSWER}, context={"user_id": "alice"})
    assert interrupt_type(out) == "feedback" and out["user_id"] == "alice"
