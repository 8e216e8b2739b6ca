"""retrieve_memory: fetch this user's preferences relevant to the request (PAHF step 2's input).

Also the entry node: it reads the run's input (a structured request or a chat message, see
:mod:`pahf.nodes.conversation`), ends the run with an AI message when there is no usable
request, starts each new input afresh on a reused thread (even one reusing the previous
request's id: only the loop back from ``ask_user`` continues a request), and resolves which
user the run is for before anything is asked or stored. Otherwise it always hands over to
``ambiguity_detect``, where whether a question may follow is decided, once. It routes with
``Command(goto=...)`` because a run with no usable request ends here.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.types import Command

from pahf.nodes.conversation import problem_message, read_input
from pahf.nodes.services import (
    NodeFn,
    ServicesProvider,
    UserNotAllowedError,
    progress,
    resolve_user,
    run_context,
    writes_for,
)
from pahf.state import PahfState

AfterRetrieval = Literal["ambiguity_detect", "__end__"]


def make_retrieve_memory(services: ServicesProvider, *, json_writes: bool = True) -> NodeFn:
    written = writes_for(json_writes)

    def retrieve_memory(state: PahfState, runtime: Any) -> Command[AfterRetrieval]:
        ctx = run_context(runtime)
        reading = read_input(state, ctx, services)
        request = reading.request
        problem = reading.problem
        user = ""
        if request is not None:
            try:
                user = resolve_user(request.user_id, ctx, state.user_id)
            except UserNotAllowedError:
                raise  # a refusal for security: not a conversation turn on this thread
            except ValueError as exc:
                problem, request = str(exc), None
                reading.update["request"] = None
        if request is None:
            assert problem is not None
            return Command(
                update=written({**reading.update, "messages": [problem_message(problem, state)]}),
                goto="__end__",
            )
        update: dict[str, Any] = {**reading.update, "user_id": user, "after_question": False}
        if reading.fresh:
            update.update(
                active_request_id=request.request_id,
                assessment=None,
                questions_asked=0,
                clarifications=[],
                action=None,
                feedback=None,
                memory_ops=[],
            )
        if ctx.use_memory:
            progress("searching memory", user_id=user)
            memory = services(ctx).memory
            update["memories"] = memory.search(user, request.situation(), k=ctx.top_k)
        else:
            update["memories"] = []
        return Command(update=written(update), goto="ambiguity_detect")

    return retrieve_memory
