"""The per-user memory journal a resumed evaluation rebuilds memory from (eval/snapshots.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pahf.eval.results import EpisodeRecord, sorted_records
from pahf.eval.runner import EvalSettings, run_evaluation
from pahf.eval.snapshots import (
    JournalLine,
    MemorySnapshot,
    journal_path,
    load_snapshot,
    snapshot_path,
)
from tests.unit.eval_fixtures import tiny_benchmark

USER = "alex"


def _settings() -> EvalSettings:
    return EvalSettings(domains=["embodied"], methods=["pahf"], iterations=2, embedding="hashing")


def _bench() -> dict[str, Any]:
    return {"embodied": tiny_benchmark(users=(USER,))}


def _comparable(records: list[EpisodeRecord]) -> list[dict[str, Any]]:
    return [r.model_dump(exclude={"seconds"}) for r in sorted_records(records)]


def _root(run_dir: Path) -> Path:
    return run_dir / "snapshots" / "embodied-pahf"


def test_a_journal_line_holds_what_its_episode_changed_not_the_whole_memory(
    tmp_path: Path,
) -> None:
    run = run_evaluation(_bench(), _settings(), tmp_path / "r")
    lines = [
        JournalLine.model_validate_json(text)
        for text in journal_path(_root(tmp_path / "r"), USER).read_text().splitlines()
    ]
    changing = [r for r in sorted_records(run.records) if r.memory_ops]
    assert [line.episode.key() for line in lines] == [r.key() for r in changing]
    assert any(len(line.records) < line.episode.memory_total for line in lines)
    for line in lines:  # every record a line holds is one its episode's ops touched
        touched = {op.memory_id for op in line.episode.memory_ops} | {
            op.target_id for op in line.episode.memory_ops if op.target_id
        }
        assert {r.id for r in line.records} <= touched
    final = load_snapshot(_root(tmp_path / "r"), USER)
    assert final is not None and len(final.records) == changing[-1].memory_total


def test_a_torn_last_line_is_cut_off_and_its_episode_played_again(tmp_path: Path) -> None:
    """The process died while appending a journal line: that episode had not finished (its
    log line comes after), so the resume cuts the torn line off and plays it again."""
    full = run_evaluation(_bench(), _settings(), tmp_path / "full")
    run_dir = tmp_path / "r"
    run_evaluation(_bench(), _settings(), run_dir)
    log = run_dir / "episodes.jsonl"
    lines = log.read_text().splitlines()
    records = [EpisodeRecord.model_validate_json(line) for line in lines]
    last_change = max(i for i, r in enumerate(records) if r.memory_ops)
    log.write_text("".join(f"{line}\n" for line in lines[:last_change]))
    journal = journal_path(_root(run_dir), USER)
    kept = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(kept[:-1]) + kept[-1][: len(kept[-1]) // 2])
    resumed = run_evaluation(_bench(), _settings(), run_dir)
    assert resumed.recovered == []
    assert resumed.played == len(lines) - last_change
    assert _comparable(resumed.records) == _comparable(full.records)
    assert journal.read_bytes().endswith(b"\n")
    assert len(journal.read_bytes().splitlines()) == len(kept)


def test_a_run_directory_with_whole_snapshots_resumes_from_them(tmp_path: Path) -> None:
    """A run stopped by a version that saved one whole snapshot per user resumes from it."""
    full = run_evaluation(_bench(), _settings(), tmp_path / "full")
    run_dir = tmp_path / "r"
    run_evaluation(_bench(), _settings(), run_dir, max_episodes=20)
    root = _root(run_dir)
    state = load_snapshot(root, USER)
    assert state is not None and state.records
    journal_path(root, USER).unlink()
    snapshot_path(root, USER).write_text(
        MemorySnapshot(user=USER, episode=state.episode, records=state.records).model_dump_json()
    )
    resumed = run_evaluation(_bench(), _settings(), run_dir)
    assert resumed.played == len(full.records) - 20
    assert _comparable(resumed.records) == _comparable(full.records)
    assert not snapshot_path(root, USER).exists() and journal_path(root, USER).exists()
