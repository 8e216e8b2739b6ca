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

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from pahf.context import RunContext
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
#: After this many malformed resume values in a row the node gives up with the last error.
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


def resolve_user(state: PahfState, ctx: RunContext) -> str:
    """The user this run is for, never ambiguous.

    The authenticated caller when the server knows one (a request or context naming someone
    else is refused: a client acts only as itself); else the request's user id or the
    context's, which must agree. A thread belongs to the user it was started for: resuming or
    reusing it under another user id is refused, or one conversation would write its
    clarification to one user's memory and its correction to another's.
    """
    from_request, from_context = state.request.user_id, ctx.user_id
    if from_request and from_context and from_request != from_context:
        raise ValueError(
            f"request.user_id {from_request!r} and context user_id {from_context!r} disagree"
        )
    claimed = from_request or from_context
    caller = authenticated_user()
    if caller is not None and claimed and claimed != caller:
        raise UserNotAllowedError(
            f"user id {claimed!r} is not the authenticated caller: a client acts only as "
            "itself (leave user_id out, or name your own)"
        )
    user = caller or claimed
    if not user:
        raise ValueError("no user id: set request.user_id or the run context's user_id")
    if state.user_id and state.user_id != user:
        raise UserNotAllowedError(
            "this thread belongs to another user: it cannot be resumed or reused under user "
            f"id {user!r}; start a new thread"
        )
    return user


#: ``config["configurable"][HUMAN_KEY]``: a :class:`HumanChannel` that answers this run's human
#: turns in-process instead of interrupting it.
HUMAN_KEY = "pahf_human"


class HumanChannel(Protocol):
    """Answers a human turn in-process: gets the payload an interrupt would carry (a
    :class:`~pahf.human.QuestionPrompt` or :class:`~pahf.human.FeedbackPrompt` as a dict) and
    returns what ``Command(resume=...)`` would."""

    def __call__(self, payload: dict[str, Any]) -> Any: ...


def _human_channel() -> HumanChannel | None:
    try:
        configurable = get_config().get("configurable") or {}
    except RuntimeError:  # called outside a graph run (unit tests of a node)
        return None
    channel = configurable.get(HUMAN_KEY)
    return channel if callable(channel) else None


def ask_human(payload: dict[str, Any]) -> Any:
    """Put a human turn to the person: by interrupting the run (Studio, servers, apps resuming
    with ``Command(resume=...)``), or, when the run's config carries a :class:`HumanChannel`,
    by calling it. The in-process channel needs no checkpointer and keeps a whole episode in
    one graph run (evaluation, terminal chat); both ways give the node the same value."""
    channel = _human_channel()
    return interrupt(payload) if channel is None else channel(payload)


def ask_until_valid(payload: dict[str, Any], parse: Callable[[Any], T]) -> T:
    """Ask with ``payload`` until the reply parses.

    A malformed resume value must not poison the thread (LangGraph would replay it on every
    later resume), so the node asks again with the parse error in ``payload["error"]``: the
    person (or the calling app) sees what was wrong and answers again. Nothing is stored until
    a valid value arrives.
    """
    value = ask_human(payload)
    for _ in range(MAX_INVALID_REPLIES):
        try:
            return parse(value)
        except ValueError as exc:
            value = ask_human({**payload, "error": str(exc)})
    return parse(value)
