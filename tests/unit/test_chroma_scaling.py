"""The Chroma store settings that keep per-user latency flat as other users' data grows.

See bench/README.md (memory at scale) for the measurements behind them: collections persist
their index after every write (Chroma can then purge its shared log), the log is indexed by
collection, and searches filter superseded records in Python instead of with a Chroma
``where`` clause.
"""

from __future__ import annotations

from pathlib import Path

import chromadb
import numpy as np
import pytest

from pahf.memory.chroma import (
    HNSW_SYNC_THRESHOLD,
    LOG_INDEX_NAME,
    ChromaPreferenceMemory,
    client_for,
    index_log_by_collection,
)
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.memory.schema import NewMemory


def _store(path: Path) -> ChromaPreferenceMemory:
    return ChromaPreferenceMemory(path, embedding_function=HashingEmbeddingFunction())


def _sync_threshold(store: ChromaPreferenceMemory, user: str) -> int:
    col = store._collection(user, create=False)
    assert col is not None
    return int(col.configuration["hnsw"]["sync_threshold"])  # type: ignore[index]


def test_new_collections_persist_their_index_after_every_write(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add("ana", NewMemory(text="I like green tea", topic="drinks"))
    assert _sync_threshold(store, "ana") == HNSW_SYNC_THRESHOLD == 1


def test_collections_made_with_chroma_defaults_are_upgraded_when_opened(tmp_path: Path) -> None:
    store = _store(tmp_path)
    name = store._name("old-user")
    raw: chromadb.api.ClientAPI = client_for(tmp_path)
    raw.get_or_create_collection(
        name=name,
        embedding_function=HashingEmbeddingFunction(),  # type: ignore[arg-type]
        metadata={"pahf_user_id": "old-user", "pahf_schema": 1},
        configuration={"hnsw": {"space": "cosine"}},
    )
    reopened = _store(tmp_path)
    assert reopened.count("old-user") == 0
    assert _sync_threshold(reopened, "old-user") == 1
    reopened.add("old-user", NewMemory(text="I take the stairs", topic="moving"))
    assert [m.record.text for m in reopened.search("old-user", "stairs", k=3)] == [
        "I take the stairs"
    ]


@pytest.mark.slow
def test_search_returns_k_active_memories_past_many_superseded_neighbours(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    tea = [store.add("ben", NewMemory(text=f"I like green tea number {i}", topic="tea")) for i in range(12)]
    for i, old in enumerate(tea):
        store.supersede("ben", old.id, NewMemory(text=f"garden gnome {i} in the yard", topic="yard"))
    store.add("ben", NewMemory(text="a cup of green tea with honey", topic="tea"))
    found = store.search("ben", "tea: I like green tea", k=5)
    assert len(found) == 5
    assert all(m.record.status == "active" for m in found)
    assert found[0].record.text == "a cup of green tea with honey"
    scores = [m.score for m in found]
    assert scores == sorted(scores, reverse=True)
    # The same search over every version finds the superseded tea preferences first.
    everything = store.search("ben", "tea: I like green tea", k=5, include_superseded=True)
    assert sum(m.record.status == "superseded" for m in everything) >= 4


def test_search_matches_exact_ranking_of_active_memories(tmp_path: Path) -> None:
    store = _store(tmp_path)
    texts = [f"preference {i}: {w}" for i, w in enumerate(
        ["tea", "coffee", "juice", "water", "milk", "soda", "wine", "beer", "cocoa", "broth"]
    )]
    records = [store.add("cy", NewMemory(text=t, topic="drinks")) for t in texts]
    store.supersede("cy", records[0].id, NewMemory(text="no more tea for me", topic="drinks"))
    query = "drinks: something like coffee or tea"
    got = [m.record.text for m in store.search("cy", query, k=4)]
    active = [r for r in store.get_all("cy", include_superseded=False)]
    vectors = store.encoder.encode([query, *(f"{r.topic}. {r.text}" for r in active)])
    sims = vectors[1:] @ vectors[0]
    expected = [active[i].text for i in np.argsort(-sims)[:4]]
    assert got == expected
    assert "preference 0: tea" not in got


def test_list_without_superseded_filters_them(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = store.add("dee", NewMemory(text="I like jazz", topic="music"))
    store.supersede("dee", first.id, NewMemory(text="I like blues now", topic="music"))
    assert [r.text for r in store.get_all("dee", include_superseded=False)] == ["I like blues now"]
    assert len(store.get_all("dee")) == 2


def _log_indexes(path: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(path / "chroma.sqlite3") as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'embeddings_queue'"
        ).fetchall()
    return [r[0] for r in rows]


def test_embedded_stores_index_chromas_log_by_collection(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add("eve", NewMemory(text="I like long walks", topic="weekends"))
    assert LOG_INDEX_NAME in _log_indexes(tmp_path)
    # A store whose index was dropped (or made before pahf added it) gets it back on open,
    # and everything stored is still there.
    import sqlite3

    with sqlite3.connect(tmp_path / "chroma.sqlite3") as conn:
        conn.execute(f"DROP INDEX {LOG_INDEX_NAME}")
    assert LOG_INDEX_NAME not in _log_indexes(tmp_path)
    assert index_log_by_collection(tmp_path) is True
    assert LOG_INDEX_NAME in _log_indexes(tmp_path)
    assert [m.record.text for m in _store(tmp_path).search("eve", "walks", k=2)] == [
        "I like long walks"
    ]


def test_log_index_failure_warns_and_leaves_the_file_alone(tmp_path: Path) -> None:
    assert index_log_by_collection(tmp_path) is False  # no database yet: nothing to do
    db = tmp_path / "chroma.sqlite3"
    db.write_bytes(b"this is not a sqlite database, just some bytes" * 100)
    before = db.read_bytes()
    with pytest.warns(RuntimeWarning, match="could not index the Chroma log"):
        assert index_log_by_collection(tmp_path) is False
    assert db.read_bytes() == before
