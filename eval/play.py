"""One episode through the compiled graph, with the simulated user taking the human turns.

Part of the evaluation harness (:mod:`pahf.eval.runner` runs it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from pahf.context import RunContext
from pahf.decisions import Action
from pahf.eval.episodes import (
    Episode,
    SimulatedUser,
)
from pahf.eval.protocol import ReplayStep
from pahf.eval.results import EpisodeRecord
from pahf.eval.settings import MAX_INTERRUPTS
from pahf.eval.usage import new_tracker, read_usage
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.human import HumanDesk
from pahf.memory.base import PreferenceMemory
from pahf.memory.schema import AppliedMemoryOp, MemoryRecord, RetrievedMemory
from pahf.reasoners.base import Reasoner
from pahf.reasoners.llm import LLMDecisionError, LLMOutputError
from pahf.request import Request


def replay_request_id(episode: Episode, phase: int, iteration: int) -> str:
    """A distinct request id per replay: memory ids derive from it, so a replay never collides
    with an earlier iteration's writes, and a re-run of the same replay rewrites the same ids."""
    return f"{episode.episode_id}@p{phase}i{iteration}"


#: Domains whose ``Request.context`` is the user's own situation ("Drowsy"), which the paper's
#: agent never sees (it gets the scene and the task; the user can say how they feel when asked).
#: Shopping's context is the product, which the paper's agent sees in the options.
PRIVATE_CONTEXT_DOMAINS = frozenset({"embodied"})


def replay_request(
    episode: Episode, phase: int, iteration: int, *, show_context: bool = False
) -> Request:
    """The request one replay sends to the agent: the episode's, with this replay's request id
    and the episode's user, and without the user's situation label where it is private (see
    :data:`PRIVATE_CONTEXT_DOMAINS`) unless ``show_context`` (an ablation)."""
    data = episode.request.model_dump()
    if not show_context and episode.domain in PRIVATE_CONTEXT_DOMAINS:
        data["context"] = ""
    return Request.model_validate(
        {
            **data,
            "request_id": replay_request_id(episode, phase, iteration),
            "user_id": episode.user,
        }
    )


def memory_sizes(records: Sequence[MemoryRecord]) -> tuple[int, int]:
    """(active, total) of a user's memory records."""
    return sum(r.status == "active" for r in records), len(records)


#: How an episode's human turns reach the simulated user: ``inline`` through a
#: :class:`~pahf.human.HumanDesk` the graph was built with (one graph run per episode, no
#: checkpointer), or ``interrupt`` as a deployment sees them (interrupt, then
#: ``Command(resume=...)`` per turn). Both give the same records (tests/unit/test_runner.py);
#: the harness plays inline because it is faster.
HumanTurns = Literal["inline", "interrupt"]


class EpisodeGraphs:
    """The compiled graphs one store's episodes run on (build once per store).

    Only a run whose human turns are interrupts needs a checkpointer; every other run (inline
    turns, test phases, the no-memory baseline) skips saving and deleting a thread. The
    checkpointed graph is compiled the first time an interrupting run asks for it.
    """

    def __init__(self, reasoner: Reasoner, memory: PreferenceMemory) -> None:
        self._reasoner = reasoner
        self._memory = memory
        #: Answers the plain graph's human turns: each episode attends its own request.
        self.desk = HumanDesk()
        # Nobody keeps this graph's writes (no checkpointer): its nodes hand them over typed.
        self.plain: CompiledStateGraph[Any, Any, Any, Any] = build_graph(
            reasoner, memory, human=self.desk, json_writes=False
        )
        self._interrupting: CompiledStateGraph[Any, Any, Any, Any] | None = None

    @property
    def interrupting(self) -> CompiledStateGraph[Any, Any, Any, Any]:
        if self._interrupting is None:
            self._interrupting = build_graph(self._reasoner, self._memory, memory_checkpointer())
        return self._interrupting

    def for_run(
        self, context: RunContext, human_turns: HumanTurns = "inline"
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        turns = context.pre_action or context.post_action
        return self.interrupting if human_turns == "interrupt" and turns else self.plain


class SimulatedUserError(RuntimeError):
    """The simulated user could not take a turn (an LLM simulator whose reply stayed unusable,
    or whose model could not be reached). The run stops: scoring the agent against a person who
    did not answer would be meaningless. Finished episodes are kept; rerunning resumes here."""


#: What the simulated user's blank answer to a question becomes (an answer must not be empty).
BLANK_ANSWER = "I have no preference here."


class _SimulatedTurns:
    """The simulated user's side of one episode's human turns; keeps what was said."""

    def __init__(self, episode: Episode, user: SimulatedUser) -> None:
        self.episode = episode
        self.user = user
        self.turns = 0
        self.question: str | None = None
        self.answer: str | None = None
        self.feedback: str | None = None
        self.feedback_requested = False
        self.shown: Action | None = None  # the action put to the user for feedback

    def __call__(self, payload: dict[str, Any]) -> str:
        self.turns += 1
        if self.turns > MAX_INTERRUPTS:
            raise RuntimeError(
                f"episode {self.episode.episode_id}: more than {MAX_INTERRUPTS} human turns"
            )
        try:
            return self._reply(payload)
        except LLMDecisionError as exc:
            # Raised inside a node, an LLMDecisionError would read as the agent's failure.
            raise SimulatedUserError(
                f"episode {self.episode.episode_id}: the simulated user failed: {exc}"
            ) from exc

    def _reply(self, payload: dict[str, Any]) -> str:
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == "question":
            self.question = str(payload["question"])
            answer = self.user.answer(self.episode, self.question).strip()
            self.answer = answer or BLANK_ANSWER
            return self.answer
        if kind == "feedback":
            self.feedback_requested = True
            shown = self.shown = Action.model_validate(payload["action"])
            reply = self.user.feedback(self.episode, shown)
            self.feedback = reply.strip() if reply and reply.strip() else None
            return self.feedback or ""  # "" accepts (a None resume would not resume)
        raise RuntimeError(f"episode {self.episode.episode_id}: unexpected turn {payload!r}")


def play_step(
    graphs: EpisodeGraphs,
    context: RunContext,
    step: ReplayStep,
    user: SimulatedUser,
    method: str,
    human_turns: HumanTurns = "inline",
    *,
    show_context: bool = False,
) -> EpisodeRecord:
    """One step of a user's replay on the graph it needs (what the harness and benchmarks play)."""
    return play_episode(
        graphs.for_run(context, human_turns),
        context,
        step.episode,
        user,
        method=method,
        phase=step.phase,
        iteration=step.iteration,
        seq=step.seq,
        human_turns=human_turns,
        desk=graphs.desk,
        show_context=show_context,
    )


def play_episode(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    context: RunContext,
    episode: Episode,
    user: SimulatedUser,
    *,
    method: str,
    phase: int,
    iteration: int,
    seq: int,
    keep_checkpoints: bool = False,
    human_turns: HumanTurns = "inline",
    desk: HumanDesk | None = None,
    show_context: bool = False,
) -> EpisodeRecord:
    """Run one episode through ``graph``, playing the human with ``user``; score the action.

    Only the request (with this replay's request id and the episode's user) enters the graph.
    With ``human_turns="interrupt"`` the graph needs a checkpointer (see :data:`HumanTurns`).
    The record's memory sizes are left at zero: the caller, who owns the store, fills them in.

    An agent whose model keeps answering unusably (:class:`~pahf.reasoners.llm.LLMOutputError`
    after its retries) has failed this episode: the record says why in ``error`` and the run
    goes on. An action it had already shown the user is kept and scored (the failure was in
    learning from the feedback); otherwise there is none and the episode is scored wrong.
    A model that cannot be reached (:class:`~pahf.reasoners.llm.LLMCallError`) stops the run
    instead: every later episode would fail the same way, and a rerun resumes where it stopped.
    """
    started = time.perf_counter()
    request = replay_request(episode, phase, iteration, show_context=show_context)
    request_id = request.request_id
    thread_id = f"{episode.domain}/{method}/{request_id}"
    tracker = new_tracker()
    human = _SimulatedTurns(episode, user)
    # A thread only exists where there is a checkpointer: without one LangGraph would merely copy
    # the id into every step's metadata (~0.04 ms per run with no-op services, 3-5% of it).
    configurable: dict[str, Any] = {"thread_id": thread_id} if graph.checkpointer else {}
    if human_turns == "inline" and desk is None:
        raise ValueError("inline human turns need the HumanDesk the graph was built with")
    attend = desk.attending(request_id, human) if desk is not None else contextlib.nullcontext()
    config: RunnableConfig = {"configurable": configurable, "callbacks": [tracker]}
    # The harness never resumes an episode from a mid-run checkpoint (a half-played episode is
    # replayed from the user's snapshot), so checkpoints are only needed at interrupts: "exit"
    # writes them when a run stops, not after every step (measured in bench/README.md).
    durability: dict[str, Any] = {"durability": "exit"} if graph.checkpointer else {}
    error: str | None = None
    error_replies: list[str] = []
    with attend:
        try:
            result = graph.invoke({"request": request}, config, context=context, **durability)
            while pending := result.get("__interrupt__"):
                if human_turns == "inline":
                    raise RuntimeError(
                        f"episode {episode.episode_id}: the graph interrupted an inline run"
                    )
                resume = human(pending[0].value)
                result = graph.invoke(Command(resume=resume), config, context=context, **durability)
        except LLMOutputError as exc:
            result, error, error_replies = {}, str(exc), exc.replies
    action = result.get("action")
    if isinstance(action, dict):
        action = Action.model_validate(action)
    if action is None and human.shown is not None:
        action = human.shown  # the run failed after acting (learning from the feedback)
    ops = [
        op if isinstance(op, AppliedMemoryOp) else AppliedMemoryOp.model_validate(op)
        for op in result.get("memory_ops", [])
    ]
    retrieved = [
        (m if isinstance(m, RetrievedMemory) else RetrievedMemory.model_validate(m)).record.id
        for m in result.get("memories", [])
    ]
    if (
        not keep_checkpoints
        and graph.checkpointer is not None
        and hasattr(graph.checkpointer, "delete_thread")
    ):
        graph.checkpointer.delete_thread(thread_id)
    calls, input_tokens, output_tokens = read_usage(tracker)
    return EpisodeRecord(
        domain=episode.domain,
        method=method,
        phase=phase,
        iteration=iteration,
        episode_id=episode.episode_id,
        user=episode.user,
        index=episode.index,
        seq=seq,
        request_id=request_id,
        request=request.model_copy(update={"request_id": episode.request.request_id}),
        question=human.question,
        answer=human.answer,
        action=action,
        correct=action is not None and action.candidate_id in episode.truth.correct_ids,
        correct_ids=list(episode.truth.correct_ids),
        feedback_requested=human.feedback_requested,
        feedback=human.feedback,
        memories_retrieved=retrieved,
        memory_ops=ops,
        llm_calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens=input_tokens + output_tokens,
        seconds=round(time.perf_counter() - started, 4),
        error=error,
        error_replies=error_replies,
    )
