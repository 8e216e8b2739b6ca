"""Bulk loads: ``import_records(..., embeddings=...)`` stores the given vectors as they are."""

from __future__ import annotations

import numpy as np
import pytest

from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.schema import MemoryRecord


def _record(i: int) -> MemoryRecord:
    return MemoryRecord(
        id=f"m-{i}", user_id="bulk", text=f"preference {i}", topic="t",
        created_at="2024-01-01T00:00:00+00:00",
    )


def test_given_vectors_are_what_search_ranks_by(hashing_memory: ChromaPreferenceMemory) -> None:
    records = [_record(i) for i in range(3)]
    # The stored vectors are the store's own embeddings of other texts: search for one of
    # those texts must find the record carrying its vector, whatever the record's own text.
    texts = ["hot tea in the morning", "cold water after running", "red wine at dinner"]
    vectors = hashing_memory.encoder.encode(texts)
    assert hashing_memory.import_records("bulk", records, embeddings=np.asarray(vectors)) == 3
    found = hashing_memory.search("bulk", "cold water after running", k=1)
    assert [m.record.id for m in found] == ["m-1"]


def test_a_vector_count_that_does_not_match_writes_nothing(
    hashing_memory: ChromaPreferenceMemory,
) -> None:
    with pytest.raises(ValueError, match="2 embeddings for 3 records"):
        hashing_memory.import_records(
            "bulk", [_record(i) for i in range(3)], embeddings=[[0.0] * 8, [0.0] * 8]
        )
    assert "bulk" not in hashing_memory.users()
