"""One JSON line per played episode: the evaluation's source of truth.

Every metric, table and plot is computed from these lines alone, which is what makes a run
resumable: after a crash the log holds exactly the episodes that finished, the harness skips
them, and the final summary is computed from the same lines an uninterrupted run would write.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pahf.decisions import Action
from pahf.errors import InputError
from pahf.memory.schema import AppliedMemoryOp
from pahf.request import Request

try:  # POSIX: lines from several worker processes must not interleave
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writer process (see appends_can_be_locked)
    fcntl = None  # type: ignore[assignment]


def appends_can_be_locked() -> bool:
    """Whether several processes can append to one episode log here without interleaving
    (POSIX ``flock``). Where not (Windows), the harness plays in one process instead."""
    return fcntl is not None

#: (domain, method, phase, iteration, episode_id): what identifies one played episode.
RunKey = tuple[str, str, int, int, str]


class EpisodeRecord(BaseModel):
    """What happened in one episode run: inputs, the human turns, the action, the score, cost.

    ``correct_ids`` is the ground truth the harness scored against; it is written to the log for
    auditing and never reaches the graph. ``feedback`` is the correction text (None when the
    action was accepted or feedback was off); ``memory_active``/``memory_total`` are the user's
    memory sizes right after the episode; ``error`` is set when the agent's run failed.
    """

    model_config = ConfigDict(extra="forbid")

    domain: str
    method: str
    phase: int = Field(ge=1, le=4)
    iteration: int = Field(ge=1)
    episode_id: str
    user: str
    index: int = Field(ge=0)
    seq: int = Field(ge=0, description="position in this user's replay order (phases x iterations)")
    request_id: str
    request: Request
    question: str | None = None
    answer: str | None = None
    action: Action | None = None
    correct: bool
    correct_ids: list[str]
    feedback_requested: bool = False
    feedback: str | None = None
    memories_retrieved: list[str] = Field(default_factory=list)
    memory_ops: list[AppliedMemoryOp] = Field(default_factory=list)
    memory_active: int = 0
    memory_total: int = 0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tokens: int = 0
    seconds: float = 0.0
    error: str | None = Field(
        default=None,
        description="why the agent's run failed (an LLM decision unusable after its retries); "
        "the action is the one shown to the user before the failure, if any, else none (wrong)",
    )
    error_replies: list[str] = Field(
        default_factory=list,
        description="the model's raw reply of each failed attempt of the failed decision",
    )

    @property
    def asked(self) -> bool:
        return self.question is not None

    @property
    def corrected(self) -> bool:
        return self.feedback is not None

    def key(self) -> RunKey:
        return run_key(self.domain, self.method, self.phase, self.iteration, self.episode_id)


def run_key(domain: str, method: str, phase: int, iteration: int, episode_id: str) -> RunKey:
    return (domain, method, phase, iteration, episode_id)


def record_line(record: EpisodeRecord) -> str:
    """The record as one JSON line (keys sorted, so equal records give equal lines)."""
    data: dict[str, Any] = record.model_dump(mode="json")
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


class EpisodeLogError(InputError):
    """The episode log is corrupt somewhere other than a torn last line."""


class EpisodeLog:
    """Append-only JSONL of :class:`EpisodeRecord`, safe to share between worker threads and
    processes (each line is one write under a file lock).

    A crash can leave a torn last line (a partial write); :meth:`load` cuts it off so the episode
    counts as not done and is replayed. Any other unreadable line is an error naming the line:
    silently dropping finished work would change the results.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._close_fd: weakref.finalize[Any, Any] | None = None

    def load(self) -> dict[RunKey, EpisodeRecord]:
        """Every finished episode in the log, by run key (repairs a torn last line)."""
        if not self.path.exists():
            return {}
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        records: dict[RunKey, EpisodeRecord] = {}
        good_bytes = 0
        for number, line in enumerate(lines, start=1):
            is_last = number == len(lines)
            if not line.strip():
                good_bytes += len(line) + (0 if is_last else 1)
                continue
            try:
                record = EpisodeRecord.model_validate_json(line)
            except ValidationError as exc:
                # The final line, unterminated or followed only by blank space, is a torn write.
                rest = b"\n".join(lines[number:])
                if not rest.strip():
                    self._truncate(good_bytes)
                    break
                raise EpisodeLogError(
                    f"{self.path}: line {number} is not a valid episode record "
                    f"({_first_error(exc)}); fix or remove the line"
                ) from exc
            records[record.key()] = record
            good_bytes += len(line) + (0 if is_last else 1)
        return records

    def follow(self) -> LogFollower:
        """A reader of the lines appended from now on (see :class:`LogFollower`)."""
        return LogFollower(self.path, self.path.stat().st_size if self.path.exists() else 0)

    def _truncate(self, size: int) -> None:
        with self._lock, self.path.open("r+b") as handle:
            handle.truncate(size)

    def append(self, record: EpisodeRecord) -> None:
        data = (record_line(record) + "\n").encode("utf-8")
        with self._lock:
            fd = self._open()
            with _locked(fd):
                view = memoryview(data)
                while view:  # a regular file takes it in one write; loop for safety
                    view = view[os.write(fd, view) :]

    def _open(self) -> int:
        """The log open for appending, kept open between appends: opening, creating the
        directory and closing for every line was ~3% of a run's CPU. A log deleted meanwhile
        (no link left) is created again, as opening it anew each time would."""
        if self._fd is not None and os.fstat(self._fd).st_nlink > 0:
            return self._fd
        self._close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fd, self._close_fd = fd, weakref.finalize(self, os.close, fd)
        return fd

    def _close(self) -> None:
        if self._close_fd is not None:
            self._close_fd()
        self._fd = self._close_fd = None

    def close(self) -> None:
        """Close the file kept open for appending (a later append opens it again)."""
        with self._lock:
            self._close()


def _first_error(exc: ValidationError) -> str:
    """What is wrong with a log line, in pydantic's first message."""
    errors = exc.errors()
    return str(errors[0]["msg"]) if errors else str(exc)


class LogFollower:
    """Reads the records appended to an episode log after a point, while they are appended.

    The parent of worker processes reads the new lines each time it wakes, so that at the end
    of a run only the last few are left to read: reading the whole log back after the workers
    had finished was ~3 s of serial time on the dev half of the published data. Only whole
    lines are read (a line still being written is read next time); a later line for the same
    run key replaces an earlier one, as in :meth:`EpisodeLog.load`.
    """

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self.records: dict[RunKey, EpisodeRecord] = {}

    def read_new(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        end = chunk.rfind(b"\n") + 1
        for line in chunk[:end].split(b"\n"):
            if line.strip():
                try:
                    record = EpisodeRecord.model_validate_json(line)
                except ValidationError as exc:
                    raise EpisodeLogError(
                        f"{self.path}: a line appended during the run is not a valid episode "
                        f"record ({_first_error(exc)})"
                    ) from exc
                self.records[record.key()] = record
        self.offset += end


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    """Hold an exclusive lock on ``fd`` (other processes appending wait for it)."""
    if not appends_can_be_locked():  # one writer process then (run_evaluation sees to it)
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def sorted_records(records: Iterable[EpisodeRecord]) -> list[EpisodeRecord]:
    """Records in a canonical order (independent of which worker finished first)."""
    return sorted(records, key=lambda r: (r.domain, r.method, r.user, r.seq, r.episode_id))
