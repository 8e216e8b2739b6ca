"""kill -9 of a whole `pahf eval` run (parent and worker processes), then a rerun: same results.

The evaluation works on in-memory stores in two worker processes and keeps its durability in
the episode log and the per-user snapshots. SIGKILL to the process group at a random moment
loses the working stores and any half-played episode; the rerun must rebuild every user's
memory, play exactly what is missing and end with the results of a run nobody interrupted,
with the final memories archived in the run directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMALL = ["--users", "2", "--episodes-per-phase", "6", "--iterations", "2", "--workers", "2"]


def _pahf(*args: str) -> list[str]:
    return [sys.executable, "-m", "pahf", "eval", *SMALL, "--quiet", *args]


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def _summary(run: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((run / "summary.json").read_text())["rows"]
    for row in rows:
        row.pop("seconds")
    return rows


def _episodes(run: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for line in (run / "episodes.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec.pop("seconds")
        out[(rec["domain"], rec["method"], rec["phase"], rec["iteration"], rec["episode_id"])] = rec
    return out


def test_kill_9_of_a_worker_process_run_then_rerun_gives_the_same_results(tmp_path: Path) -> None:
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    whole = tmp_path / "whole"
    subprocess.run(_pahf("--out", str(whole)), check=True, cwd=tmp_path, env=env, timeout=900)
    total = _lines(whole / "episodes.jsonl")

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _pahf("--out", str(killed)), cwd=tmp_path, env=env, start_new_session=True
    )
    log = killed / "episodes.jsonl"
    deadline = time.monotonic() + 600
    while _lines(log) < total // 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and both worker processes
    proc.wait(timeout=60)
    done_before = _lines(log)
    assert 0 < done_before < total

    subprocess.run(_pahf("--out", str(killed)), check=True, cwd=tmp_path, env=env, timeout=900)
    assert _lines(log) == total  # nothing played twice, nothing missing
    assert _episodes(killed) == _episodes(whole)
    assert _summary(killed) == _summary(whole)

    from pahf.memory.chroma import ChromaPreferenceMemory
    from pahf.memory.embeddings import MiniLMEmbeddingFunction

    for run in (whole, killed):
        store = ChromaPreferenceMemory(
            run / "memory" / "embodied-pahf", embedding_function=MiniLMEmbeddingFunction()
        )
        last = max(
            (r for r in _episodes(run).values() if r["method"] == "pahf" and r["domain"] == "embodied"),
            key=lambda r: (r["user"], r["seq"]),
        )
        assert store.count(last["user"]) == last["memory_total"]
