"""What a reasoner decides: whether to ask, which candidate to act on, which turn it learns from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pahf.request import StrictModel


class Action(StrictModel):
    """The agent's choice: one of the request's candidates, with why."""

    candidate_id: str
    candidate_text: str
    rationale: str = ""
    scores: dict[str, float] = Field(default_factory=dict)
    memory_ids: list[str] = Field(
        default_factory=list, description="the stored memories that led to this choice"
    )


class Assessment(StrictModel):
    """The ambiguity decision: is this request ambiguous for this user, and what to ask.

    A reasoner that settles a clear request in the same step proposes the action here, so it
    reaches ``act`` through the (checkpointed) graph state, not through the reasoner."""

    ambiguous: bool
    reason: str = ""
    question: str = ""
    confidence: float = 0.0
    proposed: Action | None = None


class Turn(StrictModel):
    """A human turn the agent learns from: a clarification answer or a post-action correction."""

    kind: Literal["clarification", "correction"]
    text: str
    question: str = ""
    action: Action | None = None
