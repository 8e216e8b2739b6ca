"""Metrics, the episode log and the report, checked against values computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pahf.eval.metrics import acpe_curve, summarize, summarize_phase, without_timing
from pahf.eval.report import (
    ACPE_PLOT,
    SUCCESS_PLOT,
    render_markdown,
    without_time_section,
    write_outputs,
)
from pahf.eval.results import EpisodeLog, EpisodeLogError, EpisodeRecord, record_line
from pahf.eval.runner import EvalSettings
from tests.unit.eval_fixtures import make_record

# Phase 1, two users x two episodes x three iterations. Columns: iteration, user, index,
# correct, asked, corrected. Hand-computed:
#   iteration 1: 1/4 correct -> error 0.75; iteration 2: 3/4 -> 0.25; iteration 3: 4/4 -> 0.
#   ACPE_1 = 0.75, ACPE_2 = (0.75 + 0.25) / 2 = 0.5, ACPE_3 = 1.0 / 3 = 0.333333.
#   success over the phase = 8/12; questions 4/12; corrections 4/12;
#   episodes with a question or a correction: 5/12.
PHASE1 = [
    (1, "alex", 0, False, True, True),
    (1, "alex", 1, True, True, False),
    (1, "bea", 0, False, True, True),
    (1, "bea", 1, False, False, True),
    (2, "alex", 0, True, False, False),
    (2, "alex", 1, True, False, False),
    (2, "bea", 0, False, True, True),
    (2, "bea", 1, True, False, False),
    (3, "alex", 0, True, False, False),
    (3, "alex", 1, True, False, False),
    (3, "bea", 0, True, False, False),
    (3, "bea", 1, True, False, False),
]


def phase1_records(method: str = "pahf") -> list[EpisodeRecord]:
    records = []
    seqs = {"alex": 0, "bea": 0}
    for iteration, user, index, correct, asked, corrected in PHASE1:
        seq = seqs[user]
        seqs[user] += 1
        last = iteration == 3 and index == 1
        records.append(
            make_record(
                method=method,
                iteration=iteration,
                user=user,
                index=index,
                seq=seq,
                correct=correct,
                question="What do you prefer?" if asked else None,
                feedback="Not that one, I want water." if corrected else None,
                # Only each user's last episode of the phase counts for memory size.
                memory_active=(3 if user == "alex" else 2) if last else 9,
                memory_total=(4 if user == "alex" else 2) if last else 9,
                llm_calls=2,
                input_tokens=100,
                output_tokens=20,
                seconds=0.5,
            )
        )
    return records


def test_acpe_is_the_running_mean_of_iteration_errors() -> None:
    assert acpe_curve([0.75, 0.25, 0.0]) == pytest.approx([0.75, 0.5, 1.0 / 3])
    assert acpe_curve([]) == []
    assert acpe_curve([0.2]) == [0.2]


def test_learning_phase_summary_matches_hand_computation() -> None:
    row = summarize_phase("embodied", "pahf", 1, list(reversed(phase1_records())))
    assert row.kind == "learning"
    assert (row.users, row.iterations, row.episodes) == (2, 3, 12)
    assert row.success_rate == pytest.approx(8 / 12, abs=1e-6)
    assert row.acpe == pytest.approx(1 / 3, abs=1e-6)
    assert row.questions_per_episode == pytest.approx(4 / 12, abs=1e-6)
    assert row.corrections_per_episode == pytest.approx(4 / 12, abs=1e-6)
    assert row.feedback_rate == pytest.approx(5 / 12, abs=1e-6)
    assert (row.memory_active, row.memory_total) == (3 + 2, 4 + 2)
    assert row.llm_calls_per_episode == 2.0
    assert row.tokens_per_episode == 120.0
    assert row.seconds == pytest.approx(6.0)
    detail = [(i.iteration, i.episodes, i.success_rate, i.error_rate, i.acpe) for i in row.iteration_detail]
    assert detail == [
        (1, 4, 0.25, 0.75, 0.75),
        (2, 4, 0.75, 0.25, 0.5),
        (3, 4, 1.0, 0.0, pytest.approx(1 / 3, abs=1e-6)),
    ]
    assert [i.questions_per_episode for i in row.iteration_detail] == [0.75, 0.25, 0.0]
    assert [i.corrections_per_episode for i in row.iteration_detail] == [0.75, 0.25, 0.0]


def test_test_phase_has_success_but_no_acpe() -> None:
    records = [
        make_record(phase=2, user="alex", correct=True, seq=12, memory_active=3, memory_total=4),
        make_record(phase=2, user="bea", correct=False, seq=12, memory_active=2, memory_total=2),
    ]
    row = summarize_phase("embodied", "pahf", 2, records)
    assert row.kind == "test"
    assert row.success_rate == 0.5
    assert row.acpe is None
    assert [i.acpe for i in row.iteration_detail] == [None]
    assert (row.memory_active, row.memory_total) == (5, 6)


def test_rows_come_in_domain_method_phase_order_and_timing_can_be_dropped() -> None:
    records = [
        make_record(domain="shopping", method="no-memory", phase=2),
        make_record(domain="embodied", method="pahf", phase=1),
        make_record(domain="embodied", method="no-memory", phase=3),
        make_record(domain="embodied", method="no-memory", phase=1),
    ]
    rows = summarize(records)
    assert [(r.domain, r.method, r.phase) for r in rows] == [
        ("embodied", "no-memory", 1),
        ("embodied", "no-memory", 3),
        ("embodied", "pahf", 1),
        ("shopping", "no-memory", 2),
    ]
    stripped = without_timing(rows)
    assert all("seconds" not in row for row in stripped)
    assert all("success_rate" in row for row in stripped)


# --------------------------------------------------------------------------- episode log


def test_log_round_trips_and_cuts_a_torn_last_line(tmp_path: Path) -> None:
    log = EpisodeLog(tmp_path / "episodes.jsonl")
    first, second = make_record(index=0), make_record(index=1, seq=1)
    log.append(first)
    log.append(second)
    with log.path.open("a", encoding="utf-8") as handle:
        handle.write('{"domain": "embodied", "method": "pa')  # a crash mid-write
    loaded = log.load()
    assert list(loaded) == [first.key(), second.key()]
    assert loaded[second.key()] == second
    # the torn bytes are gone, so the next append starts on a clean line
    log.append(make_record(index=2, seq=2))
    assert len(log.load()) == 3
    assert all(json.loads(line) for line in log.path.read_text().splitlines())


def test_log_kept_open_between_appends_still_finds_its_file(tmp_path: Path) -> None:
    """The log stays open between appends; a log deleted meanwhile is created again (as when
    each append opened it), and a closed log opens again on the next append."""
    log = EpisodeLog(tmp_path / "run" / "episodes.jsonl")
    log.append(make_record(index=0))
    log.path.unlink()
    log.append(make_record(index=1, seq=1))
    assert [r.index for r in log.load().values()] == [1]
    log.close()
    log.append(make_record(index=2, seq=2))
    other = EpisodeLog(log.path)  # another writer (a worker process) appends between lines
    other.append(make_record(index=3, seq=3))
    log.append(make_record(index=4, seq=4))
    other.close()
    log.close()
    assert [r.index for r in log.load().values()] == [1, 2, 3, 4]


def test_a_follower_reads_what_is_appended_whole_lines_only(tmp_path: Path) -> None:
    """The parent reads the log as workers append to it: only lines written since it started
    following, a line being written only once it is whole, the last line of a key winning."""
    log = EpisodeLog(tmp_path / "episodes.jsonl")
    log.append(make_record(index=0))
    follower = log.follow()
    follower.read_new()
    assert follower.records == {}
    log.append(make_record(index=1, seq=1))
    line = record_line(make_record(index=2, seq=2))
    with log.path.open("a", encoding="utf-8") as handle:
        handle.write(line[:40])  # half written
    follower.read_new()
    assert [r.index for r in follower.records.values()] == [1]
    with log.path.open("a", encoding="utf-8") as handle:
        handle.write(line[40:] + "\n")
    again = make_record(index=1, seq=1).model_copy(update={"correct": True})
    log.append(again)
    follower.read_new()
    assert [r.index for r in follower.records.values()] == [1, 2]
    assert follower.records[again.key()] == again
    assert follower.records == {
        k: r for k, r in log.load().items() if r.index > 0
    }


def test_log_refuses_a_corrupt_line_in_the_middle(tmp_path: Path) -> None:
    log = EpisodeLog(tmp_path / "episodes.jsonl")
    log.append(make_record(index=0))
    with log.path.open("a", encoding="utf-8") as handle:
        handle.write("not json\n")
    log.append(make_record(index=1, seq=1))
    with pytest.raises(EpisodeLogError, match="line 2"):
        log.load()


# --------------------------------------------------------------------------- report


def _settings() -> EvalSettings:
    return EvalSettings(domains=["embodied"], methods=["no-memory", "pahf"], iterations=3)


def test_report_tables_show_the_summary_figures(tmp_path: Path) -> None:
    records = phase1_records("pahf") + phase1_records("no-memory")
    records.append(make_record(phase=2, seq=12, correct=False, method="pahf"))
    rows = summarize(records)
    text = render_markdown(rows, _settings())
    assert "## embodied" in text
    assert "| method | P1 success | P1 ACPE | P2 success | P3 success | P3 ACPE | P4 success |" in text
    # pahf: P1 success 8/12, ACPE 1/3, P2 success 0 (one wrong episode), no P3/P4 data
    assert "| pahf | 0.667 | 0.333 | 0.000 | – | – | – |" in text
    assert "| pahf | 0.750 | 0.500 | 0.333 |\n" in text  # ACPE by iteration (P1 only)
    files = write_outputs(rows, _settings(), tmp_path)
    document = json.loads(files.summary.read_text())
    summary = document["rows"]
    assert isinstance(summary, list) and len(summary) == 3
    assert document["paper_parity"] is True and document["setting"]["simulator"] == "parity"
    required = {
        "domain", "method", "phase", "episodes", "success_rate", "acpe",
        "questions_per_episode", "corrections_per_episode", "llm_calls_per_episode",
        "tokens_per_episode", "seconds",
    }
    assert all(required <= set(row) for row in summary)
    assert [p.name for p in files.plots] == [SUCCESS_PLOT, ACPE_PLOT]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in files.plots)


def test_only_the_time_section_depends_on_timing() -> None:
    slow = summarize([make_record(seconds=9.0)])
    fast = summarize([make_record(seconds=0.1)])
    a, b = render_markdown(slow, _settings()), render_markdown(fast, _settings())
    assert a != b
    assert without_time_section(a) == without_time_section(b)


def test_report_names_the_setting_the_paper_figures_chance_and_left_out_rows() -> None:
    from pahf.eval.episodes import LeftOutRow
    from pahf.eval.runner import BenchmarkInfo

    rows = summarize([make_record(phase=4, seq=0, correct=True, method="pahf")])
    row = LeftOutRow(row_id="embodied-p1-Zed-3", file="scenarios/a.json", item=3, reason="why")
    info = BenchmarkInfo(
        source="data/embodied", sha256="x", users=["Zed"], episodes={4: 1}, chance_rate=0.3181,
        left_out=[row],
    )
    parity = EvalSettings(domains=["embodied"], methods=["pahf"], benchmarks={"embodied": info})
    text = render_markdown(rows, parity)
    assert "**Paper parity**" in text
    assert "chance (mean 1/candidates) 31.8%" in text
    assert "| pahf | 100.0 | 70.5 |" in text
    assert "secondary summaries" in text
    assert "Rows left out: 1" in text and "`embodied-p1-Zed-3` (scenarios/a.json item 3): why" in text
    generous = parity.model_copy(update={"simulator": "rule-generous", "show_context": True})
    text = render_markdown(rows, generous)
    assert "**Not paper parity**" in text and "upper bound" in text and "--show-context" in text


def test_report_names_the_score_of_always_giving_the_commonest_answer() -> None:
    from pahf.eval.generator import generate
    from pahf.eval.runner import BenchmarkInfo, benchmark_info

    bench = generate("shopping")
    info = benchmark_info(bench)
    for phase, eps in bench.episodes.items():
        answer, share = info.constant[phase]
        assert share == round(sum(answer in e.truth.correct_ids for e in eps) / len(eps), 4)
    rows = summarize(
        [make_record(domain="shopping", phase=4, seq=0, correct=True, method="pahf")]
    )
    mostly_none = BenchmarkInfo(
        source="data/shopping", sha256="x", users=["Zed"], episodes={4: 1},
        constant={3: ("none", 0.713), 4: ("none", 0.696)},
    )
    settings = EvalSettings(domains=["shopping"], methods=["pahf"],
                            benchmarks={"shopping": mostly_none})
    assert "P4 `none`: 69.6%" in render_markdown(rows, settings)
    rare = mostly_none.model_copy(update={"constant": {4: ("A", 0.3)}})
    settings = settings.model_copy(update={"benchmarks": {"shopping": rare}})
    assert "Always answering" not in render_markdown(rows, settings)
