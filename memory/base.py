"""The preference-memory interface: the one small surface nodes and tools talk to.

Every call takes the user id; an implementation must make cross-user access impossible (the
Chroma store keeps one collection per user). Nothing is ever overwritten in place: revising a
preference supersedes it and keeps the old record, linked both ways, with its history. Deletion
is explicit: ``delete`` removes one memory (and says which records pointed at it), ``forget`` a
whole user.

The verbs, as a mem0 or LangGraph-store user expects them: ``add``, ``search``, ``get``,
``update`` (a revision: supersedes, keeps history), ``delete``, ``history``, ``get_all`` (a user's
memories; ``list`` is its deprecated old name), plus ``export`` / ``import_records``.
"""

from __future__ import annotations

import builtins
import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pahf.memory.schema import (
    MAX_MEMORY_CHARS,
    AppliedMemoryOp,
    MemoryOp,
    MemoryRecord,
    NewMemory,
    RetrievedMemory,
    memory_id_for,
)


class PreferenceMemoryError(Exception):
    """Base of every error the preference memory raises on purpose."""


#: Deprecated name of :class:`PreferenceMemoryError` (it read like a typo of the builtin).
MemoryError_ = PreferenceMemoryError


class StoreError(PreferenceMemoryError, OSError):
    """The store itself cannot serve the call: damaged, full, read-only, unreachable, busy.

    An ``OSError`` too, so callers that already treat I/O failures as "not the user's input"
    keep doing so; the message names the store, the cause and what to do, in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class StoreDamagedError(StoreError):
    """Files of the store are missing or corrupt; searching it would answer wrongly."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or written (server down, disk full, read-only)."""


class NoSuchStoreError(StoreError, FileNotFoundError):
    """A command that reads was pointed at a store that does not exist (a typo, usually)."""


class InvalidRecordsError(PreferenceMemoryError, ValueError):
    """Records to import break a rule the graph keeps (nothing was written)."""


class UnknownUserError(PreferenceMemoryError, LookupError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no memories stored for user {user_id!r}")
        self.user_id = user_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields when pickled (worker processes), not from its message.
        return (type(self), (self.user_id,))


class UnknownMemoryError(PreferenceMemoryError, LookupError):
    def __init__(self, user_id: str, memory_id: str) -> None:
        super().__init__(f"user {user_id!r} has no memory {memory_id!r}")
        self.user_id = user_id
        self.memory_id = memory_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.user_id, self.memory_id))


@runtime_checkable
class Encoder(Protocol):
    """Text -> L2-normalised vectors; the memory's embedder, also used by the offline reasoner."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class PreferenceMemory(Protocol):
    """Per-user preference memory."""

    @property
    def encoder(self) -> Encoder: ...

    def add(self, user_id: str, memory: NewMemory, memory_id: str | None = None) -> MemoryRecord:
        """Store a new active memory.

        Re-adding the same ``memory_id`` with the same text is a no-op (a node re-run); with
        other text it raises ``ValueError`` and writes nothing (an id reused by mistake must
        not swallow the new memory)."""
        ...

    def search(
        self, user_id: str, query: str, k: int = 8, include_superseded: bool = False
    ) -> builtins.list[RetrievedMemory]:
        """The user's memories most similar to ``query`` (active only by default)."""
        ...

    def supersede(
        self, user_id: str, old_id: str, memory: NewMemory, memory_id: str | None = None
    ) -> MemoryRecord:
        """Store ``memory`` and mark ``old_id`` superseded by it (old record kept)."""
        ...

    def reinforce(
        self, user_id: str, memory_id: str, amount: float = 1.0, key: str = ""
    ) -> MemoryRecord:
        """Raise a memory's confidence (the user confirmed it again).

        ``key`` identifies the signal, so applying the same one twice counts once."""
        ...

    def challenge(self, user_id: str, memory_id: str, detail: str = "") -> MemoryRecord:
        """Record one contradicting signal against a memory (lowers confidence, keeps it)."""
        ...

    def update(
        self, user_id: str, memory_id: str, memory: NewMemory, new_id: str | None = None
    ) -> MemoryRecord:
        """Revise a memory: the new version supersedes ``memory_id``, which is kept as history
        (the same as :meth:`supersede`, under the name mem0 and LangGraph stores use)."""
        ...

    def delete(self, user_id: str, memory_id: str) -> builtins.list[MemoryRecord]:
        """Delete one memory for good, with every version of it (so no kept record links to a
        deleted one); returns the deleted records, oldest first."""
        ...

    def get(self, user_id: str, memory_id: str) -> MemoryRecord: ...

    def get_all(self, user_id: str, include_superseded: bool = True) -> builtins.list[MemoryRecord]:
        """All of the user's memories, oldest first (``[]`` for a user with none)."""
        ...

    def history(self, user_id: str, memory_id: str) -> builtins.list[MemoryRecord]:
        """The chain of versions ending at ``memory_id``, oldest first."""
        ...

    def export(self, user_id: str) -> builtins.list[MemoryRecord]: ...

    def import_records(self, user_id: str, records: Iterable[MemoryRecord]) -> int:
        """Restore exported records exactly (ids, links, history); returns how many."""
        ...

    def forget(self, user_id: str) -> int:
        """Delete every memory of ``user_id``; returns how many were deleted."""
        ...

    def users(self) -> builtins.list[str]: ...

    def count(self, user_id: str) -> int: ...


def content_memory_id(
    user_id: str, request_id: str, turn: str, index: int, memory: NewMemory
) -> str:
    """The id of a memory an op stores: deterministic, and a function of its content too.

    A node re-run after a crash stores the same words under the same id, so it never writes
    twice; a client that reuses a request id for a *different* answer gets a different id, so
    the new answer is stored instead of being mistaken for the old one (which it was when ids
    came from user, request, turn and index only)."""
    content = hashlib.sha256(
        f"{memory.topic}\x1f{memory.text}".encode("utf-8", "surrogatepass")
    ).hexdigest()[:16]
    return memory_id_for(user_id, request_id, f"{turn}\x1f{content}", index)


def validate_records(user_id: str, records: Iterable[MemoryRecord]) -> builtins.list[MemoryRecord]:
    """Check records to import against the rules the graph keeps; raise naming the first broken.

    Text non-empty and at most :data:`~pahf.state.MAX_MEMORY_CHARS` (a 5 MB memory made every
    request of its user take 34 s); confidence finite and not negative (NaN used to be stored
    as 1.0); ids unique; every ``supersedes`` / ``superseded_by`` link resolves inside the set,
    both ends agree, and no chain loops; a superseded record names its successor."""
    batch = builtins.list(records)
    by_id: dict[str, MemoryRecord] = {}
    for rec in batch:
        where = f"record {rec.id!r}"
        if rec.user_id != user_id:
            raise InvalidRecordsError(f"{where} belongs to user {rec.user_id!r}, not {user_id!r}")
        if not rec.id.strip():
            raise InvalidRecordsError("a record has an empty id")
        if rec.id in by_id:
            raise InvalidRecordsError(f"{where} appears twice")
        if not rec.text.strip():
            raise InvalidRecordsError(f"{where} has empty text")
        if len(rec.text) > MAX_MEMORY_CHARS:
            raise InvalidRecordsError(
                f"{where} has {len(rec.text)} characters of text; the limit is {MAX_MEMORY_CHARS}"
            )
        if not math.isfinite(rec.confidence) or rec.confidence < 0:
            raise InvalidRecordsError(
                f"{where} has confidence {rec.confidence!r}; it must be a finite number >= 0"
            )
        by_id[rec.id] = rec
    for rec in batch:
        where = f"record {rec.id!r}"
        if rec.supersedes is not None:
            old = by_id.get(rec.supersedes)
            if old is None:
                raise InvalidRecordsError(f"{where} supersedes {rec.supersedes!r}, which is absent")
            if old.superseded_by != rec.id:
                raise InvalidRecordsError(
                    f"{where} supersedes {old.id!r}, but that record names "
                    f"{old.superseded_by!r} as its successor"
                )
        if rec.superseded_by is not None:
            new = by_id.get(rec.superseded_by)
            if new is None:
                raise InvalidRecordsError(
                    f"{where} is superseded by {rec.superseded_by!r}, which is absent"
                )
            if new.supersedes != rec.id:
                raise InvalidRecordsError(
                    f"{where} is superseded by {new.id!r}, which does not name it back"
                )
        if (rec.status == "superseded") != (rec.superseded_by is not None):
            raise InvalidRecordsError(
                f"{where} has status {rec.status!r} but superseded_by {rec.superseded_by!r}"
            )
    # Links agree both ways, so a loop is a cycle of supersedes links; each record is walked
    # once (chains of thousands of revisions stay linear).
    done: set[str] = set()
    for rec in batch:
        path: set[str] = set()
        cur: MemoryRecord | None = rec
        while cur is not None and cur.id not in done:
            if cur.id in path:
                raise InvalidRecordsError(f"record {rec.id!r} is in a cycle of supersedes links")
            path.add(cur.id)
            cur = by_id[cur.supersedes] if cur.supersedes is not None else None
        done |= path
    return batch


def apply_ops(
    memory: PreferenceMemory, user_id: str, request_id: str, turn: str, ops: Sequence[MemoryOp]
) -> builtins.list[AppliedMemoryOp]:
    """Apply a reasoner's ops with deterministic ids, so a re-run never writes twice.

    Every op is either applied and reported, or raises: nothing is dropped in silence."""
    applied: builtins.list[AppliedMemoryOp] = []
    for index, op in enumerate(ops):
        new_id = (
            content_memory_id(user_id, request_id, turn, index, op.memory)
            if op.memory is not None
            else memory_id_for(user_id, request_id, turn, index)
        )
        if op.kind == "add":
            assert op.memory is not None
            rec = memory.add(user_id, op.memory, memory_id=new_id)
            applied.append(
                AppliedMemoryOp(kind="add", memory_id=rec.id, text=rec.text, reason=op.reason)
            )
        elif op.kind == "supersede":
            assert op.memory is not None and op.target_id is not None
            rec = memory.supersede(user_id, op.target_id, op.memory, memory_id=new_id)
            applied.append(
                AppliedMemoryOp(
                    kind="supersede",
                    memory_id=rec.id,
                    target_id=op.target_id,
                    text=rec.text,
                    reason=op.reason,
                )
            )
        elif op.kind == "reinforce":
            assert op.target_id is not None
            rec = memory.reinforce(user_id, op.target_id, key=f"{request_id}:{turn}:{index}")
            applied.append(
                AppliedMemoryOp(kind="reinforce", memory_id=rec.id, text=rec.text, reason=op.reason)
            )
        else:
            assert op.target_id is not None
            rec = memory.challenge(user_id, op.target_id, detail=f"{request_id}:{turn}:{index}")
            applied.append(
                AppliedMemoryOp(kind="challenge", memory_id=rec.id, text=rec.text, reason=op.reason)
            )
    return applied
