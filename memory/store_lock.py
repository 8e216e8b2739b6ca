"""One process per embedded store: an OS file lock held while a store directory is open.

Chroma's embedded client keeps its vector index in the memory of the process that opened it; two
processes writing one directory each keep their own copy and overwrite each other's files (the
result was "Error finding id" on later searches, segfaults, and a 308 GB sparse index file). A
``fcntl.flock`` on ``<store>/pahf.lock`` makes that impossible: the kernel drops it when the
holder exits, even on ``kill -9``, so a crashed process never leaves a stale lock. Within one
process any number of stores may share a directory (they share Chroma's client for it), so the
lock is counted per process; a forked child does not inherit the right to write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

try:  # POSIX only; elsewhere the lock is not enforced (see StoreLock.acquire)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: The lock file inside a store directory.
LOCK_FILE = "pahf.lock"


class StoreBusyError(OSError):
    """Another process holds the directory (its pid and command are in the message)."""

    def __init__(self, path: str, holder: str, kind: str = "store") -> None:
        if kind == "store":
            what = (
                f"memory store {path} is in use by {holder}: an embedded store has one "
                f"process at a time; stop that process, or serve the store (`chroma run "
                f"--path {path}`) and give its http:// URL to every process"
            )
        else:
            what = (
                f"run directory {path} is in use by {holder}: one evaluation writes a run "
                "directory at a time; wait for it, stop it, or choose another --out"
            )
        super().__init__(errno.EBUSY, what)
        self.path = path
        self.holder = holder
        self.kind = kind

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.holder, self.kind))


@dataclass
class _Held:
    pid: int
    fd: int
    count: int


_HELD: dict[str, _Held] = {}
_GUARD = threading.Lock()


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process (it did not record its pid)"


class StoreLock:
    """The lock of one store directory, taken by :meth:`acquire`, dropped by :meth:`release`."""

    def __init__(self, directory: Path, kind: str = "store") -> None:
        """``kind``: "store" (a memory store) or "run" (an evaluation's run directory); it
        only changes what the error tells the second process to do."""
        self.key = str(directory.resolve())
        self.kind = kind
        self._held = False

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreBusyError` naming the holder; never waits."""
        if fcntl is None:  # pragma: no cover - no flock on this platform
            return
        with _GUARD:
            held = _HELD.get(self.key)
            if held is not None and held.pid == os.getpid():
                held.count += 1
                self._held = True
                return
            path = os.path.join(self.key, LOCK_FILE)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
                # A read-only store: nobody can write it, so nothing needs excluding.
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _holder(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StoreBusyError(self.key, holder, self.kind) from None
                raise
            command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
            note = f"process {os.getpid()} ({command[:200]})\n".encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, note, 0)
            _HELD[self.key] = _Held(pid=os.getpid(), fd=fd, count=1)
            self._held = True

    def release(self) -> None:
        """Drop this holder's share; the file lock goes with the process's last one."""
        if not self._held:
            return
        self._held = False
        with _GUARD:
            held = _HELD.get(self.key)
            if held is None or held.pid != os.getpid():
                return
            held.count -= 1
            if held.count > 0:
                return
            del _HELD[self.key]
            with contextlib.suppress(OSError):
                os.ftruncate(held.fd, 0)
            os.close(held.fd)  # closing the descriptor drops the flock
