"""Every benchmark runs at tiny size, so none can rot; figures are checked for sense, not speed.

No timing assertions (performance goals live in bench/README.md): these tests check that each
benchmark runs end to end and that the facts it reports hold, e.g. the bare driver makes the
same choices as the graph, and the LLM reasoner makes fewer calls than the reference agent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import cast

import pytest

from pahf.bench import floor, full_run, llm_cost, memory_scale, nodes, throughput
from pahf.bench.bare import BareOutcome, play_bare
from pahf.bench.common import BenchReport, BenchTable, LatencyStats, percentile
from pahf.bench.least_pahf import least_pahf_graph, play_least
from pahf.bench.workload import WORKLOADS, build_benchmarks, episode_count
from pahf.cli import main
from pahf.eval.episodes import LEARNING_PHASES
from pahf.eval.runner import replay_contexts, replay_order
from pahf.eval.simulators import RuleBasedUser
from pahf.reasoners.offline import OfflineReasoner


def _only_table(report: BenchReport) -> BenchTable:
    assert report.tables, f"{report.benchmark} printed no table"
    return report.tables[0]


def test_percentiles_and_latency_summary() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([3.0], 95) == 3.0
    assert math.isnan(percentile([], 50))
    stats = LatencyStats.of([0.001, 0.002, 0.003])
    assert (stats.n, stats.p50_ms, stats.max_ms) == (3, pytest.approx(2.0), pytest.approx(3.0))
    assert math.isnan(LatencyStats.of([]).p95_ms)


def test_table_rejects_rows_of_the_wrong_width() -> None:
    table = BenchTable(title="t", columns=["a", "b"])
    table.add("x", 1)
    with pytest.raises(ValueError, match="2 columns"):
        table.add("only one")


def test_episode_count_follows_the_protocol() -> None:
    benchmarks = build_benchmarks(WORKLOADS["tiny"])
    # tiny: 1 user x 2 episodes per phase per domain; phases 1 and 3 replayed once each here.
    assert episode_count(benchmarks, iterations=1, methods=1) == 2 * 4 * 2
    assert episode_count(benchmarks, iterations=3, methods=2) == 2 * 2 * (2 * 3 + 2 + 2 * 3 + 2)


def test_throughput_graph_and_bare_make_the_same_choices() -> None:
    report = throughput.run("tiny", methods=["pahf", "no-memory"], embedding="hashing", rounds=2)
    table = _only_table(report)
    assert [row[0] for row in table.rows] == [
        "harness + graph, 1 worker",
        "harness + graph, 2 workers",
        "graph only (play_episode), mean of 2 rounds",
        "least LangGraph graph, same nodes, mean of 2 rounds",
        "bare reasoner + memory, mean of 2 rounds",
    ]
    assert report.figures["rounds"] == 2
    low, high = (report.figures[f"graph_overhead_fraction_{e}_round"] for e in ("min", "max"))
    assert low <= report.figures["graph_overhead_fraction"] <= high
    assert not [n for n in table.notes if "differ between rounds" in n]
    expected = report.figures["episodes"]
    differing = table.columns.index("actions differing from bare")
    for row in table.rows:
        assert row[1] == expected  # every run played every episode
        assert row[differing] == 0  # same action as the bare driver in every episode
    assert report.figures["bare_eps"] > 0
    assert "graph overhead" in table.notes[0] and "share of an episode" in table.notes[0]
    # LangGraph's share of a harness episode, from the rows it is computed from.
    cpu = table.columns.index("CPU s")
    harness, _, graph_only, least, bare = (row[cpu] for row in table.rows)
    assert isinstance(harness, float) and isinstance(graph_only, float)
    assert isinstance(least, float) and isinstance(bare, float)
    assert report.figures["graph_share_of_eval_episode"] == pytest.approx(
        (graph_only - bare) / harness
    )
    # The least graph's overhead and this package's share, from the same rows.
    assert report.figures["least_graph_overhead_fraction"] == pytest.approx((least - bare) / least)
    assert report.figures["package_graph_share_fraction"] == pytest.approx(
        (graph_only - least) / graph_only
    )
    assert any(n.startswith("the least LangGraph graph of the same five nodes") for n in table.notes)


@pytest.mark.parametrize("method", ["pahf", "pre-only", "post-only", "no-memory"])
def test_least_graph_plays_every_episode_as_the_bare_driver(method: str) -> None:
    """The overhead control is only honest if it does the same work: same action, same
    question asked, same correction taken, in every episode, memory growing alike."""
    bench = build_benchmarks(WORKLOADS["tiny"])["embodied"]
    simulated = RuleBasedUser()
    outcomes: dict[str, list[BareOutcome]] = {}
    for path in ("least", "bare"):
        store = throughput.new_store("hashing")
        reasoner = OfflineReasoner(store.encoder)
        graph = least_pahf_graph(reasoner, store)
        played = outcomes[path] = []
        for user in bench.users():
            learn, test = replay_contexts(method, user)
            for step in replay_order(bench, user, 2):
                ctx = learn if step.phase in LEARNING_PHASES else test
                kwargs = {"phase": step.phase, "iteration": step.iteration}
                if path == "least":
                    played.append(play_least(graph, ctx, step.episode, simulated, **kwargs))
                else:
                    played.append(play_bare(reasoner, store, ctx, step.episode, simulated, **kwargs))
    assert outcomes["least"] == outcomes["bare"]
    played = outcomes["bare"]
    assert any(o.asked for o in played) == (method in ("pahf", "pre-only"))
    assert any(o.corrected for o in played) == (method in ("pahf", "post-only"))


def test_floor_reports_each_path_and_the_cost_per_step() -> None:
    report = floor.run("tiny", rounds=2)
    table = _only_table(report)
    assert [row[1] for row in table.rows] == [3, 4, 5, 5]  # LangGraph steps per path
    for row in table.rows:
        per_invoke, per_step, least, own, rounds = row[2], row[3], row[4], row[5], row[6]
        assert isinstance(per_invoke, float) and per_invoke > 0
        assert isinstance(least, float) and least > 0
        assert per_step == pytest.approx(per_invoke / row[1])
        assert own == pytest.approx(per_invoke - least)
        assert isinstance(rounds, str) and len(rounds.split(", ")) == 2
    assert report.figures["floor_ms_5_steps_cold"] > 0
    assert report.figures["least_graph_ms_5_steps_cold"] > 0
    assert "per step" in table.notes[0] and "least LangGraph graph" in table.notes[1]


@pytest.mark.parametrize("steps", [2, 3, 5])
def test_least_graph_takes_the_steps_it_is_named_for(steps: int) -> None:
    """The reference graph must run exactly ``steps`` LangGraph steps (its nodes count them)."""
    graph = floor.least_graph(steps)
    assert graph.invoke({"n": 0}) == {"n": steps - 1}
    ticks = list(graph.stream({"n": 0}, stream_mode="debug"))
    # Step 0 writes the input to the state (a hidden task); each node then takes one step.
    assert sorted({t["step"] for t in ticks}) == list(range(1, steps))
    with pytest.raises(ValueError, match="at least 2 steps"):
        floor.least_graph(1)


def test_floor_services_leave_only_the_framework() -> None:
    """The no-op services must really take the paths the table names, and write nothing."""
    from pahf.eval.methods import context_for_method
    from pahf.graphs import build_graph
    from pahf.memory.base import PreferenceMemory
    memory = floor.FixedMemory()
    graph = build_graph(
        floor.InstantReasoner(), cast(PreferenceMemory, memory), human=lambda payload: ""
    )
    request = floor._requests()[0]
    for method, fed_back in (("no-memory", False), ("post-only", True), ("pahf", True)):
        out = graph.invoke(
            {"request": request},
            context=context_for_method(method),
        )
        assert out["action"].candidate_id == request.candidates[0].id
        assert (out["feedback"] is not None) is fed_back and out["memory_ops"] == []
        assert len(out["memories"]) == (0 if method == "no-memory" else 8)


def test_nodes_reports_every_node() -> None:
    report = nodes.run("tiny", embedding="hashing")
    labels = {row[0] for row in _only_table(report).rows}
    assert {
        "retrieve_memory",
        "ambiguity_detect",
        "ask_user",
        "act",
        "ingest_feedback",
        "graph invoke",
    } <= labels
    assert 0.0 <= report.figures["framework_fraction"] < 1.0


def test_llm_reasoner_uses_fewer_calls_than_the_reference_on_every_path() -> None:
    report = llm_cost.run("tiny", embedding="hashing")
    table = _only_table(report)
    assert {(row[0], row[1]) for row in table.rows} == {
        (domain, llm_cost.PATH_LABELS[path])
        for domain in ("embodied", "shopping")
        for path in llm_cost.PATHS
    }
    for row in table.rows:
        assert row[-1] == "yes", row
        assert isinstance(row[4], float) and row[4] > 0  # input tokens were counted
    # Asking costs more than a clear request, and a test-phase run is a single decision.
    assert report.figures["embodied_ask_calls"] > report.figures["embodied_clear_calls"]
    assert report.figures["shopping_test_calls"] == 1


def test_memory_benchmark_measures_an_embedded_store() -> None:
    report = memory_scale.run(
        "tiny", embedded=[memory_scale.Scale(4, 6)], server=[]
    )
    table = report.tables[0]
    [row] = table.rows
    assert row[0] == "4 x 6" and row[1] == 24
    assert row[-1] == 0  # no failed searches or adds
    assert report.figures["embedded_4_search_warm_p95_ms"] > 0
    assert report.figures["minilm_query_p95_ms"] > 0


def test_full_run_plays_every_episode() -> None:
    report = full_run.run("tiny", workers=2, methods=["pahf", "post-only"], embedding="hashing")
    table = _only_table(report)
    assert {(row[0], row[1]) for row in table.rows} == {
        (d, m) for d in ("embodied", "shopping") for m in ("post-only", "pahf")
    }
    assert report.figures["episodes"] == episode_count(
        build_benchmarks(WORKLOADS["tiny"]), WORKLOADS["tiny"].iterations, 2
    )


def test_cli_runs_a_benchmark_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reports.json"
    code = main(["bench", "llm", "--size", "tiny", "--embedding", "hashing", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "LLM calls and tokens per episode" in printed
    [saved] = json.loads(out.read_text(encoding="utf-8"))
    assert saved["benchmark"] == "llm" and saved["machine"]["cpus"] >= 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "memory", "--size", "tiny", "--users", "ten"], "--users must be a comma list"),
        (["bench", "full", "--size", "tiny", "--workers", "0"], "--workers must be at least 1"),
        (["bench", "throughput", "--size", "tiny", "--method", "pahf,best"], "unknown method 'best'"),
        (["bench", "throughput", "--size", "tiny", "--rounds", "0"], "--rounds must be at least 1"),
    ],
)
def test_cli_rejects_bad_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
