"""The graph's state, input and output: what one request's run carries and what Studio shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from langgraph.channels.last_value import LastValue
from pydantic import BaseModel, ConfigDict, Field

from pahf.decisions import Action, Assessment, Turn
from pahf.human import FeedbackReply
from pahf.memory.schema import AppliedMemoryOp, RetrievedMemory
from pahf.request import Request


class ValidatedRequestChannel(LastValue[Any]):
    """The graph's ``request`` channel: every write is validated as a :class:`Request`.

    LangGraph writes a run's input to its channels, and checkpoints it, before any node reads
    (and so validates) it: a malformed request used to be saved to the thread, after which
    every call on that thread, even ``get_state`` or a valid new request, failed with the old
    error. Validating on write refuses it before anything is saved.
    """

    def update(self, values: Sequence[Any]) -> bool:
        return super().update([Request.model_validate(v) for v in values])


class PahfState(BaseModel):
    """Everything one request's run carries; what Studio shows. Never holds ground truth."""

    model_config = ConfigDict(extra="forbid")

    request: Annotated[Request, ValidatedRequestChannel(Request)]
    user_id: str = ""
    memories: list[RetrievedMemory] = Field(default_factory=list)
    assessment: Assessment | None = None
    questions_asked: int = 0
    clarifications: list[Turn] = Field(default_factory=list)
    action: Action | None = None
    feedback: FeedbackReply | None = None
    memory_ops: list[AppliedMemoryOp] = Field(default_factory=list)
    active_request_id: str = ""
    #: Set by ask_user, cleared by retrieve_memory: the one way retrieve_memory tells "again,
    #: after a question" from "a new input" (a client may send a new request under the id of
    #: an old one on the same thread; it must start afresh, not inherit the old questions).
    after_question: bool = False


class PahfInput(BaseModel):
    """The graph's narrow input: just the request (Studio shows one field to fill)."""

    request: Request


class PahfOutput(BaseModel):
    """What a finished run returns to a host application.

    ``memories`` are the user's preferences the action was grounded in (the last retrieval), so
    a host can show why the agent acted as it did without reading the thread's state.
    """

    request: Request
    user_id: str = ""
    memories: list[RetrievedMemory] = Field(default_factory=list)
    action: Action | None = None
    assessment: Assessment | None = None
    clarifications: list[Turn] = Field(default_factory=list)
    feedback: FeedbackReply | None = None
    memory_ops: list[AppliedMemoryOp] = Field(default_factory=list)
