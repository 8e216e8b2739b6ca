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


def archive_memories(
    out_dir: Path,
    open_archive: Callable[[Path], PreferenceMemory],
    benchmarks: Mapping[str, Benchmark],
    stores: Sequence[tuple[str, str]],
    known: Sequence[tuple[Sequence[str], np.ndarray]] = (),
) -> None:
    """Write each user's final memory (their last snapshot) to the run directory's stores, so
    ``pahf memory list --store DIR/memory/<domain>-<method>`` shows what the run learned.

    ``known``: (texts, vectors) the worker processes already embedded; they prime the archive's
    encoder so the memories are not embedded a second time here.
    """
    primed: set[int] = set()
    for domain, method in stores:
        if not context_for_method(method).use_memory:
            continue
        archive = open_archive(out_dir / "memory" / f"{domain}-{method}")
        prime = getattr(archive.encoder, "prime", None)
        if prime is not None and id(archive.encoder) not in primed:
            primed.add(id(archive.encoder))
            for texts, vectors in known:
                prime(texts, vectors)
        for user in benchmarks[domain].users():
            records = final_records(out_dir, domain, method, user)
            with contextlib.suppress(UnknownUserError):
                archive.forget(user)
            if records:
                archive.import_records(user, records)


def final_records(out_dir: Path, domain: str, method: str, user: str) -> list[MemoryRecord]:
    snap = load_snapshot(out_dir / "snapshots" / f"{domain}-{method}", user)
    return [] if snap is None else list(snap.records)
