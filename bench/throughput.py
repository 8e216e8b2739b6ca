"""Benchmark 1: episodes per second offline, and what the evaluation harness costs.

Three ways to play the same episodes (the generated benchmark at the chosen size, both domains,
all four methods, the four-phase protocol), each on fresh stores with the embedding cache empty:

* **harness + graph, 1 worker** and **2 workers**: ``run_evaluation``, exactly what
  ``pahf eval`` does (episode log, snapshots, memory-size checks, worker processes);
* **graph only**: the compiled graph driven episode by episode with ``play_step``, as the
  harness drives it, without log or snapshots; measured over ``rounds`` rounds (mean), since
  the machine's load drifts by 10-15% within a minute.

Harness overhead = (harness 1 worker - graph only) / harness 1 worker, in CPU time. Every run
must choose the same action in every episode: the table says how many differ from graph only
(0 expected), so the rows compare equal work. (Until 6 December this benchmark also drove two
copies of the graph written for the benchmark alone, a "bare" one without LangGraph and a
"least LangGraph graph", to split LangGraph's cost from this package's; they were retired with
the floor benchmark: every node change needed mirrored edits, see bench/README.md.)
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.common import BenchReport, BenchTable, Size, cpu_seconds, reporting
from bench.workload import WORKLOADS, build_benchmarks, describe, episode_count
from pahf.eval.episodes import DOMAINS, LEARNING_PHASES, Benchmark
from pahf.eval.methods import METHODS, Method
from pahf.eval.runner import (
    EpisodeGraphs,
    EvalSettings,
    embedding_factory,
    play_step,
    replay_contexts,
    replay_order,
    run_evaluation,
)
from pahf.eval.simulators import RuleBasedUser
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import MiniLMEncoder
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
        simulator="rule-generous",  # the user the bare and graph-only paths play
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


def _replay_block(
    domain: str,
    bench: Benchmark,
    method: Method,
    iterations: int,
    embedding: Embedding,
    into: RunResult,
) -> None:
    """Replay every user's protocol for one (domain, method) on a fresh store into ``into``."""
    started, cpu = time.perf_counter(), cpu_seconds()
    store = new_store(embedding)
    graphs = EpisodeGraphs(OfflineReasoner(store.encoder), store)
    simulated = RuleBasedUser()
    for user in bench.users():
        learn_ctx, test_ctx = replay_contexts(method, user)
        for step in replay_order(bench, user, iterations):
            ctx = learn_ctx if step.phase in LEARNING_PHASES else test_ctx
            record = play_step(graphs, ctx, step, simulated, method)
            key = (domain, method, step.phase, step.iteration, step.episode.episode_id)
            into.choices[key] = record.action.candidate_id if record.action else ""
            into.correct += record.correct
    cpu = cpu_seconds() - cpu
    into.seconds += time.perf_counter() - started
    into.cpu_seconds += cpu
    into.cpu_by_method[method] = into.cpu_by_method.get(method, 0.0) + cpu
    into.episodes = len(into.choices)


def run_graph_only(
    benchmarks: dict[str, Benchmark],
    methods: list[Method],
    iterations: int,
    embedding: Embedding = "minilm",
    rounds: int = 3,
) -> list[RunResult]:
    """The compiled graph on every episode, ``rounds`` times, each round from a cold cache."""
    results = []
    for _ in range(rounds):
        cold_embeddings()
        result = RunResult(
            name="graph only (play_step)", episodes=0, seconds=0.0, correct=0, choices={}
        )
        for domain, bench in benchmarks.items():
            for method in methods:
                _replay_block(domain, bench, method, iterations, embedding, result)
        results.append(result)
    return results


def cpu_overhead(run: RunResult, control: RunResult) -> float:
    """The share of ``run``'s CPU time that ``control``, doing the same work, did not need."""
    return (run.cpu_seconds - control.cpu_seconds) / run.cpu_seconds


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
    """Measure the harness runs and the graph-only rounds; return the report (``hashing``
    embeddings: smoke tests)."""
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
        graph_rounds = run_graph_only(benchmarks, methods, iterations, embedding, rounds)
        graph_only = mean_result(graph_rounds)
        results = [harness1, harness2, graph_only]
        table = BenchTable(
            title=f"Episode throughput, offline ({describe(benchmarks)}; methods "
            f"{', '.join(methods)}; {workload.iterations} learning iterations; {embedding} "
            "embeddings)",
            columns=[
                "run", "episodes", "wall s", "episodes/s", "ms/episode", "CPU s",
                "CPU ms/episode", "success %", "actions differing from graph only",
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
                _differences(result.choices, graph_only.choices),
            )
        # From CPU time: on a shared machine wall time swings with others' load, the CPU time
        # a run needs does not.
        harness_overhead = cpu_overhead(harness1, graph_only)
        speedup = harness1.seconds / harness2.seconds
        table.notes.append(
            f"harness overhead (harness + graph, 1 worker, vs graph only; CPU time): "
            f"{100 * harness_overhead:.1f}%; 2 workers vs 1 (wall): {speedup:.2f}x"
        )
        unstable = sum(_differences(r.choices, graph_rounds[0].choices) for r in graph_rounds[1:])
        if unstable:
            table.notes.append(f"{unstable} actions differ between rounds of the graph")
        per_m = max(expected // max(len(methods), 1), 1)  # episodes per method
        table.notes.append(
            "graph only by method (CPU ms/episode): "
            + ", ".join(
                f"{m} {1000 * graph_only.cpu_by_method[m] / per_m:.2f}"
                for m in methods
                if m in graph_only.cpu_by_method
            )
        )
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
                "rounds": float(rounds),
                "harness_1_worker_cpu_ms_per_episode": 1000 * harness1.cpu_seconds / expected,
                "graph_only_cpu_ms_per_episode": 1000 * graph_only.cpu_seconds / expected,
                "harness_overhead_fraction": harness_overhead,
                "two_worker_speedup": speedup,
                "episodes": float(expected),
            }
        )
    return report
