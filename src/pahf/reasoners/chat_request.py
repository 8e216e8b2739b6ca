"""A chat message read as a request by a chat model: task, situation and options from free text.

Kept apart from the reasoner's four PAHF decisions: it runs once per chat message, before any
decision, and only when the run uses the LLM reasoner. When the message names no options the
model proposes a few (as the reference's embodied agent does for an open request). Its call is
tagged ``nostream`` and never streams: what it returns is data, not a reply to show.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from pahf.chat_request import ChatRequestError, candidates_from
from pahf.request import Request

READ_REQUEST_PROMPT = (
    "You turn a person's chat message into a multiple-choice request for a personal assistant "
    "that learns the person's preferences. Return: task (what they ask for, in their words), "
    "situation (when, where or for what the preference would apply; empty if the message says "
    "nothing about it) and options (the alternatives to choose from). Use the options the "
    "message lists, verbatim; if it lists none, propose 2 to 5 short, distinct, realistic "
    "options for the task. If the message is not a request at all, return an empty task."
)


class RequestDraft(BaseModel):
    """What the model reads from the message."""

    task: str = Field(description="what the person asks for; empty if not a request")
    situation: str = Field(default="", description="when/where/for what; may be empty")
    options: list[str] = Field(default_factory=list, description="the alternatives")


def read_request_with_llm(
    chat_model: BaseChatModel, text: str, user_id: str | None = None
) -> Request:
    """Ask ``chat_model`` for the request in ``text``; raise :class:`ChatRequestError` when the
    message is not a request or the reply is unusable."""
    if chat_model.disable_streaming is not True:  # a structured reply is data: never stream it
        chat_model.disable_streaming = True
    runnable = chat_model.with_structured_output(RequestDraft).with_config(tags=["nostream"])
    try:
        out: Any = runnable.invoke(
            [SystemMessage(READ_REQUEST_PROMPT), HumanMessage(text)],
        )
        draft = RequestDraft.model_validate(out if isinstance(out, dict) else out.model_dump())
    except (ValueError, TypeError) as exc:
        raise ChatRequestError(f"the model could not read a request from it ({exc})") from exc
    if not draft.task.strip():
        raise ChatRequestError("it does not read as a request for something to choose")
    candidates = candidates_from(draft.options)
    if not candidates:
        raise ChatRequestError("no options to choose from were named or could be proposed")
    data: dict[str, Any] = {
        "task": draft.task.strip(),
        "context": draft.situation.strip(),
        "candidates": candidates,
    }
    if user_id:
        data["user_id"] = user_id
    try:
        return Request.model_validate(data)
    except ValueError as exc:
        raise ChatRequestError(f"the request read from it is not valid: {exc}") from exc
