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
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pahf.eval.episodes import (
    DOMAINS,
    LEARNING_PHASES,
    Benchmark,
    SimulatedUser,
)
from pahf.eval.methods import METHODS, context_for_method
from pahf.eval.noise import NoisyFeedback, statements_by_user_phase
from pahf.eval.play import (
    BLANK_ANSWER,
    PRIVATE_CONTEXT_DOMAINS,
    EpisodeGraphs,
    HumanTurns,
    SimulatedUserError,
    memory_sizes,
    play_episode,
    play_step,
    replay_request,
    replay_request_id,
)
from pahf.eval.protocol import (
    ReplayStep,
    benchmark_info,
    check_benchmark,
    replay_contexts,
    replay_order,
    select_users,
    users_only,
)
from pahf.eval.results import EpisodeLog, RunKey, appends_can_be_locked, run_key
from pahf.eval.rundir import (
    Archiver,
    RunConfigMismatch,
    archive_memories,
    final_records,
    prepare_run_dir,
)
from pahf.eval.services import (
    EvalServices,
    default_services,
    embedding_factory,
    reasoner_factory,
    simulator_for,
)
from pahf.eval.settings import (
    MAX_INTERRUPTS,
    MAX_ITERATIONS,
    SIMULATORS,
    BenchmarkInfo,
    EvalOutcome,
    EvalSettings,
    FrozenMemoryError,
    Simulator,
)
from pahf.eval.snapshots import reset_snapshot, restore_user, save_snapshot
from pahf.eval.workers import (
    Progress,
    RunHooks,
    ThreadHooks,
    refuse_to_start_from_a_starting_worker,
    run_in_processes,
    run_in_threads,
)
from pahf.memory.base import PreferenceMemory, UnknownUserError
from pahf.memory.chroma import embedding_text
from pahf.memory.schema import MemoryRecord
from pahf.memory.store_lock import StoreLock

#: The harness's API: run_evaluation and what it takes and returns, whichever module
#: defines it (one job per module; callers import from here or from the module).
__all__ = [
    "BLANK_ANSWER",
    "MAX_INTERRUPTS",
    "MAX_ITERATIONS",
    "PRIVATE_CONTEXT_DOMAINS",
    "SIMULATORS",
    "BenchmarkInfo",
    "EpisodeGraphs",
    "EvalOutcome",
    "EvalServices",
    "EvalSettings",
    "FrozenMemoryError",
    "HumanTurns",
    "ReplayStep",
    "RunConfigMismatch",
    "SimulatedUserError",
    "Simulator",
    "archive_memories",
    "benchmark_info",
    "check_benchmark",
    "default_services",
    "embedding_factory",
    "final_records",
    "memory_sizes",
    "play_episode",
    "play_step",
    "prepare_run_dir",
    "reasoner_factory",
    "replay_contexts",
    "replay_order",
    "replay_request",
    "replay_request_id",
    "run_evaluation",
    "select_users",
    "simulator_for",
]


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
                reset_snapshot(snapshots, user)
            else:
                current, recovered = restore_user(snapshots, memory, user, self.log, self.done)
                if recovered is not None:
                    with self.lock:
                        self.recovered.append(recovered)
        if all(key in self.done for key in keys):
            return  # the last episode had finished; the snapshot logged it
        graphs = self.graphs[(domain, method)]
        sizes: tuple[int, int] | None = None
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
                graphs,
                ctx,
                step,
                simulated,
                method,
                self.human_turns,
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
            before = current
            if changed:
                current = memory.get_all(user)
            elif uses_memory and record.error is not None:
                # A failed episode reports no ops but may have written before it failed (an
                # answer stored, then the action failed): the snapshot must hold what is stored.
                current = memory.get_all(user)
                changed = current != before
            if current is not before or sizes is None:  # counted once per memory state
                sizes = memory_sizes(current)
            active, total = sizes
            record = record.model_copy(update={"memory_active": active, "memory_total": total})
            if changed:
                save_snapshot(snapshots, user, record, current, before)  # before the log line
            self.log.append(record)
            self._finished_one()


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
            self.benchmarks,
            self.settings,
            self.out_dir,
            services,
            hooks,
            self.done,
            self.human_turns,
        )
        for method in self.methods:
            run.open(self.domain, method)
        bench = self.benchmarks[self.domain]
        try:
            for user in self.users:
                steps = replay_order(bench, user, self.settings.iterations)
                for method in self.methods:
                    run.run_user(self.domain, method, user, steps)
        finally:
            run.log.close()
        # The vectors of these users' final memories, from this process's warm cache: the
        # parent archives the memories and would otherwise embed every one of them again.
        texts = sorted(
            {
                embedding_text(r.topic, r.text)
                for method in self.methods
                if context_for_method(method).use_memory
                for user in self.users
                for r in final_records(self.out_dir, self.domain, method, user)
            }
        )
        store = next(iter(run.stores.values()), None)
        vectors = store.encoder.encode(texts) if store is not None and texts else None
        return _TaskResult(self.domain, self.users, run.played, run.recovered, texts, vectors)


@dataclass(frozen=True)
class _TaskResult:
    domain: str
    users: tuple[str, ...]
    played: int
    recovered: list[RunKey]
    texts: list[str]
    vectors: np.ndarray | None


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
                    {d: _only_users(benchmarks[d], set(group)) for d in domains},
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


def _only_users(bench: Benchmark, users: set[str]) -> Benchmark:
    """``bench`` with the episodes and personas of ``users`` only: what a task needs, since
    every task is pickled to its worker process, and unpickling the whole data for every task
    was a visible share of a run. Every domain keeps those users, so pools keyed by user, like
    the noisy feedback's statements, are the same as over the whole data."""
    return bench.model_copy(update=users_only(bench, users))


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
    meanwhile: Callable[[], None] | None = None,
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
    ``meanwhile``: the caller's own work, done in this process while worker processes play
    (called repeatedly; it must be cheap once done), so it does not add to the wall time after
    them; not called when this process plays.
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
            meanwhile,
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
    meanwhile: Callable[[], None] | None = None,
) -> EvalOutcome:
    prepare_run_dir(out_dir, settings)
    log = EpisodeLog(out_dir / "episodes.jsonl")
    done = log.load()  # also repairs a torn last line, before any worker appends
    follower = log.follow()  # this run's lines, read as they come
    domains = [d for d in DOMAINS if d in settings.domains]
    methods = [m for m in METHODS if m in settings.methods]
    stores = [(d, m) for d in domains for m in methods]
    jobs: list[tuple[str, str, str, list[ReplayStep]]] = []
    for domain, method in stores:
        bench = benchmarks[domain]
        for user in bench.users():
            jobs.append((domain, method, user, replay_order(bench, user, settings.iterations)))
    scheduled = {
        run_key(d, m, s.phase, s.iteration, s.episode.episode_id)
        for d, m, _, steps in jobs
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
    archiver = (
        Archiver(out_dir, services.open_archive, stores)
        if services.open_archive is not None
        else None
    )
    if processes > 1:

        def archive_task(result: _TaskResult) -> None:
            # The parent waits on the workers: it archives each finished task's users now.
            if archiver is not None:
                known = [(result.texts, result.vectors)] if result.vectors is not None else []
                archiver.archive(result.domain, result.users, known)

        results, played = run_in_processes(
            tasks,
            processes,
            progress,
            max_episodes,
            on_result=archive_task,
            while_waiting=functools.partial(_while_waiting, follower.read_new, meanwhile),
        )
        recovered = [key for result in results for key in result.recovered]
    else:
        processes = 0
        hooks = ThreadHooks(progress, max_episodes)
        run = _Run(benchmarks, settings, out_dir, services, hooks, done, human_turns)
        for domain, method in stores:
            run.open(domain, method)
        try:
            run_in_threads(
                [functools.partial(_play_user, run, job) for job in jobs], workers, hooks
            )
        finally:
            run.log.close()
        played, recovered = run.played, run.recovered
        if archiver is not None:
            for domain in domains:
                archiver.archive(domain, benchmarks[domain].users())
    follower.read_new()  # the lines appended since it last read them
    # The log as load() would read it: the lines from before this run, then this run's.
    records = {k: r for k, r in {**done, **follower.records}.items() if k in scheduled}
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


def _while_waiting(read_log: Callable[[], None], meanwhile: Callable[[], None] | None) -> None:
    """The parent's work while its workers play: this run's new log lines, then the caller's."""
    read_log()
    if meanwhile is not None:
        meanwhile()


def _play_user(run: _Run, job: tuple[str, str, str, list[ReplayStep]], hooks: RunHooks) -> None:
    run.run_user(*job)
