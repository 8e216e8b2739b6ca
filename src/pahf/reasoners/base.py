"""The reasoner interface: the four decisions of the PAHF loop, free of storage and graph code.

Nodes call a reasoner; a reasoner never touches storage (it returns memory ops the node applies)
and never knows it runs inside LangGraph. Two implementations: the offline deterministic
reference reasoner (default, no LLM) and the LLM reasoner over any LangChain chat model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pahf.decisions import Action, Assessment, Turn
from pahf.memory.schema import MemoryOp, RetrievedMemory
from pahf.request import Request


@runtime_checkable
class Reasoner(Protocol):
    """One method per PAHF decision."""

    def assess(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Assessment:
        """Is this request ambiguous for this user given what memory holds? If so, what to ask."""
        ...

    def choose(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Action:
        """Pick one of ``request.candidates``, grounded in the user's memories and answers."""
        ...

    def learn(
        self, request: Request, turn: Turn, memories: Sequence[RetrievedMemory]
    ) -> list[MemoryOp]:
        """Turn a clarification answer or a correction into memory ops (add / supersede / ...)."""
        ...
