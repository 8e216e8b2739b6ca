"""Evaluation runs on worker processes: same results as one thread, failures and stops reach
the parent, and the shared episode log never interleaves lines."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pahf.eval.errors import DataError
from pahf.eval.metrics import summarize, without_timing
from pahf.eval.results import EpisodeLog, EpisodeRecord, sorted_records
from pahf.eval.runner import EvalSettings, SimulatedUserError, run_evaluation
from pahf.eval.snapshots import SnapshotError
from pahf.memory.base import UnknownMemoryError, UnknownUserError
from pahf.reasoners.llm import LLMCallError, LLMOutputError
from tests.unit.eval_fixtures import tiny_benchmark

METHODS = ["no-memory", "pre-only", "pahf"]


def _settings() -> EvalSettings:
    return EvalSettings(
        domains=["embodied", "shopping"], methods=list(METHODS), iterations=1, embedding="hashing"
    )


def _benchmarks() -> dict[str, object]:
    return {"embodied": tiny_benchmark(), "shopping": tiny_benchmark("shopping")}


def _comparable(records: list[EpisodeRecord]) -> list[dict[str, object]]:
    return [r.model_dump(exclude={"seconds"}) for r in sorted_records(records)]


def test_worker_processes_give_the_results_of_one_thread(tmp_path: Path) -> None:
    one = run_evaluation(_benchmarks(), _settings(), tmp_path / "one", workers=1)  # type: ignore[arg-type]
    two = run_evaluation(_benchmarks(), _settings(), tmp_path / "two", workers=2)  # type: ignore[arg-type]
    assert one.worker_processes == 0 and two.worker_processes == 2
    assert one.complete and two.complete
    assert two.played == len(two.records) == len(one.records)
    assert _comparable(two.records) == _comparable(one.records)
    assert without_timing(summarize(two.records)) == without_timing(summarize(one.records))
    # every store was written by exactly one process and is there to inspect
    for domain in ("embodied", "shopping"):
        for method in ("pre-only", "pahf"):
            assert (tmp_path / "two" / "memory" / f"{domain}-{method}" / "chroma.sqlite3").exists()


def test_a_failing_worker_process_fails_the_run_with_its_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_evaluation(_benchmarks(), _settings(), out, workers=2, max_episodes=60)  # type: ignore[arg-type]
    snapshots = sorted((out / "snapshots").rglob("*.json"))
    assert snapshots
    snapshots[0].write_text("{not json")  # that user's memory can no longer be rebuilt
    with pytest.raises(SnapshotError, match=r"memory snapshot .* is unreadable"):
        run_evaluation(_benchmarks(), _settings(), out, workers=2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        LLMCallError("choose", "act", "the model call failed: 401", attempts=1, errors=["401"]),
        LLMOutputError("answer", "simulated user", "the reply was empty", attempts=2),
        SimulatedUserError("episode e1: the simulated user failed"),
        UnknownUserError("alex"),
        UnknownMemoryError("alex", "m1"),
        DataError("phase1.json", "empty", "item 3"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_a_worker_process_may_raise_reach_the_parent_whole(error: Exception) -> None:
    """A worker's exception is pickled to the parent: it must come back as the same type with
    the same message and fields (the default pickling rebuilds it from its message alone,
    which these constructors do not take, and the parent then saw a broken pool instead)."""
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error) and vars(back) == vars(error)


def test_max_episodes_stops_every_worker_process(tmp_path: Path) -> None:
    first = run_evaluation(_benchmarks(), _settings(), tmp_path / "r", workers=2, max_episodes=10)  # type: ignore[arg-type]
    assert not first.complete
    assert 10 <= first.played <= 11  # each process finishes the episode it is playing
    assert len(first.records) == first.played
    rest = run_evaluation(_benchmarks(), _settings(), tmp_path / "r", workers=2)  # type: ignore[arg-type]
    assert rest.complete and rest.skipped == first.played


#: Appends ``count`` records with very long lines to the log at argv[1], as worker argv[2].
_APPEND_MANY = """
import sys
import time
from pathlib import Path
from pahf.eval.results import EpisodeLog, EpisodeRecord
from pahf.state import Candidate, Request

path, worker, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
log = EpisodeLog(path)
start = float(sys.argv[4])
# about 30 KB per line: far longer than any stdio buffer
options = [Candidate(id=str(k), text="x" * 300) for k in range(100)]
records = []
for i in range(count):
    rid = f"w{worker}-{i}"
    request = Request(request_id=rid, user_id="u", task="fetch", candidates=options)
    records.append(EpisodeRecord(
        domain="embodied", method="pahf", phase=1, iteration=1, episode_id=rid, user="u",
        index=i, seq=i, request_id=rid, request=request, correct=False, correct_ids=["0"],
    ))
time.sleep(max(0.0, start - time.time()))  # all writers append at the same time
for record in records:
    log.append(record)
"""


def test_the_episode_log_takes_whole_lines_from_concurrent_processes(tmp_path: Path) -> None:
    path = tmp_path / "episodes.jsonl"
    start = str(time.time() + 5)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPEND_MANY, str(path), str(w), "200", start], cwd=tmp_path
        )
        for w in range(3)
    ]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0]
    records = EpisodeLog(path).load()
    assert len(records) == 600
    assert path.read_bytes().count(b"\n") == 600
