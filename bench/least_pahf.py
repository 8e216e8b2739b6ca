"""The PAHF loop in the least LangGraph graph that can run it: the control for "graph overhead".

The same five nodes as the package's graph, on the same paths (retrieve -> assess -> ask ->
retrieve again -> act -> feedback, with the same skips), making exactly the calls of
:func:`pahf.bench.bare.play_bare`, but with nothing of this package's graph around them: a
TypedDict state of plain Python objects (no pydantic validation when LangGraph builds each
node's input), no run context, no services provider, no human channel, no usage tracker, no
record. What it costs above bare is what LangGraph itself charges for running these steps in
the same cache conditions as a real episode (MiniLM inferences in between); what the package's
graph costs above it is the price of its typed state, validation and deployment plumbing.

If this graph's own overhead is at or above a target, no LangGraph graph that runs the design's
five nodes as separate steps can meet it on that machine and LangGraph version.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from pahf.bench.bare import BareOutcome, retrieve
from pahf.context import RunContext
from pahf.decisions import Action, Assessment, Turn
from pahf.eval.episodes import Episode, SimulatedUser
from pahf.eval.runner import BLANK_ANSWER, replay_request
from pahf.memory.base import PreferenceMemory, apply_ops
from pahf.memory.schema import RetrievedMemory
from pahf.nodes.ask_user import DEFAULT_QUESTION
from pahf.nodes.ingest_feedback import confirmations
from pahf.reasoners.base import Reasoner
from pahf.request import Request


class LeastState(TypedDict, total=False):
    ctx: RunContext
    episode: Episode
    simulated: SimulatedUser
    request: Request
    memories: list[RetrievedMemory]
    clarifications: list[Turn]
    asked: int
    assessment: Assessment
    action: Action
    corrected: bool


def least_pahf_graph(
    reasoner: Reasoner, memory: PreferenceMemory
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the five-node loop over ``reasoner`` and ``memory`` (once per store)."""

    def can_ask(state: LeastState) -> bool:
        ctx = state["ctx"]
        return ctx.pre_action and state.get("asked", 0) < ctx.question_budget

    def retrieve_memory(state: LeastState) -> Command[Any]:
        memories = retrieve(memory, state["ctx"], state["episode"].user, state["request"])
        goto = "ambiguity_detect" if can_ask(state) else "act"
        return Command(update={"memories": memories}, goto=goto)

    def ambiguity_detect(state: LeastState) -> Command[Any]:
        assessment = reasoner.assess(
            state["request"], state["memories"], state.get("clarifications", [])
        )
        goto = "ask_user" if assessment.ambiguous else "act"
        return Command(update={"assessment": assessment}, goto=goto)

    def ask_user(state: LeastState) -> dict[str, Any]:
        question = state["assessment"].question or DEFAULT_QUESTION
        episode, request = state["episode"], state["request"]
        answer = state["simulated"].answer(episode, question).strip()
        turn = Turn(kind="clarification", question=question, text=answer or BLANK_ANSWER)
        asked = state.get("asked", 0)
        if state["ctx"].use_memory:
            ops = reasoner.learn(request, turn, state["memories"])
            apply_ops(memory, episode.user, request.request_id, f"clarification-{asked}", ops)
        return {"asked": asked + 1, "clarifications": [*state.get("clarifications", []), turn]}

    def act(state: LeastState) -> Command[Any]:
        action = reasoner.choose(
            state["request"], state["memories"], state.get("clarifications", [])
        )
        goto = "ingest_feedback" if state["ctx"].post_action else END
        return Command(update={"action": action}, goto=goto)

    def ingest_feedback(state: LeastState) -> dict[str, Any]:
        episode, request, action = state["episode"], state["request"], state["action"]
        reply = state["simulated"].feedback(episode, action)
        correction = reply.strip() if reply and reply.strip() else None
        if state["ctx"].use_memory:
            if correction is not None:
                turn = Turn(kind="correction", text=correction, action=action)
                ops = reasoner.learn(request, turn, state["memories"])
                apply_ops(memory, episode.user, request.request_id, "feedback", ops)
            elif confirm := confirmations(action, state["memories"], request.request_id):
                apply_ops(memory, episode.user, request.request_id, "accepted", confirm)
        return {"corrected": correction is not None}

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(LeastState)
    builder.add_node("retrieve_memory", retrieve_memory, destinations=("ambiguity_detect", "act"))
    builder.add_node("ambiguity_detect", ambiguity_detect, destinations=("ask_user", "act"))
    builder.add_node("ask_user", ask_user)
    builder.add_node("act", act, destinations=("ingest_feedback", END))
    builder.add_node("ingest_feedback", ingest_feedback)
    builder.add_edge(START, "retrieve_memory")
    builder.add_edge("ask_user", "retrieve_memory")
    builder.add_edge("ingest_feedback", END)
    return builder.compile()


def play_least(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    ctx: RunContext,
    episode: Episode,
    simulated: SimulatedUser,
    *,
    phase: int,
    iteration: int,
) -> BareOutcome:
    """Play one episode through :func:`least_pahf_graph` (one ``invoke``)."""
    request = replay_request(episode, phase, iteration)
    out = graph.invoke({"ctx": ctx, "episode": episode, "simulated": simulated, "request": request})
    action: Action = out["action"]
    return BareOutcome(
        episode_id=episode.episode_id,
        phase=phase,
        iteration=iteration,
        candidate_id=action.candidate_id,
        correct=action.candidate_id in episode.truth.correct_ids,
        asked=out.get("asked", 0) > 0,
        corrected=out.get("corrected", False),
    )
