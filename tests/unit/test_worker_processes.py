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
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
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


@pytest.mark.slow
def test_worker_processes_give_the_results_of_one_thread(tmp_path: Path) -> None:
    one = run_evaluation(_benchmarks(), _settings(), tmp_path / "one", workers=1)  # type: ignore[arg-type]
    two = run_evaluation(_benchmarks(), _settings(), tmp_path / "two", workers=2)  # type: ignore[arg-type]
    assert one.worker_processes == 0 and two.worker_processes == 2
    assert one.complete and two.complete
    assert two.played == len(two.records) == len(one.records)
    assert _comparable(two.records) == _comparable(one.records)
    assert without_timing(summarize(two.records)) == without_timing(summarize(one.records))
    # every store was written by exactly one process and is there to inspect, holding the
    # same final memories as the one-process run's (the parent archives each worker task's
    # users when that task finishes)
    archived = 0
    for domain in ("embodied", "shopping"):
        for method in ("pre-only", "pahf"):
            assert (tmp_path / "two" / "memory" / f"{domain}-{method}" / "chroma.sqlite3").exists()
            stores = [
                ChromaPreferenceMemory(
                    tmp_path / run / "memory" / f"{domain}-{method}",
                    embedding_function=HashingEmbeddingFunction(),
                )
                for run in ("one", "two")
            ]
            for user in ("alex", "bea"):
                mine, theirs = (
                    [(r.id, r.text, r.status, r.confidence) for r in store.get_all(user)]
                    for store in stores
                )
                assert theirs == mine
                archived += len(theirs)
    assert archived


@pytest.mark.slow
def test_without_a_file_lock_the_run_plays_in_one_process_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where appends to the shared log cannot be locked (Windows: no fcntl), worker processes
    could interleave its lines: the run must play in this process instead, with the same
    results, and warn that it did."""
    from pahf.eval import results

    monkeypatch.setattr(results, "fcntl", None)
    with pytest.warns(RuntimeWarning, match=r"workers=2 needs a file lock .* in this process"):
        alone = run_evaluation(_benchmarks(), _settings(), tmp_path / "alone", workers=2)  # type: ignore[arg-type]
    assert alone.worker_processes == 0 and alone.complete
    monkeypatch.undo()
    one = run_evaluation(_benchmarks(), _settings(), tmp_path / "one", workers=1)  # type: ignore[arg-type]
    assert _comparable(alone.records) == _comparable(one.records)


@pytest.mark.slow
def test_a_failing_worker_process_fails_the_run_with_its_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_evaluation(_benchmarks(), _settings(), out, workers=2, max_episodes=60)  # type: ignore[arg-type]
    snapshots = sorted((out / "snapshots").rglob("*.jsonl"))
    assert snapshots
    snapshots[0].write_text("{not json\n")  # that user's memory can no longer be rebuilt
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


@pytest.mark.slow
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
from pahf.request import Candidate, Request

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


@pytest.mark.slow
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


#: A user's script that runs a tiny evaluation on two worker processes; GUARD is replaced by
#: the main guard, or by ``if True:`` (a call at the script's top level).
_EVALUATION_SCRIPT = """
import sys
from pathlib import Path
from pahf.eval.generator import generate
from pahf.eval.runner import EvalSettings, run_evaluation

def main():
    settings = EvalSettings(domains=["embodied", "shopping"], methods=["pahf"], iterations=1,
                            embedding="hashing")
    benchmarks = {d: generate(d, users=1, episodes_per_phase=2) for d in ("embodied", "shopping")}
    outcome = run_evaluation(benchmarks, settings, Path(sys.argv[1]), workers=2)
    print("played", outcome.played, "processes", outcome.worker_processes)

GUARD
    main()
"""


@pytest.mark.slow
@pytest.mark.parametrize("guarded", [False, True], ids=["without the guard", "with it"])
def test_a_script_that_starts_worker_processes_is_told_it_needs_the_main_guard(
    tmp_path: Path, guarded: bool
) -> None:
    """Workers are spawned and import the script anew: without the guard each would start an
    evaluation of its own. The run must fail saying so (in the worker and in the parent's last
    line), not with a bare BrokenProcessPool; with the guard the same script runs."""
    guard = 'if __name__ == "__main__":' if guarded else "if True:"
    script = tmp_path / "my_eval.py"
    script.write_text(_EVALUATION_SCRIPT.replace("GUARD", guard))
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    if guarded:
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["played", str(len(_tiny_runs())), "processes", "2"]
        return
    assert run.returncode == 1
    assert "played" not in run.stdout
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("pahf.eval.workers.WorkerProcessError: a worker process ended")
    assert 'under `if __name__ == "__main__":`' in last
    # the worker's own error, printed above, names the cause exactly
    assert "was started again while one of its worker processes was starting" in run.stderr


def _tiny_runs() -> list[object]:
    """The episodes the script above plays: the tiny benchmarks, pahf, one iteration."""
    from pahf.eval.generator import generate
    from pahf.eval.runner import replay_order

    return [
        step
        for bench in (generate(d, users=1, episodes_per_phase=2) for d in ("embodied", "shopping"))
        for user in bench.users()
        for step in replay_order(bench, user, 1)
    ]


_KILLED_WORKER_SCRIPT = """
import os, signal, time
from pahf.eval.workers import WorkerProcessError, run_in_processes

def killed(hooks):
    os.kill(os.getpid(), signal.SIGKILL)

def slow(hooks):
    time.sleep(1)
    return "done"

if __name__ == "__main__":
    try:
        run_in_processes([killed, slow], 2, None, None)
    except WorkerProcessError as exc:
        print(type(exc.__cause__).__name__, exc)
        raise SystemExit(3)
    print("no error")
"""


def _run_script(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess[str]:
    """Run ``text`` as a script of its own (worker processes are spawned and import it)."""
    script = tmp_path / name
    script.write_text(text)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )


@pytest.mark.slow
def test_a_killed_worker_process_fails_the_run_with_a_clear_error(tmp_path: Path) -> None:
    run = _run_script(tmp_path, "kill.py", _KILLED_WORKER_SCRIPT)
    assert run.returncode == 3, run.stdout + run.stderr
    cause, _, message = run.stdout.strip().partition(" ")
    assert cause == "BrokenProcessPool"
    assert message.startswith("a worker process ended without finishing its users")
    assert "killed" in message and "resume" in message


@pytest.mark.slow
def test_noisy_feedback_is_the_same_on_worker_processes(tmp_path: Path) -> None:
    """Each worker gets only its users' part of the data; the noisy feedback's pool of a
    user's statements spans both domains (the tiny benchmarks share user names), so a task
    must keep its users in every domain for the noise to stay the same."""
    shop = tiny_benchmark("shopping")
    shop = shop.model_copy(  # statements of their own, so the pools of both domains differ
        update={
            "episodes": {
                phase: [
                    e.model_copy(
                        update={
                            "truth": e.truth.model_copy(
                                update={"statement": f"{e.truth.statement} At the shop."}
                            )
                        }
                    )
                    for e in eps
                ]
                for phase, eps in shop.episodes.items()
            }
        }
    )
    data = {"embodied": tiny_benchmark(), "shopping": shop}
    noisy = _settings().model_copy(update={"feedback_noise": 0.5})
    one = run_evaluation(data, noisy, tmp_path / "one", workers=1)  # type: ignore[arg-type]
    two = run_evaluation(data, noisy, tmp_path / "two", workers=2)  # type: ignore[arg-type]
    assert two.worker_processes == 2
    assert any(r.feedback and "That's not what I wanted." in r.feedback for r in one.records)
    assert _comparable(two.records) == _comparable(one.records)


_COUNTING_SCRIPT = """
import functools
from pahf.eval.workers import run_in_processes

def play(n, hooks):
    for _ in range(n):
        hooks.finished_one()
    return n

class Bar:
    advanced = 0
    def start(self, total, completed):
        pass
    def advance(self):
        self.advanced += 1

if __name__ == "__main__":
    bar = Bar()
    results, played = run_in_processes(
        [functools.partial(play, n) for n in (700, 300, 5)], 2, bar, None
    )
    print(results, played, bar.advanced)
"""


@pytest.mark.slow
def test_worker_processes_report_every_episode_to_the_progress_bar(tmp_path: Path) -> None:
    """Progress comes from the workers' shared episode counter: every episode shows, once."""
    run = _run_script(tmp_path, "count.py", _COUNTING_SCRIPT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == ["[700,", "300,", "5]", "1005", "1005"]
