"""ingest_feedback: show the person the action, take their correction, revise memory.

A correction that contradicts the memory behind the action supersedes it (preference drift);
the superseded record stays in the store with its history. An accepted action confirms the
memories behind it and one turned down without a reason challenges them. Interrupt first,
writes after, with deterministic ids, so a resume re-run is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pahf.decisions import Action, Turn
from pahf.human import FeedbackPrompt, HumanService, feedback_interrupt, parse_feedback
from pahf.memory.base import apply_ops
from pahf.memory.schema import CONFIDENCE_CEILING, MemoryOp, RetrievedMemory
from pahf.nodes.conversation import human_echo, summary_message
from pahf.nodes.services import (
    NodeFn,
    ServicesProvider,
    ask_until_valid,
    progress,
    run_context,
    writes_for,
)
from pahf.reasoners.phrases import rejects_action
from pahf.state import PahfState


def confirmations(
    action: Action, memories: Sequence[RetrievedMemory], request_id: str | None = None
) -> list[MemoryOp]:
    """An accepted action: the active memories behind it were right again.

    Corroboration makes one later contradicting signal challenge them rather than overturn them
    (noisy feedback). Memories already at
    :data:`~pahf.memory.schema.CONFIDENCE_CEILING` are left as they
    are: confirming them changes nothing but would write the store on every accepted action.
    A memory learned in this same request (``request_id``) is not confirmed by it: the action
    only did what the answer just said, so one answer plus one accepted action must not make a
    preference "established"; that takes confirmation in a later request.
    """
    active = {m.record.id: m.record for m in memories if m.record.status == "active"}
    return [
        MemoryOp(kind="reinforce", target_id=i, reason="the user accepted its action")
        for i in action.memory_ids
        if i in active
        and active[i].confidence < CONFIDENCE_CEILING
        and (request_id is None or active[i].request_id != request_id)
    ]


def doubts(action: Action, memories: Sequence[RetrievedMemory]) -> list[MemoryOp]:
    """An action turned down without a word of why ("That's not the one I wanted."): nothing to
    learn, but the active memories behind it may have gone stale. Each is challenged: it weighs
    less until it is confirmed again, and the next request it bears on may ask about it.

    Like a confirmation, this is what the reply says about the action, whatever the reasoner:
    every reasoner gets it, and no model call is spent on a reply with nothing to learn.
    """
    active = {m.record.id for m in memories if m.record.status == "active"}
    return [
        MemoryOp(kind="challenge", target_id=i, reason="the user turned its action down")
        for i in dict.fromkeys(action.memory_ids)
        if i in active
    ]


def make_ingest_feedback(
    services: ServicesProvider, human: HumanService | None = None, *, json_writes: bool = True
) -> NodeFn:
    written = writes_for(json_writes)

    def ingest_feedback(state: PahfState, runtime: Any) -> dict[str, Any]:
        ctx = run_context(runtime)
        request = state.current()
        action = state.action
        assert action is not None
        prompt = FeedbackPrompt(user_id=state.user_id, request_id=request.request_id, action=action)
        reply = ask_until_valid(
            lambda error: feedback_interrupt(prompt, error),
            lambda value: parse_feedback(value, action),
            human,
        )
        applied = []
        if reply.correction and ctx.use_memory:
            svc = services(ctx)
            if rejects_action(reply.correction):
                ops = doubts(action, state.memories)
            else:
                turn = Turn(kind="correction", text=reply.correction, action=action)
                ops = svc.reasoner.learn(request, turn, state.memories)
            applied = apply_ops(svc.memory, state.user_id, request.request_id, "feedback", ops)
        elif ctx.use_memory:
            confirm = confirmations(action, state.memories, request.request_id)
            if confirm:
                svc = services(ctx)
                applied = apply_ops(
                    svc.memory, state.user_id, request.request_id, "accepted", confirm
                )
        if applied:
            progress("learned", memory_ops=[op.model_dump(mode="json") for op in applied])
        ops_now = [*state.memory_ops, *applied]
        echo = human_echo(reply.correction or "Approved.", f"{request.request_id}-feedback")
        summary = summary_message(request, action, ops_now, reply.correction is not None)
        return written(
            {
                "feedback": reply,
                "memory_ops": ops_now,
                "messages": [echo, summary],
            }
        )

    return ingest_feedback
