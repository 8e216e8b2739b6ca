"""A process-local preference memory for evaluation runs: exact cosine search over numpy arrays.

Why it exists: an evaluation replays tens of thousands of short episodes against stores nobody
else reads, and its durability comes from the episode log and the per-user snapshots, not from
the working store. Chroma's in-memory client still serialises every record to metadata, runs
its Rust bindings and rebuilds an index per write: a quarter of the CPU time of a run was spent
in its ``query`` / ``get`` / ``upsert`` calls (bench/README.md). This store keeps the records
as objects and their vectors in one array per user, answers a search with one matrix product,
and obeys the same contract as :class:`~pahf.memory.chroma.ChromaPreferenceMemory` (per-user
isolation, nothing overwritten in place, idempotent ids, history kept); the final memories of a
run are still archived to Chroma on disk. Search is exact where Chroma's index is approximate,
so on large memories the two may return different neighbours; per-user memories in a run hold
a few dozen records, where both are exact.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable

import numpy as np

from pahf.memory.base import Encoder, UnknownMemoryError, UnknownUserError, validate_records
from pahf.memory.chroma import embedding_text
from pahf.memory.schema import (
    HistoryEntry,
    MemoryRecord,
    NewMemory,
    RetrievedMemory,
    new_record,
    utc_now,
)
from pahf.request import validate_user_id

_new_object = object.__new__
_set_attr = object.__setattr__


def _detached(record: MemoryRecord) -> MemoryRecord:
    """A copy of ``record`` sharing nothing mutable with it, without ``deepcopy``.

    A record's fields are strings, numbers and None except ``history``, a list of immutable
    entries: a new list is a full copy. ``model_copy(deep=True)`` walks every value through
    ``copy.deepcopy`` instead, and copying records out of the store (searches, the snapshot
    after every memory-changing episode) was the largest single cost of an evaluation run.
    Built as ``model_copy`` builds its copy, without its generic per-attribute copies: this
    runs for every hit of every search.
    """
    copy = _new_object(type(record))
    fields = record.__dict__.copy()
    fields["history"] = list(record.history)
    _set_attr(copy, "__dict__", fields)
    _set_attr(copy, "__pydantic_fields_set__", set(record.__pydantic_fields_set__))
    extra = record.__pydantic_extra__
    _set_attr(copy, "__pydantic_extra__", None if extra is None else dict(extra))
    private = getattr(record, "__pydantic_private__", None)
    _set_attr(copy, "__pydantic_private__", None if private is None else dict(private))
    return copy


def _retrieved(record: MemoryRecord, score: float) -> RetrievedMemory:
    """``RetrievedMemory.model_construct(record=record, score=score)``, built directly: both
    fields are given and already valid, and this runs for every hit of every search."""
    hit = _new_object(RetrievedMemory)
    _set_attr(hit, "__dict__", {"record": record, "score": score})
    _set_attr(hit, "__pydantic_fields_set__", {"record", "score"})
    _set_attr(hit, "__pydantic_extra__", None)
    _set_attr(hit, "__pydantic_private__", None)
    return hit


class _UserMemory:
    """One user's records in insertion order and their unit vectors, row for row."""

    def __init__(self, dim: int) -> None:
        self.records: dict[str, MemoryRecord] = {}
        self.rows: dict[str, int] = {}
        self.vectors = np.zeros((0, dim), dtype=np.float32)

    def put(self, record: MemoryRecord, vector: np.ndarray | None) -> None:
        self.records[record.id] = record
        if vector is None:
            return
        row = self.rows.get(record.id)
        if row is None:
            self.rows[record.id] = len(self.vectors)
            self.vectors = np.vstack([self.vectors, vector[None, :].astype(np.float32)])
        else:
            self.vectors[row] = vector


class WorkingPreferenceMemory:
    """:class:`~pahf.memory.base.PreferenceMemory` held in this process only (evaluation)."""

    def __init__(self, encoder: Encoder) -> None:
        self._encoder = encoder
        self._users: dict[str, _UserMemory] = {}
        self._lock = threading.RLock()

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    # ------------------------------------------------------------------ plumbing

    def _user(self, user_id: str, create: bool) -> _UserMemory | None:
        user_id = validate_user_id(user_id)
        found = self._users.get(user_id)
        if found is None and create:
            found = self._users[user_id] = _UserMemory(0)
        return found

    def _require(self, user_id: str) -> _UserMemory:
        found = self._user(user_id, create=False)
        if found is None:
            raise UnknownUserError(user_id)
        return found

    def _embed(self, records: builtins.list[MemoryRecord]) -> np.ndarray:
        return np.asarray(
            self._encoder.encode([embedding_text(r.topic, r.text) for r in records]),
            dtype=np.float32,
        )

    def _put(self, user: _UserMemory, records: builtins.list[MemoryRecord]) -> None:
        """Store copies of ``records`` with their vectors (a caller's object never aliases one
        held here, as with a database)."""
        if not records:
            return
        vectors = self._embed(records)
        if user.vectors.shape[1] != vectors.shape[1]:
            user.vectors = np.zeros((0, vectors.shape[1]), dtype=np.float32)
        for record, vector in zip(records, vectors, strict=True):
            user.put(_detached(record), vector)

    # ------------------------------------------------------------------ interface

    def add(self, user_id: str, memory: NewMemory, memory_id: str | None = None) -> MemoryRecord:
        with self._lock:
            user = self._user(user_id, create=True)
            assert user is not None
            if memory_id is not None and memory_id in user.records:
                existing = user.records[memory_id]
                if existing.text != memory.text or existing.topic != memory.topic:
                    raise ValueError(
                        f"memory id {memory_id!r} of user {user_id!r} already holds "
                        f"{existing.text!r}, not {memory.text!r}: the id was reused; "
                        "nothing was stored"
                    )
                return _detached(existing)
            record = new_record(user_id, memory, memory_id)
            self._put(user, [record])
            return record

    def supersede(
        self, user_id: str, old_id: str, memory: NewMemory, memory_id: str | None = None
    ) -> MemoryRecord:
        with self._lock:
            user = self._require(user_id)
            stored = user.records.get(old_id)
            if stored is None:
                raise UnknownMemoryError(user_id, old_id)
            existing = user.records.get(memory_id) if memory_id is not None else None
            if existing is not None and stored.superseded_by == memory_id:
                return _detached(existing)  # already applied (a node re-run)
            if existing is not None and existing.supersedes != stored.id:
                raise ValueError(
                    f"memory id {memory_id!r} of user {user_id!r} is already used by another "
                    "memory; refusing to overwrite it (nothing was written)"
                )
            if stored.status == "superseded":
                raise ValueError(
                    f"memory {old_id!r} of user {user_id!r} is already superseded by "
                    f"{stored.superseded_by!r}; revise the newest version instead"
                )
            new = (
                _detached(existing)
                if existing is not None
                else new_record(user_id, memory, memory_id)
            )
            new.supersedes = stored.id
            if existing is None:
                self._put(user, [new])
            stored.status = "superseded"
            stored.superseded_by = new.id
            stored.history.append(HistoryEntry(at=utc_now(), event="superseded", detail=new.id))
            return _detached(new)

    def _adjust(
        self, user_id: str, memory_id: str, event: str, delta: float, detail: str
    ) -> MemoryRecord:
        with self._lock:
            user = self._require(user_id)
            record = user.records.get(memory_id)
            if record is None:
                raise UnknownMemoryError(user_id, memory_id)
            if detail and any(h.event == event and h.detail == detail for h in record.history):
                return _detached(record)  # the same signal twice counts once
            record.confidence = max(0.0, record.confidence + delta)
            record.history.append(
                HistoryEntry.model_validate({"at": utc_now(), "event": event, "detail": detail})
            )
            return _detached(record)

    def reinforce(
        self, user_id: str, memory_id: str, amount: float = 1.0, key: str = ""
    ) -> MemoryRecord:
        return self._adjust(user_id, memory_id, "reinforced", amount, key)

    def challenge(self, user_id: str, memory_id: str, detail: str = "") -> MemoryRecord:
        return self._adjust(user_id, memory_id, "challenged", -1.0, detail)

    def search(
        self, user_id: str, query: str, k: int = 8, include_superseded: bool = False
    ) -> builtins.list[RetrievedMemory]:
        with self._lock:
            user = self._user(user_id, create=False)
            if user is None or not user.rows or k < 1:
                return []
            vector = np.asarray(self._encoder.encode([query])[0], dtype=np.float32)
            sims = user.vectors @ vector
            ids = list(user.rows)
            # Best first; equal similarities in insertion order (stable sort).
            order = np.argsort(-sims, kind="stable")
            out: builtins.list[RetrievedMemory] = []
            for row in order:
                record = user.records[ids[row]]
                if include_superseded or record.status == "active":
                    # Built from a stored (validated) record and a float: nothing to validate,
                    # and this runs for every hit of every search of an evaluation.
                    out.append(_retrieved(_detached(record), round(float(sims[row]), 6)))
                    if len(out) == k:
                        break
            return out

    def get(self, user_id: str, memory_id: str) -> MemoryRecord:
        with self._lock:
            record = self._require(user_id).records.get(memory_id)
            if record is None:
                raise UnknownMemoryError(user_id, memory_id)
            return _detached(record)

    def update(
        self, user_id: str, memory_id: str, memory: NewMemory, new_id: str | None = None
    ) -> MemoryRecord:
        return self.supersede(user_id, memory_id, memory, memory_id=new_id)

    def delete(self, user_id: str, memory_id: str) -> builtins.list[MemoryRecord]:
        with self._lock:
            user = self._require(user_id)
            if memory_id not in user.records:
                raise UnknownMemoryError(user_id, memory_id)
            chain: dict[str, MemoryRecord] = {}
            frontier = [memory_id]
            while frontier:
                rec = user.records[frontier.pop()]
                chain[rec.id] = rec
                frontier += [
                    i
                    for i in (rec.supersedes, rec.superseded_by)
                    if i and i not in chain and i in user.records
                ]
            keep = [i for i in user.rows if i not in chain]
            rows = [user.rows[i] for i in keep]
            user.vectors = user.vectors[rows] if rows else user.vectors[:0]
            user.rows = {i: n for n, i in enumerate(keep)}
            for i in chain:
                del user.records[i]
            return sorted(chain.values(), key=lambda r: (r.created_at, r.id))

    def get_all(self, user_id: str, include_superseded: bool = True) -> builtins.list[MemoryRecord]:
        with self._lock:
            user = self._user(user_id, create=False)
            if user is None:
                return []
            records = [
                _detached(r)
                for r in user.records.values()
                if include_superseded or r.status == "active"
            ]
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
        return self.get_all(user_id, include_superseded=True)

    def import_records(self, user_id: str, records: Iterable[MemoryRecord]) -> int:
        batch = validate_records(validate_user_id(user_id), records)
        with self._lock:
            user = self._user(user_id, create=True)
            assert user is not None
            clash = sorted({r.id for r in batch} & set(user.records))
            if clash:
                raise ValueError(
                    f"user {user_id!r} already has memories {clash[:5]}: import into an empty "
                    "user or forget first (nothing was written)"
                )
            self._put(user, batch)
        return len(batch)

    def forget(self, user_id: str) -> int:
        with self._lock:
            user = self._user(user_id, create=False)
            if user is None:
                raise UnknownUserError(user_id)
            del self._users[validate_user_id(user_id)]
            return len(user.records)

    def users(self) -> builtins.list[str]:
        with self._lock:
            return sorted(self._users)

    def count(self, user_id: str) -> int:
        with self._lock:
            user = self._user(user_id, create=False)
            return 0 if user is None else len(user.records)
