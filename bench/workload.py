"""The episodes the benchmarks play: the built-in generator at a named size.

``default`` is what ``pahf eval`` plays with no options (the generator's defaults), so the
throughput figures describe the command users actually run; ``published`` is the size of the
published PAHF benchmark (embodied 40 users x 30 scenarios, shopping 20 users x 45, 3 learning
iterations); ``tiny`` exists so the smoke test can run every benchmark in seconds.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from bench.common import Size
from pahf.eval.episodes import DOMAINS, Benchmark, Domain
from pahf.eval.runner import replay_order


@dataclass(frozen=True)
class DomainSize:
    """Generator arguments for one domain (None: the generator's own default)."""

    users: int | None
    episodes_per_phase: int | None


@dataclass(frozen=True)
class Workload:
    """Episodes per domain plus the number of learning iterations to replay them with."""

    size: Size
    domains: dict[Domain, DomainSize]
    iterations: int


#: The published PAHF benchmark sizes (paper and facebookresearch/PAHF data).
PUBLISHED: dict[Domain, DomainSize] = {
    "embodied": DomainSize(users=40, episodes_per_phase=30),
    "shopping": DomainSize(users=20, episodes_per_phase=45),
}

WORKLOADS: dict[Size, Workload] = {
    "tiny": Workload(
        "tiny",
        {d: DomainSize(users=1, episodes_per_phase=2) for d in DOMAINS},
        iterations=1,
    ),
    "default": Workload(
        "default", {d: DomainSize(users=None, episodes_per_phase=None) for d in DOMAINS}, 3
    ),
    "published": Workload("published", dict(PUBLISHED), 3),
}


def generator_defaults() -> DomainSize:
    """The generator's default users and episodes per phase (read from its signature)."""
    from pahf.eval.generator import generate

    params = inspect.signature(generate).parameters
    return DomainSize(
        users=int(params["users"].default),
        episodes_per_phase=int(params["episodes_per_phase"].default),
    )


def resolved(size: DomainSize) -> DomainSize:
    """``size`` with the generator's defaults filled in."""
    defaults = generator_defaults()
    return DomainSize(
        users=size.users if size.users is not None else defaults.users,
        episodes_per_phase=(
            size.episodes_per_phase
            if size.episodes_per_phase is not None
            else defaults.episodes_per_phase
        ),
    )


def build_benchmarks(
    workload: Workload, domains: tuple[Domain, ...] = DOMAINS, seed: int = 0
) -> dict[str, Benchmark]:
    """Generate the workload's benchmarks; a size the generator cannot make fails clearly."""
    from pahf.eval.generator import generate

    out: dict[str, Benchmark] = {}
    for domain in domains:
        size = resolved(workload.domains[domain])
        assert size.users is not None and size.episodes_per_phase is not None
        try:
            out[domain] = generate(
                domain, users=size.users, episodes_per_phase=size.episodes_per_phase, seed=seed
            )
        except ValueError as exc:
            raise ValueError(
                f"the built-in generator cannot make the {workload.size} {domain} benchmark "
                f"({size.users} users x {size.episodes_per_phase} episodes per phase): {exc}"
            ) from exc
    return out


def episode_count(benchmarks: dict[str, Benchmark], iterations: int, methods: int) -> int:
    """Graph runs the four-phase protocol makes: learning phases replay ``iterations`` times."""
    per_method = sum(
        len(replay_order(bench, user, iterations))
        for bench in benchmarks.values()
        for user in bench.users()
    )
    return per_method * methods


def describe(benchmarks: dict[str, Benchmark]) -> str:
    parts = []
    for domain, bench in benchmarks.items():
        users = len(bench.users())
        per_phase = len(bench.episodes.get(1, [])) // max(users, 1)
        parts.append(f"{domain} {users} users x {per_phase} episodes/phase")
    return ", ".join(parts)
