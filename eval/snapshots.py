"""Where a resumed run finds each user's memory: a snapshot after every episode that changed it.

The harness plays on a working store that need not survive the process (the default is an
in-memory Chroma store: a write there costs a quarter of a write to disk). After an episode
that changed a user's memory, and *before* its line goes into the episode log, the user's
whole memory is saved here together with that episode's log record, atomically (temp file +
rename). So on resume, for every user the harness has started:

* the snapshot holds the memory after the user's last memory-changing episode; the episodes
  logged after it changed nothing, so this is the memory after the last logged episode;
* a snapshot whose episode is not in the log means the process died between the two writes:
  the episode did finish, so its saved record is appended to the log (:func:`restore_user`);
* a half-played episode left no snapshot, and its writes, if the working store kept them (a
  store on disk), are discarded, since the user's memory is rebuilt from the snapshot.

A user with logged episodes and no snapshot never changed memory: they restart empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import MutableSet, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from pahf.eval.results import EpisodeLog, EpisodeRecord, RunKey
from pahf.memory.base import PreferenceMemory, UnknownUserError
from pahf.memory.schema import MemoryRecord


class MemorySnapshot(BaseModel):
    """A user's whole memory right after ``episode`` changed it, with that episode's record."""

    model_config = ConfigDict(extra="forbid")

    user: str
    episode: EpisodeRecord
    records: list[MemoryRecord]


def snapshot_path(root: Path, user: str) -> Path:
    """One file per user; the name is a hash because user ids may hold any character."""
    return root / f"{hashlib.sha256(user.encode('utf-8')).hexdigest()[:20]}.json"


def save_snapshot(
    root: Path, user: str, episode: EpisodeRecord, records: Sequence[MemoryRecord]
) -> None:
    """Save ``records`` (the user's whole memory now) as the state after ``episode``; call it
    before the episode's line goes into the log."""
    snap = MemorySnapshot(user=user, episode=episode, records=list(records))
    path = snapshot_path(root, user)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(snap.model_dump_json(), encoding="utf-8")
    os.replace(tmp, path)


class SnapshotError(RuntimeError):
    """A snapshot cannot be used: the run cannot know that user's memory."""


def load_snapshot(root: Path, user: str) -> MemorySnapshot | None:
    path = snapshot_path(root, user)
    if not path.exists():
        return None
    try:
        snap = MemorySnapshot.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise SnapshotError(
            f"memory snapshot {path} of user {user!r} is unreadable ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}); restore it, or start the run again in a new --out"
        ) from None
    if snap.user != user:
        raise SnapshotError(f"snapshot {path} belongs to {snap.user!r}, not {user!r}")
    return snap


def restore_user(
    root: Path, memory: PreferenceMemory, user: str, log: EpisodeLog, done: MutableSet[RunKey]
) -> tuple[list[MemoryRecord], RunKey | None]:
    """Rebuild ``user``'s memory in ``memory`` as it was after their last finished episode.

    Returns the records restored and, when the last episode had finished but missed its log
    line, that episode's key (its record is appended to ``log`` and added to ``done``).
    """
    with contextlib.suppress(UnknownUserError):  # drop whatever a half-played episode wrote
        memory.forget(user)
    snap = load_snapshot(root, user)
    if snap is None:
        return [], None
    completed: RunKey | None = None
    key = snap.episode.key()
    if key not in done:
        log.append(snap.episode)
        done.add(key)
        completed = key
    if snap.records:
        memory.import_records(user, snap.records)
    return list(snap.records), completed
