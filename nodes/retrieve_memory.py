"""retrieve_memory: fetch this user's preferences relevant to the request (PAHF step 2's input).

Also the entry node: it reads the run's input (a structured request or a chat message, see
:mod:`pahf.nodes.conversation`), ends the run with an AI message when there is no usable
request, starts each new request from a clean slate on a reused thread, and resolves which
user the run is for before anything is asked or stored. It routes the run itself
(``Command(goto=...)``): a conditional edge would cost LangGraph an extra traced runnable after
the node that re-reads and re-validates the whole state for this one decision.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.types import Command

from pahf.context import RunContext
from pahf.nodes.conversation import problem_message, read_input
from pahf.nodes.services import (
    NodeFn,
    ServicesProvider,
    plain,
    progress,
    resolve_user,
    run_context,
)
from pahf.state import PahfState

AfterRetrieval = Literal["ambiguity_detect", "act", "__end__"]


def make_retrieve_memory(services: ServicesProvider) -> NodeFn:
    def retrieve_memory(state: PahfState, runtime: Any) -> Command[AfterRetrieval]:
        ctx = run_context(runtime)
        reading = read_input(state, ctx, services)
        request = reading.request
        problem = reading.problem
        user = ""
        if request is not None:
            try:
                user = resolve_user(request.user_id, ctx)
            except ValueError as exc:
                problem, request = str(exc), None
                reading.update["request"] = None
        if request is None:
            assert problem is not None
            return Command(
                update=plain({**reading.update, "messages": [problem_message(problem, state)]}),
                goto="__end__",
            )
        update: dict[str, Any] = {**reading.update, "user_id": user}
        questions_asked = state.questions_asked
        if state.active_request_id != request.request_id:
            questions_asked = 0
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
        return Command(update=plain(update), goto=route_after_retrieval(ctx, questions_asked))

    return retrieve_memory


def route_after_retrieval(ctx: RunContext, questions_asked: int) -> AfterRetrieval:
    """Assess ambiguity only when a question could follow (clarification on, budget left):
    otherwise the run goes straight to the action, one graph step fewer."""
    can_ask = ctx.pre_action and questions_asked < ctx.question_budget
    return "ambiguity_detect" if can_ask else "act"
