"""Checkpointer choice, and conversations that outlive the process that started them.

The restart tests run every step of a conversation in a new Python process
(``episode_worker.py``): start until the question, answer until the feedback prompt, correct.
Only the checkpointer (SQLite file or a real Postgres server) and the memory store connect them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from pahf.context import RunContext
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import (
    CHECKPOINTER_ENV,
    CheckpointerURLError,
    checkpointer_from_url,
    open_checkpointer,
    redact_url,
    sqlite_path,
)
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.reasoners.offline import OfflineReasoner
from tests.unit.async_conversation import ANSWER, CORRECTION, REQUEST, converse
from tests.unit.async_conversation import check_conversation as async_check_conversation

from .conftest import ChromaServer, PostgresServer, free_port

WORKER = Path(__file__).with_name("episode_worker.py")



def run_worker(checkpointer: str, memory: str, thread: str, step: str, value: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(WORKER), "--checkpointer", checkpointer, "--memory", memory,
         "--thread", thread, step, value],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"worker {step} failed:\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def conversation_across_processes(checkpointer: str, memory: str, thread: str) -> list[dict[str, Any]]:
    """Three steps, three processes; returns each step's report."""
    first = run_worker(checkpointer, memory, thread, "start", json.dumps(REQUEST))
    second = run_worker(checkpointer, memory, thread, "resume", ANSWER)
    third = run_worker(checkpointer, memory, thread, "resume", CORRECTION)
    return [first, second, third]


def check_conversation(reports: list[dict[str, Any]]) -> None:
    first, second, third = reports
    assert len({r["pid"] for r in reports}) == 3  # really three processes
    assert first["interrupt"]["type"] == "question"
    assert first["interrupt"]["request_id"] == "drink-1"
    # The answer given to process 2 reached the question process 1 asked.
    assert second["interrupt"]["type"] == "feedback"
    assert second["action"]["candidate_id"] == "water"
    assert [op["kind"] for op in second["memory_ops"]] == ["add"]
    assert second["memory_ops"][0]["text"] == ANSWER
    # Process 3 finished the episode: the correction superseded the answer.
    assert third["interrupt"] is None
    kinds = [op["kind"] for op in third["memory_ops"]]
    assert kinds == ["add", "supersede"]
    assert third["memory_ops"][1]["target_id"] == second["memory_ops"][0]["memory_id"]


def check_store(store: ChromaPreferenceMemory, reports: list[dict[str, Any]]) -> None:
    added = reports[1]["memory_ops"][0]["memory_id"]
    newest = reports[2]["memory_ops"][1]["memory_id"]
    records = {r.id: r for r in store.get_all("dana")}
    assert set(records) == {added, newest}  # no duplicate from any re-run
    assert records[added].status == "superseded" and records[added].superseded_by == newest
    assert records[newest].text == CORRECTION
    assert [r.id for r in store.history("dana", newest)] == [added, newest]


# --------------------------------------------------------------------------- URL handling


def test_url_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    monkeypatch.delenv(CHECKPOINTER_ENV, raising=False)
    assert isinstance(checkpointer_from_url("memory"), InMemorySaver)
    assert isinstance(checkpointer_from_url(None), InMemorySaver)
    db = tmp_path / "deep" / "ck.db"
    assert isinstance(checkpointer_from_url(f"sqlite:///{db}"), SqliteSaver)
    assert db.exists()  # parent directories created
    assert isinstance(checkpointer_from_url(str(tmp_path / "plain.sqlite")), SqliteSaver)
    monkeypatch.setenv(CHECKPOINTER_ENV, f"sqlite:///{tmp_path / 'from-env.db'}")
    assert isinstance(checkpointer_from_url(None), SqliteSaver)
    assert (tmp_path / "from-env.db").exists()


def test_sqlite_url_forms() -> None:
    assert sqlite_path("sqlite:///rel/ck.db") == "rel/ck.db"
    assert sqlite_path("sqlite:////abs/ck.db") == "/abs/ck.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    with pytest.raises(CheckpointerURLError, match=r"sqlite:///relative\.db"):
        sqlite_path("sqlite://host/ck.db")
    with pytest.raises(CheckpointerURLError, match="names no file"):
        sqlite_path("sqlite:///")


def test_bad_urls_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(CheckpointerURLError, match="unknown checkpointer 'redis://x'"):
        checkpointer_from_url("redis://x")
    with pytest.raises(CheckpointerURLError, match="is a directory"):
        checkpointer_from_url(f"sqlite:///{tmp_path}")
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(CheckpointerURLError, match="is a directory"):
        checkpointer_from_url(str(tmp_path / "dir.db"))


def test_unreachable_postgres_error_hides_the_password() -> None:
    url = f"postgresql://app:s3cret@127.0.0.1:{free_port()}/db?connect_timeout=3"
    with pytest.raises(CheckpointerURLError) as err:
        checkpointer_from_url(url)
    assert "cannot connect to the Postgres checkpointer" in str(err.value)
    assert "s3cret" not in str(err.value) and "app:***@" in str(err.value)


def test_redact_url() -> None:
    assert redact_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_open_checkpointer_closes_and_reopens_sqlite(tmp_path: Path) -> None:
    """Within one process: close the saver mid-conversation, reopen the file, resume."""
    url = f"sqlite:///{tmp_path / 'ck.db'}"
    store = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    config: Any = {"configurable": {"thread_id": "t"}}
    with open_checkpointer(url) as saver:
        graph = build_graph(OfflineReasoner(store.encoder), store, saver)
        out = graph.invoke({"request": REQUEST}, config, context=RunContext())
        assert out["__interrupt__"][0].value["type"] == "question"
    with pytest.raises(Exception, match="closed"):
        graph.get_state(config)  # the connection really is closed
    with open_checkpointer(url) as saver:
        graph = build_graph(OfflineReasoner(store.encoder), store, saver)
        assert graph.get_state(config).interrupts[0].value["type"] == "question"
        out = graph.invoke(Command(resume=ANSWER), config, context=RunContext())
        assert out["__interrupt__"][0].value["type"] == "feedback"


# --------------------------------------------------------------------------- restarts


@pytest.mark.slow
@pytest.mark.integration
def test_sqlite_conversation_survives_process_restarts(tmp_path: Path) -> None:
    checkpointer = f"sqlite:///{tmp_path / 'checkpoints.db'}"
    memory = str(tmp_path / "memory")
    reports = conversation_across_processes(checkpointer, memory, "dana-sqlite")
    check_conversation(reports)
    check_store(ChromaPreferenceMemory(memory, embedding_function=HashingEmbeddingFunction()), reports)


@pytest.mark.slow
@pytest.mark.integration
def test_postgres_conversation_survives_process_restarts(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    memory = str(tmp_path / "memory")
    reports = conversation_across_processes(postgres_server.url, memory, "dana-postgres")
    check_conversation(reports)
    check_store(ChromaPreferenceMemory(memory, embedding_function=HashingEmbeddingFunction()), reports)
    # The checkpoints really are in Postgres: a new saver in this process sees the thread.
    with open_checkpointer(postgres_server.url) as saver:
        stored = saver.get_tuple({"configurable": {"thread_id": "dana-postgres"}})
        assert stored is not None


@pytest.mark.slow
@pytest.mark.integration
def test_async_app_converses_through_postgres(postgres_server: PostgresServer) -> None:
    """``ainvoke`` on AsyncPostgresSaver (psycopg's async driver), a new connection per turn;
    the sync saver then reads the same thread (one table layout for both)."""
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    outputs = asyncio.run(converse(postgres_server.url, memory, "dana-async-postgres"))
    async_check_conversation(outputs)
    with open_checkpointer(postgres_server.url) as saver:
        stored = saver.get_tuple({"configurable": {"thread_id": "dana-async-postgres"}})
        assert stored is not None and stored.checkpoint["channel_values"]["action"] is not None


@pytest.mark.slow
@pytest.mark.integration
def test_scale_out_workers_share_postgres_and_chroma_server(
    postgres_server: PostgresServer, chroma_server: ChromaServer
) -> None:
    """The scale-out set-up: stateless workers, conversations in Postgres, memory in Chroma.

    Each step runs in a different worker process; none of them shares a disk with another.
    """
    reports = conversation_across_processes(postgres_server.url, chroma_server.url, "dana-scale")
    check_conversation(reports)
    check_store(
        ChromaPreferenceMemory(chroma_server.url, embedding_function=HashingEmbeddingFunction()),
        reports,
    )
