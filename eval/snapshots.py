"""Undo a half-played episode's memory writes when an interrupted run resumes.

An episode can write memory and then die before its log line is written (e.g. the answer to a
question is stored, then the process is killed while waiting for feedback). Replaying it on top
of that write would not be the same episode: the agent would already know the answer and not
ask. So before each learning episode the harness saves the user's memory, tagged with the run
key about to be played; on resume, a snapshot whose key is not in the log marks a half-played
episode, and the user's memory is put back to the snapshot before anything else runs.

Writes are atomic (temp file + rename), so a crash while saving leaves the previous snapshot,
which then refers to a finished episode and is correctly ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Container, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from pahf.eval.results import RunKey
from pahf.memory.base import PreferenceMemory, UnknownUserError
from pahf.state import MemoryRecord


class MemorySnapshot(BaseModel):
    """A user's memory as it was just before the episode ``key`` started."""

    model_config = ConfigDict(extra="forbid")

    key: list[str | int]
    user: str
    records: list[MemoryRecord]


def snapshot_path(root: Path, user: str) -> Path:
    """One file per user; the name is a hash because user ids may hold any character."""
    return root / f"{hashlib.sha256(user.encode('utf-8')).hexdigest()[:20]}.json"


def save_snapshot(root: Path, user: str, key: RunKey, records: Sequence[MemoryRecord]) -> None:
    """Record that ``key`` is about to start, with ``records`` = the user's whole memory now
    (the caller passes what it already read, sparing the store a query per episode)."""
    snap = MemorySnapshot(key=list(key), user=user, records=list(records))
    path = snapshot_path(root, user)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(snap.model_dump_json(), encoding="utf-8")
    os.replace(tmp, path)


def restore_if_unfinished(
    root: Path, memory: PreferenceMemory, user: str, finished: Container[RunKey]
) -> RunKey | None:
    """Roll ``user``'s memory back if their last started episode never finished.

    Returns the key of the episode that was rolled back, or None when nothing had to be done.
    """
    path = snapshot_path(root, user)
    if not path.exists():
        return None
    snap = MemorySnapshot.model_validate(json.loads(path.read_text(encoding="utf-8")))
    if snap.user != user:
        raise RuntimeError(f"snapshot {path} belongs to {snap.user!r}, not {user!r}")
    domain, method, phase, iteration, episode_id = snap.key
    key: RunKey = (str(domain), str(method), int(phase), int(iteration), str(episode_id))
    if key in finished:
        return None
    with contextlib.suppress(UnknownUserError):  # nothing was ever stored for this user
        memory.forget(user)
    if snap.records:
        memory.import_records(user, snap.records)
    return key
