"""The run directory: its configuration file and the archived final memories.

Part of the evaluation harness (:mod:`pahf.eval.runner` runs it).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from pahf.errors import InputError
from pahf.eval.episodes import (
    Benchmark,
)
from pahf.eval.methods import context_for_method
from pahf.eval.settings import EvalSettings
from pahf.eval.snapshots import load_snapshot
from pahf.memory.base import PreferenceMemory, UnknownUserError
from pahf.memory.schema import MemoryRecord


class RunConfigMismatch(InputError):
    """The output directory holds a run made with other settings."""


def prepare_run_dir(out_dir: Path, settings: EvalSettings) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "config.json"
    if path.exists():
        try:
            stored = EvalSettings.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunConfigMismatch(f"{path} is not a readable run configuration: {exc}") from exc
        if stored != settings:
            old, new = stored.model_dump(), settings.model_dump()
            diffs = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if old.get(k) != new[k]]
            shown = "; ".join(d if len(d) < 160 else d[:157] + "..." for d in diffs)
            raise RunConfigMismatch(
                f"{out_dir} holds a run with other settings ({shown}); rerun with the same "
                "options to resume it, or choose another --out"
            )
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings.model_dump(mode="json"), indent=2), encoding="utf-8")
    tmp.replace(path)


class Archiver:
    """Writes users' final memories (their last snapshot) to the run directory's stores, so
    ``pahf memory list --store DIR/memory/<domain>-<method>`` shows what the run learned.

    Users can be archived a group at a time: with worker processes the parent archives the
    users of each finished task while the other tasks still play, since the writes to the
    stores on disk wait mostly on the disk (each user's import is a synced commit). Each store
    is opened once.
    """

    def __init__(
        self,
        out_dir: Path,
        open_archive: Callable[[Path], PreferenceMemory],
        stores: Sequence[tuple[str, str]],
    ) -> None:
        self.out_dir = out_dir
        self._open = open_archive
        self._stores = [(d, m) for d, m in stores if context_for_method(m).use_memory]
        self._archives: dict[tuple[str, str], PreferenceMemory] = {}

    def _archive(self, domain: str, method: str) -> PreferenceMemory:
        archive = self._archives.get((domain, method))
        if archive is None:
            archive = self._open(self.out_dir / "memory" / f"{domain}-{method}")
            self._archives[(domain, method)] = archive
        return archive

    def archive(
        self,
        domain: str,
        users: Sequence[str],
        known: Sequence[tuple[Sequence[str], np.ndarray]] = (),
    ) -> None:
        """Archive ``users`` of ``domain`` under every method that keeps memory.

        ``known``: (texts, vectors) the worker processes already embedded; they prime the
        archive's encoder so the memories are not embedded a second time here.
        """
        primed: set[int] = set()
        for store_domain, method in self._stores:
            if store_domain != domain:
                continue
            archive = self._archive(domain, method)
            prime = getattr(archive.encoder, "prime", None)
            if prime is not None and id(archive.encoder) not in primed:
                primed.add(id(archive.encoder))
                for texts, vectors in known:
                    prime(texts, vectors)
            for user in users:
                records = final_records(self.out_dir, domain, method, user)
                with contextlib.suppress(UnknownUserError):
                    archive.forget(user)
                if records:
                    archive.import_records(user, records)


def archive_memories(
    out_dir: Path,
    open_archive: Callable[[Path], PreferenceMemory],
    benchmarks: Mapping[str, Benchmark],
    stores: Sequence[tuple[str, str]],
    known: Sequence[tuple[Sequence[str], np.ndarray]] = (),
) -> None:
    """Archive every user's final memory (see :class:`Archiver`)."""
    archiver = Archiver(out_dir, open_archive, stores)
    for domain in dict.fromkeys(d for d, _ in stores):
        archiver.archive(domain, benchmarks[domain].users(), known)


def final_records(out_dir: Path, domain: str, method: str, user: str) -> list[MemoryRecord]:
    snap = load_snapshot(out_dir / "snapshots" / f"{domain}-{method}", user)
    return [] if snap is None else list(snap.records)
