"""What nodes need from outside the graph: a reasoner and a memory, chosen per run.

Nodes receive a :data:`ServicesProvider` when the graph is built, and ask it for the services of
each run's :class:`~pahf.context.RunContext`. ``build_graph`` passes fixed instances; the graph
deployed on a LangGraph server resolves them from the run's context (memory location, reasoner),
so one deployment serves every user and configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from langchain_core.messages import BaseMessage
from langgraph.config import get_config, get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel

from pahf.context import RunContext
from pahf.human import DECISIONS_SCHEMA, HumanService
from pahf.memory.base import PreferenceMemory
from pahf.reasoners.base import Reasoner
from pahf.request import validate_user_id
from pahf.state import PahfState


@dataclass(frozen=True)
class Services:
    reasoner: Reasoner
    memory: PreferenceMemory


ServicesProvider = Callable[[RunContext], Services]
T = TypeVar("T")
#: After this many malformed replies in a row from an in-process human service the node gives
#: up with the last error (a person answering interrupts is asked again as often as needed).
MAX_INVALID_REPLIES = 5


class NodeFn(Protocol):
    """A node as LangGraph calls it: the state, and the run's runtime (context) by keyword.

    It returns its state update, or a ``Command`` carrying the update and the next node when the
    node itself decides where the run goes.
    """

    def __call__(
        self, state: PahfState, *, runtime: Runtime[RunContext]
    ) -> dict[str, Any] | Command[Any]: ...


def run_context(runtime: Any) -> RunContext:
    """The run's context as a RunContext, whatever form the caller passed (None, dict, model)."""
    ctx = getattr(runtime, "context", None)
    if ctx is None:
        return RunContext()
    if isinstance(ctx, RunContext):
        return ctx
    if isinstance(ctx, dict):
        return RunContext.model_validate(ctx)
    return RunContext.model_validate(ctx, from_attributes=True)


class UserNotAllowedError(ValueError):
    """The run names a user it may not act as: someone other than the authenticated caller,
    or another user than the one its thread belongs to. (A ``ValueError``, so the LangGraph
    server passes its message on to the client.)"""


#: ``config["configurable"][AUTH_USER_KEY]``: the caller the LangGraph server authenticated
#: (set by the server from its custom auth; a client cannot write it there).
AUTH_USER_KEY = "langgraph_auth_user"


def authenticated_user() -> str | None:
    """The identity the server authenticated for this run, or None (in-process, or a server
    without authentication: no identity, an unauthenticated user, or the Studio user)."""
    try:
        configurable = get_config().get("configurable") or {}
    except RuntimeError:  # called outside a graph run (unit tests of a node)
        return None
    user = configurable.get(AUTH_USER_KEY)
    if user is None:
        return None

    def attribute(name: str, default: Any) -> Any:
        if isinstance(user, Mapping):
            return user.get(name, default)
        try:
            return getattr(user, name, default)
        except (NotImplementedError, KeyError):
            return default

    if type(user).__name__ == "StudioUser" or attribute("kind", None) == "StudioUser":
        return None
    identity = attribute("identity", None)
    if not attribute("is_authenticated", True) or not isinstance(identity, str) or not identity:
        return None
    return validate_user_id(identity)


def resolve_user(from_request: str | None, ctx: RunContext, owner: str = "") -> str:
    """The user this run is for, never ambiguous.

    The authenticated caller when the server knows one (a request or context naming someone
    else is refused: a client acts only as itself); else the request's user id
    (``from_request``: a structured request's or one read from a chat message) or the
    context's, which must agree. A thread belongs to the user it was started for (``owner``,
    the thread's ``user_id``): resuming or reusing it under another user id is refused, or one
    conversation would write its clarification to one user's memory and its correction to
    another's. Refusals for security are :class:`UserNotAllowedError`; a plain
    ``ValueError`` is a request the person can fix (the entry node says so in the chat).
    """
    from_context = ctx.user_id
    claims = [claimed for claimed in (from_request, from_context) if claimed]
    caller = authenticated_user()
    # Security refusals first, so a stranger learns nothing from a friendlier message.
    for claimed in claims if caller is not None else []:
        if claimed != caller:
            raise UserNotAllowedError(
                f"user id {claimed!r} is not the authenticated caller: a client acts only as "
                "itself (leave user_id out, or name your own)"
            )
    for claimed in [caller or "", *claims] if owner else []:
        if claimed and claimed != owner:
            raise UserNotAllowedError(
                "this thread belongs to another user: it cannot be resumed or reused under "
                f"user id {claimed!r}; start a new thread"
            )
    if from_request and from_context and from_request != from_context:
        raise ValueError(
            f"request.user_id {from_request!r} and context user_id {from_context!r} disagree"
        )
    user = caller or from_request or from_context
    if not user:
        raise ValueError("no user id: set request.user_id or the run context's user_id")
    return user


def plain(update: dict[str, Any]) -> dict[str, Any]:
    """``update`` with pahf's models (and lists of them) dumped to JSON.

    A node's writes are saved with the checkpoint as they are written: plain JSON keeps them
    readable by any serializer without an allowlist (``langgraph dev`` warns about, and strict
    mode blocks, unregistered classes). The channels validate them back into their types.
    Messages are left as they are (LangChain messages are serializer-safe types).
    """
    out: dict[str, Any] = {}
    for key, value in update.items():
        if isinstance(value, BaseModel) and not isinstance(value, BaseMessage):
            value = value.model_dump(mode="json")
        elif (
            isinstance(value, list)
            and value
            and isinstance(value[0], BaseModel)
            and not isinstance(value[0], BaseMessage)
        ):
            value = [v.model_dump(mode="json") for v in value]
        out[key] = value
    return out


#: How a node hands its state update to the graph (see :func:`writes_for`).
Writes = Callable[[dict[str, Any]], dict[str, Any]]


def _as_is(update: dict[str, Any]) -> dict[str, Any]:
    return update


def writes_for(json_writes: bool) -> Writes:
    """:func:`plain` (JSON, what any saver can keep) when ``json_writes``, else the update as
    it is: for a graph whose writes no saver keeps (compiled without a checkpointer and not
    run inside a checkpointed graph), where dumping every write to JSON only for its channel
    to validate it back was a fifth of an evaluation episode's time. The channels hold the
    same typed values either way."""
    return plain if json_writes else _as_is


def progress(event: str, **detail: Any) -> None:
    """Tell a streaming client what the run is doing (``stream_mode="custom"``): a chat UI can
    show "searching memory", "asking", "learned" while it waits. A no-op outside a run."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a graph run (unit tests of a node)
        return
    writer({"pahf": event, **detail})


def ask_human(payload: dict[str, Any], human: HumanService | None) -> Any:
    """Put a human turn to the person: through the :class:`~pahf.human.HumanService` given at
    build time when there is one (evaluation: no checkpointer, one graph run per request), else
    by interrupting the run (Studio, servers, chat UIs and apps resuming with
    ``Command(resume=...)``). Both ways the node gets the same value for the same payload."""
    progress("asking", turn=payload.get("type"))
    if human is not None:
        return human(payload)
    return interrupt(payload, response_schema=DECISIONS_SCHEMA)


def ask_until_valid(
    payload: Callable[[str | None], dict[str, Any]],
    parse: Callable[[Any], T],
    human: HumanService | None = None,
) -> T:
    """Ask with ``payload(None)`` until the reply parses.

    A malformed resume value must neither fail the run nor poison the thread (LangGraph would
    replay it on every later resume), so the node asks again with ``payload(error)``, which
    names what was wrong: the person (or the calling app) sees it and answers again, as often
    as it takes. Nothing is stored until a valid value arrives. An in-process
    :class:`~pahf.human.HumanService` that keeps replying unusably is a bug in that service:
    after :data:`MAX_INVALID_REPLIES` re-asks its last error is raised.
    """
    value = ask_human(payload(None), human)
    attempts = 0
    while True:
        try:
            return parse(value)
        except ValueError as exc:
            attempts += 1
            if human is not None and attempts > MAX_INVALID_REPLIES:
                raise
            value = ask_human(payload(str(exc)), human)
