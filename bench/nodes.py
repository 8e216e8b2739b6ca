"""Benchmark 2: latency of each graph node (p50/p95) over one run of the protocol.

Timing comes from LangChain callbacks, not from the nodes: a handler registered through
``register_configure_hook`` joins every run's callback manager (the harness's own per-episode
tracker stays in place), sees each node start and end (``on_chain_start`` with the node's name
and a ``graph:step:N`` tag) and each graph invocation. Nodes are not modified.

Episodes are played as the harness plays them: human turns through the in-process channel,
one ``invoke`` per episode, so ``ask_user`` and ``ingest_feedback`` include the (rule-based,
sub-millisecond) simulated user's reply. Played with interrupts instead, those two nodes would
be reported twice: the part up to the interrupt, and the resumed run (LangGraph re-runs an
interrupted node from its start). "framework" is what invoke time the nodes do not account
for: LangGraph's state handling and scheduling.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook

from bench.common import BenchReport, BenchTable, LatencyStats, Size, reporting
from bench.throughput import Embedding, cold_embeddings, new_store
from bench.workload import WORKLOADS, build_benchmarks, describe
from pahf.eval.episodes import LEARNING_PHASES
from pahf.eval.methods import Method
from pahf.eval.runner import EpisodeGraphs, play_step, replay_contexts, replay_order
from pahf.eval.simulators import RuleBasedUser
from pahf.graphs import NODE_NAMES
from pahf.reasoners.offline import OfflineReasoner

GRAPH_NAME = "pahf"


class NodeTimer(BaseCallbackHandler):
    """Durations of node runs and graph invocations, by name; thread-safe."""

    raise_error = False
    run_inline = True

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._open: dict[UUID, tuple[str, float]] = {}
        self.samples: dict[str, list[float]] = defaultdict(list)

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or ""
        if parent_run_id is None and name == GRAPH_NAME:
            label = "graph invoke"
        elif name in NODE_NAMES and any(t.startswith("graph:step:") for t in tags or ()):
            label = name
        else:
            return
        with self._lock:
            self._open[run_id] = (label, time.perf_counter())

    def _close(self, run_id: UUID, suffix: str = "") -> None:
        with self._lock:
            opened = self._open.pop(run_id, None)
            if opened is not None:
                label, started = opened
                self.samples[label + suffix].append(time.perf_counter() - started)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        interrupted = type(error).__name__ == "GraphInterrupt"
        self._close(run_id, " (to interrupt)" if interrupted else " (failed)")


_ACTIVE: ContextVar[NodeTimer | None] = ContextVar("pahf_bench_node_timer", default=None)
register_configure_hook(_ACTIVE, inheritable=True)


def measure(
    size: Size = "default", method: Method = "pahf", embedding: Embedding = "minilm"
) -> tuple[NodeTimer, int, float, str]:
    """Play the workload's protocol for ``method`` with the timer active.

    Returns the timer, the number of episodes, the total episode seconds and a description.
    """
    workload = WORKLOADS[size]
    benchmarks = build_benchmarks(workload)
    timer = NodeTimer()
    cold_embeddings()
    token = _ACTIVE.set(timer)
    episodes = 0
    episode_seconds = 0.0
    simulated = RuleBasedUser()
    try:
        for bench in benchmarks.values():
            store = new_store(embedding)
            graphs = EpisodeGraphs(OfflineReasoner(store.encoder), store)
            for user in bench.users():
                learn_ctx, test_ctx = replay_contexts(method, user)
                for step in replay_order(bench, user, workload.iterations):
                    ctx = learn_ctx if step.phase in LEARNING_PHASES else test_ctx
                    started = time.perf_counter()
                    play_step(graphs, ctx, step, simulated, method)
                    episode_seconds += time.perf_counter() - started
                    episodes += 1
    finally:
        _ACTIVE.reset(token)
    return timer, episodes, episode_seconds, describe(benchmarks)


def run(size: Size = "default", embedding: Embedding = "minilm") -> BenchReport:
    with reporting("nodes", size) as report:
        timer, episodes, episode_seconds, what = measure(size, "pahf", embedding)
        table = BenchTable(
            title=f"Per-node latency, method pahf, offline ({what}; {embedding} embeddings)",
            columns=["node", "runs", "mean ms", "p50 ms", "p95 ms", "max ms", "share of episode"],
        )
        order = list(NODE_NAMES)
        node_total = 0.0
        for label in order + sorted(set(timer.samples) - set(order) - {"graph invoke"}):
            samples = timer.samples.get(label, [])
            if not samples:
                continue
            stats = LatencyStats.of(samples)
            node_total += sum(samples)
            table.add(
                label,
                stats.n,
                stats.mean_ms,
                stats.p50_ms,
                stats.p95_ms,
                stats.max_ms,
                f"{100 * sum(samples) / episode_seconds:.1f}%",
            )
            report.figures[f"{label}_p50_ms"] = stats.p50_ms
            report.figures[f"{label}_p95_ms"] = stats.p95_ms
        invokes = timer.samples.get("graph invoke", [])
        inv = LatencyStats.of(invokes)
        invoke_total = sum(invokes)
        table.add(
            "graph invoke", inv.n, inv.mean_ms, inv.p50_ms, inv.p95_ms, inv.max_ms,
            f"{100 * invoke_total / episode_seconds:.1f}%",
        )
        framework = max(invoke_total - node_total, 0.0)
        table.notes.append(
            f"{episodes} episodes, {1000 * episode_seconds / max(episodes, 1):.1f} ms each on "
            f"average; framework time inside invoke (state, checkpoints, scheduling) "
            f"{1000 * framework / max(episodes, 1):.2f} ms/episode = "
            f"{100 * framework / episode_seconds:.1f}% of episode time; the rest outside invoke "
            "is the episode driver (request, usage tracker, episode record)"
        )
        report.figures["framework_fraction"] = framework / episode_seconds
        report.figures["ms_per_episode"] = 1000 * episode_seconds / max(episodes, 1)
        report.tables.append(table)
    return report
