"""Chroma-backed preference memory: one collection per user, nothing overwritten in place.

Why one collection per user: isolation is structural (a query for user A physically cannot reach
user B's vectors, whatever the metadata says), and search cost depends on this user's memories
only, not on how many other users the store holds. Collection names are derived from a hash of
the user id (Chroma names allow only ``[a-zA-Z0-9._-]``), and the raw id is kept in the
collection's metadata and checked on every open, so a hash collision could never mix users.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import re
import sqlite3
import threading
import uuid
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.collection_configuration import CreateHNSWConfiguration
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, EmbeddingFunction
from chromadb.config import Settings

from pahf.errors import InputError
from pahf.memory.base import Encoder, UnknownMemoryError, UnknownUserError
from pahf.memory.embeddings import MiniLMEmbeddingFunction, encoder_of
from pahf.memory.schema import HistoryEntry, MemoryRecord, NewMemory, RetrievedMemory, utc_now
from pahf.request import validate_user_id

_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_SCHEMA_VERSION = 1

#: HNSW settings of every user collection. ``sync_threshold`` 1 persists a user's index after
#: each write, so Chroma can purge that user's entries from its shared write-ahead log at once.
#: With Chroma's default (1000) a user with fewer than 1000 memories is never persisted: the log
#: keeps every write of every user, each index load replays it by scanning the log (so search
#: and add latency grow with *other* users' data), and once more users are open than Chroma's
#: index cache holds (RLIMIT_NOFILE / 5) an evicted user's searches fail with "Nothing found on
#: disk". ``batch_size`` may not exceed ``sync_threshold``. Measured in bench/README.md.
HNSW_SYNC_THRESHOLD = 1
HNSW_CONFIGURATION: CreateHNSWConfiguration = {
    "space": "cosine",
    "sync_threshold": HNSW_SYNC_THRESHOLD,
    "batch_size": HNSW_SYNC_THRESHOLD,
}
#: Candidates fetched per search beyond ``k``: superseded records are filtered here rather than
#: by a Chroma ``where`` clause, whose cost grows with every user's records (it runs on the
#: shared metadata index), not just this user's.
SEARCH_OVERFETCH = 2


#: Index pahf adds to Chroma's write-ahead log table; see :func:`index_log_by_collection`.
LOG_INDEX_NAME = "pahf_embeddings_queue_topic_seq"


class StoreLocationError(InputError):
    """The memory location is neither a usable directory nor an http(s) Chroma URL."""


def index_log_by_collection(path: Path) -> bool:
    """Index Chroma's log table by collection, so one user's reads stop scanning everyone's.

    An embedded Chroma store keeps one write-ahead log (table ``embeddings_queue``) for all
    collections, keyed by sequence number only. Its reader selects one collection's entries
    newer than an offset (``WHERE topic = ? AND seq_id > ?``), and purging leaves each
    collection's last entry behind, so every search and write of an old user walked the log
    rows of every user written since: latency grew with the number of users (measured in
    bench/README.md). An index on ``(topic, seq_id)`` turns that walk into a lookup. It is an
    extra index only: Chroma's tables and data are untouched, and Chroma keeps working if it is
    absent. Returns whether the index exists; a database that cannot take it is left as it was.
    """
    db = path / "chroma.sqlite3"
    if not db.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=30.0)) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'embeddings_queue'"
            ).fetchone()
            if found is None:
                return False
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {LOG_INDEX_NAME} ON embeddings_queue (topic, seq_id)"
            )
            conn.commit()
    except sqlite3.Error as exc:
        warnings.warn(
            f"could not index the Chroma log in {db} ({exc}); searches stay correct but slow "
            "down as users are added",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


def _settings() -> Settings:
    return Settings(anonymized_telemetry=False, allow_reset=False)


#: ``scheme:`` at the start of a location: a URL (or ``host:port``), which is only accepted as
#: ``http(s)://``. One letter before the colon is a Windows drive (``C:\\data``), not a scheme.
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def parse_location(location: str | Path) -> tuple[str, int, bool] | Path:
    """Read a memory location strictly: ``(host, port, ssl)`` of an ``http(s)://host[:port]``
    Chroma server, or the directory ``Path`` of an embedded store; anything else is refused.

    Strict because a location that is silently read as something else is a trap: ``file:///etc``
    or ``chroma:8000`` used to become local folders named after them.
    """
    text = str(location)
    if not text.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise StoreLocationError(f"memory location {text!r} is empty or has control characters")
    if text.startswith(("http://", "https://")):
        url = urlparse(text)
        try:
            port = url.port
        except ValueError as exc:
            raise StoreLocationError(f"memory location {text!r}: {exc}") from None
        if not url.hostname:
            raise StoreLocationError(f"memory location {text!r} has no host")
        if url.username or url.password or url.path not in ("", "/") or url.query or url.fragment:
            raise StoreLocationError(
                f"memory location {text!r}: a Chroma server is named by http(s)://host:port only"
            )
        ssl = url.scheme == "https"
        return url.hostname, port or (443 if ssl else 8000), ssl
    if _SCHEME_RE.match(text):
        raise StoreLocationError(
            f"memory location {text!r} is neither a directory nor an http(s)://host:port URL"
        )
    return Path(text).expanduser()


def client_for(location: str | Path | None) -> ClientAPI:
    """A Chroma client for a directory path, an ``http(s)://host:port`` URL, or memory (None)."""
    if location is None:
        return chromadb.EphemeralClient(settings=_settings())
    parsed = parse_location(location)
    if isinstance(parsed, tuple):
        host, port, ssl = parsed
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_settings())
    path = parsed
    if path.exists() and not path.is_dir():
        raise StoreLocationError(f"memory location {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    client = chromadb.PersistentClient(path=str(path), settings=_settings())
    index_log_by_collection(path)
    return client


def _record_metadata(rec: MemoryRecord) -> dict[str, Any]:
    return {
        "user_id": rec.user_id,
        "topic": rec.topic,
        "domain": rec.domain,
        "source": rec.source,
        "status": rec.status,
        "confidence": float(rec.confidence),
        "created_at": rec.created_at,
        "request_id": rec.request_id,
        "supersedes": rec.supersedes or "",
        "superseded_by": rec.superseded_by or "",
        "history": json.dumps([h.model_dump() for h in rec.history]),
    }


def _record_from(memory_id: str, document: str, meta: dict[str, Any]) -> MemoryRecord:
    return MemoryRecord(
        id=memory_id,
        user_id=str(meta["user_id"]),
        text=document,
        topic=str(meta.get("topic", "")),
        domain=str(meta.get("domain", "general")),
        source=meta.get("source", "manual"),
        status=meta.get("status", "active"),
        confidence=float(meta.get("confidence", 1.0)),
        created_at=str(meta.get("created_at", "")),
        request_id=str(meta.get("request_id", "")),
        supersedes=str(meta.get("supersedes") or "") or None,
        superseded_by=str(meta.get("superseded_by") or "") or None,
        history=[HistoryEntry(**h) for h in json.loads(str(meta.get("history") or "[]"))],
    )


def _upgrade_hnsw(col: Collection) -> None:
    """Give a collection made by an older pahf (Chroma's default HNSW sync) our settings."""
    hnsw = (getattr(col, "configuration", None) or {}).get("hnsw") or {}
    threshold = hnsw.get("sync_threshold")
    if isinstance(threshold, int) and threshold > HNSW_SYNC_THRESHOLD:
        col.modify(
            configuration={
                "hnsw": {"sync_threshold": HNSW_SYNC_THRESHOLD, "batch_size": HNSW_SYNC_THRESHOLD}
            }
        )


def embedding_text(topic: str, text: str) -> str:
    """What gets embedded for a memory: its situation and the user's words together."""
    return f"{topic}. {text}" if topic else text


class ChromaPreferenceMemory:
    """:class:`~pahf.memory.base.PreferenceMemory` over Chroma (embedded, in-memory or server)."""

    def __init__(
        self,
        location: str | Path | None = None,
        *,
        embedding_function: EmbeddingFunction[Documents] | None = None,
        namespace: str | None = None,
        client: ClientAPI | None = None,
        exclusive: bool | None = None,
    ) -> None:
        """Open (or create) a store.

        ``location``: a directory for an embedded ``PersistentClient`` (the default use), an
        ``http(s)://host:port`` URL of a Chroma server, or None for an in-memory store (tests,
        evaluation). ``namespace`` prefixes collection names; in-memory stores get a random one
        because Chroma shares one in-memory database per process.

        ``exclusive``: this object is the only writer of its collections, so searches and
        counts can be answered from a per-user cache that every write through this object
        drops. True by default for an in-memory store with its own namespace (nothing else can
        reach it); never set it for a store other processes or clients write.
        """
        private = location is None and client is None and namespace is None
        if namespace is None:
            namespace = "pahf" if not private else "mem" + uuid.uuid4().hex[:12]
        if not _NAMESPACE_RE.match(namespace):
            raise ValueError(f"namespace {namespace!r} must match {_NAMESPACE_RE.pattern}")
        self.namespace = namespace
        self.location = None if location is None else str(location)
        self._owns_client = client is None
        self._client = client if client is not None else client_for(location)
        self._ef = (
            embedding_function if embedding_function is not None else MiniLMEmbeddingFunction()
        )
        self._encoder = encoder_of(self._ef)
        self._collections: dict[str, Collection] = {}
        self._lock = threading.RLock()
        self._user_locks: dict[str, threading.Lock] = {}
        self._exclusive = private if exclusive is None else exclusive
        #: user -> (generation, {read key: result}); a write bumps the generation, so a read
        #: that raced with it is never cached (exclusive stores only).
        self._reads: dict[str, tuple[int, dict[tuple[Any, ...], Any]]] = {}

    @classmethod
    def in_memory(
        cls, embedding_function: EmbeddingFunction[Documents] | None = None
    ) -> ChromaPreferenceMemory:
        return cls(None, embedding_function=embedding_function)

    def close(self) -> None:
        """Release the Chroma client this store opened (its database connections and index
        files); a client passed in belongs to the caller and is left open. Long-lived servers
        that open stores on demand close the ones they drop, or descriptors run out."""
        with self._lock:
            self._collections.clear()
            self._reads.clear()
            close = getattr(self._client, "close", None)  # not on chroma's ClientAPI type
            if self._owns_client and callable(close):
                close()

    # ------------------------------------------------------------------ plumbing

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    def _name(self, user_id: str) -> str:
        digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:40]
        return f"{self.namespace}-u-{digest}"

    def _user_lock(self, user_id: str) -> threading.Lock:
        with self._lock:
            return self._user_locks.setdefault(user_id, threading.Lock())

    def _collection(self, user_id: str, create: bool) -> Collection | None:
        user_id = validate_user_id(user_id)
        with self._lock:
            cached = self._collections.get(user_id)
            if cached is not None:
                return cached
            name = self._name(user_id)
            if create:
                col = self._client.get_or_create_collection(
                    name=name,
                    embedding_function=self._ef,  # type: ignore[arg-type]
                    metadata={"pahf_user_id": user_id, "pahf_schema": _SCHEMA_VERSION},
                    configuration={"hnsw": HNSW_CONFIGURATION},
                )
            else:
                try:
                    col = self._client.get_collection(
                        name=name,
                        embedding_function=self._ef,  # type: ignore[arg-type]
                    )
                except Exception as exc:  # chromadb raises NotFoundError / ValueError by version
                    if "does not exist" in str(exc) or "not found" in str(exc).lower():
                        return None
                    raise
            owner = (col.metadata or {}).get("pahf_user_id")
            if owner != user_id:
                raise RuntimeError(
                    f"collection {name} belongs to {owner!r}, not {user_id!r}: "
                    "refusing to mix users"
                )
            _upgrade_hnsw(col)
            self._collections[user_id] = col
            return col

    def _require(self, user_id: str) -> Collection:
        col = self._collection(user_id, create=False)
        if col is None:
            raise UnknownUserError(user_id)
        return col

    def _fetch(self, col: Collection, ids: builtins.list[str]) -> builtins.list[MemoryRecord]:
        got = col.get(ids=ids, include=["documents", "metadatas"])
        docs = got["documents"] or []
        metas = got["metadatas"] or []
        return [
            _record_from(i, d, dict(m)) for i, d, m in zip(got["ids"], docs, metas, strict=True)
        ]

    def _cached(self, user_id: str, key: tuple[Any, ...]) -> tuple[int, Any]:
        """(generation, cached result or None) of a read of ``user_id``'s memory; always a miss
        for a store that is not exclusive."""
        if not self._exclusive:
            return 0, None
        with self._lock:
            generation, reads = self._reads.get(user_id, (0, {}))
            return generation, reads.get(key)

    def _remember(self, user_id: str, generation: int, key: tuple[Any, ...], value: Any) -> None:
        if not self._exclusive:
            return
        with self._lock:
            current, reads = self._reads.get(user_id, (0, {}))
            if current == generation:  # no write happened since the read started
                reads[key] = value
                self._reads[user_id] = (current, reads)

    def _changed(self, user_id: str) -> None:
        with self._lock:
            generation, _ = self._reads.get(user_id, (0, {}))
            self._reads[user_id] = (generation + 1, {})

    def _write(
        self,
        col: Collection,
        records: builtins.list[MemoryRecord],
        embed: bool,
        vectors: Any = None,
    ) -> None:
        if not records:
            return
        for user in {r.user_id for r in records}:
            self._changed(user)
        ids = [r.id for r in records]
        metas: Any = [_record_metadata(r) for r in records]
        if embed:
            if vectors is None:
                vectors = self._encoder.encode([embedding_text(r.topic, r.text) for r in records])
            col.upsert(
                ids=ids,
                documents=[r.text for r in records],
                metadatas=metas,
                embeddings=[v for v in vectors],
            )
        else:
            col.update(ids=ids, metadatas=metas)

    def _new_record(self, user_id: str, memory: NewMemory, memory_id: str | None) -> MemoryRecord:
        now = utc_now()
        return MemoryRecord(
            id=memory_id or f"m-{uuid.uuid4().hex[:24]}",
            user_id=user_id,
            text=memory.text,
            topic=memory.topic,
            domain=memory.domain,
            source=memory.source,
            confidence=memory.confidence,
            created_at=now,
            request_id=memory.request_id,
            history=[HistoryEntry(at=now, event="created", detail=memory.source)],
        )

    # ------------------------------------------------------------------ interface

    def add(self, user_id: str, memory: NewMemory, memory_id: str | None = None) -> MemoryRecord:
        col = self._collection(user_id, create=True)
        assert col is not None
        with self._user_lock(user_id):
            if memory_id is not None:
                existing = self._fetch(col, [memory_id])
                if existing:
                    return existing[0]
            rec = self._new_record(user_id, memory, memory_id)
            self._write(col, [rec], embed=True)
            return rec

    def supersede(
        self, user_id: str, old_id: str, memory: NewMemory, memory_id: str | None = None
    ) -> MemoryRecord:
        col = self._require(user_id)
        with self._user_lock(user_id):
            found = self._fetch(col, [old_id])
            if not found:
                raise UnknownMemoryError(user_id, old_id)
            old = found[0]
            existing = self._fetch(col, [memory_id]) if memory_id is not None else []
            if existing and old.superseded_by == memory_id:
                return existing[0]  # already applied (a node re-run)
            if existing and existing[0].supersedes != old.id:
                # Writing would overwrite another record (or make old_id supersede itself).
                raise ValueError(
                    f"memory id {memory_id!r} of user {user_id!r} is already used by another "
                    "memory; refusing to overwrite it (nothing was written)"
                )
            if old.status == "superseded":
                raise ValueError(
                    f"memory {old_id!r} of user {user_id!r} is already superseded by "
                    f"{old.superseded_by!r}; revise the newest version instead"
                )
            # ``existing`` here is this very revision, written before a crash stopped it from
            # marking the old record: finish it instead of writing the new record again.
            new = existing[0] if existing else self._new_record(user_id, memory, memory_id)
            new.supersedes = old.id
            now = utc_now()
            old.status = "superseded"
            old.superseded_by = new.id
            old.history.append(HistoryEntry(at=now, event="superseded", detail=new.id))
            # New first: a crash between the two writes leaves both active (a duplicate the
            # next revision cleans up), never a superseded record with no successor.
            if not existing:
                self._write(col, [new], embed=True)
            self._write(col, [old], embed=False)
            return new

    def _adjust(
        self, user_id: str, memory_id: str, event: str, delta: float, detail: str
    ) -> MemoryRecord:
        col = self._require(user_id)
        with self._user_lock(user_id):
            found = self._fetch(col, [memory_id])
            if not found:
                raise UnknownMemoryError(user_id, memory_id)
            rec = found[0]
            if detail and any(h.event == event and h.detail == detail for h in rec.history):
                return rec  # the same signal applied twice (a node re-run) counts once
            rec.confidence = max(0.0, rec.confidence + delta)
            rec.history.append(HistoryEntry(at=utc_now(), event=event, detail=detail))
            self._write(col, [rec], embed=False)
            return rec

    def reinforce(
        self, user_id: str, memory_id: str, amount: float = 1.0, key: str = ""
    ) -> MemoryRecord:
        return self._adjust(user_id, memory_id, "reinforced", amount, key)

    def challenge(self, user_id: str, memory_id: str, detail: str = "") -> MemoryRecord:
        return self._adjust(user_id, memory_id, "challenged", -1.0, detail)

    def search(
        self, user_id: str, query: str, k: int = 8, include_superseded: bool = False
    ) -> builtins.list[RetrievedMemory]:
        user_id = validate_user_id(user_id)
        key = ("search", query, k, include_superseded)
        generation, hit = self._cached(user_id, key)
        if hit is not None:
            return builtins.list(hit)
        col = self._collection(user_id, create=False)
        if col is None:
            return []
        found = self._search(col, user_id, query, k, include_superseded)
        self._remember(user_id, generation, key, found)
        return builtins.list(found)

    def _search(
        self, col: Collection, user_id: str, query: str, k: int, include_superseded: bool
    ) -> builtins.list[RetrievedMemory]:
        vector = self._encoder.encode([query])[0]
        # No ``where`` filter (its cost grows with all users' records): over-fetch, drop
        # superseded records here, and widen only if that left fewer than k of a larger set.
        wanted = k if include_superseded else k * SEARCH_OVERFETCH
        out: builtins.list[RetrievedMemory] = []
        while True:
            res = col.query(
                query_embeddings=[vector],
                n_results=wanted,
                include=["documents", "metadatas", "distances"],
            )
            ids = res["ids"][0]
            docs = (res["documents"] or [[]])[0]
            metas = (res["metadatas"] or [[]])[0]
            dists = (res["distances"] or [[]])[0]
            out = []
            for mid, doc, meta, dist in zip(ids, docs, metas, dists, strict=True):
                rec = _record_from(mid, doc, dict(meta))
                if rec.user_id != user_id:  # defence in depth; collections are per user
                    raise RuntimeError("memory store returned another user's record")
                if include_superseded or rec.status == "active":
                    out.append(RetrievedMemory(record=rec, score=round(1.0 - float(dist), 6)))
            if len(out) >= k or len(ids) < wanted:
                return out[:k]
            wanted *= 4  # many superseded versions among the nearest: look further

    def get(self, user_id: str, memory_id: str) -> MemoryRecord:
        found = self._fetch(self._require(user_id), [memory_id])
        if not found:
            raise UnknownMemoryError(user_id, memory_id)
        return found[0]

    def list(self, user_id: str, include_superseded: bool = True) -> builtins.list[MemoryRecord]:
        col = self._collection(user_id, create=False)
        if col is None:
            return []
        # Filtered here, not with a Chroma ``where`` (see SEARCH_OVERFETCH): one user's records.
        got = col.get(include=["documents", "metadatas"])
        docs = got["documents"] or []
        metas = got["metadatas"] or []
        records = [
            _record_from(i, d, dict(m)) for i, d, m in zip(got["ids"], docs, metas, strict=True)
        ]
        if not include_superseded:
            records = [r for r in records if r.status == "active"]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    def history(self, user_id: str, memory_id: str) -> builtins.list[MemoryRecord]:
        chain = [self.get(user_id, memory_id)]
        seen = {memory_id}
        while chain[0].supersedes and chain[0].supersedes not in seen:
            seen.add(chain[0].supersedes)
            chain.insert(0, self.get(user_id, chain[0].supersedes))
        return chain

    def export(self, user_id: str) -> builtins.list[MemoryRecord]:
        self._require(user_id)
        return self.list(user_id, include_superseded=True)

    def import_records(
        self,
        user_id: str,
        records: Iterable[MemoryRecord],
        *,
        embeddings: Sequence[Sequence[float]] | None = None,
    ) -> int:
        """Restore exported records; ``embeddings``, one vector per record from this store's
        embedding model, skips embedding them again (bulk loads of many users)."""
        batch = list(records)
        if embeddings is not None and len(embeddings) != len(batch):
            raise ValueError(f"{len(embeddings)} embeddings for {len(batch)} records")
        for rec in batch:
            if rec.user_id != user_id:
                raise ValueError(
                    f"record {rec.id!r} belongs to user {rec.user_id!r}, not {user_id!r}"
                )
        col = self._collection(user_id, create=True)
        assert col is not None
        with self._user_lock(user_id):
            existing = {r.id for r in self._fetch(col, [r.id for r in batch])} if batch else set()
            clash = sorted(existing)
            if clash:
                raise ValueError(
                    f"user {user_id!r} already has memories {clash[:5]}: import into an empty "
                    "user or forget first (nothing was written)"
                )
            self._write(col, batch, embed=True, vectors=embeddings)
        return len(batch)

    def forget(self, user_id: str) -> int:
        col = self._collection(user_id, create=False)
        if col is None:
            raise UnknownUserError(user_id)
        with self._lock:
            n = col.count()
            self._client.delete_collection(col.name)
            self._collections.pop(user_id, None)
            self._changed(user_id)
        return n

    def users(self) -> builtins.list[str]:
        prefix = f"{self.namespace}-u-"
        out = []
        for col in self._client.list_collections():
            if col.name.startswith(prefix):
                owner = (col.metadata or {}).get("pahf_user_id")
                # The exact name, not just the prefix: namespace "t-u-x" must not show up as
                # users of namespace "t".
                if isinstance(owner, str) and col.name == self._name(owner):
                    out.append(owner)
        return sorted(out)

    def count(self, user_id: str) -> int:
        user_id = validate_user_id(user_id)
        generation, hit = self._cached(user_id, ("count",))
        if hit is not None:
            return int(hit)
        col = self._collection(user_id, create=False)
        n = 0 if col is None else col.count()
        if col is not None:
            self._remember(user_id, generation, ("count",), n)
        return n
