"""The four-phase protocol over a benchmark: which users, in which order, in which contexts.

Part of the evaluation harness (:mod:`pahf.eval.runner` runs it).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pahf.context import RunContext
from pahf.eval.episodes import (
    LEARNING_PHASES,
    PHASES,
    Benchmark,
    Episode,
)
from pahf.eval.methods import context_for_method
from pahf.eval.settings import BenchmarkInfo


@dataclass(frozen=True)
class ReplayStep:
    """One episode run in a user's replay order."""

    phase: int
    iteration: int
    episode: Episode
    seq: int


def benchmark_info(bench: Benchmark) -> BenchmarkInfo:
    # Personas count where there are any (an LLM simulated user plays them); a benchmark
    # without them keeps the digest it had before they existed, so its runs still resume.
    dump = bench.model_dump_json(exclude=None if bench.personas else {"personas"})
    digest = hashlib.sha256(dump.encode("utf-8")).hexdigest()
    episodes = [e for eps in bench.episodes.values() for e in eps]
    chance = sum(1.0 / len(e.request.candidates) for e in episodes) / max(1, len(episodes))
    constant: dict[int, tuple[str, float]] = {}
    for phase, eps in sorted(bench.episodes.items()):
        right = Counter(cid for e in eps for cid in set(e.truth.correct_ids))
        if eps and right:
            answer, count = min(right.items(), key=lambda item: (-item[1], item[0]))
            constant[phase] = (answer, round(count / len(eps), 4))
    return BenchmarkInfo(
        source=bench.source,
        sha256=digest,
        users=bench.users(),
        episodes={phase: len(eps) for phase, eps in sorted(bench.episodes.items())},
        chance_rate=round(chance, 4),
        constant=constant,
        left_out=list(bench.left_out),
    )


def check_benchmark(bench: Benchmark) -> None:
    """Refuse a benchmark the protocol cannot replay faithfully (clear message, nothing run)."""
    missing = [p for p in PHASES if not bench.episodes.get(p)]
    if missing:
        raise ValueError(
            f"{bench.domain} benchmark ({bench.source}) has no episodes in phase(s) {missing}"
        )
    for phase, episodes in bench.episodes.items():
        seen: set[str] = set()
        for ep in episodes:
            if ep.phase != phase or ep.domain != bench.domain:
                raise ValueError(
                    f"{bench.source}: episode {ep.episode_id} is {ep.domain} phase {ep.phase} but "
                    f"is listed under {bench.domain} phase {phase}"
                )
            if ep.episode_id in seen:
                raise ValueError(
                    f"{bench.source}: episode id {ep.episode_id!r} repeats in phase {phase}"
                )
            seen.add(ep.episode_id)


def users_only(bench: Benchmark, keep: set[str]) -> dict[str, Any]:
    """The ``episodes`` and ``personas`` of ``bench`` for the ``keep`` users only, as a
    ``model_copy`` update."""
    return {
        "episodes": {
            phase: [e for e in eps if e.user in keep] for phase, eps in bench.episodes.items()
        },
        "personas": {
            phase: {u: p for u, p in prompts.items() if u in keep}
            for phase, prompts in bench.personas.items()
        },
    }


def select_users(
    bench: Benchmark, names: Sequence[str] | None = None, limit: int | None = None
) -> Benchmark:
    """The benchmark restricted to the named users and/or its first ``limit`` users."""
    available = bench.users()
    chosen = list(available)
    if names:
        unknown = [n for n in names if n not in available]
        if unknown:
            raise LookupError(
                f"unknown user {unknown[0]!r} in the {bench.domain} benchmark ({bench.source}); "
                f"its users are: {', '.join(available)}"
            )
        chosen = [u for u in available if u in set(names)]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--users must be at least 1, got {limit}")
        chosen = chosen[:limit]
    keep = set(chosen)
    return bench.model_copy(
        update={
            **users_only(bench, keep),
            "left_out": [r for r in bench.left_out if _row_user(r.row_id, available) in keep],
        }
    )


def _row_user(row_id: str, users: Sequence[str]) -> str | None:
    """The user a left-out row belongs to (its id is ``<domain>-p<phase>-<user>-<index>``)."""
    body = row_id.split("-", 2)[-1].rsplit("-", 1)[0]
    return body if body in users else None


def replay_order(bench: Benchmark, user: str, iterations: int) -> list[ReplayStep]:
    """A user's episode runs in protocol order: P1 x K, P2, P3 x K, P4, each phase by index."""
    steps: list[ReplayStep] = []
    for phase in PHASES:
        episodes = sorted(
            (e for e in bench.episodes.get(phase, []) if e.user == user),
            key=lambda e: (e.index, e.episode_id),
        )
        for iteration in range(1, (iterations if phase in LEARNING_PHASES else 1) + 1):
            for ep in episodes:
                steps.append(ReplayStep(phase, iteration, ep, len(steps)))
    return steps


def replay_contexts(method: str, user: str, **overrides: Any) -> tuple[RunContext, RunContext]:
    # ``overrides`` may set ``question_budget`` (EvalSettings.question_budget).
    """(learning, test) run contexts of ``user``'s replay under ``method``: test phases switch
    both human channels off, so they measure what memory alone has learned."""
    learn = context_for_method(method, user_id=user, **overrides)
    return learn, learn.model_copy(update={"pre_action": False, "post_action": False})
