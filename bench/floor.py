"""LangGraph's own cost: the PAHF graph with services that do nothing, per path.

A reasoner that decides at once and a memory that hands back the same records leave nothing in
an episode but the framework (scheduling, channels, state validation, callbacks, routing), so
this is the least any episode through the graph can cost. It is measured per path, because the
number of LangGraph steps differs (the input step counts as one), and once more with every run
preceded by one MiniLM inference of a new text, as in an episode that stores or searches
something new: the model's weights stream through the CPU caches and LangGraph's own code then
runs cold. Times are CPU time of the calling thread around ``invoke`` only.

Each path is measured beside the least any LangGraph graph with as many steps costs: a chain of
no-op nodes over a one-integer state (:func:`least_graph`). The difference is what this
package's graph adds (its pydantic state, run context, routing and node code); the rest is
LangGraph's own and would be there for any graph.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, TypedDict, cast

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from pahf.bench.common import BenchReport, BenchTable, Size, reporting
from pahf.bench.workload import WORKLOADS, build_benchmarks
from pahf.context import RunContext
from pahf.decisions import Action, Assessment, Turn
from pahf.eval.methods import context_for_method
from pahf.graphs import build_graph
from pahf.memory.base import PreferenceMemory
from pahf.memory.embeddings import MiniLMEncoder
from pahf.memory.schema import MemoryOp, MemoryRecord, RetrievedMemory
from pahf.request import Request

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


class _Counter(TypedDict):
    n: int


def _increment(state: _Counter) -> dict[str, int]:
    return {"n": state["n"] + 1}


def least_graph(steps: int) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The cheapest LangGraph graph that takes ``steps`` steps (the input step included): a
    chain of ``steps - 1`` nodes that add one to the only key of a TypedDict state."""
    if steps < 2:
        raise ValueError(f"a graph with nodes takes at least 2 steps, not {steps}")
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(_Counter)
    names = [f"node{i}" for i in range(steps - 1)]
    for name in names:
        builder.add_node(name, _increment)
    for start, end in zip([START, *names], [*names, END], strict=True):
        builder.add_edge(start, end)
    return builder.compile()


def measure(
    context: RunContext, requests: list[Request], invokes: int, before: Callable[[int], Any]
) -> float:
    """Mean thread CPU ms per ``invoke`` on ``context``'s path, ``before(i)`` run untimed first."""
    graph = build_graph(InstantReasoner(), cast(PreferenceMemory, FixedMemory()), human=_accept)
    spent = 0.0
    for i in range(invokes):
        before(i)
        started = time.thread_time()
        graph.invoke({"request": requests[i % len(requests)]}, context=context)
        spent += time.thread_time() - started
    return 1000.0 * spent / invokes


def measure_least(steps: int, invokes: int, before: Callable[[int], Any]) -> float:
    """Mean thread CPU ms per ``invoke`` of :func:`least_graph` with ``steps`` steps."""
    graph = least_graph(steps)
    spent = 0.0
    for i in range(invokes):
        before(i)
        started = time.thread_time()
        graph.invoke({"n": 0})
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
        least: dict[str, list[float]] = {label: [] for label, *_ in cases}
        for _label, ctx, steps, before in cases:  # warm-up: imports, compiled validators
            measure(ctx, requests, max(invokes // 10, 5), before)
            measure_least(steps, max(invokes // 10, 5), before)
        for _ in range(rounds):
            for label, ctx, steps, before in cases:
                runs[label].append(measure(ctx, requests, invokes, before))
                least[label].append(measure_least(steps, invokes, before))
        table = BenchTable(
            title=f"LangGraph floor: the PAHF graph with no-op reasoner and memory ({invokes} "
            f"invokes x {rounds} rounds per path, median)",
            columns=[
                "path",
                "LangGraph steps",
                "CPU ms per invoke",
                "CPU ms per step",
                "least LangGraph graph, same steps, ms",
                "PAHF graph's own ms",
                "rounds",
            ],
        )
        for label, _, steps, before in cases:
            median, least_median = statistics.median(runs[label]), statistics.median(least[label])
            table.add(
                label,
                steps,
                median,
                median / steps,
                least_median,
                median - least_median,
                ", ".join(f"{v:.3f}" for v in runs[label]),
            )
            cold = "_cold" if before is embed_new_text else ""
            report.figures[f"floor_ms_{steps}_steps{cold}"] = median
            report.figures[f"least_graph_ms_{steps}_steps{cold}"] = least_median
        figures = report.figures
        three, five = figures["floor_ms_3_steps"], figures["floor_ms_5_steps"]
        least_three = figures["least_graph_ms_3_steps"]
        least_five = figures["least_graph_ms_5_steps"]
        cold_excess = figures["floor_ms_5_steps_cold"] / figures["least_graph_ms_5_steps_cold"] - 1
        table.notes.append(
            f"per step {(five - three) / 2:.3f} ms, per invoke besides its steps "
            f"{three - 3 * (five - three) / 2:.3f} ms; right after a MiniLM inference the same "
            f"run costs {figures['floor_ms_5_steps_cold'] / five:.2f}x"
        )
        table.notes.append(
            f"the least LangGraph graph: {(least_five - least_three) / 2:.3f} ms per step; the "
            f"PAHF graph costs {100 * (five / least_five - 1):.0f}% more than it on the 5-step "
            f"path ({100 * cold_excess:.0f}% right after a MiniLM inference); the rest is "
            "LangGraph's own"
        )
        report.tables.append(table)
    return report
