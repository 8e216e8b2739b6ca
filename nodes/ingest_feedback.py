"""ingest_feedback: show the person the action, take their correction, revise memory.

A correction that contradicts the memory behind the action supersedes it (preference drift);
the superseded record stays in the store with its history. Interrupt first, writes after, with
deterministic ids, so a resume re-run is harmless.
"""

from __future__ import annotations

from typing import Any

from pahf.memory.base import apply_ops
from pahf.nodes.services import NodeFn, ServicesProvider, ask_until_valid, run_context
from pahf.state import FeedbackPrompt, MemoryOp, PahfState, Turn, parse_feedback


def make_ingest_feedback(services: ServicesProvider) -> NodeFn:
    def ingest_feedback(state: PahfState, runtime: Any) -> dict[str, Any]:
        ctx = run_context(runtime)
        assert state.action is not None
        prompt = FeedbackPrompt(
            user_id=state.user_id, request_id=state.request.request_id, action=state.action
        )
        reply = ask_until_valid(prompt.model_dump(), parse_feedback)
        applied = []
        if reply.correction and ctx.use_memory:
            svc = services(ctx)
            turn = Turn(kind="correction", text=reply.correction, action=state.action)
            ops = svc.reasoner.learn(state.request, turn, state.memories)
            applied = apply_ops(
                svc.memory, state.user_id, state.request.request_id, "feedback", ops
            )
        elif ctx.use_memory:
            # Accepted: the memories behind the action were right again. Corroboration, so one
            # later contradicting signal does not overturn them (noisy feedback).
            retrieved = {m.record.id for m in state.memories if m.record.status == "active"}
            confirm = [
                MemoryOp(kind="reinforce", target_id=i, reason="the user accepted its action")
                for i in state.action.memory_ids
                if i in retrieved
            ]
            if confirm:
                svc = services(ctx)
                applied = apply_ops(
                    svc.memory, state.user_id, state.request.request_id, "accepted", confirm
                )
        return {"feedback": reply, "memory_ops": [*state.memory_ops, *applied]}

    return ingest_feedback
