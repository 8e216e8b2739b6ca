"""One episode played by calling the reasoner and memory directly, without LangGraph.

This is the control for the graph's overhead: it makes the same calls, in the same order and
with the same arguments, as the five nodes do for one request (retrieve -> assess -> ask ->
retrieve again -> choose -> feedback), applies memory ops with the same deterministic ids, and
plays the human with the same simulated user. What it leaves out is exactly what LangGraph
adds: state validation and merging, checkpoints, interrupts and resumes, callbacks, routing.
Both paths must give the same actions (the throughput benchmark checks it episode by episode).
"""

from __future__ import annotations

from dataclasses import dataclass

from pahf.context import RunContext
from pahf.decisions import Assessment, Turn
from pahf.eval.episodes import Episode, SimulatedUser
from pahf.eval.runner import BLANK_ANSWER, replay_request
from pahf.memory.base import PreferenceMemory, apply_ops
from pahf.memory.schema import RetrievedMemory
from pahf.nodes.ask_user import DEFAULT_QUESTION
from pahf.nodes.ingest_feedback import confirmations
from pahf.reasoners.base import Reasoner
from pahf.request import Request


@dataclass(frozen=True)
class BareOutcome:
    """What a bare episode did: enough to compare with the graph's record."""

    episode_id: str
    phase: int
    iteration: int
    candidate_id: str
    correct: bool
    asked: bool
    corrected: bool


def retrieve(
    memory: PreferenceMemory, ctx: RunContext, user: str, request: Request
) -> list[RetrievedMemory]:
    if not ctx.use_memory:
        return []
    return memory.search(user, request.situation(), k=ctx.top_k)


def play_bare(
    reasoner: Reasoner,
    memory: PreferenceMemory,
    ctx: RunContext,
    episode: Episode,
    simulated: SimulatedUser,
    *,
    phase: int,
    iteration: int,
) -> BareOutcome:
    """Play one episode the way the graph's nodes would, with direct calls."""
    request = replay_request(episode, phase, iteration)
    user = episode.user
    memories = retrieve(memory, ctx, user, request)
    clarifications: list[Turn] = []
    asked = 0
    while True:
        if not ctx.pre_action or asked >= ctx.question_budget:
            assessment = Assessment(ambiguous=False)
        else:
            assessment = reasoner.assess(request, memories, clarifications)
        if not assessment.ambiguous:
            break
        question = assessment.question or DEFAULT_QUESTION
        answer = simulated.answer(episode, question).strip() or BLANK_ANSWER
        turn = Turn(kind="clarification", question=question, text=answer)
        if ctx.use_memory:
            ops = reasoner.learn(request, turn, memories)
            apply_ops(memory, user, request.request_id, f"clarification-{asked}", ops)
        asked += 1
        clarifications.append(turn)
        memories = retrieve(memory, ctx, user, request)
    action = reasoner.choose(request, memories, clarifications)
    corrected = False
    if ctx.post_action:
        reply = simulated.feedback(episode, action)
        correction = reply.strip() if reply and reply.strip() else None
        if correction is not None:
            corrected = True
            if ctx.use_memory:
                turn = Turn(kind="correction", text=correction, action=action)
                ops = reasoner.learn(request, turn, memories)
                apply_ops(memory, user, request.request_id, "feedback", ops)
        elif ctx.use_memory:
            # As ingest_feedback: an accepted action reinforces the memories behind it.
            confirm = confirmations(action, memories, request.request_id)
            if confirm:
                apply_ops(memory, user, request.request_id, "accepted", confirm)
    return BareOutcome(
        episode_id=episode.episode_id,
        phase=phase,
        iteration=iteration,
        candidate_id=action.candidate_id,
        correct=action.candidate_id in episode.truth.correct_ids,
        asked=asked > 0,
        corrected=corrected,
    )
