"""Where a resumed run finds each user's memory: a journal line after every episode that changed it.

The harness plays on a working store that need not survive the process (in memory: a write
there costs a fraction of a write to disk). After an episode that changed a user's memory, and
*before* its line goes into the episode log, one line is appended to that user's journal: the
episode's log record and the records the episode added or changed (the first line of a journal
starts from an empty memory). Folding a journal's lines gives the user's whole memory after
their last memory-changing episode. So on resume, for every user the harness has started:

* the journal holds the memory after the user's last memory-changing episode; the episodes
  logged after it changed nothing, so this is the memory after the last logged episode;
* a last line whose episode is not in the log means the process died between the two writes:
  the episode did finish, so its saved record is appended to the log (:func:`restore_user`);
* a half-played episode left no line (or a torn last line without its newline, which is cut
  off), and its writes, if the working store kept them (a store on disk), are discarded, since
  the user's memory is rebuilt from the journal.

A user with logged episodes and no journal never changed memory: they restart empty.

Why a journal: the whole memory rewritten to a temporary file and renamed over the last one,
after every memory-changing episode, cost a serialisation of every record and a rename that
ext4 turns into a flush of the file's data; an appended line costs one small write. A run
directory written before the journal (one ``<hash>.json`` whole snapshot per user) is read as
the journal's first line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, MutableSet, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pahf.eval.results import EpisodeLog, EpisodeRecord, RunKey
from pahf.memory.base import PreferenceMemory, UnknownUserError
from pahf.memory.schema import MemoryRecord


class MemorySnapshot(BaseModel):
    """A user's whole memory right after ``episode`` changed it, with that episode's record."""

    model_config = ConfigDict(extra="forbid")

    user: str
    episode: EpisodeRecord
    records: list[MemoryRecord]


class JournalLine(BaseModel):
    """One line of a user's journal: what ``episode`` changed in their memory.

    ``records`` are the records it added or changed, whole; ``removed`` the ids it removed;
    ``full`` says ``records`` is the whole memory (a line carried over from a whole snapshot).
    """

    model_config = ConfigDict(extra="forbid")

    user: str
    episode: EpisodeRecord
    records: list[MemoryRecord]
    removed: list[str] = Field(default_factory=list)
    full: bool = False


def _stem(root: Path, user: str) -> Path:
    """One journal per user; the name is a hash because user ids may hold any character."""
    return root / hashlib.sha256(user.encode("utf-8")).hexdigest()[:20]


def journal_path(root: Path, user: str) -> Path:
    return _stem(root, user).with_suffix(".jsonl")


def snapshot_path(root: Path, user: str) -> Path:
    """Where a run directory written before the journal kept the user's whole memory."""
    return _stem(root, user).with_suffix(".json")


def _by_creation(records: Iterable[MemoryRecord]) -> list[MemoryRecord]:
    """A user's records in the order ``PreferenceMemory.get_all`` gives them."""
    return sorted(records, key=lambda r: (r.created_at, r.id))


def save_snapshot(
    root: Path,
    user: str,
    episode: EpisodeRecord,
    records: Sequence[MemoryRecord],
    previous: Sequence[MemoryRecord],
) -> None:
    """Record ``records`` (the user's whole memory now) as the state after ``episode``, given
    ``previous``, the state the journal holds so far; call it before the episode's log line."""
    before = {r.id: r for r in previous}
    now = {r.id for r in records}
    line = JournalLine(
        user=user,
        episode=episode,
        records=[r for r in records if before.get(r.id) != r],
        removed=[i for i in before if i not in now],
    )
    _append(journal_path(root, user), line)


def _append(path: Path, line: JournalLine) -> None:
    data = (line.model_dump_json() + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # a regular file takes it in one write; loop for safety
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def reset_snapshot(root: Path, user: str) -> None:
    """Forget what was saved for ``user`` (they start again from an empty memory)."""
    for path in (journal_path(root, user), snapshot_path(root, user)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class SnapshotError(RuntimeError):
    """A snapshot cannot be used: the run cannot know that user's memory."""


def _unreadable(path: Path, user: str, exc: Exception) -> SnapshotError:
    return SnapshotError(
        f"memory snapshot {path} of user {user!r} is unreadable ({exc.__class__.__name__}: "
        f"{str(exc).splitlines()[0]}); restore it, or start the run again in a new --out"
    )


def _legacy(root: Path, user: str) -> MemorySnapshot | None:
    path = snapshot_path(root, user)
    if not path.exists():
        return None
    try:
        snap = MemorySnapshot.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise _unreadable(path, user, exc) from None
    if snap.user != user:
        raise SnapshotError(f"snapshot {path} belongs to {snap.user!r}, not {user!r}")
    return snap


def _read_journal(root: Path, user: str, repair: bool) -> MemorySnapshot | None:
    """Fold the journal; a torn last line (no newline) is ignored, and cut off if ``repair``."""
    path = journal_path(root, user)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    end = raw.rfind(b"\n") + 1
    if end < len(raw) and repair:  # the write of the last line was cut short
        with path.open("r+b") as handle:
            handle.truncate(end)
    records: dict[str, MemoryRecord] = {}
    last: JournalLine | None = None
    for number, text in enumerate(raw[:end].splitlines(), start=1):
        try:
            line = JournalLine.model_validate_json(text)
        except ValueError as exc:
            raise _unreadable(path, user, ValueError(f"line {number}: {exc}")) from None
        if line.user != user:
            raise SnapshotError(f"snapshot {path} belongs to {line.user!r}, not {user!r}")
        if line.full:
            records.clear()
        for memory_id in line.removed:
            records.pop(memory_id, None)
        records.update((r.id, r) for r in line.records)
        last = line
    if last is None:
        return None
    return MemorySnapshot(user=user, episode=last.episode, records=_by_creation(records.values()))


def load_snapshot(root: Path, user: str) -> MemorySnapshot | None:
    """The user's memory after their last memory-changing episode, or None if it never
    changed (read only: a torn last line is left in place)."""
    return _read_journal(root, user, repair=False) or _legacy(root, user)


def restore_user(
    root: Path, memory: PreferenceMemory, user: str, log: EpisodeLog, done: MutableSet[RunKey]
) -> tuple[list[MemoryRecord], RunKey | None]:
    """Rebuild ``user``'s memory in ``memory`` as it was after their last finished episode.

    Returns the records restored and, when the last episode had finished but missed its log
    line, that episode's key (its record is appended to ``log`` and added to ``done``).
    """
    with contextlib.suppress(UnknownUserError):  # drop whatever a half-played episode wrote
        memory.forget(user)
    snap = _read_journal(root, user, repair=True)
    if snap is None:
        snap = _legacy(root, user)
        if snap is not None:  # carry a whole snapshot over as the journal's first line
            _append(
                journal_path(root, user),
                JournalLine(user=user, episode=snap.episode, records=snap.records, full=True),
            )
            snapshot_path(root, user).unlink()
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
