"""ask_user: put one clarification question to the person and store what the answer teaches.

The interrupt comes first and the memory write after it: LangGraph re-runs this node from the
top on resume, and memory ids are deterministic, so a re-run never writes twice.
"""

from __future__ import annotations

from typing import Any

from pahf.decisions import Turn
from pahf.human import HumanService, QuestionPrompt, parse_clarification, question_interrupt
from pahf.memory.base import apply_ops
from pahf.nodes.conversation import human_echo
from pahf.nodes.services import (
    NodeFn,
    ServicesProvider,
    ask_until_valid,
    progress,
    run_context,
    writes_for,
)
from pahf.state import PahfState

#: What is asked when the reasoner found the request ambiguous but gave no question.
DEFAULT_QUESTION = "Could you tell me what you prefer here?"


def make_ask_user(
    services: ServicesProvider, human: HumanService | None = None, *, json_writes: bool = True
) -> NodeFn:
    written = writes_for(json_writes)

    def ask_user(state: PahfState, runtime: Any) -> dict[str, Any]:
        ctx = run_context(runtime)
        request = state.current()
        assert state.assessment is not None
        question = state.assessment.question or DEFAULT_QUESTION
        prompt = QuestionPrompt(
            user_id=state.user_id,
            request_id=request.request_id,
            question=question,
            candidates=[c.describe() for c in request.candidates],
        )
        reply = ask_until_valid(
            lambda error: question_interrupt(prompt, error), parse_clarification, human
        )
        turn = Turn(kind="clarification", question=question, text=reply.answer)
        applied = []
        if ctx.use_memory:
            svc = services(ctx)
            ops = svc.reasoner.learn(request, turn, state.memories)
            turn_key = f"clarification-{state.questions_asked}"
            applied = apply_ops(svc.memory, state.user_id, request.request_id, turn_key, ops)
            if applied:
                progress("learned", memory_ops=[op.model_dump(mode="json") for op in applied])
        echo = human_echo(reply.answer, f"{request.request_id}-answer-{state.questions_asked}")
        return written(
            {
                "after_question": True,
                "questions_asked": state.questions_asked + 1,
                "clarifications": [*state.clarifications, turn],
                "memory_ops": [*state.memory_ops, *applied],
                "messages": [echo],
            }
        )

    return ask_user
