"""The four-phase PAHF protocol, played through the compiled graph.

For every domain x method x user the harness replays the user's episodes in order:

    phase 1 (learning) x K iterations -> phase 2 (test) -> phase 3 (learning) x K -> phase 4 (test)

Each episode is one graph run: only ``episode.request`` goes in; the simulated user answers the
question and reacts to the action (``""`` accepts, a correction text otherwise) through an
human service the graph was built with, or, with ``human_turns="interrupt"``, through interrupts and
``Command(resume=...)`` exactly as a deployment would (same records; see :data:`HumanTurns`).
Test phases switch both human channels off and must not write memory (checked after every
episode). Memory carries across iterations and phases; each domain x method gets its
own store (worked on in memory, archived to the run directory at the end), and users are
isolated by the store (one collection per user), so a user's results depend on that user's
episodes only. That is why users can run concurrently (``workers``: processes, each with
its own working stores, see :mod:`pahf.eval.workers`) without changing any result.

Methods are the RunContext switches of :func:`pahf.eval.methods.context_for_method`. ``no-memory``
plays K learning iterations too (the reference forces one); with memory and both channels off
every iteration is the same, and keeping K makes the per-iteration tables line up.

Resuming: every finished episode is a line in ``episodes.jsonl`` and is skipped on rerun; each
user's memory is rebuilt from the snapshot saved after their last memory-changing episode
(:mod:`pahf.eval.snapshots`), so a half-played episode leaves no trace and is played again.
Each replay gets its own request id (episode, phase, iteration), so memory ids
are deterministic per replay and never collide across iterations.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict, Field

from pahf.context import RunContext
from pahf.decisions import Action
from pahf.errors import InputError
from pahf.eval.episodes import (
    DOMAINS,
    LEARNING_PHASES,
    PHASES,
    Benchmark,
    Domain,
    Episode,
    LeftOutRow,
    SimulatedUser,
)
from pahf.eval.methods import METHODS, Method, context_for_method
from pahf.eval.noise import NoisyFeedback, statements_by_user_phase
from pahf.eval.results import EpisodeLog, EpisodeRecord, RunKey, appends_can_be_locked, run_key
from pahf.eval.simulators import ParityUser, RuleBasedUser
from pahf.eval.snapshots import load_snapshot, restore_user, save_snapshot
from pahf.eval.usage import new_tracker, read_usage
from pahf.eval.workers import (
    Progress,
    RunHooks,
    ThreadHooks,
    refuse_to_start_from_a_starting_worker,
    run_in_processes,
    run_in_threads,
)
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.human import HumanDesk
from pahf.memory.base import PreferenceMemory, UnknownUserError
from pahf.memory.chroma import ChromaPreferenceMemory, embedding_text
from pahf.memory.embeddings import encoder_of
from pahf.memory.schema import AppliedMemoryOp, MemoryRecord, RetrievedMemory
from pahf.memory.store_lock import StoreLock
from pahf.memory.working import WorkingPreferenceMemory
from pahf.reasoners.base import Reasoner
from pahf.reasoners.llm import LLMDecisionError, LLMOutputError
from pahf.reasoners.offline import OfflineReasoner
from pahf.request import Request

#: An episode with more human turns than this is broken (budget is one question).
MAX_INTERRUPTS = 8


class FrozenMemoryError(RuntimeError):
    """A test-phase episode changed memory: the protocol forbids it."""


class BenchmarkInfo(BaseModel):
    """Which data a run used: resuming on different data would mix results.

    ``chance_rate``: the mean of 1/candidates over the episodes (what picking at random
    scores); ``left_out``: rows of the data left out because they contradict their own scene.
    """

    model_config = ConfigDict(extra="forbid")

    source: str
    sha256: str
    users: list[str]
    episodes: dict[int, int]
    chance_rate: float | None = None
    left_out: list[LeftOutRow] = Field(default_factory=list)


#: The simulated users: ``parity`` (the paper's: answers only what is asked, from the persona,
#: never from the answer key), ``rule-generous`` (an upper bound: answers with the persona's
#: whole preference as chosen with the answer key), ``llm`` (an LLM playing the persona).
Simulator = Literal["parity", "rule-generous", "llm"]
SIMULATORS: tuple[str, ...] = ("parity", "rule-generous", "llm")


#: Most learning iterations a run may ask for: the paper uses 3, and each user's replay
#: schedule is built in memory (--iterations 1000000000 grew to 3.4 GB with no output).
MAX_ITERATIONS = 100


class EvalSettings(BaseModel):
    """Everything that determines a run's results (stored in ``config.json``, checked on resume).

    The worker count is deliberately absent: it does not change results.
    """

    model_config = ConfigDict(extra="forbid")

    domains: list[Domain] = Field(min_length=1)
    methods: list[Method] = Field(min_length=1)
    iterations: int = Field(default=3, ge=1, le=MAX_ITERATIONS)
    seed: int = 0
    feedback_noise: float = Field(default=0.0, ge=0.0, le=1.0)
    reasoner: Literal["offline", "llm"] = "offline"
    model: str | None = None
    simulator: Simulator = "parity"
    embedding: Literal["minilm", "hashing"] = "minilm"
    #: Show the agent the embodied situation label ("Drowsy"), which the paper's agent never
    #: sees (an ablation; off by default).
    show_context: bool = False
    #: Clarification questions per request (the paper asks at most one).
    question_budget: int = Field(default=1, ge=0, le=10)
    benchmarks: dict[str, BenchmarkInfo] = Field(default_factory=dict)

    def parity_gaps(self) -> list[str]:
        """What makes this run differ from the paper's setting (empty: paper parity)."""
        gaps = []
        if self.simulator == "rule-generous":
            gaps.append("simulated user `rule-generous` (an upper bound, not the paper's user)")
        if self.show_context:
            gaps.append("the agent sees the embodied situation label (`--show-context`)")
        if self.question_budget != 1:
            gaps.append(f"question budget {self.question_budget} per request (the paper: 1)")
        if self.feedback_noise:
            gaps.append(f"feedback noise {self.feedback_noise}")
        return gaps


@dataclass
class EvalServices:
    """How a run gets its memory stores, reasoners and simulated user (tests swap these).

    ``open_memory`` gives the working store of a (domain, method) directory; it need not
    survive the process (resume rebuilds memory from :mod:`pahf.eval.snapshots`).
    ``open_archive``, if set, opens the store in that directory to which each user's final
    memory is written when the run (or its worker) finishes.
    """

    open_memory: Callable[[Path], PreferenceMemory]
    make_reasoner: Callable[[PreferenceMemory], Reasoner]
    simulator: SimulatedUser
    open_archive: Callable[[Path], PreferenceMemory] | None = None


@dataclass
class EvalOutcome:
    """What a call to :func:`run_evaluation` did."""

    settings: EvalSettings
    records: list[EpisodeRecord]
    complete: bool
    played: int
    skipped: int
    #: Episodes that had finished (their memory snapshot was saved) but missed their log line
    #: when the previous run died; a resume logs them instead of playing them again.
    recovered: list[RunKey] = field(default_factory=list)
    wall_seconds: float = 0.0
    #: Worker processes the run used (0: it ran in this process, on ``workers`` threads).
    worker_processes: int = 0


@dataclass(frozen=True)
class ReplayStep:
    """One episode run in a user's replay order."""

    phase: int
    iteration: int
    episode: Episode
    seq: int


# --------------------------------------------------------------------------- services


def _optional(module: str, attribute: str, what: str) -> Any:
    """Import an optional component lazily, with an error that says what is missing."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"{what} needs {module}.{attribute}, which is not available: {exc}"
        ) from exc


def reasoner_factory(kind: str, model: str | None) -> Callable[[PreferenceMemory], Reasoner]:
    """``offline``: the reference reasoner over the store's encoder; ``llm``: LLMReasoner."""
    if kind == "offline":
        return lambda memory: OfflineReasoner(memory.encoder)
    if kind == "llm":
        llm_reasoner = _optional("pahf.reasoners.llm", "LLMReasoner", "--reasoner llm")
        # Built now, so a missing key or bad setting fails before anything is written; it
        # keeps no memory of its own, so every store can share it.
        shared: Reasoner = llm_reasoner.from_settings(model=model)
        return lambda memory: shared
    raise ValueError(f"unknown reasoner {kind!r}; choose offline or llm")


def simulator_for(
    kind: str, model: str | None, benchmarks: Mapping[str, Benchmark] | None = None
) -> SimulatedUser:
    """``parity``: the paper-parity rule-based user; ``rule-generous``: the upper-bound user;
    ``llm``: an LLM playing the persona (see :data:`Simulator`).

    The parity and LLM users play the persona the benchmark's data gives each user in each
    phase (the published data's original and evolved personas); where there is none (generated
    data) the LLM plays a generic one told the persona's preference for the situation.
    """
    personas = {d: b.personas for d, b in (benchmarks or {}).items()}
    if kind == "parity":
        return ParityUser(personas)
    if kind == "rule-generous":
        return RuleBasedUser()
    if kind == "llm":
        llm_user = _optional("pahf.eval.llm_user", "LLMSimulatedUser", "--simulator llm")
        user: SimulatedUser = llm_user.from_settings(
            persona_prompts={},
            model=model,
            allow_generic_persona=True,
            phase_personas=personas,
        )
        return user
    raise ValueError(f"unknown simulator {kind!r}; choose {', '.join(SIMULATORS)}")


def embedding_factory(name: str) -> Callable[[], Any]:
    from pahf.memory.embeddings import HashingEmbeddingFunction, MiniLMEmbeddingFunction

    if name == "minilm":
        return MiniLMEmbeddingFunction
    if name == "hashing":
        return HashingEmbeddingFunction
    raise ValueError(f"unknown embedding {name!r}")


def default_services(
    settings: EvalSettings, benchmarks: Mapping[str, Benchmark] | None = None
) -> EvalServices:
    """Working stores in this process (:mod:`pahf.memory.working`), final memories archived
    to Chroma on disk in the run directory.

    The evaluation's durability comes from the episode log and the snapshots, not from the
    working store, and Chroma's in-memory client cost a quarter of a run's CPU (bench/README.md).
    """
    make_ef = embedding_factory(settings.embedding)
    return EvalServices(
        open_memory=lambda path: WorkingPreferenceMemory(encoder_of(make_ef())),
        make_reasoner=reasoner_factory(settings.reasoner, settings.model),
        simulator=simulator_for(settings.simulator, settings.model, benchmarks),
        open_archive=lambda path: ChromaPreferenceMemory(path, embedding_function=make_ef()),
    )


# --------------------------------------------------------------------------- benchmarks


def benchmark_info(bench: Benchmark) -> BenchmarkInfo:
    # Personas count where there are any (an LLM simulated user plays them); a benchmark
    # without them keeps the digest it had before they existed, so its runs still resume.
    dump = bench.model_dump_json(exclude=None if bench.personas else {"personas"})
    digest = hashlib.sha256(dump.encode("utf-8")).hexdigest()
    episodes = [e for eps in bench.episodes.values() for e in eps]
    chance = sum(1.0 / len(e.request.candidates) for e in episodes) / max(1, len(episodes))
    return BenchmarkInfo(
        source=bench.source,
        sha256=digest,
        users=bench.users(),
        episodes={phase: len(eps) for phase, eps in sorted(bench.episodes.items())},
        chance_rate=round(chance, 4),
        left_out=list(bench.left_out),
    )


def check_benchmark(bench: Benchmark) -> None:
    """Refuse a benchmark the protocol cannot replay faithfully (clear message, nothing run)."""
    missing = [p for p in PHASES if not bench.episodes.get(p)]
    if missing:
        raise ValueError(
            f"{bench.domain} benchmark ({bench.source}) has no episodes in phase(s) {missing}"
        )
    for phase, episodes in bench.episodes.items():
        seen: set[str] = set()
        for ep in episodes:
            if ep.phase != phase or ep.domain != bench.domain:
                raise ValueError(
                    f"{bench.source}: episode {ep.episode_id} is {ep.domain} phase {ep.phase} but "
                    f"is listed under {bench.domain} phase {phase}"
                )
            if ep.episode_id in seen:
                raise ValueError(
                    f"{bench.source}: episode id {ep.episode_id!r} repeats in phase {phase}"
                )
            seen.add(ep.episode_id)


def select_users(
    bench: Benchmark, names: Sequence[str] | None = None, limit: int | None = None
) -> Benchmark:
    """The benchmark restricted to the named users and/or its first ``limit`` users."""
    available = bench.users()
    chosen = list(available)
    if names:
        unknown = [n for n in names if n not in available]
        if unknown:
            raise LookupError(
                f"unknown user {unknown[0]!r} in the {bench.domain} benchmark ({bench.source}); "
                f"its users are: {', '.join(available)}"
            )
        chosen = [u for u in available if u in set(names)]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--users must be at least 1, got {limit}")
        chosen = chosen[:limit]
    keep = set(chosen)
    return bench.model_copy(
        update={
            "episodes": {
                phase: [e for e in eps if e.user in keep] for phase, eps in bench.episodes.items()
            },
            "personas": {
                phase: {u: p for u, p in prompts.items() if u in keep}
                for phase, prompts in bench.personas.items()
            },
            "left_out": [r for r in bench.left_out if _row_user(r.row_id, available) in keep],
        }
    )


def _row_user(row_id: str, users: Sequence[str]) -> str | None:
    """The user a left-out row belongs to (its id is ``<domain>-p<phase>-<user>-<index>``)."""
    body = row_id.split("-", 2)[-1].rsplit("-", 1)[0]
    return body if body in users else None


def replay_order(bench: Benchmark, user: str, iterations: int) -> list[ReplayStep]:
    """A user's episode runs in protocol order: P1 x K, P2, P3 x K, P4, each phase by index."""
    steps: list[ReplayStep] = []
    for phase in PHASES:
        episodes = sorted(
            (e for e in bench.episodes.get(phase, []) if e.user == user),
            key=lambda e: (e.index, e.episode_id),
        )
        for iteration in range(1, (iterations if phase in LEARNING_PHASES else 1) + 1):
            for ep in episodes:
                steps.append(ReplayStep(phase, iteration, ep, len(steps)))
    return steps


def replay_contexts(method: str, user: str, **overrides: Any) -> tuple[RunContext, RunContext]:
    # ``overrides`` may set ``question_budget`` (EvalSettings.question_budget).
    """(learning, test) run contexts of ``user``'s replay under ``method``: test phases switch
    both human channels off, so they measure what memory alone has learned."""
    learn = context_for_method(method, user_id=user, **overrides)
    return learn, learn.model_copy(update={"pre_action": False, "post_action": False})


# --------------------------------------------------------------------------- one episode


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
        self.plain: CompiledStateGraph[Any, Any, Any, Any] = build_graph(
            reasoner, memory, human=self.desk
        )
        self._interrupting: CompiledStateGraph[Any, Any, Any, Any] | None = None

    @property
    def interrupting(self) -> CompiledStateGraph[Any, Any, Any, Any]:
        if self._interrupting is None:
            self._interrupting = build_graph(
                self._reasoner, self._memory, memory_checkpointer()
            )
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
    if not keep_checkpoints and graph.checkpointer is not None and hasattr(
        graph.checkpointer, "delete_thread"
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


# --------------------------------------------------------------------------- the run


class RunConfigMismatch(InputError):
    """The output directory holds a run made with other settings."""


def _prepare_run_dir(out_dir: Path, settings: EvalSettings) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "config.json"
    if path.exists():
        try:
            stored = EvalSettings.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunConfigMismatch(f"{path} is not a readable run configuration: {exc}") from exc
        if stored != settings:
            old, new = stored.model_dump(), settings.model_dump()
            diffs = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if old.get(k) != new[k]]
            shown = "; ".join(d if len(d) < 160 else d[:157] + "..." for d in diffs)
            raise RunConfigMismatch(
                f"{out_dir} holds a run with other settings ({shown}); rerun with the same "
                "options to resume it, or choose another --out"
            )
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings.model_dump(mode="json"), indent=2), encoding="utf-8")
    tmp.replace(path)


class _Run:
    """State shared by the episodes of one task: one store, or every store on threads."""

    def __init__(
        self,
        benchmarks: Mapping[str, Benchmark],
        settings: EvalSettings,
        out_dir: Path,
        services: EvalServices,
        hooks: RunHooks,
        done: Iterable[RunKey],
        human_turns: HumanTurns = "inline",
    ) -> None:
        self.benchmarks = benchmarks
        self.human_turns: HumanTurns = human_turns
        self.settings = settings
        self.out_dir = out_dir
        self.services = services
        self.hooks = hooks
        self.log = EpisodeLog(out_dir / "episodes.jsonl")
        self.done: set[RunKey] = set(done)
        self.lock = threading.Lock()
        self.played = 0
        self.recovered: list[RunKey] = []
        self.stores: dict[tuple[str, str], PreferenceMemory] = {}
        self.graphs: dict[tuple[str, str], EpisodeGraphs] = {}
        all_episodes = [e for b in benchmarks.values() for eps in b.episodes.values() for e in eps]
        self.noise = (
            NoisyFeedback(
                services.simulator,
                settings.feedback_noise,
                settings.seed,
                statements_by_user_phase(all_episodes),
            )
            if settings.feedback_noise > 0
            else None
        )

    def open(self, domain: str, method: str) -> None:
        store = self.services.open_memory(self.out_dir / "memory" / f"{domain}-{method}")
        self.stores[(domain, method)] = store
        self.graphs[(domain, method)] = EpisodeGraphs(self.services.make_reasoner(store), store)

    def _finished_one(self) -> None:
        with self.lock:
            self.played += 1
        self.hooks.finished_one()

    def run_user(self, domain: str, method: str, user: str, steps: Sequence[ReplayStep]) -> None:
        """Replay one user's episodes in order (the unit of concurrency on threads)."""
        keys = [run_key(domain, method, s.phase, s.iteration, s.episode.episode_id) for s in steps]
        if all(key in self.done for key in keys):
            return  # finished in an earlier run: its final memory is in its snapshot
        memory = self.stores[(domain, method)]
        learn_ctx, test_ctx = replay_contexts(
            method, user, question_budget=self.settings.question_budget
        )
        uses_memory = learn_ctx.use_memory
        snapshots = self.out_dir / "snapshots" / f"{domain}-{method}"
        # The user's memory as of now. Only this job touches this user's memory and nodes write
        # it only through the ops they report, so it is re-read only after an episode that
        # reported ops: that one read gives the sizes to log and the snapshot to save.
        current: list[MemoryRecord] = []
        if uses_memory:
            if not any(key in self.done for key in keys):
                # The log is the source of truth: no finished episode means empty memory (this
                # also cleans up after a log deleted by hand next to a kept store).
                with contextlib.suppress(UnknownUserError):
                    memory.forget(user)
            else:
                current, recovered = restore_user(snapshots, memory, user, self.log, self.done)
                if recovered is not None:
                    with self.lock:
                        self.recovered.append(recovered)
        if all(key in self.done for key in keys):
            return  # the last episode had finished; the snapshot logged it
        graphs = self.graphs[(domain, method)]
        for step, key in zip(steps, keys, strict=True):
            if key in self.done:
                continue
            if self.hooks.should_stop():
                return
            learning = step.phase in LEARNING_PHASES
            simulated: SimulatedUser = self.services.simulator
            if self.noise is not None:
                request_id = replay_request_id(step.episode, step.phase, step.iteration)
                simulated = self.noise.for_run(f"{domain}/{method}/{request_id}")
            ctx = learn_ctx if learning else test_ctx
            record = play_step(
                graphs, ctx, step, simulated, method, self.human_turns,
                show_context=self.settings.show_context,
            )
            if not learning and uses_memory:
                # Test phases must not write: reported ops, or a record count that moved (a
                # write that bypassed the ops), stop the run.
                stored = memory.count(user)
                if record.memory_ops or stored != len(current):
                    raise FrozenMemoryError(
                        f"{domain}/{method}: test-phase episode {step.episode.episode_id} "
                        f"changed the memory of {user!r} (ops "
                        f"{[op.kind for op in record.memory_ops]}, {len(current)} -> {stored} "
                        "records)"
                    )
            changed = uses_memory and bool(record.memory_ops)
            if changed:
                current = memory.get_all(user)
            elif uses_memory and record.error is not None:
                # A failed episode reports no ops but may have written before it failed (an
                # answer stored, then the action failed): the snapshot must hold what is stored.
                before, current = current, memory.get_all(user)
                changed = current != before
            active, total = memory_sizes(current)
            record = record.model_copy(update={"memory_active": active, "memory_total": total})
            if changed:
                save_snapshot(snapshots, user, record, current)  # before the log line
            self.log.append(record)
            self._finished_one()


def archive_memories(
    out_dir: Path,
    open_archive: Callable[[Path], PreferenceMemory],
    benchmarks: Mapping[str, Benchmark],
    stores: Sequence[tuple[str, str]],
    known: Sequence[tuple[Sequence[str], np.ndarray]] = (),
) -> None:
    """Write each user's final memory (their last snapshot) to the run directory's stores, so
    ``pahf memory list --store DIR/memory/<domain>-<method>`` shows what the run learned.

    ``known``: (texts, vectors) the worker processes already embedded; they prime the archive's
    encoder so the memories are not embedded a second time here.
    """
    primed: set[int] = set()
    for domain, method in stores:
        if not context_for_method(method).use_memory:
            continue
        archive = open_archive(out_dir / "memory" / f"{domain}-{method}")
        prime = getattr(archive.encoder, "prime", None)
        if prime is not None and id(archive.encoder) not in primed:
            primed.add(id(archive.encoder))
            for texts, vectors in known:
                prime(texts, vectors)
        for user in benchmarks[domain].users():
            records = _final_records(out_dir, domain, method, user)
            with contextlib.suppress(UnknownUserError):
                archive.forget(user)
            if records:
                archive.import_records(user, records)


#: Rough relative cost of an episode per method (memory writes dominate), to start the longest
#: stores first when worker processes share them out.
_METHOD_COST: dict[str, int] = {"no-memory": 1, "pre-only": 2, "post-only": 3, "pahf": 3}


@dataclass(frozen=True)
class _UsersTask:
    """Some users of one domain, under every method, played in a worker process (so it must
    pickle). Working stores are per process and in memory; users never share anything, so
    any split of the users gives the same results, and a user's texts are embedded once."""

    benchmarks: Mapping[str, Benchmark]
    settings: EvalSettings
    out_dir: Path
    domain: str
    methods: tuple[str, ...]
    users: tuple[str, ...]
    done: frozenset[RunKey]
    human_turns: HumanTurns

    def cost(self) -> int:
        bench = self.benchmarks[self.domain]
        runs = sum(len(replay_order(bench, user, self.settings.iterations)) for user in self.users)
        return runs * sum(_METHOD_COST.get(m, 1) for m in self.methods)

    def __call__(self, hooks: RunHooks) -> _TaskResult:
        services = default_services(self.settings, self.benchmarks)
        run = _Run(
            self.benchmarks, self.settings, self.out_dir, services, hooks, self.done,
            self.human_turns,
        )
        for method in self.methods:
            run.open(self.domain, method)
        bench = self.benchmarks[self.domain]
        for user in self.users:
            steps = replay_order(bench, user, self.settings.iterations)
            for method in self.methods:
                run.run_user(self.domain, method, user, steps)
        # The vectors of these users' final memories, from this process's warm cache: the
        # parent archives the memories and would otherwise embed every one of them again.
        texts = sorted(
            {
                embedding_text(r.topic, r.text)
                for method in self.methods
                if context_for_method(method).use_memory
                for user in self.users
                for r in _final_records(self.out_dir, self.domain, method, user)
            }
        )
        store = next(iter(run.stores.values()), None)
        vectors = store.encoder.encode(texts) if store is not None and texts else None
        return _TaskResult(run.played, run.recovered, texts, vectors)


@dataclass(frozen=True)
class _TaskResult:
    played: int
    recovered: list[RunKey]
    texts: list[str]
    vectors: np.ndarray | None


def _final_records(out_dir: Path, domain: str, method: str, user: str) -> list[MemoryRecord]:
    snap = load_snapshot(out_dir / "snapshots" / f"{domain}-{method}", user)
    return [] if snap is None else list(snap.records)


def _user_tasks(
    benchmarks: Mapping[str, Benchmark],
    settings: EvalSettings,
    out_dir: Path,
    domains: Sequence[str],
    methods: Sequence[str],
    done: Iterable[RunKey],
    human_turns: HumanTurns,
    workers: int,
) -> list[_UsersTask]:
    """Each domain's users dealt round-robin into ``2 x workers`` groups, longest first."""
    tasks = []
    for domain in domains:
        users = benchmarks[domain].users()
        groups = [tuple(users[i :: 2 * workers]) for i in range(min(len(users), 2 * workers))]
        for group in groups:
            ids = _ids(benchmarks[domain], set(group))
            tasks.append(
                _UsersTask(
                    {d: benchmarks[d] for d in domains},
                    settings,
                    out_dir,
                    domain,
                    tuple(methods),
                    group,
                    frozenset(k for k in done if k[0] == domain and k[4] in ids),
                    human_turns,
                )
            )
    tasks.sort(key=lambda t: -t.cost())  # longest first: the last to start are short
    return tasks


def _ids(bench: Benchmark, users: set[str]) -> set[str]:
    return {e.episode_id for eps in bench.episodes.values() for e in eps if e.user in users}


def run_evaluation(
    benchmarks: Mapping[str, Benchmark],
    settings: EvalSettings,
    out_dir: Path,
    *,
    workers: int = 1,
    services: EvalServices | None = None,
    progress: Progress | None = None,
    max_episodes: int | None = None,
    human_turns: HumanTurns = "inline",
) -> EvalOutcome:
    """Play (or resume) the protocol for ``settings.domains`` x ``settings.methods``.

    Appends to ``out_dir/episodes.jsonl`` and returns every record of the run, old and new.
    ``max_episodes`` stops after that many newly played episodes (the run is then incomplete
    and a rerun resumes it). Results do not depend on ``workers``.

    With ``workers`` > 1 and the default services, each domain's users are dealt out to that
    many worker processes, a user's every method in one process (:mod:`pahf.eval.workers`);
    each user's final memory is then archived in the run directory from their snapshot.
    Services passed in are objects of this process, so their runs use threads instead, one
    user at a time per thread. ``human_turns``: see :data:`HumanTurns` (results are the same).
    """
    started = time.perf_counter()
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    for method in settings.methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    for domain in settings.domains:
        if domain not in benchmarks:
            raise ValueError(f"no benchmark given for domain {domain!r}")
        check_benchmark(benchmarks[domain])
    settings = settings.model_copy(
        update={"benchmarks": {d: benchmark_info(benchmarks[d]) for d in settings.domains}}
    )
    in_process = services is not None
    if workers > 1 and not in_process and not appends_can_be_locked():
        # Worker processes share the episode log; without a file lock their lines could
        # interleave. Results do not depend on workers, only the time does.
        warnings.warn(
            f"workers={workers} needs a file lock for the shared episode log, which this "
            "platform lacks (no fcntl): playing in this process instead",
            RuntimeWarning,
            stacklevel=2,
        )
        workers = 1
    # Built first, so a bad LLM setup or missing key fails before anything is written.
    services = services or default_services(settings, benchmarks)
    # A worker re-importing a script without the main guard: say that, not "directory busy".
    refuse_to_start_from_a_starting_worker()
    out_dir.mkdir(parents=True, exist_ok=True)
    # One process writes a run directory: the same --out started twice played every episode
    # twice and logged it twice. The lock goes with this process, even on kill -9.
    run_lock = StoreLock(out_dir, kind="run")
    run_lock.acquire()
    try:
        return _run_locked(
            benchmarks,
            settings,
            out_dir,
            workers,
            services,
            progress,
            max_episodes,
            human_turns,
            in_process,
            started,
        )
    finally:
        run_lock.release()


def _run_locked(
    benchmarks: Mapping[str, Benchmark],
    settings: EvalSettings,
    out_dir: Path,
    workers: int,
    services: EvalServices,
    progress: Progress | None,
    max_episodes: int | None,
    human_turns: HumanTurns,
    in_process: bool,
    started: float,
) -> EvalOutcome:
    _prepare_run_dir(out_dir, settings)
    log = EpisodeLog(out_dir / "episodes.jsonl")
    done = log.load()  # also repairs a torn last line, before any worker appends
    domains = [d for d in DOMAINS if d in settings.domains]
    methods = [m for m in METHODS if m in settings.methods]
    stores = [(d, m) for d in domains for m in methods]
    jobs: list[tuple[str, str, str, list[ReplayStep]]] = []
    for domain, method in stores:
        bench = benchmarks[domain]
        for user in bench.users():
            jobs.append((domain, method, user, replay_order(bench, user, settings.iterations)))
    scheduled = {
        run_key(d, m, s.phase, s.iteration, s.episode.episode_id) for d, m, _, steps in jobs
        for s in steps
    }
    skipped = len(scheduled & done.keys())
    if progress is not None:
        progress.start(len(scheduled), skipped)
    tasks = (
        _user_tasks(benchmarks, settings, out_dir, domains, methods, done, human_turns, workers)
        if workers > 1 and not in_process
        else []
    )
    processes = min(workers, len(tasks))
    known: list[tuple[Sequence[str], np.ndarray]] = []  # vectors the workers computed
    if processes > 1:
        results, played = run_in_processes(tasks, processes, progress, max_episodes)
        recovered = [key for result in results for key in result.recovered]
        known = [(r.texts, r.vectors) for r in results if r.vectors is not None]
    else:
        processes = 0
        hooks = ThreadHooks(progress, max_episodes)
        run = _Run(benchmarks, settings, out_dir, services, hooks, done, human_turns)
        for domain, method in stores:
            run.open(domain, method)
        run_in_threads(
            [functools.partial(_play_user, run, job) for job in jobs], workers, hooks
        )
        played, recovered = run.played, run.recovered
    if services.open_archive is not None:
        archive_memories(out_dir, services.open_archive, benchmarks, stores, known)
    records = {k: r for k, r in log.load().items() if k in scheduled}
    return EvalOutcome(
        settings=settings,
        records=list(records.values()),
        complete=len(records) == len(scheduled),
        played=played,
        skipped=skipped,
        recovered=sorted(recovered),
        wall_seconds=round(time.perf_counter() - started, 3),
        worker_processes=processes,
    )


def _play_user(run: _Run, job: tuple[str, str, str, list[ReplayStep]], hooks: RunHooks) -> None:
    run.run_user(*job)
