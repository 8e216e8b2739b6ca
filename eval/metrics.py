"""Metrics of the four-phase protocol, computed from episode records alone.

Definitions (as in the PAHF reference code, utils/agent_utils.py):

* success rate: correct final actions / episodes; an episode is correct when the final action's
  candidate is one of the ground truth's ``correct_ids`` (asking is not an error by itself,
  only the action after the answer is scored);
* personalization error of learning iteration t: PE_t = 1 - success rate of iteration t;
* ACPE_t = (1/t) * sum_{s<=t} PE_s, computed within each learning phase (1 and 3). A learning
  phase's ``acpe`` is ACPE at its last iteration; test phases (2 and 4) have none.

Counts per episode (questions, corrections, LLM calls, tokens) are totals divided by the
phase's ``episodes``, which counts episode *runs*: in a learning phase each episode is played
once per iteration. Memory size is summed over users, taken after each user's last episode of
the phase. ``failed`` counts the episodes in which an LLM decision of the agent failed (its
output stayed unusable): one without an action counts as wrong; one that failed while learning
from feedback is scored on the action it had shown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict

from pahf.eval.episodes import DOMAINS, LEARNING_PHASES
from pahf.eval.methods import METHODS
from pahf.eval.results import EpisodeRecord, sorted_records

#: Digits kept in summary figures: enough to compare methods, stable to print and diff.
DIGITS = 6


class IterationMetrics(BaseModel):
    """One pass over a phase's episodes."""

    model_config = ConfigDict(extra="forbid")

    iteration: int
    episodes: int
    success_rate: float
    error_rate: float
    acpe: float | None
    questions_per_episode: float
    corrections_per_episode: float


class PhaseSummary(BaseModel):
    """One row of ``summary.json``: a domain x method x phase."""

    model_config = ConfigDict(extra="forbid")

    domain: str
    method: str
    phase: int
    kind: str  # "learning" or "test"
    users: int
    iterations: int
    episodes: int
    success_rate: float
    acpe: float | None
    questions_per_episode: float
    corrections_per_episode: float
    feedback_rate: float
    memory_active: int
    memory_total: int
    llm_calls_per_episode: float
    tokens_per_episode: float
    failed: int = 0  # episodes in which an LLM decision of the agent failed (record.error)
    seconds: float
    iteration_detail: list[IterationMetrics]


#: Fields that measure time: they differ between otherwise identical runs.
TIMING_FIELDS = ("seconds",)


def acpe_curve(error_rates: Sequence[float]) -> list[float]:
    """ACPE_t for t = 1..len(error_rates): the running mean of the per-iteration error rates."""
    out: list[float] = []
    total = 0.0
    for t, rate in enumerate(error_rates, start=1):
        total += rate
        out.append(total / t)
    return out


def _rate(numerator: float, denominator: int) -> float:
    return round(numerator / denominator, DIGITS) if denominator else 0.0


def _iteration_metrics(
    iteration: int, records: Sequence[EpisodeRecord], acpe: float | None
) -> IterationMetrics:
    n = len(records)
    success = _rate(sum(r.correct for r in records), n)
    return IterationMetrics(
        iteration=iteration,
        episodes=n,
        success_rate=success,
        error_rate=round(1.0 - success, DIGITS) if n else 0.0,
        acpe=None if acpe is None else round(acpe, DIGITS),
        questions_per_episode=_rate(sum(r.asked for r in records), n),
        corrections_per_episode=_rate(sum(r.corrected for r in records), n),
    )


def summarize_phase(
    domain: str, method: str, phase: int, records: Sequence[EpisodeRecord]
) -> PhaseSummary:
    """The summary row of one domain x method x phase from its episode records."""
    records = sorted_records(records)
    learning = phase in LEARNING_PHASES
    by_iteration: dict[int, list[EpisodeRecord]] = defaultdict(list)
    for rec in records:
        by_iteration[rec.iteration].append(rec)
    iterations = sorted(by_iteration)
    errors = [
        1.0 - sum(r.correct for r in by_iteration[i]) / len(by_iteration[i]) for i in iterations
    ]
    curve: list[float | None] = list(acpe_curve(errors)) if learning else [None] * len(iterations)
    detail = [
        _iteration_metrics(i, by_iteration[i], acpe)
        for i, acpe in zip(iterations, curve, strict=True)
    ]
    # Memory at phase end: each user's size after their last episode of the phase.
    last: dict[str, EpisodeRecord] = {}
    for rec in records:
        held = last.get(rec.user)
        if held is None or rec.seq > held.seq:
            last[rec.user] = rec
    n = len(records)
    return PhaseSummary(
        domain=domain,
        method=method,
        phase=phase,
        kind="learning" if learning else "test",
        users=len(last),
        iterations=len(iterations),
        episodes=n,
        success_rate=_rate(sum(r.correct for r in records), n),
        acpe=detail[-1].acpe if learning and detail else None,
        questions_per_episode=_rate(sum(r.asked for r in records), n),
        corrections_per_episode=_rate(sum(r.corrected for r in records), n),
        feedback_rate=_rate(sum(r.asked or r.corrected for r in records), n),
        memory_active=sum(r.memory_active for r in last.values()),
        memory_total=sum(r.memory_total for r in last.values()),
        llm_calls_per_episode=_rate(sum(r.llm_calls for r in records), n),
        tokens_per_episode=_rate(sum(r.tokens for r in records), n),
        failed=sum(r.error is not None for r in records),
        seconds=round(sum(r.seconds for r in records), 3),
        iteration_detail=detail,
    )


def _order(value: str, known: Sequence[str]) -> tuple[int, str]:
    return (known.index(value), value) if value in known else (len(known), value)


def summarize(records: Iterable[EpisodeRecord]) -> list[PhaseSummary]:
    """One row per domain x method x phase present in ``records``, in a fixed order."""
    groups: dict[tuple[str, str, int], list[EpisodeRecord]] = defaultdict(list)
    for rec in records:
        groups[(rec.domain, rec.method, rec.phase)].append(rec)
    keys = sorted(
        groups, key=lambda k: (_order(k[0], DOMAINS), _order(k[1], METHODS), k[2])
    )
    return [summarize_phase(d, m, p, groups[(d, m, p)]) for d, m, p in keys]


def without_timing(rows: Iterable[PhaseSummary]) -> list[dict[str, object]]:
    """Summary rows minus the timing fields: what must match between equivalent runs."""
    out = []
    for row in rows:
        data = row.model_dump()
        for name in TIMING_FIELDS:
            data.pop(name, None)
        out.append(data)
    return out
