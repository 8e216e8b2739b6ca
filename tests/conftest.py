"""Shared fixtures: stores with a fast lexical embedder or the real offline MiniLM model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("LANGSMITH_TRACING", "false")

from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction, MiniLMEmbeddingFunction

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO_ROOT.parent / "shared" / "pahf-reference-sample"


@pytest.fixture
def hashing_memory() -> Iterator[ChromaPreferenceMemory]:
    """In-memory store with the lexical hashing embedder: fast, for mechanics tests."""
    yield ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())


@pytest.fixture
def minilm_memory() -> Iterator[ChromaPreferenceMemory]:
    """In-memory store with the real offline MiniLM model: for anything semantic."""
    yield ChromaPreferenceMemory.in_memory(MiniLMEmbeddingFunction())


@pytest.fixture
def sample_data() -> Path:
    """The published PAHF sample beside the repository (../shared), never copied into it."""
    if not SAMPLE_DATA.is_dir():
        pytest.fail(f"PAHF reference sample not found at {SAMPLE_DATA}")
    return SAMPLE_DATA
