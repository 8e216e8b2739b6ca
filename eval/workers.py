"""How an evaluation run spreads its work: threads in this process, or worker processes.

Threads share the GIL: two threads played only 1.1x the episodes of one (bench/README.md), since
almost all of an episode is Python (LangGraph, pydantic, the reasoner) holding it. Users share
nothing, so worker *processes* each take a share of the users, with working stores of their
own (in memory); the episode log is appended under a file lock
(:class:`pahf.eval.results.EpisodeLog`), snapshots are per user, and the parent only shows
progress, enforces ``max_episodes``, re-raises the first failure and archives the memories.

Both ways a task reports through :class:`RunHooks`, so the protocol code does not care which
one runs it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.sharedctypes import Synchronized
from typing import Any, Protocol, TypeVar

R = TypeVar("R")

#: What a script that starts worker processes must do (they are spawned: each imports it anew).
MAIN_GUARD = 'if __name__ == "__main__":'


class WorkerProcessError(RuntimeError):
    """A worker process ended without a result: it was killed (out of memory, a signal) or
    could not start. Finished episodes are in the run directory; rerunning resumes there."""


def refuse_to_start_from_a_starting_worker() -> None:
    """A spawned worker imports the parent's main script again; a script that starts workers
    at its top level, without the guard, would have every worker try to start its own. Say so
    in the worker (its error is printed above the parent's) instead of Python's generic one.
    ``_inheriting`` is the flag the standard library's own check reads while a worker starts."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise WorkerProcessError(
            "an evaluation with worker processes was started again while one of its worker "
            "processes was starting: workers import the main script anew, so the script must "
            f"start the evaluation under `{MAIN_GUARD}`"
        )


#: Why a run stopped when a worker process died, and what to do.
WORKER_DIED = (
    "a worker process ended without finishing its users. If this run was started from a "
    f"script, the call must sit under `{MAIN_GUARD}` (worker processes import the script anew; "
    "the worker's own error is printed above); otherwise the worker was killed (out of memory? "
    "a signal?). Rerun with the same run directory to resume, or with workers=1 to play in "
    "this process."
)


class Progress(Protocol):
    """Where the runner reports progress (a rich bar in the CLI; nothing in tests)."""

    def start(self, total: int, completed: int) -> None: ...

    def advance(self) -> None: ...


class RunHooks(Protocol):
    """What a task asks of the run while it plays: stop early? and one more episode done."""

    def should_stop(self) -> bool: ...

    def finished_one(self) -> None: ...


class ThreadHooks:
    """Hooks for tasks run in this process (any number of threads)."""

    def __init__(self, progress: Progress | None, max_episodes: int | None) -> None:
        self._progress = progress
        self._max = max_episodes
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.played = 0

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def finished_one(self) -> None:
        with self._lock:
            self.played += 1
            if self._max is not None and self.played >= self._max:
                self._stop.set()
        if self._progress is not None:
            self._progress.advance()


def run_in_threads(
    tasks: Sequence[Callable[[RunHooks], R]], workers: int, hooks: ThreadHooks
) -> list[R]:
    """Run ``tasks`` on ``workers`` threads (in order on this thread when ``workers`` is 1)."""
    if workers == 1:  # plain tracebacks, nothing to coordinate
        return [task(hooks) for task in tasks]
    results: list[R] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pahf-eval") as pool:
        futures: list[Future[R]] = [pool.submit(task, hooks) for task in tasks]
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:  # stop the others, then re-raise the first
                hooks.stop()
                errors.append(exc)
    if errors:
        raise errors[0]
    return results


# --------------------------------------------------------------------------- processes


class _ChildHooks:
    """Hooks inside a worker process: shared counter and stop flag. The parent reads the
    counter for its progress bar: a queue message per episode woke the queue's feeder thread
    in the worker every time, a few percent of a run's CPU in thread switches."""

    def __init__(
        self,
        played: Synchronized[int],
        stop: Any,
        max_episodes: int | None,
    ) -> None:
        self._played = played
        self._stop = stop
        self._max = max_episodes

    def should_stop(self) -> bool:
        return orphaned.is_set() or bool(self._stop.is_set())

    def finished_one(self) -> None:
        with self._played.get_lock():
            self._played.value += 1
            if self._max is not None and self._played.value >= self._max:
                self._stop.set()


_CHILD_HOOKS: _ChildHooks | None = None
#: How often a worker checks that its parent is alive, and how long it then gives the episode
#: in flight to finish (its log line is written whole) before it exits.
PARENT_CHECK_SECONDS = 0.5
ORPHAN_GRACE_SECONDS = 5.0


def _watch_parent(parent: int, stop: Any) -> None:
    """Exit when the parent is gone: killing only `pahf eval` left its workers playing and
    appending to the episode log, then hanging forever (~400 MB each) on a result nobody
    would read. Between episodes the stop flag ends the task; a worker still stuck after the
    grace period (blocked on the dead parent's queue) exits outright."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    orphaned.set()
    with contextlib.suppress(Exception):
        stop.set()
    time.sleep(ORPHAN_GRACE_SECONDS)
    os._exit(3)


#: Set in a worker whose parent died: stop after the episode in flight.
orphaned = threading.Event()


def _init_child(
    played: Synchronized[int], stop: Any, max_episodes: int | None, parent: int
) -> None:
    global _CHILD_HOOKS
    _CHILD_HOOKS = _ChildHooks(played, stop, max_episodes)
    threading.Thread(
        target=_watch_parent, args=(parent, stop), name="pahf-parent-watch", daemon=True
    ).start()


def _call_in_child(task: Callable[[RunHooks], R]) -> R:
    assert _CHILD_HOOKS is not None, "worker process started without its hooks"
    return task(_CHILD_HOOKS)


def run_in_processes(
    tasks: Sequence[Callable[[RunHooks], R]],
    workers: int,
    progress: Progress | None,
    max_episodes: int | None,
    on_result: Callable[[R], None] | None = None,
    while_waiting: Callable[[], None] | None = None,
) -> tuple[list[R], int]:
    """Run picklable ``tasks`` on ``workers`` fresh processes; returns results and episodes played.

    ``on_result`` is called here, in the parent, with each task's result as soon as that task
    finishes (while the others still run); an error it raises stops the run like a task's.
    ``while_waiting`` is called here every time the parent wakes while tasks run (about every
    0.2 s), to do the parent's own work meanwhile; an error it raises also stops the run.

    Processes are spawned (not forked): the parent may already hold threads (a progress bar,
    Chroma's runtime) that a fork would copy in an unusable state. Scripts that call this
    need the usual ``if __name__ == "__main__":`` guard. Tasks start in the given order, each
    on the next free process, so put the longest first. The first task's error is re-raised as
    it is; a worker that dies without one (killed, or it could not start) is a
    :class:`WorkerProcessError`.
    """
    refuse_to_start_from_a_starting_worker()
    ctx = multiprocessing.get_context("spawn")
    played = ctx.Value("q", 0)
    stop = ctx.Event()
    shown = 0

    def drain() -> None:
        nonlocal shown
        now = int(played.value)
        if progress is not None:
            for _ in range(now - shown):
                progress.advance()
        shown = now

    errors: list[BaseException] = []
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_init_child,
        initargs=(played, stop, max_episodes, os.getpid()),
    ) as pool:
        futures: list[Future[R]] = []
        pending: set[Future[R]] = set()
        try:
            futures.extend(pool.submit(_call_in_child, task) for task in tasks)
            pending.update(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                drain()
                if while_waiting is not None and not errors:
                    try:
                        while_waiting()
                    except Exception as err:
                        stop.set()
                        errors.append(err)
                for future in done:
                    exc = future.exception()
                    if exc is None and on_result is not None and not errors:
                        try:
                            on_result(future.result())
                        except Exception as err:
                            exc = err
                    if exc is not None:  # stop the others, then re-raise the first
                        stop.set()
                        errors.append(exc)
        except BrokenProcessPool as exc:  # a worker died before every task was submitted
            stop.set()
            errors.append(exc)
        except BaseException:  # Ctrl-C: ask the workers to stop after their episode
            stop.set()
            for future in pending:
                future.cancel()
            raise
    drain()
    # A task's own error says most; a broken pool (every task of a dead worker) only that one died.
    if own := [e for e in errors if not isinstance(e, BrokenProcessPool)]:
        raise own[0]
    if errors:
        raise WorkerProcessError(WORKER_DIED) from errors[0]
    return [f.result() for f in futures], int(played.value)
