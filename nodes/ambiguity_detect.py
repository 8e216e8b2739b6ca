"""ambiguity_detect: is this request ambiguous for this user, given what memory holds?

The reasoner is consulted only when a question could still be asked (clarification on, budget
left): with an LLM reasoner that saves a call on every request of the post-only baseline and on
every re-assessment after an answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pahf.nodes.services import NodeFn, ServicesProvider, run_context
from pahf.state import Assessment, PahfState


def make_ambiguity_detect(services: ServicesProvider) -> NodeFn:
    def ambiguity_detect(state: PahfState, runtime: Any) -> dict[str, Any]:
        ctx = run_context(runtime)
        if not ctx.pre_action:
            return {"assessment": Assessment(ambiguous=False, reason="clarification is off")}
        if state.questions_asked >= ctx.question_budget:
            return {
                "assessment": Assessment(
                    ambiguous=False, reason=f"question budget ({ctx.question_budget}) used"
                )
            }
        assessment = services(ctx).reasoner.assess(
            state.request, state.memories, state.clarifications
        )
        return {"assessment": assessment}

    return ambiguity_detect


def route_after_assessment(state: PahfState) -> Literal["ask_user", "act"]:
    """Ask only when the assessment says the request is ambiguous (it already applied switches)."""
    if state.assessment is not None and state.assessment.ambiguous:
        return "ask_user"
    return "act"
