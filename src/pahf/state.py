"""The graph's state, input and output: what one request's run carries and what Studio shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Self

from langchain_core.messages import AnyMessage
from langgraph._internal._typing import MISSING
from langgraph.channels.last_value import LastValue
from langgraph.graph.message import add_messages
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from pahf.decisions import Action, Assessment, Turn
from pahf.human import FeedbackReply
from pahf.memory.schema import AppliedMemoryOp, RetrievedMemory
from pahf.request import Request, StrictModel


class RequestProblem(StrictModel):
    """What the ``request`` channel holds when the input's request could not be read."""

    problem: str


def _checked(value: Any) -> Request | RequestProblem | None:
    if value is None or isinstance(value, Request | RequestProblem):
        return value
    try:
        return Request.model_validate(value)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
        )
        return RequestProblem(problem=f"the request is malformed: {fields}")


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(typ: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(typ)
    if adapter is None:
        adapter = _ADAPTERS[typ] = TypeAdapter(typ)
    return adapter


class JsonChannel(LastValue[Any]):
    """A state channel that holds pahf's typed values and checkpoints them as plain JSON.

    A checkpoint holding pydantic instances can only be read back by a serializer told about
    every class (``langgraph dev`` warns "Deserializing unregistered type" for each, and
    ``LANGGRAPH_STRICT_MSGPACK=true`` blocks them). Values are validated into their type on
    write (nodes write JSON or models alike) and dumped to JSON for the checkpoint, so what a
    saver stores is JSON, and what nodes and ``invoke`` see stays typed.
    """

    def update(self, values: Sequence[Any]) -> bool:
        if not values:  # every step notifies every channel not written (nothing to validate)
            return False
        adapter = _adapter(self.typ)
        return super().update([adapter.validate_python(v) for v in values])

    def checkpoint(self) -> Any:
        if self.value is MISSING:
            return MISSING
        return _adapter(self.typ).dump_python(self.value, mode="json")

    def from_checkpoint(self, checkpoint: Any) -> Self:
        empty = self.__class__(self.typ, self.key)
        if checkpoint is not MISSING:
            empty.value = _adapter(self.typ).validate_python(checkpoint)
        return empty


class ValidatedRequestChannel(JsonChannel):
    """The graph's ``request`` channel: every write is validated as a :class:`Request`.

    LangGraph writes a run's input to its channels, and checkpoints it, before any node reads
    (and so validates) it: a malformed request saved as it came bricked the thread (every later
    read of its state, even ``get_state`` or a valid new request, failed re-validating it).
    Raising here failed the run instead. So a malformed request is stored as a
    :class:`RequestProblem` naming what is wrong, which the entry node reports to the person
    (as an AI message) before it clears the channel: the thread stays usable.
    """

    def update(self, values: Sequence[Any]) -> bool:
        return super().update([_checked(v) for v in values])


class PahfState(BaseModel):
    """Everything one request's run carries; what Studio shows. Never holds ground truth."""

    model_config = ConfigDict(extra="forbid")

    request: Annotated[
        Request | RequestProblem | None,
        ValidatedRequestChannel(Request | RequestProblem | None),
    ] = None
    #: The conversation as a chat UI shows it: the person's messages, the agent's question,
    #: action and summary (LangGraph's ``add_messages``: appended, or replaced by id).
    messages: Annotated[list[AnyMessage], add_messages] = Field(default_factory=list)
    #: Id of the last human chat message already taken as input (so it is read once).
    read_message_id: str = ""
    user_id: str = ""
    memories: Annotated[list[RetrievedMemory], JsonChannel(list[RetrievedMemory])] = Field(
        default_factory=list
    )
    assessment: Annotated[Assessment | None, JsonChannel(Assessment | None)] = None
    questions_asked: int = 0
    clarifications: Annotated[list[Turn], JsonChannel(list[Turn])] = Field(default_factory=list)
    action: Annotated[Action | None, JsonChannel(Action | None)] = None
    feedback: Annotated[FeedbackReply | None, JsonChannel(FeedbackReply | None)] = None
    memory_ops: Annotated[list[AppliedMemoryOp], JsonChannel(list[AppliedMemoryOp])] = Field(
        default_factory=list
    )
    active_request_id: str = ""
    #: Set by ask_user, cleared by retrieve_memory: the one way retrieve_memory tells "again,
    #: after a question" from "a new input" (a client may send a new request under the id of
    #: an old one on the same thread; it must start afresh, not inherit the old questions).
    after_question: bool = False
    #: The request in ``request`` was read from a chat message (not sent as input): a later
    #: run without a new input must not take it for a new request.
    request_from_chat: bool = False

    def current(self) -> Request:
        """The request this run works on (the entry node guarantees one past it)."""
        if not isinstance(self.request, Request):
            raise RuntimeError("no request in progress: the entry node should have ended the run")
        return self.request


class PahfInput(BaseModel):
    """The graph's narrow input: a structured request (SDK, Studio's form, evaluation) or a
    chat message (a chat UI sends ``{"messages": [...]}``; the last human message is read as
    the request)."""

    request: Request | None = None
    messages: list[AnyMessage] = Field(default_factory=list)


class PahfOutput(BaseModel):
    """What a finished run returns to a host application.

    ``memories`` are the user's preferences the action was grounded in (the last retrieval), so
    a host can show why the agent acted as it did without reading the thread's state.
    """

    request: Request | RequestProblem | None = None
    messages: list[AnyMessage] = Field(default_factory=list)
    user_id: str = ""
    memories: list[RetrievedMemory] = Field(default_factory=list)
    action: Action | None = None
    assessment: Assessment | None = None
    clarifications: list[Turn] = Field(default_factory=list)
    feedback: FeedbackReply | None = None
    memory_ops: list[AppliedMemoryOp] = Field(default_factory=list)
