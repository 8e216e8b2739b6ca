"""Preference memory against a real Chroma server (``chroma run``) over HTTP.

The same store code serves an embedded directory and a server URL; these tests run the memory
contract and a full PAHF episode against the server, with the real offline MiniLM embedder
computing vectors client-side.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command

from pahf.context import RunContext
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.base import UnknownMemoryError, UnknownUserError
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import MiniLMEmbeddingFunction
from pahf.memory.schema import NewMemory
from pahf.reasoners.offline import OfflineReasoner

from .conftest import ChromaServer, start_chroma

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def server_store(server: ChromaServer, namespace: str | None = None) -> ChromaPreferenceMemory:
    """A client of the server in its own namespace, so tests sharing a server never meet."""
    return ChromaPreferenceMemory(
        server.url,
        embedding_function=MiniLMEmbeddingFunction(),
        namespace=namespace or f"t{uuid.uuid4().hex[:12]}",
    )


def note(text: str, topic: str) -> NewMemory:
    return NewMemory(text=text, topic=topic, source="manual")


def test_add_and_semantic_search(chroma_server: ChromaServer) -> None:
    store = server_store(chroma_server)
    water = store.add("alice", note("ice water, never coffee", "dehydrated after a run"))
    store.add("alice", note("a window seat on long flights", "booking a flight"))
    store.add("alice", note("no onions on pizza", "ordering pizza"))
    hits = store.search("alice", "thirsty after exercise: what should I drink?", k=3)
    assert hits[0].record.id == water.id
    assert hits[0].score > hits[-1].score
    assert store.count("alice") == 3
    assert store.get("alice", water.id).text == "ice water, never coffee"


def test_supersede_keeps_history(chroma_server: ChromaServer) -> None:
    store = server_store(chroma_server)
    old = store.add("alice", note("ice water", "dehydrated"))
    new = store.supersede("alice", old.id, note("hot coffee now", "dehydrated"))
    active = store.search("alice", "dehydrated drink")
    assert [m.record.id for m in active] == [new.id]
    everything = store.search("alice", "dehydrated drink", include_superseded=True)
    assert {m.record.id for m in everything} == {old.id, new.id}
    assert [r.id for r in store.history("alice", new.id)] == [old.id, new.id]
    kept = store.get("alice", old.id)
    assert kept.status == "superseded" and kept.superseded_by == new.id
    with pytest.raises(ValueError, match="already superseded"):
        store.supersede("alice", old.id, note("tea", "dehydrated"))
    assert store.count("alice") == 2  # the refused revision stored nothing


def test_users_are_isolated(chroma_server: ChromaServer) -> None:
    store = server_store(chroma_server)
    secret = store.add("alice", note("alice likes ice water", "dehydrated"))
    store.add("bob", note("bob likes hot coffee", "dehydrated"))
    bob_sees = store.search("bob", "alice likes ice water", k=10)
    assert [m.record.user_id for m in bob_sees] == ["bob"]
    with pytest.raises(UnknownMemoryError):
        store.get("bob", secret.id)
    assert store.users() == ["alice", "bob"]
    assert store.search("carol", "anything") == []
    with pytest.raises(UnknownUserError):
        store.get("carol", secret.id)


def test_forget_deletes_one_user_only(chroma_server: ChromaServer) -> None:
    store = server_store(chroma_server)
    store.add("alice", note("ice water", "dehydrated"))
    store.add("alice", note("window seat", "flights"))
    store.add("bob", note("hot coffee", "dehydrated"))
    assert store.forget("alice") == 2
    assert store.users() == ["bob"]
    assert store.count("bob") == 1
    with pytest.raises(UnknownUserError):
        store.forget("alice")


def test_reinforce_and_challenge_count_once_per_key(chroma_server: ChromaServer) -> None:
    store = server_store(chroma_server)
    rec = store.add("alice", note("ice water", "dehydrated"))
    store.reinforce("alice", rec.id, key="r1:feedback:0")
    assert store.reinforce("alice", rec.id, key="r1:feedback:0").confidence == 2.0
    assert store.challenge("alice", rec.id, detail="r2:feedback:0").confidence == 1.0
    assert store.challenge("alice", rec.id, detail="r2:feedback:0").confidence == 1.0


def test_two_workers_share_one_server(chroma_server: ChromaServer) -> None:
    """Two independent clients (two app workers) see each other's writes at once."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    worker_a = server_store(chroma_server, namespace)
    worker_b = server_store(chroma_server, namespace)
    rec = worker_a.add("alice", note("ice water", "dehydrated"))
    assert [m.record.id for m in worker_b.search("alice", "dehydrated")] == [rec.id]
    newer = worker_b.supersede("alice", rec.id, note("hot coffee", "dehydrated"))
    assert worker_a.get("alice", rec.id).superseded_by == newer.id


def test_export_import_between_namespaces(chroma_server: ChromaServer) -> None:
    source, target = server_store(chroma_server), server_store(chroma_server)
    old = source.add("alice", note("ice water", "dehydrated"))
    source.supersede("alice", old.id, note("hot coffee", "dehydrated"))
    exported = source.export("alice")
    assert target.import_records("alice", exported) == 2
    assert target.export("alice") == exported
    with pytest.raises(ValueError, match="nothing was written"):
        target.import_records("alice", exported)


def test_memories_survive_a_server_restart(tmp_path: Path) -> None:
    server = start_chroma(tmp_path / "data")
    try:
        rec = server_store(server, "restart").add("alice", note("ice water", "dehydrated"))
        server.stop()
        server.start()  # same directory, same port
        reopened = server_store(server, "restart")
        assert reopened.get("alice", rec.id).text == "ice water"
        assert [m.record.id for m in reopened.search("alice", "dehydrated")] == [rec.id]
    finally:
        server.stop()


def _episode(graph: Any, request: dict[str, Any], thread: str, ctx: RunContext,
             answers: list[str]) -> dict[str, Any]:  # fmt: skip
    config: Any = {"configurable": {"thread_id": thread}}
    out: dict[str, Any] = graph.invoke({"request": request}, config, context=ctx)
    for answer in answers:
        assert out.get("__interrupt__"), f"expected an interrupt before answering {answer!r}"
        out = graph.invoke(Command(resume=answer), config, context=ctx)
    assert not out.get("__interrupt__")
    return out


DRINK = {
    "task": "get me a drink",
    "context": "dehydrated after a run",
    "candidates": [
        {"id": "coffee", "text": "hot coffee", "attributes": ["hot coffee"]},
        {"id": "water", "text": "ice water", "attributes": ["ice water"]},
    ],
}


def test_full_episode_with_memory_on_the_server(chroma_server: ChromaServer) -> None:
    store = server_store(chroma_server)
    graph = build_graph(OfflineReasoner(store.encoder), store, memory_checkpointer())
    ctx = RunContext(user_id="erin")
    first = _episode(graph, {**DRINK, "request_id": "d1"}, "erin-1", ctx,
                     ["ice water, never coffee when dehydrated", "I want hot coffee now, even when dehydrated"])  # fmt: skip
    assert first["action"].candidate_id == "water"
    assert [op.kind for op in first["memory_ops"]] == ["add", "supersede"]
    # The next request in the same situation is answered from the server's memory, no question.
    second = _episode(graph, {**DRINK, "request_id": "d2"}, "erin-2", ctx, [""])
    assert second["clarifications"] == []
    assert second["action"].candidate_id == "coffee"
    assert sorted(r.status for r in store.get_all("erin")) == ["active", "superseded"]


def test_deployed_graph_opens_the_server_named_in_the_run_context(
    chroma_server: ChromaServer,
) -> None:
    """No store passed to build_graph: the run context's memory_location picks the server."""
    graph = build_graph(checkpointer=memory_checkpointer())
    user = f"ctx-{uuid.uuid4().hex[:8]}"
    ctx = RunContext(user_id=user, memory_location=chroma_server.url)
    out = _episode(graph, {**DRINK, "request_id": "d1"}, f"{user}-1", ctx,
                   ["ice water please", ""])  # fmt: skip
    assert [op.kind for op in out["memory_ops"]] == ["add"]  # the answer; accepting it in the same request adds no confirmation
    on_server = ChromaPreferenceMemory(chroma_server.url)  # default namespace and embedder
    assert [r.text for r in on_server.get_all(user)] == ["ice water please"]
