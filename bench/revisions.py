"""Search cost against one preference's revisions: ``python -m bench.revisions``.

One user revises one preference N times (every older version kept, superseded) beside 20
other preferences; the figure is the median latency of ``search`` for that situation, on an
embedded store with the hashing embedder (so it measures the store, not the model). Before
superseded versions were filtered in Chroma, the search widened its over-fetch until it found
k active records: 2.5 ms at 0 versions, 163 ms at 1,000, 540 ms at 2,000 (issue 21).
The chains are written with ``import_records`` (a revision through ``supersede`` costs a
store write each, which is not what this measures).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence

from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.memory.schema import MemoryRecord

QUERY = "dehydrated, bring me a drink of water"


def revised(user: str, revisions: int, others: int = 20) -> list[MemoryRecord]:
    """One preference revised ``revisions`` times, plus ``others`` unrelated ones."""
    out = [
        MemoryRecord(
            id=f"r{i}",
            user_id=user,
            text=f"when dehydrated I drink water, version {i}",
            topic="dehydrated",
            status="superseded" if i < revisions else "active",
            created_at=f"2026-01-01T{i:08d}",
            supersedes=f"r{i - 1}" if i else None,
            superseded_by=f"r{i + 1}" if i < revisions else None,
        )
        for i in range(revisions + 1)
    ]
    out.extend(
        MemoryRecord(
            id=f"o{j}",
            user_id=user,
            text=f"other preference {j}: quiet music while reading",
            topic=f"topic {j}",
            created_at="2026-01-01",
        )
        for j in range(others)
    )
    return out


def measure(revisions: int, repeats: int = 30, k: int = 8) -> dict[str, float]:
    """Median search and history latency (ms) with ``revisions`` superseded versions."""
    with tempfile.TemporaryDirectory() as directory:
        store = ChromaPreferenceMemory(directory, embedding_function=HashingEmbeddingFunction())
        try:
            store.import_records("u", revised("u", revisions))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                hits = store.search("u", QUERY, k=k)
                times.append(time.perf_counter() - start)
            assert hits[0].record.id == f"r{revisions}", "the newest version must come first"
            assert all(h.record.status == "active" for h in hits)
            start = time.perf_counter()
            chain = store.history("u", f"r{revisions}")
            history = time.perf_counter() - start
            assert len(chain) == revisions + 1
        finally:
            store.close()
    return {
        "revisions": revisions,
        "search_p50_ms": round(statistics.median(times) * 1000, 2),
        "history_ms": round(history * 1000, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", default="0,100,1000,2000")
    args = parser.parse_args(argv)
    print("revisions | search p50 (ms) | history (ms)")
    for n in (int(x) for x in args.revisions.split(",")):
        row = measure(n)
        print(f"{row['revisions']:>9} | {row['search_p50_ms']:>15} | {row['history_ms']:>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
