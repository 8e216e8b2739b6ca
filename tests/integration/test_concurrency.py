"""Many users' episodes at once against one store: no lost writes, no cross-user mix-ups.

Each user's episodes run in their own thread through one shared compiled graph and one shared
memory store, first embedded (a PersistentClient directory), then a Chroma server started on
127.0.0.1 for the module. Users do not influence each other, so every user's final memory and
actions must equal what the same episodes give when run alone, one user after another, on a
fresh in-memory store. A second test has several threads write for the *same* user at once
(different situations): every record an op reports must be in the store, exactly once.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command

from pahf.context import RunContext
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.reasoners.offline import OfflineReasoner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = [f"user-{i:02d}" for i in range(20)] + ["o'neil/\u00e9", '{"$ne": null}']
NOVEL = "I want the thick novel, never magazines."
MAGAZINE = "Now I want the news magazine, not novels."
TEA = "I love green tea in the morning, no coffee."
COFFEE = "I want black coffee in the morning, never tea."
READING = [
    {"id": "novel", "text": "thick novel", "attributes": ["thick novel"]},
    {"id": "magazine", "text": "news magazine", "attributes": ["news magazine"]},
]
DRINKS = [
    {"id": "tea", "text": "green tea", "attributes": ["green tea"]},
    {"id": "coffee", "text": "black coffee", "attributes": ["black coffee"]},
]


def script(index: int) -> list[tuple[str, list[dict[str, Any]], str, str]]:
    """A user's episodes (context, candidates, what they say, what they want). Users differ:
    odd ones change their mind about reading, every third one prefers coffee."""
    drink, drink_want = (COFFEE, "coffee") if index % 3 == 0 else (TEA, "tea")
    eps = [("train journey", READING, NOVEL, "novel"), ("morning", DRINKS, drink, drink_want)]
    if index % 2:
        eps += [("train journey", READING, MAGAZINE, "magazine")] * 2
    eps += [("morning", DRINKS, drink, drink_want)]
    return eps


def play(graph: Any, user: str, index: int) -> list[str]:
    """Run one user's episodes in order; return the actions taken."""
    taken = []
    for step, (context, candidates, says, want) in enumerate(script(index)):
        cfg: Any = {"configurable": {"thread_id": f"{user}-{step}"}}
        request = {
            "request_id": f"{user}-{step}",
            "user_id": user,
            "task": "bring me something",
            "context": context,
            "candidates": candidates,
        }
        out = graph.invoke({"request": request}, cfg, context=RunContext())
        while out.get("__interrupt__"):
            payload = out["__interrupt__"][0].value
            assert payload["user_id"] == user  # a prompt for the right person
            ok = payload["type"] == "feedback" and payload["action"]["candidate_id"] == want
            out = graph.invoke(Command(resume="" if ok else says), cfg, context=RunContext())
        taken.append(out["action"].candidate_id)
    return taken


def memory_of(store: ChromaPreferenceMemory, user: str) -> list[tuple[Any, ...]]:
    return sorted(
        (
            *(r.id, r.user_id, r.text, r.status, r.confidence, r.supersedes, r.superseded_by),
            tuple((h.event, h.detail) for h in r.history),
        )
        for r in store.get_all(user)
    )


@pytest.fixture(scope="module")
def alone() -> dict[str, Any]:
    """Each user run alone, one after another, on a fresh in-memory store."""
    store = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    graph = build_graph(OfflineReasoner(store.encoder), store, memory_checkpointer())
    actions = {user: play(graph, user, i) for i, user in enumerate(USERS)}
    return {"actions": actions, "memory": {u: memory_of(store, u) for u in USERS}}


def open_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if backend == "embedded":
        return ChromaPreferenceMemory(tmp_path / "store", embedding_function=HashingEmbeddingFunction())
    server = request.getfixturevalue("chroma_server")
    return ChromaPreferenceMemory(
        server.url,
        embedding_function=HashingEmbeddingFunction(),
        namespace=f"c{uuid.uuid4().hex[:12]}",
    )


@pytest.mark.parametrize("backend", ["embedded", "server"])
def test_many_users_at_once_equal_each_user_alone(
    backend: str, alone: dict[str, Any], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = open_store(backend, request, tmp_path)
    graph = build_graph(OfflineReasoner(store.encoder), store, memory_checkpointer())
    with ThreadPoolExecutor(max_workers=len(USERS)) as pool:
        futures = {user: pool.submit(play, graph, user, i) for i, user in enumerate(USERS)}
        actions = {user: f.result(timeout=240) for user, f in futures.items()}
    assert store.users() == sorted(USERS)
    assert actions == alone["actions"]
    for user in USERS:
        assert memory_of(store, user) == alone["memory"][user], user
    expected = sum(len(m) for m in alone["memory"].values())
    assert sum(store.count(u) for u in USERS) == expected  # nothing lost, nothing extra


@pytest.mark.parametrize("backend", ["embedded", "server"])
def test_concurrent_writes_for_one_user_are_all_kept(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = open_store(backend, request, tmp_path)
    graph = build_graph(OfflineReasoner(store.encoder), store, memory_checkpointer())
    user = "shared-user"

    def one(topic: int) -> list[str]:
        cfg: Any = {"configurable": {"thread_id": f"topic-{topic}"}}
        req = {
            "request_id": f"topic-{topic}",
            "user_id": user,
            "task": "bring me something",
            "context": f"situation number {topic} of many",
            "candidates": READING,
        }
        out = graph.invoke({"request": req}, cfg, context=RunContext())
        ids: list[str] = []
        while out.get("__interrupt__"):
            reply = NOVEL if out["__interrupt__"][0].value["type"] == "question" else ""
            out = graph.invoke(Command(resume=reply), cfg, context=RunContext())
        ids += [op.memory_id for op in out["memory_ops"] if op.kind in ("add", "supersede")]
        return ids

    with ThreadPoolExecutor(max_workers=8) as pool:
        written = [i for ids in pool.map(one, range(16)) for i in ids]
    stored = [r.id for r in store.get_all(user)]
    assert sorted(stored) == sorted(set(stored))  # no duplicates
    assert set(written) <= set(stored)  # no lost write
    assert len(written) == len(set(written)) and written  # each op wrote its own record
    assert all(r.user_id == user for r in store.get_all(user))
