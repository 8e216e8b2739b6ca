"""Users played concurrently on threads against one model server (``pahf eval --concurrency N``).

An LLM-mode episode spends almost all its time waiting for the model (0.5-40 s a call against
milliseconds of graph and memory work), so worker processes, each loading its own embedder and
store, are the wrong tool: N threads in one process keep N calls in flight with one embedder,
one store client and one reasoner. Users share nothing (each thread plays whole users, in
order), so a deterministic model gives the same records as a serial run; only wall time
changes (bench/concurrency.py measures it against the ideal ``calls x latency / N``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pahf.eval.episodes import Benchmark
from pahf.eval.runner import (
    EvalOutcome,
    EvalServices,
    EvalSettings,
    embedding_factory,
    reasoner_factory,
    run_evaluation,
    simulator_for,
)
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import encoder_of
from pahf.memory.working import WorkingPreferenceMemory


def shared_services(
    settings: EvalSettings, benchmarks: Mapping[str, Benchmark] | None = None
) -> EvalServices:
    """The default services with one embedder for every store, and one reasoner and simulated
    user, both stateless between calls and so safe to share across threads.

    The working stores are :class:`~pahf.memory.working.WorkingPreferenceMemory`, as in a
    serial run: Chroma's in-memory client holds the GIL through its Rust calls (``upsert``,
    ``count``, ``query``), which took three quarters of the harness's GIL time with memory on
    32 threads (bench/README.md, section 6).
    """
    function = embedding_factory(settings.embedding)()
    encoder = encoder_of(function)
    return EvalServices(
        open_memory=lambda path: WorkingPreferenceMemory(encoder),
        make_reasoner=reasoner_factory(settings.reasoner, settings.model),
        simulator=simulator_for(settings.simulator, settings.model, benchmarks),
        open_archive=lambda path: ChromaPreferenceMemory(path, embedding_function=function),
    )


def run_concurrently(
    benchmarks: Mapping[str, Benchmark],
    settings: EvalSettings,
    out_dir: Path,
    *,
    concurrency: int,
    services: EvalServices | None = None,
    **kwargs: Any,
) -> EvalOutcome:
    """:func:`~pahf.eval.runner.run_evaluation` with ``concurrency`` users in flight at once on
    threads of this process (resumable like any run; same records as a serial run)."""
    if concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, got {concurrency}")
    services = services or shared_services(settings, benchmarks)
    return run_evaluation(
        benchmarks, settings, out_dir, workers=concurrency, services=services, **kwargs
    )
