"""Every benchmark runs at tiny size, so none can rot; figures are checked for sense, not speed.

No timing assertions (performance goals live in bench/README.md): these tests check that each
benchmark runs end to end and that the facts it reports hold, e.g. the harness makes the same
choices as the graph alone, and the LLM reasoner makes fewer calls than the reference agent.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import full_run, llm_cost, memory_scale, nodes, throughput
from bench.cli import main
from bench.common import BenchReport, BenchTable, LatencyStats, percentile
from bench.workload import WORKLOADS, build_benchmarks, episode_count


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


@pytest.mark.slow
def test_throughput_harness_and_graph_make_the_same_choices() -> None:
    report = throughput.run("tiny", methods=["pahf", "no-memory"], embedding="hashing", rounds=2)
    table = _only_table(report)
    assert [row[0] for row in table.rows] == [
        "harness + graph, 1 worker",
        "harness + graph, 2 workers",
        "graph only (play_step), mean of 2 rounds",
    ]
    assert report.figures["rounds"] == 2
    assert not [n for n in table.notes if "differ between rounds" in n]
    expected = report.figures["episodes"]
    differing = table.columns.index("actions differing from graph only")
    for row in table.rows:
        assert row[1] == expected  # every run played every episode
        assert row[differing] == 0  # same action as the graph alone in every episode
    assert report.figures["graph_only_eps"] > 0
    cpu = table.columns.index("CPU s")
    harness, _, graph_only = (row[cpu] for row in table.rows)
    assert isinstance(harness, float) and isinstance(graph_only, float)
    assert report.figures["harness_overhead_fraction"] == pytest.approx(
        (harness - graph_only) / harness
    )
    assert table.notes[0].startswith("harness overhead")


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


@pytest.mark.slow
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


@pytest.mark.slow
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
    code = main(["llm", "--size", "tiny", "--embedding", "hashing", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "LLM calls and tokens per episode" in printed
    [saved] = json.loads(out.read_text(encoding="utf-8"))
    assert saved["benchmark"] == "llm" and saved["machine"]["cpus"] >= 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["memory", "--size", "tiny", "--users", "ten"], "--users must be a comma list"),
        (["full", "--size", "tiny", "--workers", "0"], "--workers must be at least 1"),
        (["throughput", "--size", "tiny", "--method", "pahf,best"], "unknown method 'best'"),
        (["throughput", "--size", "tiny", "--rounds", "0"], "--rounds must be at least 1"),
    ],
)
def test_cli_rejects_bad_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_python_m_bench_runs_from_the_repository_root() -> None:
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=root, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "throughput" in run.stdout and "floor" not in run.stdout


def test_bench_is_not_installed_and_pahf_bench_says_where_it_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib.util

    from pahf.cli import main as pahf_main

    assert importlib.util.find_spec("pahf.bench") is None
    assert pahf_main(["bench", "throughput", "--size", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "not part of the installed package" in err and "python -m bench" in err


def test_the_benchmarks_use_only_public_names_of_pahf() -> None:
    """Anything the benchmarks need from the package is public API, as for any application."""
    root = Path(__file__).resolve().parents[2] / "bench"
    private = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pahf"):
                modules = (node.module or "").split(".")
                names = [a.name for a in node.names]
                private += [
                    f"{path.name}: {node.module}.{n}"
                    for n in [*modules, *names]
                    if n.startswith("_")
                ]
    assert private == []


@pytest.mark.slow
def test_llm_real_plays_a_slice_and_reports_it_beside_another_run(
    mini_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The slice keeps the first items of every phase, runs under the paper's settings, and
    the report puts two runs of it side by side, one row per domain, method and run."""
    from bench import llm_real

    out = tmp_path / "offline"
    args = ["--data", str(mini_data), "--users", "1", "--items", "1", "--reasoner", "offline"]
    assert llm_real.main([*args, "--method", "pahf", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "paper parity" in printed and "NOT paper parity" not in printed
    records = llm_real.load(out)
    assert sorted({r.phase for r in records}) == [1, 2, 3, 4]
    assert all(r.index == min(x.index for x in records if x.domain == r.domain and
                              x.phase == r.phase) for r in records)
    assert llm_real.main(["--report", str(out), "--offline", str(out)]) == 0
    report = capsys.readouterr().out
    rows = [line for line in report.splitlines() if line.startswith("| embodied | pahf")]
    assert [row.split(" | ")[2] for row in rows] == ["llm", "offline"]
    assert all(row.count("|") == 13 for row in rows)


def test_llm_real_slices_other_users_after_the_first(mini_data: Path) -> None:
    """``--skip-users`` checks a result on users the first slice did not hold."""
    from bench import llm_real
    from pahf.eval.published import load_published

    bench = load_published(mini_data, "embodied")
    users = bench.users()
    assert len(users) >= 2
    assert llm_real.sliced(bench, 1, 1).users() == users[:1]
    later = llm_real.sliced(bench, 5, 1, skip=1)
    assert later.users() == users[1:]
    assert {e.user for eps in later.episodes.values() for e in eps} == set(users[1:])
    with pytest.raises(ValueError, match="no users after the first"):
        llm_real.sliced(bench, 1, 1, skip=len(users))
