"""pahf: agents that learn each user's preferences online from human feedback (PAHF).

The PAHF loop (pre-action clarification, memory-grounded action, post-action feedback) as a
LangGraph workflow with per-user Chroma memory. What an application needs is importable from
here::

    from pahf import ChromaPreferenceMemory, OfflineReasoner, RunContext, build_graph

The names load on first use, so ``import pahf`` stays light (no LangGraph, Chroma or model
imported until a name that needs it is touched).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # the graph
    "build_graph": "pahf.graphs.pahf_graph",
    "build_state_graph": "pahf.graphs.pahf_graph",
    "default_memory_location": "pahf.graphs.services",
    "memory_checkpointer": "pahf.graphs.checkpointers",
    "sqlite_checkpointer": "pahf.graphs.checkpointers",
    "checkpointer_from_url": "pahf.graphs.checkpointers",
    "open_checkpointer": "pahf.graphs.checkpointers",
    # what flows through it
    "RunContext": "pahf.context",
    "Request": "pahf.request",
    "Candidate": "pahf.request",
    "Assessment": "pahf.decisions",
    "Action": "pahf.decisions",
    "PahfState": "pahf.state",
    # memory
    "PreferenceMemory": "pahf.memory.base",
    "ChromaPreferenceMemory": "pahf.memory.chroma",
    "MemoryRecord": "pahf.memory.schema",
    "NewMemory": "pahf.memory.schema",
    "MemoryOp": "pahf.memory.schema",
    "RetrievedMemory": "pahf.memory.schema",
    "LangChainEmbeddingFunction": "pahf.memory.embeddings",
    "MiniLMEmbeddingFunction": "pahf.memory.embeddings",
    "HashingEmbeddingFunction": "pahf.memory.embeddings",
    # reasoners
    "Reasoner": "pahf.reasoners.base",
    "OfflineReasoner": "pahf.reasoners.offline",
    "OfflineReasonerConfig": "pahf.reasoners.offline",
    "LLMReasoner": "pahf.reasoners.llm",
    # errors
    "InputError": "pahf.errors",
}

__all__ = [
    "Action",
    "Assessment",
    "Candidate",
    "ChromaPreferenceMemory",
    "HashingEmbeddingFunction",
    "InputError",
    "LLMReasoner",
    "LangChainEmbeddingFunction",
    "MemoryOp",
    "MemoryRecord",
    "MiniLMEmbeddingFunction",
    "NewMemory",
    "OfflineReasoner",
    "OfflineReasonerConfig",
    "PahfState",
    "PreferenceMemory",
    "Reasoner",
    "Request",
    "RetrievedMemory",
    "RunContext",
    "__version__",
    "build_graph",
    "build_state_graph",
    "checkpointer_from_url",
    "default_memory_location",
    "memory_checkpointer",
    "open_checkpointer",
    "sqlite_checkpointer",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports lazily
    from pahf.context import RunContext
    from pahf.decisions import Action, Assessment
    from pahf.errors import InputError
    from pahf.graphs.checkpointers import (
        checkpointer_from_url,
        memory_checkpointer,
        open_checkpointer,
        sqlite_checkpointer,
    )
    from pahf.graphs.pahf_graph import build_graph, build_state_graph
    from pahf.graphs.services import default_memory_location
    from pahf.memory.base import PreferenceMemory
    from pahf.memory.chroma import ChromaPreferenceMemory
    from pahf.memory.embeddings import (
        HashingEmbeddingFunction,
        LangChainEmbeddingFunction,
        MiniLMEmbeddingFunction,
    )
    from pahf.memory.schema import MemoryOp, MemoryRecord, NewMemory, RetrievedMemory
    from pahf.reasoners.base import Reasoner
    from pahf.reasoners.llm import LLMReasoner
    from pahf.reasoners.offline import OfflineReasoner, OfflineReasonerConfig
    from pahf.request import Candidate, Request
    from pahf.state import PahfState


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pahf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
