"""What memory stores and how reasoners ask to change it: records, operations, their ids.

Reasoners return :class:`MemoryOp` values and never touch storage; a store applies them and
reports :class:`AppliedMemoryOp`. Records are never overwritten: a revision supersedes.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from pahf.request import StrictModel

#: Longest text stored as one memory: feedback beyond this is truncated, so a hostile or
#: rambling user cannot blow up the store or every later prompt.
MAX_MEMORY_CHARS = 2000


def utc_now() -> str:
    """ISO-8601 UTC timestamp (microseconds, so records made in one second still sort in
    creation order); stored as text so Chroma metadata can hold it."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


MemoryStatus = Literal["active", "superseded"]
MemorySource = Literal["clarification", "feedback", "manual", "import"]


class HistoryEntry(StrictModel):
    """One event in a memory's life. Immutable: stores append entries and never change one, so
    a copy of a record may share them (copying records is on every search's path)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: str
    event: Literal["created", "superseded", "reinforced", "imported", "challenged"]
    detail: str = ""


class NewMemory(StrictModel):
    """What a reasoner asks memory to store: the user's own words and where they apply."""

    text: str = Field(min_length=1)
    topic: str = Field(default="", description="the situation the preference applies to")
    domain: str = "general"
    source: MemorySource = "manual"
    request_id: str = ""
    confidence: float = Field(default=1.0, ge=0.0)

    @field_validator("text")
    @classmethod
    def _bound(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("memory text must not be empty")
        return value[:MAX_MEMORY_CHARS]


#: Confirmations stop raising a memory's confidence here: at 2 a memory is "established" (one
#: contradicting signal only challenges it), and each further confirmation would cost a store
#: write and a history entry on every accepted action for as long as the preference is used.
#: Measured against 4 on the generated benchmark: the same success without feedback noise, equal
#: or better with 20% noise, 40-60% fewer reinforcement writes (bench/README.md).
CONFIDENCE_CEILING = 2.0


class MemoryRecord(StrictModel):
    """A stored preference. Superseded records are kept, linked both ways, with their history."""

    id: str
    user_id: str
    text: str
    topic: str = ""
    domain: str = "general"
    source: MemorySource = "manual"
    status: MemoryStatus = "active"
    confidence: float = 1.0
    created_at: str
    request_id: str = ""
    supersedes: str | None = None
    superseded_by: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)


class RetrievedMemory(StrictModel):
    """A memory as the graph sees it after a search: the record plus its similarity."""

    record: MemoryRecord
    score: float


class MemoryOp(StrictModel):
    """One change a reasoner wants made to memory.

    ``add`` stores ``memory``; ``supersede`` stores ``memory`` and marks ``target_id`` superseded
    by it; ``reinforce`` raises the confidence of ``target_id``; ``challenge`` records a
    contradicting signal against ``target_id`` without replacing it yet (noisy feedback).
    """

    kind: Literal["add", "supersede", "reinforce", "challenge"]
    memory: NewMemory | None = None
    target_id: str | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> MemoryOp:
        if self.kind in ("add", "supersede") and self.memory is None:
            raise ValueError(f"memory op {self.kind!r} needs a memory")
        if self.kind in ("supersede", "reinforce", "challenge") and not self.target_id:
            raise ValueError(f"memory op {self.kind!r} needs a target_id")
        return self


class AppliedMemoryOp(StrictModel):
    """A memory op after it was applied: what happened, to which record ids."""

    kind: Literal["add", "supersede", "reinforce", "challenge"]
    memory_id: str
    target_id: str | None = None
    text: str = ""
    reason: str = ""


def memory_id_for(user_id: str, request_id: str, turn: str, index: int) -> str:
    """Deterministic memory id, so a node re-run after a crash rewrites, never duplicates."""
    digest = hashlib.sha256(f"{user_id}\x1f{request_id}\x1f{turn}\x1f{index}".encode()).hexdigest()
    return f"m-{digest[:24]}"


def new_record(user_id: str, memory: NewMemory, memory_id: str | None = None) -> MemoryRecord:
    """The stored form of a new memory: one rule for every store (active, created now)."""
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
