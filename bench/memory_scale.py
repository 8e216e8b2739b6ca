"""Benchmark 3: memory at scale: add/search latency and footprint with many users.

For each scale (users x memories per user) a store is filled, then measured in a **fresh
process** (so RSS and "first search of a user" are what a restarted service sees):

* **search** through :meth:`ChromaPreferenceMemory.search` (k=8, active memories only, one
  user), on a sample of users: the first search of each user in the process (``cold``: opens
  the collection and loads its index) and a second one (``warm``). Query vectors are computed
  before timing, so these are store latencies; the MiniLM query embedding is timed separately;
* **add** through :meth:`ChromaPreferenceMemory.add` (with a deterministic id, as the nodes
  do) on sampled users, text vectors cached, so again the store's cost;
* **footprint**: RSS of the measuring process right after opening the store and after touching
  the sampled users, the server's RSS for a server, and the store's size on disk.

Scales grow incrementally in one store (100 users, then 900 more, ...), so the rows show how
per-user latency changes as *other* users' data grows. Bulk loading goes through the store's
own collections (``_collection``) with precomputed MiniLM vectors (a pool of real sentence
vectors, slightly perturbed per memory): embedding a million texts would take hours and says
nothing about the store. One in ten memories is marked superseded, as revisions leave them.

The same is measured against a Chroma server (``chroma run`` on 127.0.0.1, a free port, started
and stopped here) through ``http://`` locations.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from bench.common import (
    BenchReport,
    BenchTable,
    LatencyStats,
    Size,
    dir_size_mb,
    reporting,
    rss_mb,
)

K = 8
#: Users whose searches and adds are timed at each scale (all of them when fewer).
SAMPLE_USERS = 200
#: Memories added (timed) per scale.
ADDS = 100
#: Fraction of bulk-loaded memories stored as superseded (revisions leave such records).
SUPERSEDED_FRACTION = 0.1
SERVER_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Scale:
    users: int
    per_user: int

    @property
    def memories(self) -> int:
        return self.users * self.per_user


@dataclass(frozen=True)
class MemoryPlan:
    embedded: tuple[Scale, ...]
    server: tuple[Scale, ...]


PLANS: dict[Size, MemoryPlan] = {
    "tiny": MemoryPlan(embedded=(Scale(5, 10), Scale(20, 10)), server=(Scale(5, 10),)),
    "default": MemoryPlan(
        embedded=(Scale(100, 100), Scale(1000, 100), Scale(10_000, 100)),
        server=(Scale(100, 100), Scale(1000, 100)),
    ),
    "published": MemoryPlan(
        embedded=(Scale(100, 100), Scale(1000, 100), Scale(10_000, 100)),
        server=(Scale(100, 100), Scale(1000, 100)),
    ),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BuildResult(_Model):
    users_added: int
    memories_added: int
    seconds: float


class ProbeResult(_Model):
    total_users: int
    sampled_users: int
    rss_start_mb: float
    rss_open_mb: float
    rss_after_mb: float
    cold_search: LatencyStats
    warm_search: LatencyStats
    add: LatencyStats
    embed_query: LatencyStats
    results_per_search: float
    failures: int
    first_failure: str = ""


# --------------------------------------------------------------------------- data


_SITUATIONS = (
    "when I am dehydrated", "after a workout", "on a cold morning", "when I have a headache",
    "while working late", "for a quick breakfast", "when guests come over", "on a hot afternoon",
    "before going to bed", "when I feel sick", "for a movie night", "on a rainy day",
    "buying a microwave oven", "buying running shoes", "choosing a laptop bag",
    "picking a coffee maker", "buying a winter jacket", "choosing a phone case",
    "buying a desk lamp", "picking headphones",
)
_LIKES = (
    "ice-cold water", "green tea", "orange juice", "black coffee", "a banana", "dark chocolate",
    "stainless steel", "a compact size", "bright colours", "a quiet motor", "leather", "wool",
    "a long battery life", "noise cancelling", "a matte finish", "the top shelf", "the fridge",
)
_REFUSALS = (
    "anything sugary", "plastic", "loud colours", "caffeine", "anything heavy", "cheap fabric",
    "a glossy finish", "anything with nuts", "the floor", "warm drinks", "big brands",
)


def preference_texts(count: int, seed: int = 0) -> list[str]:
    """Distinct, realistic preference sentences (topic + statement) for the vector pool."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        text = (
            f"{rng.choice(_SITUATIONS)}. I prefer {rng.choice(_LIKES)}, "
            f"never {rng.choice(_REFUSALS)}"
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def query_texts(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(_SITUATIONS)}: what should I pick, {rng.choice(_LIKES)}? (#{i})"
        for i in range(count)
    ]


def user_name(index: int) -> str:
    return f"bench-user-{index:06d}"


# --------------------------------------------------------------------------- subprocess work


def _open_store(location: str) -> object:
    from pahf.memory.chroma import ChromaPreferenceMemory
    from pahf.memory.embeddings import MiniLMEmbeddingFunction

    return ChromaPreferenceMemory(location, embedding_function=MiniLMEmbeddingFunction())


def build_users(
    location: str, start: int, stop: int, per_user: int, pool_path: str, seed: int = 0
) -> BuildResult:
    """Bulk-load users ``start..stop-1`` with ``per_user`` memories each (runs in a subprocess)."""
    from pahf.memory.chroma import ChromaPreferenceMemory
    from pahf.memory.schema import HistoryEntry, MemoryRecord

    pool = np.load(pool_path)
    texts: list[str] = json.loads(Path(pool_path).with_suffix(".json").read_text("utf-8"))
    store = _open_store(location)
    assert isinstance(store, ChromaPreferenceMemory)
    rng = np.random.default_rng(seed + start)
    started = time.perf_counter()
    for index in range(start, stop):
        user = user_name(index)
        picks = rng.integers(0, len(texts), size=per_user)
        vectors = pool[picks] + rng.normal(0.0, 0.03, size=(per_user, pool.shape[1]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        # A superseded memory is revised by the next one (linked both ways, as a revision
        # leaves them), so the last memory of a user is always active.
        superseded = rng.random(per_user) < SUPERSEDED_FRACTION
        superseded[-1] = False
        ids = [f"m-{index:06d}-{j:04d}" for j in range(per_user)]
        records = []
        for j, pick in enumerate(picks):
            stamp = f"2024-01-01T00:{j // 60:02d}:{j % 60:02d}.000000+00:00"
            records.append(
                MemoryRecord(
                    id=ids[j],
                    user_id=user,
                    text=texts[int(pick)].split(". ", 1)[1],
                    topic=texts[int(pick)].split(". ", 1)[0],
                    status="superseded" if superseded[j] else "active",
                    created_at=stamp,
                    supersedes=ids[j - 1] if j and superseded[j - 1] else None,
                    superseded_by=ids[j + 1] if superseded[j] else None,
                    history=[HistoryEntry(at=stamp, event="created", detail="import")],
                )
            )
        store.import_records(user, records, embeddings=vectors.astype(np.float32))
    seconds = time.perf_counter() - started
    return BuildResult(
        users_added=stop - start, memories_added=(stop - start) * per_user, seconds=seconds
    )


def probe_store(
    location: str, total_users: int, sample: int, adds: int, tag: str, seed: int = 0
) -> ProbeResult:
    """Measure searches, adds and RSS in this (fresh) process."""
    from pahf.memory.chroma import ChromaPreferenceMemory
    from pahf.memory.embeddings import MiniLMEncoder
    from pahf.memory.schema import NewMemory

    encoder = MiniLMEncoder.shared()
    rss_start = rss_mb()
    store = _open_store(location)
    assert isinstance(store, ChromaPreferenceMemory)
    rss_open = rss_mb()
    rng = random.Random(seed)
    users = rng.sample(range(total_users), min(sample, total_users))
    queries = query_texts(2 * len(users) + adds, seed=seed + 7)
    new_texts = [f"{t} (added {tag})" for t in preference_texts(adds, seed=seed + 11)]
    encoder.encode(queries + new_texts)  # cached: the timings below are the store's
    cold: list[float] = []
    warm: list[float] = []
    found = 0
    failures = 0
    first_failure = ""
    for rounds, timings in ((0, cold), (1, warm)):
        for i, index in enumerate(users):
            query = queries[rounds * len(users) + i]
            started = time.perf_counter()
            try:
                results = store.search(user_name(index), query, k=K)
            except Exception as exc:  # a store error is a finding, not a crash of the bench
                failures += 1
                first_failure = first_failure or f"{type(exc).__name__}: {exc}"[:300]
                continue
            timings.append(time.perf_counter() - started)
            found += len(results)
    add_times: list[float] = []
    for i in range(adds):
        index = users[i % len(users)]
        memory = NewMemory(text=new_texts[i], topic="bench", source="manual")
        started = time.perf_counter()
        try:
            store.add(user_name(index), memory, memory_id=f"m-bench-{tag}-{i:05d}")
        except Exception as exc:
            failures += 1
            first_failure = first_failure or f"{type(exc).__name__}: {exc}"[:300]
            continue
        add_times.append(time.perf_counter() - started)
    rss_after = rss_mb()
    encoder.clear_cache()
    embed_times: list[float] = []
    for query in query_texts(50, seed=seed + 99):
        started = time.perf_counter()
        encoder.encode([query + f" {tag}"])
        embed_times.append(time.perf_counter() - started)
    searches = len(cold) + len(warm)
    return ProbeResult(
        total_users=total_users,
        sampled_users=len(users),
        rss_start_mb=rss_start,
        rss_open_mb=rss_open,
        rss_after_mb=rss_after,
        cold_search=LatencyStats.of(cold),
        warm_search=LatencyStats.of(warm),
        add=LatencyStats.of(add_times),
        embed_query=LatencyStats.of(embed_times),
        results_per_search=found / searches if searches else 0.0,
        failures=failures,
        first_failure=first_failure,
    )


def _in_fresh_process(fn: object, *args: object) -> object:
    """Run ``fn(*args)`` in a new interpreter (spawned), return its result."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()  # type: ignore[arg-type]


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def chroma_executable() -> str:
    beside = Path(sys.executable).parent / "chroma"
    if beside.exists():
        return str(beside)
    found = shutil.which("chroma")
    if found is None:
        raise FileNotFoundError(
            "the 'chroma' command (from chromadb) is not installed beside "
            f"{sys.executable} nor on PATH"
        )
    return found


def _process_tree_rss(pid: int) -> float:
    """RSS of a process plus its children (MiB)."""
    total = rss_mb(pid)
    try:
        tasks = Path(f"/proc/{pid}/task")
        for task in tasks.iterdir():
            children = (task / "children").read_text().split()
            for child in children:
                total += _process_tree_rss(int(child))
    except OSError:
        pass
    return total


@dataclass
class ChromaServer:
    path: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        return _process_tree_rss(self.process.pid)


@contextmanager
def chroma_server(path: Path, log: Path) -> Iterator[ChromaServer]:
    """``chroma run`` on 127.0.0.1 and a free port; waits for its heartbeat; stops it after."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [chroma_executable(), "run", "--path", str(path), "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ChromaServer(path, port, process)
    try:
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"chroma server exited with {process.returncode}; log: {log}"
                )
            try:
                with urllib.request.urlopen(f"{server.url}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"chroma server not ready after {SERVER_READY_TIMEOUT} s")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# --------------------------------------------------------------------------- the benchmark


def _pool(tmp: Path, size: int = 400) -> Path:
    """Real MiniLM vectors of ``size`` preference sentences, saved for the builders."""
    from pahf.memory.embeddings import MiniLMEncoder

    texts = preference_texts(size)
    vectors = MiniLMEncoder.shared().encode(texts)
    path = tmp / "pool.npy"
    np.save(path, vectors)
    path.with_suffix(".json").write_text(json.dumps(texts), encoding="utf-8")
    return path


@dataclass
class ScaleRow:
    scale: Scale
    build: BuildResult
    probe: ProbeResult
    disk_mb: float
    server_rss_mb: float | None = None


def _grow(
    location: str, scales: Sequence[Scale], pool: Path, disk: Path, tag: str,
    server: ChromaServer | None = None, in_process_build: bool = False,
) -> list[ScaleRow]:
    rows: list[ScaleRow] = []
    built = 0
    build_seconds = 0.0
    for scale in scales:
        per_user = scale.per_user
        result: object
        if in_process_build:
            result = build_users(location, built, scale.users, per_user, str(pool))
        else:
            result = _in_fresh_process(
                build_users, location, built, scale.users, per_user, str(pool)
            )
        assert isinstance(result, BuildResult)
        build_seconds += result.seconds
        built = scale.users
        probe = _in_fresh_process(
            probe_store, location, scale.users, SAMPLE_USERS, ADDS, f"{tag}-{scale.users}"
        )
        assert isinstance(probe, ProbeResult)
        rows.append(
            ScaleRow(
                scale,
                BuildResult(
                    users_added=scale.users, memories_added=scale.memories,
                    seconds=build_seconds,
                ),
                probe,
                dir_size_mb(disk),
                server.rss_mb() if server is not None else None,
            )
        )
    return rows


def _table(title: str, rows: list[ScaleRow], server: bool) -> BenchTable:
    columns = [
        "users x memories", "total memories", "build s", "search cold p50/p95 ms",
        "search warm p50/p95 ms", "add p50/p95 ms", "client RSS open/after MiB",
    ]
    if server:
        columns.append("server RSS MiB")
    columns += ["disk MiB", "failures"]
    table = BenchTable(title=title, columns=columns)
    for row in rows:
        p = row.probe
        cells: list[str | int | float | None] = [
            f"{row.scale.users:,} x {row.scale.per_user}",
            row.scale.memories,
            row.build.seconds,
            f"{p.cold_search.p50_ms:.2f} / {p.cold_search.p95_ms:.2f}",
            f"{p.warm_search.p50_ms:.2f} / {p.warm_search.p95_ms:.2f}",
            f"{p.add.p50_ms:.2f} / {p.add.p95_ms:.2f}",
            f"{p.rss_open_mb:.0f} / {p.rss_after_mb:.0f}",
        ]
        if server:
            cells.append(row.server_rss_mb)
        cells += [row.disk_mb, p.failures]
        table.add(*cells)
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        growth = last.scale.memories / first.scale.memories
        warm = last.probe.warm_search.p95_ms / first.probe.warm_search.p95_ms
        cold = last.probe.cold_search.p95_ms / first.probe.cold_search.p95_ms
        table.notes.append(
            f"total memories grew {growth:,.0f}x; per-user search p95 grew {warm:.2f}x (warm) "
            f"and {cold:.2f}x (cold)"
        )
    sampled = rows[-1].probe.sampled_users if rows else 0
    table.notes.append(
        f"k={K}, active memories only; {sampled} sampled users per scale, each searched twice "
        f"(cold = first search in a fresh process, warm = second); {ADDS} adds per scale; "
        "query embedding excluded (see the MiniLM row)"
    )
    for row in rows:
        if row.probe.failures:
            table.notes.append(
                f"{row.scale.users:,} users: {row.probe.failures} failed operations, first: "
                f"{row.probe.first_failure}"
            )
    return table


def run(
    size: Size = "default",
    *,
    embedded: Sequence[Scale] | None = None,
    server: Sequence[Scale] | None = None,
) -> BenchReport:
    plan = PLANS[size]
    embedded_scales = tuple(embedded if embedded is not None else plan.embedded)
    server_scales = tuple(server if server is not None else plan.server)
    with reporting("memory", size) as report, tempfile.TemporaryDirectory(
        prefix="pahf-bench-memory-"
    ) as tmp_name:
        tmp = Path(tmp_name)
        pool = _pool(tmp)
        embed_stats: LatencyStats | None = None
        if embedded_scales:
            store_dir = tmp / "embedded"
            rows = _grow(str(store_dir), embedded_scales, pool, store_dir, "embedded")
            report.tables.append(
                _table("Memory at scale: embedded Chroma (PersistentClient)", rows, False)
            )
            embed_stats = rows[-1].probe.embed_query
            for row in rows:
                key = f"embedded_{row.scale.users}"
                report.figures[f"{key}_search_warm_p95_ms"] = row.probe.warm_search.p95_ms
                report.figures[f"{key}_search_cold_p95_ms"] = row.probe.cold_search.p95_ms
                report.figures[f"{key}_add_p95_ms"] = row.probe.add.p95_ms
                report.figures[f"{key}_failures"] = float(row.probe.failures)
        if server_scales:
            server_dir = tmp / "server"
            server_dir.mkdir()
            with chroma_server(server_dir, tmp / "chroma-server.log") as srv:
                rows = _grow(
                    srv.url, server_scales, pool, server_dir, "server", server=srv,
                    in_process_build=True,
                )
            report.tables.append(
                _table(
                    "Memory at scale: Chroma server (chroma run, 127.0.0.1), HTTP client",
                    rows, True,
                )
            )
            embed_stats = embed_stats or rows[-1].probe.embed_query
            for row in rows:
                key = f"server_{row.scale.users}"
                report.figures[f"{key}_search_warm_p95_ms"] = row.probe.warm_search.p95_ms
                report.figures[f"{key}_add_p95_ms"] = row.probe.add.p95_ms
        if embed_stats is not None:
            table = BenchTable(
                title="MiniLM query embedding (one uncached query, int8 ONNX, CPU)",
                columns=["queries", "mean ms", "p50 ms", "p95 ms", "max ms"],
            )
            table.add(
                embed_stats.n, embed_stats.mean_ms, embed_stats.p50_ms, embed_stats.p95_ms,
                embed_stats.max_ms,
            )
            report.tables.append(table)
            report.figures["minilm_query_p50_ms"] = embed_stats.p50_ms
            report.figures["minilm_query_p95_ms"] = embed_stats.p95_ms
    return report
