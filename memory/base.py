"""The preference-memory interface: the one small surface nodes and tools talk to.

Every call takes the user id; an implementation must make cross-user access impossible (the
Chroma store keeps one collection per user). Nothing is ever overwritten in place: revising a
preference supersedes it and keeps the old record, linked both ways, with its history; ``forget``
is the only deletion, and it is explicit and per user.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pahf.memory.schema import (
    AppliedMemoryOp,
    MemoryOp,
    MemoryRecord,
    NewMemory,
    RetrievedMemory,
    memory_id_for,
)


class MemoryError_(LookupError):
    """Base for memory errors (unknown user, unknown memory, bad store)."""


class UnknownUserError(MemoryError_):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no memories stored for user {user_id!r}")
        self.user_id = user_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields when pickled (worker processes), not from its message.
        return (type(self), (self.user_id,))


class UnknownMemoryError(MemoryError_):
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
        """Store a new active memory; re-adding the same ``memory_id`` is a no-op."""
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

    def get(self, user_id: str, memory_id: str) -> MemoryRecord: ...

    def list(self, user_id: str, include_superseded: bool = True) -> builtins.list[MemoryRecord]:
        """All of the user's memories, oldest first."""
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


def apply_ops(
    memory: PreferenceMemory, user_id: str, request_id: str, turn: str, ops: Sequence[MemoryOp]
) -> builtins.list[AppliedMemoryOp]:
    """Apply a reasoner's ops with deterministic ids, so a re-run never writes twice."""
    applied: builtins.list[AppliedMemoryOp] = []
    for index, op in enumerate(ops):
        new_id = memory_id_for(user_id, request_id, turn, index)
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
