"""retrieve_memory: fetch this user's preferences relevant to the request (PAHF step 2's input).

Also the entry node, so it starts each new request from a clean slate on a reused thread, and
resolves which user the run is for before anything is asked or stored. It routes the run
itself (``Command(goto=...)``): a conditional edge would cost LangGraph an extra traced
runnable after the node that re-reads and re-validates the whole state for this one decision.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.types import Command

from pahf.context import RunContext
from pahf.nodes.services import NodeFn, ServicesProvider, resolve_user, run_context
from pahf.state import PahfState

AfterRetrieval = Literal["ambiguity_detect", "act"]


def make_retrieve_memory(services: ServicesProvider) -> NodeFn:
    def retrieve_memory(state: PahfState, runtime: Any) -> Command[AfterRetrieval]:
        ctx = run_context(runtime)
        user = resolve_user(state, ctx)
        update: dict[str, Any] = {"user_id": user, "after_question": False}
        questions_asked = state.questions_asked
        # Every new input starts afresh, even one reusing the previous request's id; only the
        # loop back from ask_user continues the same request.
        if not state.after_question or state.active_request_id != state.request.request_id:
            questions_asked = 0
            update.update(
                active_request_id=state.request.request_id,
                assessment=None,
                questions_asked=0,
                clarifications=[],
                action=None,
                feedback=None,
                memory_ops=[],
            )
        if ctx.use_memory:
            memory = services(ctx).memory
            update["memories"] = memory.search(user, state.request.situation(), k=ctx.top_k)
        else:
            update["memories"] = []
        return Command(update=update, goto=route_after_retrieval(ctx, questions_asked))

    return retrieve_memory


def route_after_retrieval(ctx: RunContext, questions_asked: int) -> AfterRetrieval:
    """Assess ambiguity only when a question could follow (clarification on, budget left):
    otherwise the run goes straight to the action, one graph step fewer."""
    can_ask = ctx.pre_action and questions_asked < ctx.question_budget
    return "ambiguity_detect" if can_ask else "act"
