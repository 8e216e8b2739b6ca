"""Per-user preference memory: the interface and its Chroma implementation."""

from pahf.memory.base import (
    Encoder,
    PreferenceMemory,
    UnknownMemoryError,
    UnknownUserError,
    apply_ops,
)
from pahf.memory.chroma import ChromaPreferenceMemory, StoreLocationError, client_for
from pahf.memory.embeddings import (
    HashingEmbeddingFunction,
    LangChainEmbeddingFunction,
    MiniLMEmbeddingFunction,
)

__all__ = [
    "ChromaPreferenceMemory",
    "Encoder",
    "HashingEmbeddingFunction",
    "LangChainEmbeddingFunction",
    "MiniLMEmbeddingFunction",
    "PreferenceMemory",
    "StoreLocationError",
    "UnknownMemoryError",
    "UnknownUserError",
    "apply_ops",
    "client_for",
]
