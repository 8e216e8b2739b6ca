"""`pahf eval` runs: one process per run directory, and no orphaned workers.

Killing only the `pahf eval` parent used to leave its worker processes playing and appending
to the episode log, then hanging forever on a result nobody would read (~400 MB each); the
same --out started twice ran twice and logged every episode twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pahf.memory.store_lock import StoreLock

pytestmark = pytest.mark.slow

RUN = ["--users", "4", "--episodes-per-phase", "12", "--iterations", "3", "--quiet"]


def _pahf_eval(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pahf", "eval", *RUN, "--out", str(out), *extra]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_same_out_started_twice_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    lock = StoreLock(out, kind="run")
    lock.acquire()  # this process plays the first `pahf eval` on it
    try:
        second = subprocess.run(
            _pahf_eval(out), capture_output=True, text=True, cwd=tmp_path, timeout=600
        )
    finally:
        lock.release()
    assert second.returncode != 0
    err = second.stderr.strip().splitlines()[-1]  # before it: where the run would go
    assert err.startswith("pahf eval: error: ")
    assert f"run directory {out} is in use by process {os.getpid()}" in err, err
    assert not (out / "episodes.jsonl").exists()  # the second one played nothing


def test_workers_exit_when_only_the_parent_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    parent = subprocess.Popen(
        _pahf_eval(out, "--workers", "2"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = out / "episodes.jsonl"
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while not (log.exists() and log.stat().st_size > 0):
            assert parent.poll() is None, "the run ended before any episode was logged"
            assert time.monotonic() < deadline, "no episode logged in 300 s"
            time.sleep(0.2)
        while not workers and time.monotonic() < deadline:
            workers = [p for p in _children(parent.pid) if _alive(p) and _is_worker(p)]
            time.sleep(0.2)
        assert workers, "no worker processes"
        os.kill(parent.pid, signal.SIGKILL)  # the parent only, not its process group
        parent.wait(timeout=30)
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(_alive(p) for p in workers), "workers outlived their parent"
        size = log.stat().st_size
        time.sleep(2)
        assert log.stat().st_size == size  # nobody writes the log any more
    finally:
        for pid in [parent.pid, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=30)
