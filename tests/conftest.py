"""Shared fixtures: stores with a fast lexical embedder or the real offline MiniLM model."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("LANGSMITH_TRACING", "false")

from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction, MiniLMEmbeddingFunction
from tests.unit.pahf_mini import pahf_mini

REPO_ROOT = Path(__file__).resolve().parents[1]


def _untracked_files() -> set[str] | None:
    """Files in the checkout git neither tracks nor ignores; None outside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "ls-files", "--others", "--exclude-standard", "-z"],
            capture_output=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {name for name in listed.stdout.decode().split("\0") if name}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_UNTRACKED_AT_START] = _untracked_files()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test left files in the checkout: tests write under tmp_path only."""
    before = session.config.stash.get(_UNTRACKED_AT_START, None)
    after = _untracked_files()
    if before is None or after is None:
        return
    if left := sorted(after - before):
        print(f"\ntests left files in the checkout (write under tmp_path instead): {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_UNTRACKED_AT_START = pytest.StashKey[set[str] | None]()


@pytest.fixture
def hashing_memory() -> Iterator[ChromaPreferenceMemory]:
    """In-memory store with the lexical hashing embedder: fast, for mechanics tests."""
    yield ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())


@pytest.fixture
def minilm_memory() -> Iterator[ChromaPreferenceMemory]:
    """In-memory store with the real offline MiniLM model: for anything semantic."""
    yield ChromaPreferenceMemory.in_memory(MiniLMEmbeddingFunction())


@pytest.fixture
def mini_data() -> Path:
    """pahf-mini (``tests/fixtures/mini``): a tiny invented benchmark, laid out as the published
    PAHF data is read."""
    return pahf_mini()
