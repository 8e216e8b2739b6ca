"""Benchmark 1: episodes per second offline, and what LangGraph and the harness cost.

Four runs of the same episodes (the generated benchmark at the chosen size, both domains, all
four methods, the four-phase protocol), each on fresh stores with the embedding cache emptied:

* **harness + graph, 1 worker** and **2 workers**: ``run_evaluation``, exactly what
  ``pahf eval`` does (episode log, snapshots, memory-size checks, threads);
* **graph only**: the compiled graph driven episode by episode with ``play_episode`` (the
  interrupt/resume loop), no log, no snapshots;
* **bare**: :func:`pahf.bench.bare.play_bare`, the reasoner and memory called directly.

Graph overhead = (graph only - bare) / graph only; harness overhead = (harness 1 worker - graph
only) / harness 1 worker. The graph-only and bare runs must choose the same action in every
episode: the table says how many differ (0 expected), so the ratio compares equal work.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pahf.bench.bare import play_bare
from pahf.bench.common import BenchReport, BenchTable, Size, cpu_seconds, reporting
from pahf.bench.workload import WORKLOADS, build_benchmarks, describe, episode_count
from pahf.eval.episodes import DOMAINS, LEARNING_PHASES, Benchmark, SimulatedUser
from pahf.eval.runner import (
    EpisodeGraphs,
    EvalSettings,
    ReplayStep,
    embedding_factory,
    play_step,
    replay_order,
    run_evaluation,
)
from pahf.eval.simulators import RuleBasedUser
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import MiniLMEncoder
from pahf.reasoners.offline import OfflineReasoner
from pahf.state import METHODS, Method, RunContext, context_for_method

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


def _replay_all(
    name: str,
    benchmarks: dict[str, Benchmark],
    methods: list[Method],
    iterations: int,
    make_player: Callable[[OfflineReasoner, ChromaPreferenceMemory], EpisodeFn],
    embedding: Embedding = "minilm",
) -> RunResult:
    """Replay every user's protocol sequentially on fresh stores with ``make_player``'s driver
    (made once per store, as the harness builds its graphs)."""
    cold_embeddings()
    choices: Choices = {}
    correct = 0
    simulated = RuleBasedUser()
    by_method: dict[str, float] = {}
    started, cpu = time.perf_counter(), cpu_seconds()
    for domain, bench in benchmarks.items():
        for method in methods:
            method_cpu = cpu_seconds()
            store = new_store(embedding)
            play = make_player(OfflineReasoner(store.encoder), store)
            for user in bench.users():
                learn_ctx = context_for_method(method, user_id=user)
                test_ctx = learn_ctx.model_copy(
                    update={"pre_action": False, "post_action": False}
                )
                for step in replay_order(bench, user, iterations):
                    ctx = learn_ctx if step.phase in LEARNING_PHASES else test_ctx
                    chosen, ok = play(ctx, step, simulated, method)
                    key = (domain, method, step.phase, step.iteration, step.episode.episode_id)
                    choices[key] = chosen
                    correct += ok
            by_method[method] = by_method.get(method, 0.0) + cpu_seconds() - method_cpu
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return RunResult(name, len(choices), seconds, correct, choices, cpu, by_method)


def run_graph_only(
    benchmarks: dict[str, Benchmark],
    methods: list[Method],
    iterations: int,
    embedding: Embedding = "minilm",
) -> RunResult:
    def make(reasoner: OfflineReasoner, store: ChromaPreferenceMemory) -> EpisodeFn:
        graphs = EpisodeGraphs(reasoner, store)

        def play(
            ctx: RunContext, step: ReplayStep, simulated: SimulatedUser, method: str
        ) -> tuple[str, bool]:
            record = play_step(graphs, ctx, step, simulated, method)
            return (record.action.candidate_id if record.action else "", record.correct)

        return play

    return _replay_all(
        "graph only (play_episode)", benchmarks, methods, iterations, make, embedding
    )


def run_bare(
    benchmarks: dict[str, Benchmark],
    methods: list[Method],
    iterations: int,
    embedding: Embedding = "minilm",
) -> RunResult:
    def make(reasoner: OfflineReasoner, store: ChromaPreferenceMemory) -> EpisodeFn:
        def play(
            ctx: RunContext, step: ReplayStep, simulated: SimulatedUser, method: str
        ) -> tuple[str, bool]:
            out = play_bare(
                reasoner, store, ctx, step.episode, simulated,
                phase=step.phase, iteration=step.iteration,
            )
            return out.candidate_id, out.correct

        return play

    return _replay_all("bare reasoner + memory", benchmarks, methods, iterations, make, embedding)


def _differences(a: Choices, b: Choices) -> int:
    keys = set(a) | set(b)
    return sum(1 for k in keys if a.get(k) != b.get(k))


def run(
    size: Size = "default", methods: list[Method] | None = None, embedding: Embedding = "minilm"
) -> BenchReport:
    """Measure the four runs and return the report (``hashing`` embeddings: smoke tests)."""
    methods = list(methods or METHODS)
    workload = WORKLOADS[size]
    with reporting("throughput", size) as report:
        benchmarks = build_benchmarks(workload)
        expected = episode_count(benchmarks, workload.iterations, len(methods))
        MiniLMEncoder.shared()  # load the model outside the timed runs
        iterations = workload.iterations
        results = [
            run_harness(benchmarks, methods, iterations, workers=1, embedding=embedding),
            run_harness(benchmarks, methods, iterations, workers=2, embedding=embedding),
            run_graph_only(benchmarks, methods, iterations, embedding),
            run_bare(benchmarks, methods, iterations, embedding),
        ]
        harness1, harness2, graph_only, bare = results
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
        graph_overhead = (graph_only.cpu_seconds - bare.cpu_seconds) / graph_only.cpu_seconds
        harness_overhead = (harness1.cpu_seconds - graph_only.cpu_seconds) / harness1.cpu_seconds
        wall_graph_overhead = (graph_only.seconds - bare.seconds) / graph_only.seconds
        speedup = harness1.seconds / harness2.seconds
        table.notes.append(
            f"graph overhead (graph only vs bare, CPU time): {100 * graph_overhead:.1f}% of "
            f"episode time (target < 20%; by wall time {100 * wall_graph_overhead:.1f}%); "
            f"harness overhead (CPU time): {100 * harness_overhead:.1f}%; 2 workers vs 1 (wall): "
            f"{speedup:.2f}x"
        )
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
                "harness_1_worker_cpu_ms_per_episode": 1000 * harness1.cpu_seconds / expected,
                "bare_cpu_ms_per_episode": 1000 * bare.cpu_seconds / expected,
                "harness_overhead_fraction": harness_overhead,
                "two_worker_speedup": speedup,
                "episodes": float(expected),
            }
        )
    return report
