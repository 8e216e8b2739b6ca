"""act: choose one of the request's candidates, grounded in memory and any answer just given.

Routes the run itself (``Command``): on to feedback when that channel is on, else the end
(with the closing summary, since no feedback turn follows).
An assessment that already proposed an action (an LLM reasoner settles a clear request in the
same call) is acted on as it is: the proposal is in the checkpointed state, so a resume on any
worker acts on it without asking the model again.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.types import Command

from pahf.context import RunContext
from pahf.nodes.conversation import action_message, summary_message
from pahf.nodes.services import NodeFn, ServicesProvider, run_context, writes_for
from pahf.state import PahfState

#: "__end__" is LangGraph's END (typed as a plain str there, so spelled out for the Literal).
AfterAction = Literal["ingest_feedback", "__end__"]


def make_act(services: ServicesProvider, *, json_writes: bool = True) -> NodeFn:
    written = writes_for(json_writes)

    def act(state: PahfState, runtime: Any) -> Command[AfterAction]:
        ctx = run_context(runtime)
        request = state.current()
        assessment = state.assessment
        proposed = (
            assessment.proposed
            if assessment is not None and not assessment.ambiguous
            else None
        )
        action = proposed or services(ctx).reasoner.choose(
            request, state.memories, state.clarifications
        )
        ids = {c.id for c in request.candidates}
        if action.candidate_id not in ids:
            raise ValueError(
                f"act: reasoner chose {action.candidate_id!r}, "
                f"not one of the candidates {sorted(ids)}"
            )
        goto = route_after_action(ctx)
        update: dict[str, Any] = {"action": action}
        if goto == "__end__":
            update["messages"] = [summary_message(request, action, state.memory_ops, False)]
        else:
            update["messages"] = [action_message(request, action)]
        return Command(update=written(update), goto=goto)

    return act


def route_after_action(ctx: RunContext) -> AfterAction:
    """Post-action feedback only when that channel is on for this run."""
    return "ingest_feedback" if ctx.post_action else "__end__"
