"""Checkpointer choice: in-memory, SQLite or Postgres, each allowed to restore pahf's types.

A conversation paused at a question lives in the checkpointer until the person answers, so the
saver decides what survives: in-memory (tests, one process), SQLite (one machine, survives a
restart) or Postgres (many workers behind a load balancer share every thread). One URL picks it:
``memory``, ``sqlite:///relative.db`` / ``sqlite:////abs/path.db`` / ``path/to/file.db``, or
``postgresql://user@host:port/db``; ``$PAHF_CHECKPOINTER`` supplies the URL when none is given.

LangGraph's default serializer warns (and will soon refuse) when a checkpoint holds pydantic
types it was not told about; :func:`allow_pahf_types` gives a saver an explicit allowlist of
exactly the types in :data:`pahf.graphs.checkpointers.SERDE_ALLOWLIST`.

Async applications (``await graph.ainvoke(...)`` in an event loop) need a saver whose async
methods do not block: :func:`open_async_checkpointer` opens the same URLs as
``AsyncSqliteSaver`` / ``AsyncPostgresSaver`` (in-memory serves both).
"""

from __future__ import annotations

import copy
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from pahf.context import RunContext
from pahf.decisions import Action, Assessment, Turn
from pahf.errors import InputError
from pahf.human import ClarificationReply, FeedbackReply
from pahf.memory.schema import (
    AppliedMemoryOp,
    HistoryEntry,
    MemoryOp,
    MemoryRecord,
    NewMemory,
    RetrievedMemory,
)
from pahf.request import Candidate, Request
from pahf.state import PahfInput, PahfOutput, PahfState

#: Environment variable naming the checkpointer URL when the caller passes none.
CHECKPOINTER_ENV = "PAHF_CHECKPOINTER"

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_POSTGRES_SCHEMES = ("postgres://", "postgresql://")

#: The pydantic types a checkpoint of this graph may contain (msgpack allowlist for savers).
SERDE_ALLOWLIST: tuple[tuple[str, str], ...] = tuple(
    (cls.__module__, cls.__name__)
    for cls in (
        Candidate,
        Request,
        HistoryEntry,
        NewMemory,
        MemoryRecord,
        RetrievedMemory,
        MemoryOp,
        AppliedMemoryOp,
        Assessment,
        Action,
        Turn,
        FeedbackReply,
        ClarificationReply,
        PahfState,
        PahfInput,
        PahfOutput,
        RunContext,
    )
)


class CheckpointerURLError(InputError):
    """The checkpointer URL is malformed, names an unknown backend, or cannot be opened."""


def allow_pahf_types(saver: BaseCheckpointSaver[Any]) -> BaseCheckpointSaver[Any]:
    """A shallow clone of ``saver`` whose serializer explicitly allows pahf's state types."""
    if not isinstance(saver.serde, JsonPlusSerializer):
        return saver  # a custom serializer: the caller owns its policy
    clone = copy.copy(saver)
    clone.serde = JsonPlusSerializer(allowed_msgpack_modules=SERDE_ALLOWLIST)
    return clone


def memory_checkpointer() -> BaseCheckpointSaver[Any]:
    """In-process checkpoints (tests, evaluation, single-process apps)."""
    return allow_pahf_types(InMemorySaver())


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to put in logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def sqlite_path(url: str) -> str:
    """The database path a SQLite URL names (``:memory:`` allowed), or raise saying why not."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
    elif url.startswith("sqlite:"):
        raise CheckpointerURLError(
            f"SQLite checkpointer URL {url!r} must look like sqlite:///relative.db or "
            "sqlite:////absolute/path.db"
        )
    else:
        path = url
    if not path:
        raise CheckpointerURLError(f"SQLite checkpointer URL {url!r} names no file")
    return path


def _open_sqlite(url: str) -> tuple[BaseCheckpointSaver[Any], Callable[[], None]]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = _sqlite_file(url)
    try:
        conn = sqlite3.connect(path, check_same_thread=False)
        saver = SqliteSaver(conn)
        saver.setup()
    except sqlite3.Error as exc:
        raise CheckpointerURLError(f"cannot open SQLite checkpointer {path}: {exc}") from exc
    return allow_pahf_types(saver), conn.close


def _postgres_driver() -> tuple[Any, dict[str, Any]]:
    """psycopg, and the connection settings PostgresSaver documents: autocommit for its DDL and
    upserts, no server-side prepared statements (safe behind pgbouncer), rows as dicts."""
    try:
        import langgraph.checkpoint.postgres  # noqa: F401  (the savers' package)
        import psycopg
        from psycopg.rows import dict_row
    except ImportError as exc:
        raise CheckpointerURLError(
            "a Postgres checkpointer needs: pip install 'pahf[postgres]'"
        ) from exc
    return psycopg, {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


def _open_postgres(url: str) -> tuple[BaseCheckpointSaver[Any], Callable[[], None]]:
    from langgraph.checkpoint.postgres import PostgresSaver

    psycopg, settings = _postgres_driver()
    try:
        conn = psycopg.connect(url, **settings)
    except psycopg.Error as exc:
        raise CheckpointerURLError(
            f"cannot connect to the Postgres checkpointer at {redact_url(url)}: {exc}"
        ) from exc
    try:
        saver = PostgresSaver(conn)
        saver.setup()  # creates or migrates its tables; idempotent
    except Exception:
        conn.close()
        raise
    return allow_pahf_types(saver), conn.close


def _backend(url: str | None) -> tuple[str, str]:
    """(``memory`` | ``sqlite`` | ``postgres``, the URL) for ``url`` or ``$PAHF_CHECKPOINTER``."""
    if url is None:
        url = os.environ.get(CHECKPOINTER_ENV) or "memory"
    url = url.strip()
    if not url or url == "memory":
        return "memory", "memory"
    if url.startswith(_POSTGRES_SCHEMES):
        return "postgres", url
    if url.startswith("sqlite:") or url.endswith(_SQLITE_SUFFIXES):
        return "sqlite", url
    raise CheckpointerURLError(
        f"unknown checkpointer {redact_url(url)!r}: use 'memory', 'sqlite:///file.db' "
        "or 'postgresql://user@host:port/db'"
    )


def _sqlite_file(url: str) -> str:
    """The SQLite path of ``url``, its directory made; ``:memory:`` as is."""
    path = sqlite_path(url)
    if path == ":memory:":
        return path
    file = Path(path).expanduser()
    if file.is_dir():
        raise CheckpointerURLError(f"SQLite checkpointer path {file} is a directory")
    file.parent.mkdir(parents=True, exist_ok=True)
    return str(file)


def _open(url: str | None) -> tuple[BaseCheckpointSaver[Any], Callable[[], None]]:
    kind, url = _backend(url)
    if kind == "postgres":
        return _open_postgres(url)
    if kind == "sqlite":
        return _open_sqlite(url)
    return memory_checkpointer(), lambda: None


async def _open_async_sqlite(
    url: str,
) -> tuple[BaseCheckpointSaver[Any], Callable[[], Awaitable[None]]]:
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = _sqlite_file(url)
    try:
        conn = await aiosqlite.connect(path)
    except sqlite3.Error as exc:
        raise CheckpointerURLError(f"cannot open SQLite checkpointer {path}: {exc}") from exc
    try:
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
    except sqlite3.Error as exc:
        await conn.close()
        raise CheckpointerURLError(f"cannot open SQLite checkpointer {path}: {exc}") from exc
    return allow_pahf_types(saver), conn.close


async def _open_async_postgres(
    url: str,
) -> tuple[BaseCheckpointSaver[Any], Callable[[], Awaitable[None]]]:
    psycopg, settings = _postgres_driver()
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    try:
        conn = await psycopg.AsyncConnection.connect(url, **settings)
    except psycopg.Error as exc:
        raise CheckpointerURLError(
            f"cannot connect to the Postgres checkpointer at {redact_url(url)}: {exc}"
        ) from exc
    try:
        saver = AsyncPostgresSaver(conn)
        await saver.setup()
    except Exception:
        await conn.close()
        raise
    return allow_pahf_types(saver), conn.close


def sqlite_checkpointer(path: str | Path) -> BaseCheckpointSaver[Any]:
    """Checkpoints in a SQLite file: an interrupted conversation survives a restart."""
    saver, _close = _open_sqlite(str(path))
    return saver


def checkpointer_from_url(url: str | None = None) -> BaseCheckpointSaver[Any]:
    """The saver a URL names (``memory``, SQLite or Postgres; None reads ``$PAHF_CHECKPOINTER``).

    The connection stays open for the life of the process, which is what a long-running app
    wants; use :func:`open_checkpointer` to close it when a block ends.
    """
    saver, _close = _open(url)
    return saver


@contextmanager
def open_checkpointer(url: str | None = None) -> Iterator[BaseCheckpointSaver[Any]]:
    """Like :func:`checkpointer_from_url`, closing the database connection on exit."""
    saver, close = _open(url)
    try:
        yield saver
    finally:
        close()


@asynccontextmanager
async def open_async_checkpointer(
    url: str | None = None,
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The saver a URL names, for ``ainvoke``/``astream`` in an event loop; closed on exit.

    Same URLs and errors as :func:`open_checkpointer`; SQLite and Postgres use their async
    drivers (aiosqlite, psycopg's ``AsyncConnection``), so a checkpoint write does not block
    the loop. A graph compiled with it can only be run with the async methods.
    """
    kind, url = _backend(url)
    if kind == "memory":
        yield memory_checkpointer()
        return
    opener = _open_async_postgres if kind == "postgres" else _open_async_sqlite
    saver, close = await opener(url)
    try:
        yield saver
    finally:
        await close()
