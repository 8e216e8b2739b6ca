"""Chroma may answer a query before its new vector index is on disk (a race of its core, seen
from a server and from a local store written by several threads); pahf asks again instead of
calling the store damaged, for a bounded time. Other errors fail at once."""

from __future__ import annotations

import pytest
from chromadb.errors import InternalError

import pahf.memory.chroma as chroma
from pahf.memory.chroma import read_when_ready

NOT_READY = "Error executing plan: Internal error: Error creating hnsw segment reader: Nothing found on disk"


class Flaky:
    def __init__(self, failures: int, message: str = NOT_READY) -> None:
        self.failures = failures
        self.message = message
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise InternalError(self.message)
        return "hits"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chroma.time, "sleep", lambda _s: None)


def test_an_index_not_ready_yet_is_asked_again() -> None:
    call = Flaky(failures=2)
    assert read_when_ready(call) == "hits"
    assert call.calls == 3


def test_an_index_that_stays_missing_fails_after_a_bounded_wait() -> None:
    call = Flaky(failures=100)
    with pytest.raises(InternalError):
        read_when_ready(call)
    assert call.calls == len(chroma.INDEX_NOT_READY_WAITS) + 1


def test_other_errors_fail_at_once() -> None:
    other = Flaky(failures=1, message="Error executing plan: Internal error: Error finding id")
    with pytest.raises(InternalError):
        read_when_ready(other)
    assert other.calls == 1
