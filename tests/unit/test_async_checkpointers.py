"""Async hosts: ``ainvoke`` through interrupts on savers opened by URL with async drivers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from pahf.graphs.checkpointers import CheckpointerURLError, open_async_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from tests.unit.async_conversation import check_conversation, converse


def test_an_async_app_pauses_and_resumes_a_conversation_in_sqlite(tmp_path: Path) -> None:
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    url = f"sqlite:///{tmp_path}/state/threads.db"  # the directory is made
    outputs = asyncio.run(converse(url, memory, "dana-async"))
    check_conversation(outputs)
    assert (tmp_path / "state" / "threads.db").is_file()


def test_async_savers_by_url(tmp_path: Path) -> None:
    async def kinds() -> list[type]:
        found = []
        for url in ("memory", f"{tmp_path}/bare-path.db", "sqlite:///:memory:"):
            async with open_async_checkpointer(url) as saver:
                found.append(type(saver))
        return found

    assert asyncio.run(kinds()) == [InMemorySaver, AsyncSqliteSaver, AsyncSqliteSaver]
    assert (tmp_path / "bare-path.db").is_file()  # a bare path ending in .db is a SQLite file


def test_async_sqlite_connection_is_closed_on_exit(tmp_path: Path) -> None:
    async def use_after_exit() -> None:
        async with open_async_checkpointer(f"{tmp_path}/t.db") as saver:
            assert isinstance(saver, AsyncSqliteSaver)
            await saver.conn.execute("SELECT 1")  # open inside the block
        await saver.conn.execute("SELECT 1")

    with pytest.raises(ValueError, match="no active connection"):
        asyncio.run(use_after_exit())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost", "unknown checkpointer"),
        ("sqlite:relative.db", "must look like sqlite:///"),
        ("DIR.db", "is a directory"),
    ],
)
def test_bad_async_urls_are_refused_clearly(tmp_path: Path, url: str, message: str) -> None:
    (tmp_path / "DIR.db").mkdir()
    url = url.replace("DIR.db", str(tmp_path / "DIR.db"))

    async def open_it() -> None:
        async with open_async_checkpointer(url):
            pass

    with pytest.raises(CheckpointerURLError, match=message):
        asyncio.run(open_it())
