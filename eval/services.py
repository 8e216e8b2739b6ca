"""The services an evaluation plays with: working stores, reasoner, simulated user.

Part of the evaluation harness (:mod:`pahf.eval.runner` runs it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pahf.eval.episodes import (
    Benchmark,
    SimulatedUser,
)
from pahf.eval.settings import SIMULATORS, EvalSettings
from pahf.eval.simulators import ParityUser, RuleBasedUser
from pahf.memory.base import PreferenceMemory
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import encoder_of
from pahf.memory.working import WorkingPreferenceMemory
from pahf.reasoners.base import Reasoner
from pahf.reasoners.offline import OfflineReasoner


@dataclass
class EvalServices:
    """How a run gets its memory stores, reasoners and simulated user (tests swap these).

    ``open_memory`` gives the working store of a (domain, method) directory; it need not
    survive the process (resume rebuilds memory from :mod:`pahf.eval.snapshots`).
    ``open_archive``, if set, opens the store in that directory to which each user's final
    memory is written when the run (or its worker) finishes.
    """

    open_memory: Callable[[Path], PreferenceMemory]
    make_reasoner: Callable[[PreferenceMemory], Reasoner]
    simulator: SimulatedUser
    open_archive: Callable[[Path], PreferenceMemory] | None = None


def _optional(module: str, attribute: str, what: str) -> Any:
    """Import an optional component lazily, with an error that says what is missing."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"{what} needs {module}.{attribute}, which is not available: {exc}"
        ) from exc


def reasoner_factory(kind: str, model: str | None) -> Callable[[PreferenceMemory], Reasoner]:
    """``offline``: the reference reasoner over the store's encoder; ``llm``: LLMReasoner."""
    if kind == "offline":
        return lambda memory: OfflineReasoner(memory.encoder)
    if kind == "llm":
        llm_reasoner = _optional("pahf.reasoners.llm", "LLMReasoner", "--reasoner llm")
        # Built now, so a missing key or bad setting fails before anything is written; it
        # keeps no memory of its own, so every store can share it.
        shared: Reasoner = llm_reasoner.from_settings(model=model)
        return lambda memory: shared
    raise ValueError(f"unknown reasoner {kind!r}; choose offline or llm")


def simulator_for(
    kind: str, model: str | None, benchmarks: Mapping[str, Benchmark] | None = None
) -> SimulatedUser:
    """``parity``: the paper-parity rule-based user; ``rule-generous``: the upper-bound user;
    ``llm``: an LLM playing the persona (see :data:`Simulator`).

    The parity and LLM users play the persona the benchmark's data gives each user in each
    phase (the published data's original and evolved personas); where there is none (generated
    data) the LLM plays a generic one told the persona's preference for the situation.
    """
    personas = {d: b.personas for d, b in (benchmarks or {}).items()}
    if kind == "parity":
        return ParityUser(personas)
    if kind == "rule-generous":
        return RuleBasedUser()
    if kind == "llm":
        llm_user = _optional("pahf.eval.llm_user", "LLMSimulatedUser", "--simulator llm")
        user: SimulatedUser = llm_user.from_settings(
            persona_prompts={},
            model=model,
            allow_generic_persona=True,
            phase_personas=personas,
        )
        return user
    raise ValueError(f"unknown simulator {kind!r}; choose {', '.join(SIMULATORS)}")


def embedding_factory(name: str) -> Callable[[], Any]:
    from pahf.memory.embeddings import HashingEmbeddingFunction, MiniLMEmbeddingFunction

    if name == "minilm":
        return MiniLMEmbeddingFunction
    if name == "hashing":
        return HashingEmbeddingFunction
    raise ValueError(f"unknown embedding {name!r}")


def default_services(
    settings: EvalSettings, benchmarks: Mapping[str, Benchmark] | None = None
) -> EvalServices:
    """Working stores in this process (:mod:`pahf.memory.working`), final memories archived
    to Chroma on disk in the run directory.

    The evaluation's durability comes from the episode log and the snapshots, not from the
    working store, and Chroma's in-memory client cost a quarter of a run's CPU (bench/README.md).
    """
    make_ef = embedding_factory(settings.embedding)
    return EvalServices(
        open_memory=lambda path: WorkingPreferenceMemory(encoder_of(make_ef())),
        make_reasoner=reasoner_factory(settings.reasoner, settings.model),
        simulator=simulator_for(settings.simulator, settings.model, benchmarks),
        open_archive=lambda path: ChromaPreferenceMemory(path, embedding_function=make_ef()),
    )
