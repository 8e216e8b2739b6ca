"""The services of ``pahf eval --concurrency N``: working stores over one shared encoder (not
Chroma's in-memory client, whose calls hold the GIL), and the records of a serial run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pahf.eval.concurrent import run_concurrently, shared_services
from pahf.eval.generator import generate
from pahf.eval.results import EpisodeRecord
from pahf.eval.runner import EvalSettings
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.working import WorkingPreferenceMemory


def settings() -> EvalSettings:
    return EvalSettings(
        domains=["embodied"], methods=["pahf", "no-memory"], iterations=1, embedding="hashing"
    )


def untimed(record: EpisodeRecord) -> str:
    return record.model_copy(update={"seconds": 0.0}).model_dump_json()


def test_working_stores_share_one_encoder(tmp_path: Path) -> None:
    services = shared_services(settings())
    one, two = services.open_memory(tmp_path / "a"), services.open_memory(tmp_path / "b")
    assert isinstance(one, WorkingPreferenceMemory) and isinstance(two, WorkingPreferenceMemory)
    assert one.encoder is two.encoder
    assert services.open_archive is not None
    archive = services.open_archive(tmp_path / "archive")
    assert isinstance(archive, ChromaPreferenceMemory)
    assert archive.encoder is one.encoder


@pytest.mark.slow  # two evaluation runs end to end
def test_threads_give_the_records_of_a_serial_run(tmp_path: Path) -> None:
    bench = {"embodied": generate("embodied", users=6, episodes_per_phase=3, seed=3)}
    runs = [
        run_concurrently(bench, settings(), tmp_path / f"n{n}", concurrency=n) for n in (1, 4)
    ]
    serial, threaded = (sorted(map(untimed, r.records), key=str) for r in runs)
    assert len(serial) == 6 * 2 * 4 * 3
    assert threaded == serial
    assert any(r.memory_ops for r in runs[0].records)
