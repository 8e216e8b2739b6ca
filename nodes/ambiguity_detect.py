"""ambiguity_detect: is this request ambiguous for this user, given what memory holds?

The one gate for pre-action clarification. The reasoner is consulted only when a question could
still be asked (clarification on, budget left): with an LLM reasoner that saves a call on every
request of the post-only baseline and on every re-assessment after an answer. The node routes
the run itself (``Command``), so LangGraph runs no separate routing function over the whole
state; :data:`AfterAssessment` names where it may go, for the graph and Studio's drawing.
When it asks, the question goes into the conversation here, before ``ask_user`` interrupts,
so a chat UI shows it with the answer widget under it.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.types import Command

from pahf.decisions import Assessment
from pahf.nodes.ask_user import DEFAULT_QUESTION
from pahf.nodes.conversation import question_message
from pahf.nodes.services import NodeFn, ServicesProvider, run_context, writes_for
from pahf.state import PahfState

AfterAssessment = Literal["ask_user", "act"]


def make_ambiguity_detect(services: ServicesProvider, *, json_writes: bool = True) -> NodeFn:
    written = writes_for(json_writes)

    def ambiguity_detect(state: PahfState, runtime: Any) -> Command[AfterAssessment]:
        ctx = run_context(runtime)
        request = state.current()
        if not ctx.pre_action:
            assessment = Assessment(ambiguous=False, reason="clarification is off")
        elif state.questions_asked >= ctx.question_budget:
            assessment = Assessment(
                ambiguous=False, reason=f"question budget ({ctx.question_budget}) used"
            )
        else:
            assessment = services(ctx).reasoner.assess(
                request, state.memories, state.clarifications
            )
        update: dict[str, Any] = {"assessment": assessment}
        goto = route_after_assessment(assessment)
        if goto == "ask_user":
            question = assessment.question or DEFAULT_QUESTION
            update["messages"] = [question_message(request, question, state.questions_asked)]
        return Command(update=written(update), goto=goto)

    return ambiguity_detect


def route_after_assessment(assessment: Assessment) -> AfterAssessment:
    """Ask only when the assessment says the request is ambiguous (it already applied switches)."""
    return "ask_user" if assessment.ambiguous else "act"
