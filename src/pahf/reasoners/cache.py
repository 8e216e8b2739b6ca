"""A disk cache of LLM responses, keyed by the exact request, so a re-run does not pay twice.

:class:`SQLiteResponseCache` is a LangChain ``BaseCache``: give it to a chat model
(``ChatOpenAI(cache=SQLiteResponseCache("llm-cache.sqlite"))``, or set ``PAHF_LLM_CACHE`` for
:func:`pahf.reasoners.llm.chat_model_from_settings`). LangChain keys each lookup by the
serialized messages and the model's settings (model name, temperature, base URL, the
structured-output schema), so any change to a prompt, schema or model misses the cache.

A cached response is replayed as it was, including its reported token usage; it is marked with
``response_metadata[CACHE_HIT_KEY]`` so :class:`pahf.reasoners.accounting.UsageTracker` counts
it as a cached call and bills no tokens. Use it with temperature 0: with sampling on, a cache
freezes one sample.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import AIMessage, message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation

#: ``response_metadata`` flag set on messages replayed from the cache.
CACHE_HIT_KEY = "pahf_cache_hit"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    generations TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
)
"""


def _key(prompt: str, llm_string: str) -> str:
    return hashlib.sha256(f"{llm_string}\x1e{prompt}".encode()).hexdigest()


def _encode(generations: Sequence[Generation]) -> str | None:
    """JSON of chat generations; None when one is not a chat message (not cached)."""
    items: list[dict[str, Any]] = []
    for gen in generations:
        if not isinstance(gen, ChatGeneration):
            return None
        items.append(
            {"message": message_to_dict(gen.message), "info": gen.generation_info or None}
        )
    return json.dumps(items, ensure_ascii=False)


def _decode(blob: str) -> list[Generation]:
    out: list[Generation] = []
    for item in json.loads(blob):
        (message,) = messages_from_dict([item["message"]])
        if isinstance(message, AIMessage):
            message = message.model_copy(
                update={"response_metadata": {**message.response_metadata, CACHE_HIT_KEY: True}}
            )
        out.append(ChatGeneration(message=message, generation_info=item.get("info")))
    return out


class SQLiteResponseCache(BaseCache):
    """LLM responses in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False)
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT generations FROM responses WHERE key = ?", (_key(prompt, llm_string),)
            ).fetchone()
        if row is None:
            return None
        try:
            return _decode(row[0])
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable entry is a miss; the fresh response overwrites it

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        blob = _encode(return_val)
        if blob is None:
            return
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, generations) VALUES (?, ?)",
                (_key(prompt, llm_string), blob),
            )

    def clear(self, **kwargs: Any) -> None:
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM responses")

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
