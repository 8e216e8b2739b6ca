"""The two human turns: what an interrupt shows the person and what a resume must carry."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pahf.decisions import Action
from pahf.request import StrictModel


class QuestionPrompt(StrictModel):
    """Payload of the ask-user interrupt (what Studio or a chat UI shows the person)."""

    type: Literal["question"] = "question"
    user_id: str
    request_id: str
    question: str
    candidates: list[str]


class FeedbackPrompt(StrictModel):
    """Payload of the post-action feedback interrupt."""

    type: Literal["feedback"] = "feedback"
    user_id: str
    request_id: str
    action: Action
    hint: str = "Resume with null/'' to accept, or with the correction in your own words."


class ClarificationReply(StrictModel):
    """Resume value for a question: the answer text (a bare string is accepted too)."""

    answer: str = Field(min_length=1, max_length=20_000)


class FeedbackReply(StrictModel):
    """Resume value for feedback: ``accepted`` or a ``correction`` in the user's words."""

    accepted: bool = False
    correction: str | None = Field(default=None, max_length=20_000)

    @model_validator(mode="after")
    def _one_of(self) -> FeedbackReply:
        if self.correction is not None and not self.correction.strip():
            self.correction = None
        if self.correction is None:
            self.accepted = True
        return self


def parse_clarification(value: Any) -> ClarificationReply:
    """Accept ``"text"`` or ``{"answer": "text"}``; raise ``ValueError`` naming the problem."""
    if isinstance(value, str):
        value = {"answer": value}
    if not isinstance(value, dict):
        raise ValueError(
            "ask_user: resume value must be the answer text or {'answer': str}, "
            f"got {type(value).__name__}"
        )
    try:
        return ClarificationReply.model_validate(value)
    except Exception as exc:  # pydantic's message names the field
        raise ValueError(f"ask_user: malformed resume value: {exc}") from exc


def parse_feedback(value: Any) -> FeedbackReply:
    """Accept ``None``/``""``/``True`` (accepted), a correction string, or a dict."""
    if value is None or value is True or value == "":
        return FeedbackReply(accepted=True)
    if isinstance(value, str):
        value = {"correction": value}
    if not isinstance(value, dict):
        raise ValueError(
            "ingest_feedback: resume value must be null (accept), a correction string or "
            f"{{'accepted': bool, 'correction': str}}, got {type(value).__name__}"
        )
    try:
        return FeedbackReply.model_validate(value)
    except Exception as exc:
        raise ValueError(f"ingest_feedback: malformed resume value: {exc}") from exc
