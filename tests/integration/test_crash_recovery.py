"""kill -9 in the middle of a loop of episodes: the store reopens and a rerun ends identical.

A worker process (this file run as a script) plays a fixed list of episodes for three users
through the compiled graph, with memory in an embedded Chroma directory (PersistentClient) and
conversations in a SQLite checkpointer. It can SIGKILL itself right after a chosen memory write,
which is the moment between a node's memory write and the checkpoint LangGraph saves when the
node returns; one crash point sits between the two writes of a revision (new record written,
old one not yet marked superseded). A restarted worker finds every episode's state in the
checkpointer, resumes the unfinished one (re-running the crashed node) and plays the rest.

Deterministic memory ids make the re-run node rewrite nothing: the final memory must equal,
record for record (ids, text, status, links, confidence, history events), that of a run nobody
interrupted, and the final actions must be the same.

    python test_crash_recovery.py --store DIR --checkpoints FILE [--crash-on ID:KIND]
"""

from __future__ import annotations

import argparse
import itertools
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

USERS = ("ana", "ben", "caf\u00e9 o'brien/\u00e9")


def episodes() -> list[dict[str, Any]]:
    """The fixed run, per user: a question; the same answer again (a reinforcement); two
    changes of mind (challenged, then revised); a second topic. Users interleave."""
    reading = [
        {"id": "novel", "text": "thick novel", "attributes": ["thick novel"]},
        {"id": "magazine", "text": "news magazine", "attributes": ["news magazine"]},
    ]
    unknown = [
        {"id": "crossword", "text": "crossword puzzle", "attributes": ["crossword puzzle"]},
        {"id": "audiobook", "text": "audiobook", "attributes": ["audiobook"]},
    ]
    drinks = [
        {"id": "tea", "text": "green tea", "attributes": ["green tea"]},
        {"id": "coffee", "text": "black coffee", "attributes": ["black coffee"]},
    ]
    novel = "I want the thick novel, never magazines."
    change = "Now I want the news magazine, not novels."
    steps: list[tuple[str, list[dict[str, Any]], str, str, str]] = [
        ("train journey", reading, novel, "novel", novel),
        ("train journey", unknown, novel, "audiobook", "I want the audiobook."),
        ("train journey", reading, change, "magazine", change),
        ("train journey", reading, change, "magazine", change),
        ("morning drink", drinks, "I love green tea in the morning, no coffee.", "tea",
         "I love green tea in the morning, no coffee."),
    ]  # fmt: skip
    script: list[dict[str, Any]] = []
    for step, (context, candidates, answer, want, correction) in enumerate(steps):
        for user in USERS:
            request = {
                "request_id": f"{user}-{step}",
                "user_id": user,
                "task": "bring me something",
                "context": context,
                "candidates": candidates,
            }
            script.append(
                {"request": request, "answer": answer, "want": want, "correction": correction}
            )
    return script


# --------------------------------------------------------------------------- the worker


def worker(argv: list[str]) -> int:
    from langgraph.types import Command

    from pahf.context import RunContext
    from pahf.graphs import build_graph
    from pahf.graphs.checkpointers import sqlite_checkpointer
    from pahf.memory.chroma import ChromaPreferenceMemory
    from pahf.memory.embeddings import HashingEmbeddingFunction
    from pahf.memory.schema import MemoryRecord
    from pahf.reasoners.offline import OfflineReasoner

    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--crash-on", default="", help="ID:new|update - SIGKILL after that write")
    args = parser.parse_args(argv)

    class CrashingStore(ChromaPreferenceMemory):  # type: ignore[misc]
        """Logs every write (stderr) and can die right after a chosen one."""

        def _write(self, col: Any, records: list[MemoryRecord], embed: bool) -> None:
            super()._write(col, records, embed)
            for rec in records:
                tag = f"{rec.id}:{'new' if embed else 'update'}"
                event = rec.history[-1].event if rec.history else ""
                print(json.dumps({"write": tag, "event": event}), file=sys.stderr, flush=True)
                if tag == args.crash_on:
                    os.kill(os.getpid(), signal.SIGKILL)

    store = CrashingStore(args.store, embedding_function=HashingEmbeddingFunction())
    graph = build_graph(
        OfflineReasoner(store.encoder), store, sqlite_checkpointer(args.checkpoints)
    )
    context = RunContext()
    for index, ep in enumerate(episodes()):
        cfg: Any = {"configurable": {"thread_id": f"episode-{index}"}}
        snapshot = graph.get_state(cfg)
        if snapshot.created_at is None:
            out = graph.invoke({"request": ep["request"]}, cfg, context=context)
        elif snapshot.interrupts:
            out = {"__interrupt__": snapshot.interrupts}
        elif snapshot.next:
            out = graph.invoke(None, cfg, context=context)  # re-run the node that crashed
        else:
            out = dict(snapshot.values)
        while out.get("__interrupt__"):
            payload = out["__interrupt__"][0].value
            if payload["type"] == "question":
                reply = ep["answer"]
            else:
                reply = "" if payload["action"]["candidate_id"] == ep["want"] else ep["correction"]
            out = graph.invoke(Command(resume=reply), cfg, context=context)
        print(json.dumps({"episode": index, "action": out["action"].candidate_id}), flush=True)
    print(json.dumps({"memory": memory_of(store)}))
    return 0


# --------------------------------------------------------------------------- the tests


def run_worker(store: Path, db: Path, crash_on: str = "") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, __file__, "--store", str(store), "--checkpoints", str(db)]
    if crash_on:
        cmd += ["--crash-on", crash_on]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)


def actions(stdout: str) -> dict[int, str]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"episode"')]
    return {line["episode"]: line["action"] for line in lines}


def writes(stderr: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith('{"write"')]


def final_memory(store_dir: Path) -> dict[str, list[list[Any]]]:
    """The store's memory read by a fresh process (a client cached in this one could hide
    what the workers wrote)."""
    done = subprocess.run(
        [sys.executable, __file__, "--dump", str(store_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    memory: dict[str, list[list[Any]]] = json.loads(done.stdout)
    return memory


def memory_of(store: Any) -> dict[str, list[list[Any]]]:
    """Every user's records without timestamps (a re-run may write them at another time)."""
    return {
        user: sorted(
            [
                *(r.id, r.text, r.topic, r.status, r.confidence, r.supersedes, r.superseded_by),
                [[h.event, h.detail] for h in r.history],
            ]
            for r in store.get_all(user)
        )
        for user in store.users()
    }


def dump(store_dir: str) -> int:
    from pahf.memory.chroma import ChromaPreferenceMemory
    from pahf.memory.embeddings import HashingEmbeddingFunction

    store = ChromaPreferenceMemory(store_dir, embedding_function=HashingEmbeddingFunction())
    print(json.dumps(memory_of(store)))
    return 0


def memory_printed(stdout: str) -> dict[str, list[list[Any]]]:
    """The final memory a finished worker printed (read back from the store it reopened)."""
    last: dict[str, list[list[Any]]] = json.loads(stdout.splitlines()[-1])["memory"]
    return last


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The uninterrupted run: its final memory, actions and the sequence of writes."""
    root = tmp_path_factory.mktemp("baseline")
    done = run_worker(root / "store", root / "ck.db")
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        "memory": memory_printed(done.stdout),
        "actions": actions(done.stdout),
        "writes": writes(done.stderr),
    }


def crash_points(log: list[dict[str, str]]) -> list[str]:
    """Four kinds of moment to die at, in run order: after a clarification's add, between the
    two writes of a revision, after a reinforcement, and after the very last write."""
    first_add = next(w["write"] for w in log if w["event"] == "created")
    mid_revision = next(
        w["write"]
        for w, after in itertools.pairwise(log)
        if w["event"] == "created" and after["event"] == "superseded"
    )
    reinforced = next(w["write"] for w in log if w["event"] in ("reinforced", "challenged"))
    points = [first_add, mid_revision, reinforced, log[-1]["write"]]
    order = [w["write"] for w in log]
    return sorted(set(points), key=order.index)


def test_the_scenario_exercises_every_kind_of_write(baseline: dict[str, Any]) -> None:
    events = {w["event"] for w in baseline["writes"]}
    assert {"created", "superseded", "reinforced"} <= events
    assert len(baseline["actions"]) == len(episodes())
    assert set(baseline["memory"]) == set(USERS)


def test_kill_9_at_each_write_then_rerun_ends_as_if_never_interrupted(
    baseline: dict[str, Any], tmp_path: Path
) -> None:
    store, db = tmp_path / "store", tmp_path / "ck.db"
    seen_actions: dict[int, str] = {}
    points = crash_points(baseline["writes"])
    assert len(points) == 4
    for point in points:
        crashed = run_worker(store, db, crash_on=point)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
        assert writes(crashed.stderr)[-1]["write"] == point  # it died right after that write
        seen_actions.update(actions(crashed.stdout))
    finished = run_worker(store, db)
    assert finished.returncode == 0, finished.stderr[-3000:]
    seen_actions.update(actions(finished.stdout))
    assert memory_printed(finished.stdout) == baseline["memory"]
    assert seen_actions == baseline["actions"]


def test_kill_9_from_outside_mid_run_then_rerun(baseline: dict[str, Any], tmp_path: Path) -> None:
    """The parent kills the worker (SIGKILL) as soon as it reports its 3rd episode done, at
    whatever point of the 4th it is; the store reopens and a rerun ends the same."""
    store, db = tmp_path / "store", tmp_path / "ck.db"
    cmd = [sys.executable, __file__, "--store", str(store), "--checkpoints", str(db)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    done = 0
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        if line.startswith('{"episode"'):
            done += 1
        if done == 3 or time.monotonic() > deadline:
            proc.kill()
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and done == 3
    reopened = final_memory(store)  # the store opens after the kill
    assert set(reopened) <= set(USERS) and reopened
    finished = run_worker(store, db)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert memory_printed(finished.stdout) == baseline["memory"]
    assert actions(finished.stdout) == baseline["actions"]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--dump"]:
        sys.exit(dump(sys.argv[2]))
    sys.exit(worker(sys.argv[1:]))
