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
import errno
import functools
import hashlib
import json
import re
import shutil
import sqlite3
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.collection_configuration import CreateHNSWConfiguration
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, EmbeddingFunction, QueryResult
from chromadb.config import Settings
from chromadb.errors import InternalError as ChromaInternalError

from pahf.errors import InputError
from pahf.memory.base import (
    Encoder,
    InvalidRecordsError,
    NoSuchStoreError,
    PreferenceMemoryError,
    StoreDamagedError,
    StoreError,
    StoreUnavailableError,
    UnknownMemoryError,
    UnknownUserError,
    validate_records,
)
from pahf.memory.embeddings import MiniLMEmbeddingFunction, encoder_of
from pahf.memory.schema import (
    HistoryEntry,
    MemoryRecord,
    NewMemory,
    RetrievedMemory,
    new_record,
    utc_now,
)
from pahf.memory.store_lock import StoreLock
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


#: Records per Chroma write or read when the client does not say (its own limit is larger).
DEFAULT_BATCH = 1000
#: How many links :meth:`ChromaPreferenceMemory.history` follows one ``get`` at a time before
#: it reads the user's records in one pass instead (a chain of 1,000 revisions took 1.6 s).
HISTORY_STEPWISE = 16
#: Bytes free under which a failed write is reported as a full disk.
DISK_FULL_BELOW = 8 * 1024 * 1024
_SQLITE_MAGIC = b"SQLite format 3\x00"

F = TypeVar("F", bound=Callable[..., Any])


class StoreLocationError(InputError):
    """The memory location is neither a usable directory nor an http(s) Chroma URL."""


def is_url(location: str | Path) -> bool:
    return str(location).startswith(("http://", "https://"))


def rebuild_hint(location: str) -> str:
    return f"`pahf memory rebuild --store {location}` re-indexes it from its records"


def check_store_files(path: Path) -> None:
    """Refuse an embedded store whose files show damage, before Chroma opens it.

    A zero-byte or foreign ``chroma.sqlite3`` was silently re-created empty by Chroma (every
    user's memory gone from view, "no memories stored"); index folders with no database
    beside them mean the records themselves are gone."""
    db = path / "chroma.sqlite3"
    if db.is_file():
        with open(db, "rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
        if len(head) == 0:
            raise StoreDamagedError(
                f"memory store {path} is damaged: chroma.sqlite3 is empty (0 bytes), so its "
                "records are gone; restore the directory from a backup or a `pahf memory "
                "export` (Chroma would silently start an empty store over it)"
            )
        if head != _SQLITE_MAGIC:
            raise StoreDamagedError(
                f"memory store {path} is damaged: chroma.sqlite3 is not an SQLite database; "
                "restore the directory from a backup or a `pahf memory export`"
            )
    elif path.is_dir() and any(
        (child / "header.bin").exists() or (child / "data_level0.bin").exists()
        for child in path.iterdir()
        if child.is_dir()
    ):
        raise StoreDamagedError(
            f"memory store {path} is damaged: its index folders are there but chroma.sqlite3, "
            "which holds the records, is missing; restore it from a backup"
        )


def store_exists(location: str | Path) -> bool:
    """Whether an embedded store directory holds a Chroma database (URLs: assumed so)."""
    if is_url(location):
        return True
    return (Path(location).expanduser() / "chroma.sqlite3").is_file()


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
    check_store_files(path)
    path.mkdir(parents=True, exist_ok=True)
    client = chromadb.PersistentClient(path=str(path), settings=_settings())
    index_log_by_collection(path)
    return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover - chromadb depends on it
        httpx = None  # type: ignore[assignment]
    if httpx is not None and isinstance(exc, (httpx.ConnectError, httpx.TimeoutException)):
        return True
    if isinstance(exc, ConnectionError):
        return True
    low = str(exc).lower()
    return "could not connect" in low or "connection refused" in low


def _guarded(method: F) -> F:
    """Translate a failure of Chroma under ``method`` into a one-line :class:`StoreError`."""

    @functools.wraps(method)
    def wrapper(self: ChromaPreferenceMemory, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (PreferenceMemoryError, StoreLocationError):
            raise
        except Exception as exc:
            user = args[0] if args and isinstance(args[0], str) else None
            translated = self._translate(exc, user)
            if translated is None:
                raise
            raise translated from exc

    return wrapper  # type: ignore[return-value]


#: Waits (seconds) before re-asking a Chroma store whose vector index was not on disk yet.
INDEX_NOT_READY_WAITS = (0.05, 0.1, 0.2, 0.4, 0.8)
_T = TypeVar("_T")


def _index_not_ready(exc: BaseException) -> bool:
    """Chroma answered a query before a new vector index reached its disk (a race of its core,
    chroma-core/chroma#4212, seen from a server and from a local store written by several
    threads at once): nothing is damaged, asking again works."""
    return isinstance(exc, ChromaInternalError) and "nothing found on disk" in str(exc).lower()


def read_when_ready(call: Callable[[], _T]) -> _T:
    """``call()``, re-asked a few times while Chroma says its index is not on disk yet. Only
    reads go through here; an index still missing after the waits (1.55 s) is damaged."""
    for wait in INDEX_NOT_READY_WAITS:
        try:
            return call()
        except ChromaInternalError as exc:
            if not _index_not_ready(exc):
                raise
            time.sleep(wait)
    return call()


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


def _records_from_database(path: Path, collection: str) -> builtins.list[MemoryRecord]:
    """A collection's records read straight from Chroma's SQLite metadata segment.

    For a rebuild when Chroma itself cannot read past a damaged index file: the records (text
    and metadata) live in the database, only the vectors were in the lost files."""
    uri = f"file:{path / 'chroma.sqlite3'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30.0)) as conn:
        rows = conn.execute(
            "SELECT e.embedding_id, m.key, m.string_value, m.int_value, m.float_value, "
            "m.bool_value FROM collections c "
            "JOIN segments s ON s.collection = c.id AND s.scope = 'METADATA' "
            "JOIN embeddings e ON e.segment_id = s.id "
            "JOIN embedding_metadata m ON m.id = e.id WHERE c.name = ?",
            (collection,),
        ).fetchall()
    fields: dict[str, dict[str, Any]] = {}
    for memory_id, key, text, integer, real, boolean in rows:
        value = next((v for v in (text, integer, real, boolean) if v is not None), None)
        fields.setdefault(memory_id, {})[key] = value
    return [
        _record_from(i, str(meta.pop("chroma:document", "")), meta) for i, meta in fields.items()
    ]


def _persisted_embedding_function(col: Collection) -> EmbeddingFunction[Documents] | None:
    """The embedding function a collection was made with, rebuilt from its stored config
    (Chroma's own fallback would be its default model, which downloads)."""
    from chromadb.utils.embedding_functions import known_embedding_functions

    spec = (col.configuration_json or {}).get("embedding_function") or {}
    factory = known_embedding_functions.get(str(spec.get("name")))
    if factory is None or spec.get("type") != "known":
        return None
    ef: EmbeddingFunction[Documents] = factory.build_from_config(spec.get("config") or {})
    return ef


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
        #: The embedded directory's one-process lock (None for in-memory, server or given
        #: clients); dropped by :meth:`close` or when this object is collected.
        self._store_lock: StoreLock | None = None
        self._owns_client = client is None
        parsed = None if location is None else parse_location(location)
        if client is None and isinstance(parsed, Path):
            client = self._open_embedded(parsed)
        elif client is None:
            try:
                client = client_for(location)
            except (StoreLocationError, PreferenceMemoryError):
                raise
            except Exception as exc:
                translated = self._translate(exc, None)
                if translated is None:
                    raise
                raise translated from exc
        self._client = client
        self._max_batch: int | None = None
        self._closed = False
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

    @classmethod
    def open_existing(
        cls,
        location: str | Path,
        *,
        embedding_function: EmbeddingFunction[Documents] | None = None,
    ) -> ChromaPreferenceMemory:
        """Open a store that must exist already: a mistyped path is an error, not a new empty
        store that answers "no memories" (what every reading command wants)."""
        if not store_exists(location):
            raise NoSuchStoreError(
                f"no pahf memory store at {Path(location).expanduser()} (no chroma.sqlite3 "
                "there); check the path"
            )
        store = cls(location, embedding_function=embedding_function)
        if embedding_function is None:
            store._adopt_persisted_embedding_function()
        return store

    def _adopt_persisted_embedding_function(self) -> None:
        """Use the embedding function the store's collections were made with (a store written
        with the hashing embedder is read with it, not refused for a conflict with MiniLM)."""
        prefix = f"{self.namespace}-u-"
        for col in self._client.list_collections():
            if not col.name.startswith(prefix):
                continue
            ef = _persisted_embedding_function(col)
            if ef is not None and ef.name() != self._ef.name():
                self._ef = ef
                self._encoder = encoder_of(ef)
            return

    def _open_embedded(self, path: Path) -> ClientAPI:
        if path.exists() and not path.is_dir():
            raise StoreLocationError(f"memory location {path} exists and is not a directory")
        check_store_files(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._translate(exc, None) or exc from exc
        lock = StoreLock(path)
        lock.acquire()
        try:
            client = client_for(path)
        except BaseException as exc:
            lock.release()
            if isinstance(exc, (StoreLocationError, PreferenceMemoryError)) or not isinstance(
                exc, Exception
            ):
                raise
            translated = self._translate(exc, None)
            if translated is None:
                raise
            raise translated from exc
        self._store_lock = lock
        weakref.finalize(self, lock.release)
        return client

    def close(self) -> None:
        """Release the store: the Chroma client this store opened (its database connections
        and index files; a client passed in belongs to the caller and is left open) and its
        directory lock, so another process may open it. Long-lived servers that open stores
        on demand close the ones they drop, or descriptors run out. Chroma's Rust core frees
        the files on its own thread moments after this returns. Closing twice is harmless; the
        object is unusable afterwards."""
        with self._lock:
            self._collections.clear()
            self._reads.clear()
            if self._closed:
                return
            self._closed = True
            close = getattr(self._client, "close", None)  # not on chroma's ClientAPI type
            if self._owns_client and callable(close):
                # Chroma counts the clients of one path in this process: this stops the
                # shared client only when no other store here still uses it.
                with contextlib.suppress(Exception):
                    close()
            if self._store_lock is not None:
                self._store_lock.release()
                self._store_lock = None

    def __enter__(self) -> ChromaPreferenceMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """How errors name this store."""
        if self.location is None:
            return f"in-memory store {self.namespace}"
        if is_url(self.location):
            return f"Chroma server {self.location}"
        return f"memory store {self.location}"

    def _translate(self, exc: BaseException, user_id: str | None) -> StoreError | None:
        """The one-line cause of a Chroma failure, or None when it is not the store's fault."""
        where = self.describe()
        low = str(exc).lower()
        code = getattr(exc, "errno", None)
        path = None if self.location is None or is_url(self.location) else self.location
        free: int | None = None
        if path is not None:
            with contextlib.suppress(OSError):
                free = shutil.disk_usage(path).free
        if (
            code == errno.ENOSPC
            or "no space left" in low
            or "disk is full" in low
            or (free is not None and free < DISK_FULL_BELOW)
        ):
            return StoreUnavailableError(
                f"{where}: disk full ({free if free is not None else 0} bytes free; "
                f"{_first_line(exc)}); free some space and retry"
            )
        if (
            code in (errno.EROFS, errno.EACCES, errno.EPERM)
            or "readonly" in low
            or ("read-only" in low)
        ):
            return StoreUnavailableError(
                f"{where} is read-only ({_first_line(exc)}): Chroma needs to write even to "
                "read; copy the directory somewhere writable, or fix its permissions"
            )
        if _is_connection_error(exc):
            return StoreUnavailableError(
                f"{where} is unreachable ({_first_line(exc)}): start the server or fix the URL"
            )
        if isinstance(exc, ChromaInternalError) or any(
            word in low for word in ("hnsw", "error finding id", "pickle", "segment reader")
        ):
            whose = f" (user {user_id!r})" if user_id else ""
            hint = rebuild_hint(path) if path is not None else "restore it"
            return StoreDamagedError(
                f"{where}{whose}: its vector index is damaged ({_first_line(exc)}); {hint}"
            )
        return None

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

    def _batch(self) -> int:
        """Records per Chroma call: under the client's limit (5,461 embedded), which a larger
        import or export used to exceed with a traceback after minutes of work."""
        if self._max_batch is None:
            try:
                limit = int(self._client.get_max_batch_size())
            except Exception:
                limit = DEFAULT_BATCH
            self._max_batch = max(1, min(DEFAULT_BATCH, limit))
        return self._max_batch

    def _fetch(self, col: Collection, ids: builtins.list[str]) -> builtins.list[MemoryRecord]:
        out: builtins.list[MemoryRecord] = []
        step = self._batch()
        for start in range(0, len(ids), step):
            got = col.get(ids=ids[start : start + step], include=["documents", "metadatas"])
            docs = got["documents"] or []
            metas = got["metadatas"] or []
            out.extend(
                _record_from(i, d, dict(m)) for i, d, m in zip(got["ids"], docs, metas, strict=True)
            )
        return out

    def _all(self, col: Collection) -> builtins.list[MemoryRecord]:
        """Every record of a collection, read in pages under the batch limit."""
        out: builtins.list[MemoryRecord] = []
        step = self._batch()
        offset = 0
        while True:
            got = col.get(include=["documents", "metadatas"], limit=step, offset=offset)
            docs = got["documents"] or []
            metas = got["metadatas"] or []
            out.extend(
                _record_from(i, d, dict(m)) for i, d, m in zip(got["ids"], docs, metas, strict=True)
            )
            if len(got["ids"]) < step:
                return out
            offset += step

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
        step = self._batch()
        for start in range(0, len(records), step):
            chunk = records[start : start + step]
            ids = [r.id for r in chunk]
            metas: Any = [_record_metadata(r) for r in chunk]
            if embed:
                chunk_vectors = (
                    self._encoder.encode([embedding_text(r.topic, r.text) for r in chunk])
                    if vectors is None
                    else vectors[start : start + step]
                )
                col.upsert(
                    ids=ids,
                    documents=[r.text for r in chunk],
                    metadatas=metas,
                    embeddings=[v for v in chunk_vectors],
                )
            else:
                col.update(ids=ids, metadatas=metas)

    # ------------------------------------------------------------------ interface

    @_guarded
    def add(self, user_id: str, memory: NewMemory, memory_id: str | None = None) -> MemoryRecord:
        col = self._collection(user_id, create=True)
        assert col is not None
        with self._user_lock(user_id):
            if memory_id is not None:
                existing = self._fetch(col, [memory_id])
                if existing:
                    if existing[0].text != memory.text or existing[0].topic != memory.topic:
                        raise ValueError(
                            f"memory id {memory_id!r} of user {user_id!r} already holds "
                            f"{existing[0].text!r}, not {memory.text!r}: the id was reused; "
                            "nothing was stored"
                        )
                    return existing[0]  # the same memory again (a node re-run)
            rec = new_record(user_id, memory, memory_id)
            self._write(col, [rec], embed=True)
            return rec

    @_guarded
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
            new = existing[0] if existing else new_record(user_id, memory, memory_id)
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

    def update(
        self, user_id: str, memory_id: str, memory: NewMemory, new_id: str | None = None
    ) -> MemoryRecord:
        """Revise ``memory_id``: :meth:`supersede` under the name other memory APIs use."""
        return self.supersede(user_id, memory_id, memory, memory_id=new_id)

    @_guarded
    def delete(self, user_id: str, memory_id: str) -> builtins.list[MemoryRecord]:
        """Delete one memory with every version of it (its whole revision chain), so no kept
        record links to a deleted one; returns the records deleted, oldest first."""
        col = self._require(user_id)
        with self._user_lock(user_id):
            found = self._fetch(col, [memory_id])
            if not found:
                raise UnknownMemoryError(user_id, memory_id)
            chain = {found[0].id: found[0]}
            frontier = [found[0]]
            while frontier:
                rec = frontier.pop()
                links = [i for i in (rec.supersedes, rec.superseded_by) if i and i not in chain]
                for linked in self._fetch(col, links):
                    chain[linked.id] = linked
                    frontier.append(linked)
            self._changed(user_id)
            ids = builtins.list(chain)
            step = self._batch()
            for start in range(0, len(ids), step):
                col.delete(ids=ids[start : start + step])
            return sorted(chain.values(), key=lambda r: (r.created_at, r.id))

    @_guarded
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

    @_guarded
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
        # No ``where`` filter first (its cost grows with all users' records): over-fetch and
        # drop superseded records here; filter in Chroma only if that left fewer than k.
        wanted = k if include_superseded else k * SEARCH_OVERFETCH

        def ask() -> QueryResult:
            return col.query(
                query_embeddings=[vector],
                n_results=wanted,
                include=["documents", "metadatas", "distances"],
            )

        res = read_when_ready(ask)
        ids = res["ids"][0]
        total = len(ids)
        if len(ids) < wanted and len(ids) < (total := col.count()):
            # Fewer hits than records: a write may have landed between the two calls, or the
            # index lost entries the records still have (truncated or missing index files),
            # and answering with what is left would tell the agent the user has no such
            # preference. Asked again after counting, a concurrent write cannot look like
            # damage: it only adds to what the second query sees.
            res = read_when_ready(ask)
            ids = res["ids"][0]
        if len(ids) < wanted and len(ids) < total:
            raise StoreDamagedError(
                f"{self.describe()} (user {user_id!r}): its vector index holds fewer "
                f"memories than its records ({len(ids)} found of {total}); "
                + (
                    rebuild_hint(self.location)
                    if self.location and not is_url(self.location)
                    else "restore it"
                )
            )
        out = [
            hit
            for hit in self._hits(res, user_id)
            if include_superseded or hit.record.status == "active"
        ]
        if len(out) >= k or len(ids) < wanted:
            return out[:k]
        # Many superseded versions among the nearest (one preference revised often): ask
        # Chroma for active records only. Widening the over-fetch instead cost 700 ms at 1,000
        # revisions; the filter costs about 3 ms there (bench/revisions.py), and the common
        # case, with few revisions, never reaches it.
        res = col.query(
            query_embeddings=[vector],
            n_results=k,
            where={"status": "active"},
            include=["documents", "metadatas", "distances"],
        )
        return [hit for hit in self._hits(res, user_id) if hit.record.status == "active"]

    @staticmethod
    def _hits(res: Any, user_id: str) -> builtins.list[RetrievedMemory]:
        out = []
        for mid, doc, meta, dist in zip(
            res["ids"][0],
            (res["documents"] or [[]])[0],
            (res["metadatas"] or [[]])[0],
            (res["distances"] or [[]])[0],
            strict=True,
        ):
            rec = _record_from(mid, doc, dict(meta))
            if rec.user_id != user_id:  # defence in depth; collections are per user
                raise RuntimeError("memory store returned another user's record")
            out.append(RetrievedMemory(record=rec, score=round(1.0 - float(dist), 6)))
        return out

    @_guarded
    def get(self, user_id: str, memory_id: str) -> MemoryRecord:
        found = self._fetch(self._require(user_id), [memory_id])
        if not found:
            raise UnknownMemoryError(user_id, memory_id)
        return found[0]

    @_guarded
    def get_all(self, user_id: str, include_superseded: bool = True) -> builtins.list[MemoryRecord]:
        """Every memory of the user, oldest first; ``[]`` for a user with none."""
        col = self._collection(user_id, create=False)
        if col is None:
            return []
        # Filtered here, not with a Chroma ``where`` (see SEARCH_OVERFETCH): one user's records.
        records = self._all(col)
        if not include_superseded:
            records = [r for r in records if r.status == "active"]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    def list(self, user_id: str, include_superseded: bool = True) -> builtins.list[MemoryRecord]:
        """Deprecated name of :meth:`get_all` (it shadowed the builtin ``list``)."""
        warnings.warn(
            "ChromaPreferenceMemory.list is deprecated; use get_all",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.get_all(user_id, include_superseded=include_superseded)

    @_guarded
    def history(self, user_id: str, memory_id: str) -> builtins.list[MemoryRecord]:
        """The versions ending at ``memory_id``, oldest first.

        A few links are followed one ``get`` each; a longer chain is walked over the user's
        records read in one pass, so its cost is linear, not one store call per revision."""
        chain = [self.get(user_id, memory_id)]
        seen = {memory_id}
        while chain[0].supersedes and chain[0].supersedes not in seen:
            if len(chain) >= HISTORY_STEPWISE:
                by_id = {r.id: r for r in self._all(self._require(user_id))}
                older: builtins.list[MemoryRecord] = []
                link: str | None = chain[0].supersedes
                while link and link not in seen:
                    seen.add(link)
                    if link not in by_id:
                        raise UnknownMemoryError(user_id, link)
                    older.append(by_id[link])
                    link = by_id[link].supersedes
                return [*reversed(older), *chain]
            seen.add(chain[0].supersedes)
            chain.insert(0, self.get(user_id, chain[0].supersedes))
        return chain

    @_guarded
    def export(self, user_id: str) -> builtins.list[MemoryRecord]:
        self._require(user_id)
        return self.get_all(user_id, include_superseded=True)

    @_guarded
    def import_records(
        self,
        user_id: str,
        records: Iterable[MemoryRecord],
        *,
        embeddings: Sequence[Sequence[float]] | None = None,
    ) -> int:
        """Restore exported records exactly, all or nothing.

        They are checked first as the graph would (:func:`~pahf.memory.base.validate_records`)
        and written in batches under Chroma's limit; if a batch fails, what this import wrote
        is deleted again (and the user's collection too, if the import created it).
        ``embeddings``, one vector per record from this store's embedding model, skips
        embedding them again (bulk loads of many users)."""
        user_id = validate_user_id(user_id)
        batch = validate_records(user_id, records)
        if embeddings is not None and len(embeddings) != len(batch):
            raise ValueError(f"{len(embeddings)} embeddings for {len(batch)} records")
        created = self._collection(user_id, create=False) is None
        col = self._collection(user_id, create=True)
        assert col is not None
        with self._user_lock(user_id):
            existing = {r.id for r in self._fetch(col, [r.id for r in batch])} if batch else set()
            clash = sorted(existing)
            if clash:
                raise InvalidRecordsError(
                    f"user {user_id!r} already has memories {clash[:5]}: import into an empty "
                    "user or forget first (nothing was written)"
                )
            try:
                self._write(col, batch, embed=True, vectors=embeddings)
            except BaseException:
                with contextlib.suppress(Exception):
                    if created:
                        self._drop(user_id, col)
                    else:
                        ids = [r.id for r in batch]
                        for start in range(0, len(ids), self._batch()):
                            col.delete(ids=ids[start : start + self._batch()])
                        self._changed(user_id)
                raise
        return len(batch)

    def _drop(self, user_id: str, col: Collection) -> None:
        with self._lock:
            self._client.delete_collection(col.name)
            self._collections.pop(user_id, None)
            self._changed(user_id)

    @_guarded
    def rebuild(self, user_id: str) -> int:
        """Re-create the user's vector index from the stored records (texts re-embedded).

        For a store whose index files were truncated or lost: the records (in Chroma's SQLite
        database) are read, written to a fresh collection under a temporary name, and only then
        swapped in for the damaged one, so a crash midway leaves the records in one of the two
        (a re-run finishes the swap). Returns how many records were re-indexed."""
        user_id = validate_user_id(user_id)
        name = self._name(user_id)
        spare = f"{name}-rebuild"
        with self._lock, self._user_lock(user_id):
            self._collections.pop(user_id, None)
            names = {c.name for c in self._client.list_collections()}
            if name not in names and spare in names:
                # A crash between dropping the damaged collection and renaming the new one.
                self._client.get_collection(spare).modify(name=name)
                return int(self._client.get_collection(name).count())
            if name not in names:
                raise UnknownUserError(user_id)
            # The collection's own embedding function (the one its vectors were made with),
            # whatever this object was opened with.
            col = self._client.get_collection(name)
            ef = _persisted_embedding_function(col) or self._ef
            try:
                records = self._all(col)
            except Exception:  # Chroma reads through the damaged index: go to the database
                if self.location is None or is_url(self.location):
                    raise
                records = _records_from_database(Path(self.location), name)
            if spare in names:
                self._client.delete_collection(spare)
            fresh = self._client.create_collection(
                name=spare,
                embedding_function=ef,  # type: ignore[arg-type]
                metadata={"pahf_user_id": user_id, "pahf_schema": _SCHEMA_VERSION},
                configuration={"hnsw": HNSW_CONFIGURATION},
            )
            step = self._batch()
            for start in range(0, len(records), step):
                chunk = records[start : start + step]
                fresh.add(
                    ids=[r.id for r in chunk],
                    documents=[r.text for r in chunk],
                    metadatas=[_record_metadata(r) for r in chunk],
                    embeddings=ef([embedding_text(r.topic, r.text) for r in chunk]),
                )
            if fresh.count() != len(records):
                raise StoreDamagedError(
                    f"{self.describe()} (user {user_id!r}): rebuilding wrote {fresh.count()} of "
                    f"{len(records)} records; the damaged index was left in place"
                )
            self._client.delete_collection(name)
            fresh.modify(name=name)
            self._collections.pop(user_id, None)
            self._changed(user_id)
            return len(records)

    @_guarded
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

    @_guarded
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

    @_guarded
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
