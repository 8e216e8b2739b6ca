"""The Chroma preference store: per-user isolation, nothing lost on revision, persistence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pahf.memory.base import UnknownMemoryError, UnknownUserError, apply_ops
from pahf.memory.chroma import ChromaPreferenceMemory, StoreLocationError
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.memory.schema import MemoryOp, NewMemory


def _note(text: str, topic: str = "drinks") -> NewMemory:
    return NewMemory(text=text, topic=topic, source="manual")


def test_add_search_list_count(hashing_memory: ChromaPreferenceMemory) -> None:
    m = hashing_memory
    a = m.add("alice", _note("I love green tea", "drinks"))
    m.add("alice", _note("I hate loud music", "music"))
    hits = m.search("alice", "green tea", k=5)
    assert hits[0].record.id == a.id and hits[0].score > hits[1].score
    assert m.count("alice") == 2
    assert [r.text for r in m.get_all("alice")] == ["I love green tea", "I hate loud music"]
    assert m.search("nobody", "tea") == []
    assert m.get_all("nobody") == []


def test_add_with_same_id_is_idempotent(hashing_memory: ChromaPreferenceMemory) -> None:
    first = hashing_memory.add("u", _note("tea"), memory_id="m-fixed")
    again = hashing_memory.add("u", _note("tea"), memory_id="m-fixed")
    assert again == first
    assert hashing_memory.count("u") == 1


def test_add_on_a_used_id_with_other_text_is_refused(
    hashing_memory: ChromaPreferenceMemory,
) -> None:
    """An id reused for different words used to return the old record as if stored."""
    hashing_memory.add("u", _note("tea"), memory_id="m-fixed")
    with pytest.raises(ValueError, match=r"already holds 'tea'.*nothing was stored"):
        hashing_memory.add("u", _note("something else"), memory_id="m-fixed")
    assert [r.text for r in hashing_memory.get_all("u")] == ["tea"]


def test_isolation_between_users(hashing_memory: ChromaPreferenceMemory) -> None:
    m = hashing_memory
    a = m.add("alice", _note("alice likes oolong tea"))
    m.add("bob", _note("bob likes espresso"))
    assert all(h.record.user_id == "alice" for h in m.search("alice", "espresso", k=10))
    assert [h.record.text for h in m.search("bob", "oolong tea", k=10)] == ["bob likes espresso"]
    with pytest.raises(UnknownMemoryError):
        m.get("bob", a.id)  # alice's id does not resolve for bob
    with pytest.raises(UnknownMemoryError):
        m.supersede("bob", a.id, _note("bob overwrites alice"))
    assert m.forget("bob") == 1
    assert m.count("alice") == 1 and m.users() == ["alice"]
    with pytest.raises(UnknownUserError):
        m.forget("bob")


def test_supersede_keeps_old_record_and_history(hashing_memory: ChromaPreferenceMemory) -> None:
    m = hashing_memory
    old = m.add("u", _note("ice-cold water when dehydrated", "Dehydrated"))
    new = m.supersede("u", old.id, _note("coconut water when dehydrated", "Dehydrated"))
    kept = m.get("u", old.id)
    assert kept.status == "superseded" and kept.superseded_by == new.id
    assert [h.event for h in kept.history] == ["created", "superseded"]
    assert new.supersedes == old.id and new.status == "active"
    assert [r.id for r in m.history("u", new.id)] == [old.id, new.id]
    active = [h.record.id for h in m.search("u", "water", k=10)]
    assert active == [new.id]
    assert {h.record.id for h in m.search("u", "water", k=10, include_superseded=True)} == {
        old.id,
        new.id,
    }
    with pytest.raises(ValueError, match="already superseded"):
        m.supersede("u", old.id, _note("third"))
    assert m.count("u") == 2


def test_apply_ops_is_idempotent_on_rerun(hashing_memory: ChromaPreferenceMemory) -> None:
    m = hashing_memory
    base = m.add("u", _note("tea"))
    ops = [
        MemoryOp(kind="supersede", target_id=base.id, memory=_note("coffee")),
        MemoryOp(kind="add", memory=_note("no sugar")),
    ]
    first = apply_ops(m, "u", "req-1", "feedback", ops)
    second = apply_ops(m, "u", "req-1", "feedback", ops)  # a node re-run after a crash
    assert [o.memory_id for o in first] == [o.memory_id for o in second]
    assert m.count("u") == 3
    reinforce = [MemoryOp(kind="reinforce", target_id=first[1].memory_id)]
    apply_ops(m, "u", "req-2", "clarification", reinforce)
    apply_ops(m, "u", "req-2", "clarification", reinforce)
    assert m.get("u", first[1].memory_id).confidence == 2.0
    apply_ops(
        m, "u", "req-3", "feedback", [MemoryOp(kind="challenge", target_id=first[1].memory_id)]
    )
    assert m.get("u", first[1].memory_id).confidence == 1.0


def test_export_import_round_trip(hashing_memory: ChromaPreferenceMemory) -> None:
    m = hashing_memory
    old = m.add("u", _note("tea"))
    m.supersede("u", old.id, _note("coffee"))
    exported = m.export("u")
    fresh = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    assert fresh.import_records("u", exported) == 2
    assert fresh.export("u") == exported
    with pytest.raises(ValueError, match="already has"):
        fresh.import_records("u", exported)
    assert fresh.export("u") == exported  # the refused import changed nothing
    with pytest.raises(ValueError, match="belongs to user"):
        fresh.import_records("v", exported)
    with pytest.raises(UnknownUserError):
        m.export("nobody")


def test_bad_locations_are_refused(tmp_path: Path) -> None:
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(StoreLocationError, match="not a directory"):
        ChromaPreferenceMemory(afile, embedding_function=HashingEmbeddingFunction())
    with pytest.raises(ValueError, match="namespace"):
        ChromaPreferenceMemory(None, namespace="bad name!")


_CHILD = """
import json, sys
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.schema import NewMemory
store = ChromaPreferenceMemory(sys.argv[1])
if sys.argv[2] == "write":
    old = store.add("alice", NewMemory(text="When dehydrated I want ice-cold water", topic="Dehydrated"))
    store.supersede("alice", old.id, NewMemory(text="When dehydrated I want coconut water", topic="Dehydrated"))
    store.add("bob", NewMemory(text="Bob likes espresso", topic="General"))
else:
    hits = store.search("alice", "thirsty: something to drink", k=5)
    print(json.dumps({
        "users": store.users(),
        "alice": [(r.text, r.status) for r in store.get_all("alice")],
        "top": hits[0].record.text,
    }))
"""


@pytest.mark.slow
def test_persistence_across_process_restarts(tmp_path: Path) -> None:
    """A PersistentClient store written by one process is read by the next, offline,
    with the registered MiniLM embedding function restored from the collection config."""
    store_dir = str(tmp_path / "store")
    # cwd outside the repository: the installed package runs, not the source folders.
    subprocess.run([sys.executable, "-c", _CHILD, store_dir, "write"], check=True, cwd=tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, store_dir, "read"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    got = json.loads(out.stdout)
    assert got["users"] == ["alice", "bob"]
    assert sorted(got["alice"]) == [
        ["When dehydrated I want coconut water", "active"],
        ["When dehydrated I want ice-cold water", "superseded"],
    ]
    assert got["top"] == "When dehydrated I want coconut water"


def test_an_exclusive_store_answers_repeated_reads_from_cache_until_it_writes(
    tmp_path: Path,
) -> None:
    """In-memory stores are exclusive by default: a repeated search or count does not reach
    Chroma, and every write through the store (add, reinforce, supersede, import, forget)
    drops that user's cached reads. Stores on disk are shared, so they never cache."""
    store = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    first = store.add("u", NewMemory(text="green tea in the morning", topic="morning"))
    store.add("v", NewMemory(text="coffee at night", topic="night"))
    queries: list[str] = []
    real_search = store._search

    def counting(col: object, user: str, query: str, k: int, superseded: bool) -> object:
        queries.append(user)
        return real_search(col, user, query, k, superseded)  # type: ignore[arg-type]

    store._search = counting  # type: ignore[method-assign]
    assert store.search("u", "morning drink")[0].record.confidence == 1.0
    assert store.search("u", "morning drink") == store.search("u", "morning drink")
    assert queries == ["u"]
    assert store.count("u") == 1 and store.count("u") == 1
    store.search("v", "night drink")  # another user's writes and reads are separate
    store.reinforce("v", store.get_all("v")[0].id, key="k0")
    store.search("u", "morning drink")
    assert queries == ["u", "v"]
    store.reinforce("u", first.id, key="k1")
    assert store.search("u", "morning drink")[0].record.confidence == 2.0
    store.add("u", NewMemory(text="oat milk in the tea", topic="morning"))
    assert store.count("u") == 2 and len(store.search("u", "morning drink")) == 2
    store.forget("u")
    assert store.count("u") == 0 and store.search("u", "morning drink") == []
    assert queries == ["u", "v", "u", "u"]

    shared = ChromaPreferenceMemory(tmp_path / "s", embedding_function=HashingEmbeddingFunction())
    other = ChromaPreferenceMemory(tmp_path / "s", embedding_function=HashingEmbeddingFunction())
    shared.add("u", NewMemory(text="green tea", topic="morning"))
    assert shared.count("u") == 1
    other.add("u", NewMemory(text="black coffee", topic="morning"))  # another writer
    assert shared.count("u") == 2 and len(shared.search("u", "morning")) == 2
