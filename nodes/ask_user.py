"""ask_user: put one clarification question to the person and store what the answer teaches.

The interrupt comes first and the memory write after it: LangGraph re-runs this node from the
top on resume, and memory ids are deterministic, so a re-run never writes twice.
"""

from __future__ import annotations

from typing import Any

from pahf.decisions import Turn
from pahf.human import QuestionPrompt, parse_clarification
from pahf.memory.base import apply_ops
from pahf.nodes.services import NodeFn, ServicesProvider, ask_until_valid, run_context
from pahf.state import PahfState

#: What is asked when the reasoner found the request ambiguous but gave no question.
DEFAULT_QUESTION = "Could you tell me what you prefer here?"


def make_ask_user(services: ServicesProvider) -> NodeFn:
    def ask_user(state: PahfState, runtime: Any) -> dict[str, Any]:
        ctx = run_context(runtime)
        assert state.assessment is not None
        question = state.assessment.question or DEFAULT_QUESTION
        prompt = QuestionPrompt(
            user_id=state.user_id,
            request_id=state.request.request_id,
            question=question,
            candidates=[c.describe() for c in state.request.candidates],
        )
        reply = ask_until_valid(prompt.model_dump(), parse_clarification)
        turn = Turn(kind="clarification", question=question, text=reply.answer)
        applied = []
        if ctx.use_memory:
            svc = services(ctx)
            ops = svc.reasoner.learn(state.request, turn, state.memories)
            turn_key = f"clarification-{state.questions_asked}"
            applied = apply_ops(svc.memory, state.user_id, state.request.request_id, turn_key, ops)
        return {
            "after_question": True,
            "questions_asked": state.questions_asked + 1,
            "clarifications": [*state.clarifications, turn],
            "memory_ops": [*state.memory_ops, *applied],
        }

    return ask_user
