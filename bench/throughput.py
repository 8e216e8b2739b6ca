"""Benchmark 1: episodes per second offline, and what LangGraph and the harness cost.

Five ways to play the same episodes (the generated benchmark at the chosen size, both domains,
all four methods, the four-phase protocol), each on fresh stores with the embedding cache empty:

* **harness + graph, 1 worker** and **2 workers**: ``run_evaluation``, exactly what
  ``pahf eval`` does (episode log, snapshots, memory-size checks, worker processes);
* **graph only**: the compiled graph driven episode by episode with ``play_step``, as the
  harness drives it, without log or snapshots;
* **least graph**: :func:`pahf.bench.least_pahf.least_pahf_graph`, the same five nodes and
  calls in the least LangGraph graph (plain TypedDict state, nothing else): LangGraph's own cost;
* **bare**: :func:`pahf.bench.bare.play_bare`, the reasoner and memory called directly.

Graph overhead = (graph only - bare) / graph only, in CPU time (the least graph's the same
way); harness overhead = (harness 1 worker - graph only) / harness 1 worker. Graph only, least
graph and bare are measured in interleaved rounds (:func:`compare_graph_and_bare`) because the
machine's drift is as large as the difference. All must choose the same action in every
episode: the table says how many differ (0 expected), so the ratio compares equal work.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pahf.bench.bare import play_bare
from pahf.bench.common import BenchReport, BenchTable, Size, cpu_seconds, reporting
from pahf.bench.least_pahf import least_pahf_graph, play_least
from pahf.bench.workload import WORKLOADS, build_benchmarks, describe, episode_count
from pahf.context import RunContext
from pahf.eval.episodes import DOMAINS, LEARNING_PHASES, Benchmark, SimulatedUser
from pahf.eval.methods import METHODS, Method
from pahf.eval.runner import (
    EpisodeGraphs,
    EvalSettings,
    ReplayStep,
    embedding_factory,
    play_step,
    replay_contexts,
    replay_order,
    run_evaluation,
)
from pahf.eval.simulators import RuleBasedUser
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import MiniLMEncoder, VectorCache
from pahf.reasoners.offline import OfflineReasoner

#: (domain, method, phase, iteration, episode id) -> chosen candidate id
Choices = dict[tuple[str, str, int, int, str], str]


@dataclass
class RunResult:
    name: str
    episodes: int
    seconds: float
    correct: int
    choices: Choices
    cpu_seconds: float = 0.0
    cpu_by_method: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.episodes / self.seconds if self.seconds > 0 else float("nan")

    @property
    def ms_per_episode(self) -> float:
        return 1000.0 * self.seconds / self.episodes if self.episodes else float("nan")


Embedding = Literal["minilm", "hashing"]


def new_store(embedding: Embedding) -> ChromaPreferenceMemory:
    """A new working store as the harness makes them: in memory, with its embedding model.

    MiniLM's vector cache is shared by every store of the process, as in ``pahf eval``: call
    :func:`cold_embeddings` once at the start of a measured run, not per store.
    """
    return ChromaPreferenceMemory(None, embedding_function=embedding_factory(embedding)())


def cold_embeddings() -> None:
    """Every run starts with an empty MiniLM cache (the model is shared per process)."""
    MiniLMEncoder.shared().clear_cache()


def run_harness(
    benchmarks: dict[str, Benchmark],
    methods: list[Method],
    iterations: int,
    workers: int,
    embedding: Embedding = "minilm",
) -> RunResult:
    """``pahf eval`` minus the report: the harness and the graph, on fresh stores."""
    cold_embeddings()
    settings = EvalSettings(
        domains=[d for d in DOMAINS if d in benchmarks],
        methods=methods,
        iterations=iterations,
        embedding=embedding,
    )
    with tempfile.TemporaryDirectory(prefix="pahf-bench-") as tmp:
        started, cpu = time.perf_counter(), cpu_seconds()
        outcome = run_evaluation(benchmarks, settings, Path(tmp) / "run", workers=workers)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    choices: Choices = {
        (r.domain, r.method, r.phase, r.iteration, r.episode_id): (
            r.action.candidate_id if r.action else ""
        )
        for r in outcome.records
    }
    return RunResult(
        name=f"harness + graph, {workers} worker{'s' if workers > 1 else ''}",
        episodes=len(outcome.records),
        seconds=seconds,
        correct=sum(r.correct for r in outcome.records),
        choices=choices,
        cpu_seconds=cpu,
    )


#: Plays one replay step: (context, step, simulated user, method) -> (chosen id, correct?)
EpisodeFn = Callable[[RunContext, ReplayStep, SimulatedUser, str], tuple[str, bool]]
#: Makes a path's episode driver for one store (once per store, as the harness builds graphs).
PlayerFactory = Callable[[OfflineReasoner, ChromaPreferenceMemory], EpisodeFn]


def graph_player(reasoner: OfflineReasoner, store: ChromaPreferenceMemory) -> EpisodeFn:
    """The compiled graph, driven as the harness drives it (``play_step``)."""
    graphs = EpisodeGraphs(reasoner, store)

    def play(
        ctx: RunContext, step: ReplayStep, simulated: SimulatedUser, method: str
    ) -> tuple[str, bool]:
        record = play_step(graphs, ctx, step, simulated, method)
        return (record.action.candidate_id if record.action else "", record.correct)

    return play


def bare_player(reasoner: OfflineReasoner, store: ChromaPreferenceMemory) -> EpisodeFn:
    """The same calls without LangGraph (:func:`pahf.bench.bare.play_bare`)."""

    def play(
        ctx: RunContext, step: ReplayStep, simulated: SimulatedUser, method: str
    ) -> tuple[str, bool]:
        out = play_bare(
            reasoner, store, ctx, step.episode, simulated,
            phase=step.phase, iteration=step.iteration,
        )
        return out.candidate_id, out.correct

    return play


def least_player(reasoner: OfflineReasoner, store: ChromaPreferenceMemory) -> EpisodeFn:
    """The same calls in the least LangGraph graph of the same five nodes
    (:func:`pahf.bench.least_pahf.least_pahf_graph`)."""
    graph = least_pahf_graph(reasoner, store)

    def play(
        ctx: RunContext, step: ReplayStep, simulated: SimulatedUser, method: str
    ) -> tuple[str, bool]:
        out = play_least(
            graph, ctx, step.episode, simulated, phase=step.phase, iteration=step.iteration
        )
        return out.candidate_id, out.correct

    return play


PATHS: dict[str, tuple[str, PlayerFactory]] = {
    "graph": ("graph only (play_episode)", graph_player),
    "least": ("least LangGraph graph, same nodes", least_player),
    "bare": ("bare reasoner + memory", bare_player),
}


def _replay_block(
    domain: str,
    bench: Benchmark,
    method: Method,
    iterations: int,
    make_player: PlayerFactory,
    embedding: Embedding,
    into: RunResult,
) -> None:
    """Replay every user's protocol for one (domain, method) on a fresh store into ``into``."""
    started, cpu = time.perf_counter(), cpu_seconds()
    store = new_store(embedding)
    play = make_player(OfflineReasoner(store.encoder), store)
    simulated = RuleBasedUser()
    for user in bench.users():
        learn_ctx, test_ctx = replay_contexts(method, user)
        for step in replay_order(bench, user, iterations):
            ctx = learn_ctx if step.phase in LEARNING_PHASES else test_ctx
            chosen, ok = play(ctx, step, simulated, method)
            into.choices[(domain, method, step.phase, step.iteration, step.episode.episode_id)] = (
                chosen
            )
            into.correct += ok
    cpu = cpu_seconds() - cpu
    into.seconds += time.perf_counter() - started
    into.cpu_seconds += cpu
    into.cpu_by_method[method] = into.cpu_by_method.get(method, 0.0) + cpu
    into.episodes = len(into.choices)


def compare_graph_and_bare(
    benchmarks: dict[str, Benchmark],
    methods: list[Method],
    iterations: int,
    embedding: Embedding = "minilm",
    rounds: int = 3,
) -> dict[str, list[RunResult]]:
    """The graph and the bare driver on the same episodes, interleaved, ``rounds`` times.

    On a shared machine the load drifts by 10-15% within a minute, which is as large as the
    difference being measured; so the two paths take turns by (domain, method) block, the
    first to go alternating between rounds, and each keeps its own MiniLM vector cache (emptied
    at the start of every round), so each round of each path does exactly the work of a
    standalone cold run. Returns each path's result per round.
    """
    shared = MiniLMEncoder.shared() if embedding == "minilm" else None
    caches = {path: VectorCache() for path in PATHS}
    results: dict[str, list[RunResult]] = {path: [] for path in PATHS}
    for number in range(rounds):
        current = {
            path: RunResult(name=name, episodes=0, seconds=0.0, correct=0, choices={})
            for path, (name, _) in PATHS.items()
        }
        for cache in caches.values():
            cache.clear()
        order = list(PATHS) if number % 2 == 0 else list(reversed(PATHS))
        for domain, bench in benchmarks.items():
            for method in methods:
                for path in order:
                    with shared.using_cache(caches[path]) if shared else nullcontext():
                        _replay_block(
                            domain, bench, method, iterations, PATHS[path][1], embedding,
                            current[path],
                        )
        for path, result in current.items():
            results[path].append(result)
    return results


def cpu_overhead(run: RunResult, control: RunResult) -> float:
    """The share of ``run``'s CPU time that ``control``, doing the same work, did not need."""
    return (run.cpu_seconds - control.cpu_seconds) / run.cpu_seconds


def _percents(values: list[float]) -> str:
    return ", ".join(f"{100 * v:.1f}%" for v in values)


def mean_result(runs: list[RunResult]) -> RunResult:
    """One row for a path's rounds: mean times per round, the first round's choices (the
    caller checks that every round chose alike)."""
    n = len(runs)
    methods = {m for r in runs for m in r.cpu_by_method}
    return RunResult(
        name=f"{runs[0].name}, mean of {n} round{'s' if n > 1 else ''}",
        episodes=runs[0].episodes,
        seconds=sum(r.seconds for r in runs) / n,
        correct=runs[0].correct,
        choices=runs[0].choices,
        cpu_seconds=sum(r.cpu_seconds for r in runs) / n,
        cpu_by_method={m: sum(r.cpu_by_method.get(m, 0.0) for r in runs) / n for m in methods},
    )


def _differences(a: Choices, b: Choices) -> int:
    keys = set(a) | set(b)
    return sum(1 for k in keys if a.get(k) != b.get(k))


def run(
    size: Size = "default",
    methods: list[Method] | None = None,
    embedding: Embedding = "minilm",
    rounds: int = 3,
) -> BenchReport:
    """Measure the harness runs and the interleaved graph/bare rounds; return the report
    (``hashing`` embeddings: smoke tests)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    methods = list(methods or METHODS)
    workload = WORKLOADS[size]
    with reporting("throughput", size) as report:
        benchmarks = build_benchmarks(workload)
        expected = episode_count(benchmarks, workload.iterations, len(methods))
        MiniLMEncoder.shared()  # load the model outside the timed runs
        iterations = workload.iterations
        harness1 = run_harness(benchmarks, methods, iterations, workers=1, embedding=embedding)
        harness2 = run_harness(benchmarks, methods, iterations, workers=2, embedding=embedding)
        compared = compare_graph_and_bare(benchmarks, methods, iterations, embedding, rounds)
        graph_only, bare = mean_result(compared["graph"]), mean_result(compared["bare"])
        least = mean_result(compared["least"])
        results = [harness1, harness2, graph_only, least, bare]
        table = BenchTable(
            title=f"Episode throughput, offline ({describe(benchmarks)}; methods "
            f"{', '.join(methods)}; {workload.iterations} learning iterations; {embedding} "
            "embeddings)",
            columns=[
                "run", "episodes", "wall s", "episodes/s", "ms/episode", "CPU s",
                "CPU ms/episode", "success %", "actions differing from bare",
            ],
        )
        for result in results:
            table.add(
                result.name,
                result.episodes,
                result.seconds,
                result.per_second,
                result.ms_per_episode,
                result.cpu_seconds,
                1000.0 * result.cpu_seconds / max(result.episodes, 1),
                100.0 * result.correct / max(result.episodes, 1),
                _differences(result.choices, bare.choices),
            )
        # Overheads from CPU time: on a shared machine wall time swings with others' load,
        # the CPU time a run needs does not.
        graph_overhead = cpu_overhead(graph_only, bare)
        by_round = [
            cpu_overhead(g, b) for g, b in zip(compared["graph"], compared["bare"], strict=True)
        ]
        harness_overhead = cpu_overhead(harness1, graph_only)
        # What LangGraph adds, as a share of an episode as `pahf eval` plays it (harness
        # included): the figure a user of the evaluation sees, beside the stricter one above.
        eval_share = (graph_only.cpu_seconds - bare.cpu_seconds) / harness1.cpu_seconds
        wall_graph_overhead = (graph_only.seconds - bare.seconds) / graph_only.seconds
        speedup = harness1.seconds / harness2.seconds
        table.notes.append(
            f"graph overhead (graph only vs bare, CPU time, {rounds} interleaved round"
            f"{'s' if rounds > 1 else ''}): {100 * graph_overhead:.1f}% of episode time "
            f"(target < 20%; rounds: {_percents(by_round)}; by wall "
            f"time {100 * wall_graph_overhead:.1f}%); harness overhead (CPU time): "
            f"{100 * harness_overhead:.1f}%; LangGraph's share of an episode of `pahf eval` "
            f"(harness + graph, 1 worker): {100 * eval_share:.1f}%; 2 workers vs 1 (wall): "
            f"{speedup:.2f}x"
        )
        least_overhead = cpu_overhead(least, bare)
        least_rounds = [
            cpu_overhead(g, b) for g, b in zip(compared["least"], compared["bare"], strict=True)
        ]
        package_share = cpu_overhead(graph_only, least)
        table.notes.append(
            "the least LangGraph graph of the same five nodes (plain TypedDict state, nothing "
            f"else): overhead {100 * least_overhead:.1f}% (rounds: "
            f"{_percents(least_rounds)}), "
            f"{1000 * (least.cpu_seconds - bare.cpu_seconds) / expected:.2f} ms per episode; "
            "this package's graph adds "
            f"{1000 * (graph_only.cpu_seconds - least.cpu_seconds) / expected:.2f} ms "
            f"({100 * package_share:.1f}% of its episode time) for its typed state, "
            "validation, run context and record"
        )
        unstable = sum(
            _differences(r.choices, runs[0].choices)
            for runs in compared.values()
            for r in runs[1:]
        )
        if unstable:
            table.notes.append(f"{unstable} actions differ between rounds of the same path")
        per_method = {
            m: (graph_only.cpu_by_method[m] - bare.cpu_by_method[m]) / graph_only.cpu_by_method[m]
            for m in methods
            if graph_only.cpu_by_method.get(m) and m in bare.cpu_by_method
        }
        per_m = max(expected // max(len(methods), 1), 1)  # episodes per method
        table.notes.append(
            "graph overhead by method (CPU time; ms/episode graph vs bare): "
            + ", ".join(
                f"{m} {100 * v:.1f}% ({1000 * graph_only.cpu_by_method[m] / per_m:.2f}"
                f" vs {1000 * bare.cpu_by_method[m] / per_m:.2f})"
                for m, v in per_method.items()
            )
        )
        for m, v in per_method.items():
            report.figures[f"graph_overhead_fraction_{m}"] = v
        if any(r.episodes != expected for r in results):
            table.notes.append(
                f"expected {expected} episodes per run; got "
                + ", ".join(f"{r.name}: {r.episodes}" for r in results)
            )
        report.tables.append(table)
        report.figures.update(
            {
                "harness_1_worker_eps": harness1.per_second,
                "harness_2_workers_eps": harness2.per_second,
                "graph_only_eps": graph_only.per_second,
                "bare_eps": bare.per_second,
                "graph_overhead_fraction": graph_overhead,
                "graph_overhead_fraction_wall": wall_graph_overhead,
                "graph_overhead_fraction_min_round": min(by_round),
                "graph_overhead_fraction_max_round": max(by_round),
                "least_graph_overhead_fraction": least_overhead,
                "least_graph_eps": least.per_second,
                "package_graph_share_fraction": package_share,
                "rounds": float(rounds),
                "harness_1_worker_cpu_ms_per_episode": 1000 * harness1.cpu_seconds / expected,
                "bare_cpu_ms_per_episode": 1000 * bare.cpu_seconds / expected,
                "harness_overhead_fraction": harness_overhead,
                "graph_share_of_eval_episode": eval_share,
                "two_worker_speedup": speedup,
                "episodes": float(expected),
            }
        )
    return report
