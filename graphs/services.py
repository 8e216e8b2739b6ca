"""Resolve a run's reasoner and memory from its context (the deployed-graph path).

Stores and reasoners are expensive to open (a Chroma client, the embedding model), so they are
cached per memory location and per reasoner choice for the life of the process.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pahf.context import RunContext
from pahf.memory.base import PreferenceMemory
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.nodes.services import Services
from pahf.reasoners.base import Reasoner
from pahf.reasoners.offline import OfflineReasoner

DEFAULT_MEMORY_LOCATION = ".pahf/memory"


def default_memory_location() -> str:
    """``$PAHF_MEMORY`` or ``./.pahf/memory``."""
    return os.environ.get("PAHF_MEMORY") or DEFAULT_MEMORY_LOCATION


class ContextServices:
    """A :data:`~pahf.nodes.services.ServicesProvider`: fixed instances where given, else
    resolved (and cached) from each run's context."""

    def __init__(
        self, reasoner: Reasoner | None = None, memory: PreferenceMemory | None = None
    ) -> None:
        self._reasoner = reasoner
        self._memory = memory
        self._stores: dict[str, PreferenceMemory] = {}
        self._reasoners: dict[tuple[str, str, str | None], Reasoner] = {}
        self._lock = threading.Lock()

    def memory_for(self, ctx: RunContext) -> PreferenceMemory:
        if self._memory is not None:
            return self._memory
        location = ctx.memory_location or default_memory_location()
        if not location.startswith(("http://", "https://")):
            location = str(Path(location).expanduser().resolve())
        with self._lock:
            store = self._stores.get(location)
            if store is None:
                store = ChromaPreferenceMemory(location)
                self._stores[location] = store
            return store

    def reasoner_for(self, ctx: RunContext, memory: PreferenceMemory) -> Reasoner:
        if self._reasoner is not None:
            return self._reasoner
        key = (ctx.reasoner, str(id(memory)), ctx.model)
        with self._lock:
            reasoner = self._reasoners.get(key)
            if reasoner is None:
                if ctx.reasoner == "offline":
                    reasoner = OfflineReasoner(memory.encoder)
                else:
                    from pahf.reasoners.llm import LLMReasoner

                    reasoner = LLMReasoner.from_settings(model=ctx.model)
                self._reasoners[key] = reasoner
            return reasoner

    def __call__(self, ctx: RunContext) -> Services:
        memory = self.memory_for(ctx)
        return Services(reasoner=self.reasoner_for(ctx, memory), memory=memory)
