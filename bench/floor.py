"""LangGraph's own cost: the PAHF graph with services that do nothing, per path.

A reasoner that decides at once and a memory that hands back the same records leave nothing in
an episode but the framework (scheduling, channels, state validation, callbacks, routing), so
this is the least any episode through the graph can cost. It is measured per path, because the
number of LangGraph steps differs (the input step counts as one), and once more with every run
preceded by one MiniLM inference of a new text, as in an episode that stores or searches
something new: the model's weights stream through the CPU caches and LangGraph's own code then
runs cold. Times are CPU time of the calling thread around ``invoke`` only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig

from pahf.bench.common import BenchReport, BenchTable, Size, reporting
from pahf.bench.workload import WORKLOADS, build_benchmarks
from pahf.graphs import build_graph
from pahf.memory.base import PreferenceMemory
from pahf.memory.embeddings import MiniLMEncoder
from pahf.nodes.services import HUMAN_KEY
from pahf.state import (
    Action,
    Assessment,
    MemoryOp,
    MemoryRecord,
    Request,
    RetrievedMemory,
    RunContext,
    Turn,
    context_for_method,
)

#: (label, method whose switches choose the path, LangGraph steps on that path)
PATHS: tuple[tuple[str, str, int], ...] = (
    ("test phase / no-memory: retrieve, act", "no-memory", 3),
    ("post-only: retrieve, act, feedback", "post-only", 4),
    ("pahf, clear request: retrieve, assess, act, feedback", "pahf", 5),
)
#: Invokes per measurement at each size (three measurements per path, the median reported).
INVOKES: dict[Size, int] = {"tiny": 50, "default": 1000, "published": 2000}

class InstantReasoner:
    """Decides at once: never ambiguous, always the first candidate, learns nothing."""

    def assess(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Assessment:
        return Assessment(ambiguous=False, reason="no-op")

    def choose(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Action:
        first = request.candidates[0]
        return Action(candidate_id=first.id, candidate_text=first.text)

    def learn(
        self, request: Request, turn: Turn, memories: Sequence[RetrievedMemory]
    ) -> list[MemoryOp]:
        return []

class FixedMemory:
    """Answers every search with the same eight records (state of a realistic size). The graph
    only searches here: nothing is learnt, and an accepted action backed by no memory id
    reinforces nothing, so no other store method is reached."""

    def __init__(self) -> None:
        self.records = [
            RetrievedMemory(
                record=MemoryRecord(
                    id=f"m{i}",
                    user_id="floor",
                    text=f"I like option {i} when it is early",
                    topic="Morning: bring me a drink",
                    created_at="2026-01-01T00:00:00+00:00",
                ),
                score=0.5,
            )
            for i in range(8)
        ]

    def search(
        self, user_id: str, query: str, k: int = 8, include_superseded: bool = False
    ) -> list[RetrievedMemory]:
        return self.records[:k]

def _requests() -> list[Request]:
    bench = build_benchmarks(WORKLOADS["tiny"])["embodied"]
    return [
        Request.model_validate(
            {**e.request.model_dump(), "request_id": f"floor-{n}", "user_id": e.user}
        )
        for n, e in enumerate(bench.episodes[1])
    ]

def _accept(payload: dict[str, Any]) -> str:
    return ""  # the person accepts every action

def measure(
    context: RunContext, requests: list[Request], invokes: int, before: Callable[[int], Any]
) -> float:
    """Mean thread CPU ms per ``invoke`` on ``context``'s path, ``before(i)`` run untimed first."""
    graph = build_graph(InstantReasoner(), cast(PreferenceMemory, FixedMemory()))
    spent = 0.0
    for i in range(invokes):
        before(i)
        config: RunnableConfig = {"configurable": {HUMAN_KEY: _accept}}
        started = time.thread_time()
        graph.invoke({"request": requests[i % len(requests)]}, config, context=context)
        spent += time.thread_time() - started
    return 1000.0 * spent / invokes

def run(size: Size = "default", rounds: int = 3) -> BenchReport:
    """Measure each path ``rounds`` times (interleaved) and return the report."""
    invokes = INVOKES[size]
    requests = _requests()
    encoder = MiniLMEncoder.shared()

    def nothing(i: int) -> None:
        return None

    def embed_new_text(i: int) -> None:
        encoder.clear_cache()
        encoder.encode([f"a new preference, number {i}: tea rather than coffee after lunch"])

    cases = [(label, context_for_method(m), steps, nothing) for label, m, steps in PATHS]
    last_label, last_context, last_steps, _ = cases[-1]
    cases.append(
        (f"{last_label}, after a MiniLM inference", last_context, last_steps, embed_new_text)
    )
    with reporting("floor", size) as report:
        runs: dict[str, list[float]] = {label: [] for label, *_ in cases}
        for _label, ctx, _, before in cases:  # warm-up: imports, compiled validators
            measure(ctx, requests, max(invokes // 10, 5), before)
        for _ in range(rounds):
            for label, ctx, _, before in cases:
                runs[label].append(measure(ctx, requests, invokes, before))
        table = BenchTable(
            title=f"LangGraph floor: the PAHF graph with no-op reasoner and memory ({invokes} "
            f"invokes x {rounds} rounds per path, median)",
            columns=["path", "LangGraph steps", "CPU ms per invoke", "CPU ms per step", "rounds"],
        )
        for label, _, steps, before in cases:
            median = statistics.median(runs[label])
            table.add(
                label, steps, median, median / steps, ", ".join(f"{v:.3f}" for v in runs[label])
            )
            cold = "_cold" if before is embed_new_text else ""
            report.figures[f"floor_ms_{steps}_steps{cold}"] = median
        three, five = report.figures["floor_ms_3_steps"], report.figures["floor_ms_5_steps"]
        table.notes.append(
            f"per step {(five - three) / 2:.3f} ms, per invoke besides its steps "
            f"{three - 3 * (five - three) / 2:.3f} ms; right after a MiniLM inference the same "
            f"run costs {report.figures['floor_ms_5_steps_cold'] / five:.2f}x"
        )
        report.tables.append(table)
    return report
