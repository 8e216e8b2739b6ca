"""What a run is configured with and what it returns: settings, benchmark digests, outcome.

Part of the evaluation harness (:mod:`pahf.eval.runner` runs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pahf.eval.episodes import (
    Domain,
    LeftOutRow,
)
from pahf.eval.methods import Method
from pahf.eval.results import EpisodeRecord, RunKey

#: An episode with more human turns than this is broken (budget is one question).
MAX_INTERRUPTS = 8


class FrozenMemoryError(RuntimeError):
    """A test-phase episode changed memory: the protocol forbids it."""


class BenchmarkInfo(BaseModel):
    """Which data a run used: resuming on different data would mix results.

    ``chance_rate``: the mean of 1/candidates over the episodes (what picking at random
    scores); ``constant``: per phase, the answer most often right and its share (what always
    giving that one answer scores, e.g. shopping's "buy nothing"); ``left_out``: rows of the
    data left out because they contradict their own scene.
    """

    model_config = ConfigDict(extra="forbid")

    source: str
    sha256: str
    users: list[str]
    episodes: dict[int, int]
    chance_rate: float | None = None
    constant: dict[int, tuple[str, float]] = Field(default_factory=dict)
    left_out: list[LeftOutRow] = Field(default_factory=list)


#: The simulated users: ``parity`` (the paper's: answers only what is asked, from the persona,
#: never from the answer key), ``rule-generous`` (an upper bound: answers with the persona's
#: whole preference as chosen with the answer key), ``llm`` (an LLM playing the persona).
Simulator = Literal["parity", "rule-generous", "llm"]


SIMULATORS: tuple[str, ...] = ("parity", "rule-generous", "llm")


#: Learning iterations of phases 1 and 3 in the paper's protocol (the reference's default).
PAPER_ITERATIONS = 3
#: Most learning iterations a run may ask for: the paper uses 3, and each user's replay
#: schedule is built in memory (--iterations 1000000000 grew to 3.4 GB with no output).
MAX_ITERATIONS = 100


class EvalSettings(BaseModel):
    """Everything that determines a run's results (stored in ``config.json``, checked on resume).

    The worker count is deliberately absent: it does not change results.
    """

    model_config = ConfigDict(extra="forbid")

    domains: list[Domain] = Field(min_length=1)
    methods: list[Method] = Field(min_length=1)
    iterations: int = Field(default=PAPER_ITERATIONS, ge=1, le=MAX_ITERATIONS)
    seed: int = 0
    feedback_noise: float = Field(default=0.0, ge=0.0, le=1.0)
    reasoner: Literal["offline", "llm"] = "offline"
    model: str | None = None
    simulator: Simulator = "parity"
    embedding: Literal["minilm", "hashing"] = "minilm"
    #: Show the agent the embodied situation label ("Drowsy"), which the paper's agent never
    #: sees (an ablation; off by default).
    show_context: bool = False
    #: Clarification questions per request (the paper asks at most one).
    question_budget: int = Field(default=1, ge=0, le=10)
    benchmarks: dict[str, BenchmarkInfo] = Field(default_factory=dict)

    def parity_gaps(self) -> list[str]:
        """What makes this run differ from the paper's setting (empty: paper parity)."""
        gaps = []
        if self.simulator == "rule-generous":
            gaps.append("simulated user `rule-generous` (an upper bound, not the paper's user)")
        if self.show_context:
            gaps.append("the agent sees the embodied situation label (`--show-context`)")
        if self.question_budget != 1:
            gaps.append(f"question budget {self.question_budget} per request (the paper: 1)")
        if self.feedback_noise:
            gaps.append(f"feedback noise {self.feedback_noise}")
        if self.iterations != PAPER_ITERATIONS:
            gaps.append(
                f"{self.iterations} learning iteration(s) per phase (the paper: {PAPER_ITERATIONS})"
            )
        return gaps


@dataclass
class EvalOutcome:
    """What a call to :func:`run_evaluation` did."""

    settings: EvalSettings
    records: list[EpisodeRecord]
    complete: bool
    played: int
    skipped: int
    #: Episodes that had finished (their memory snapshot was saved) but missed their log line
    #: when the previous run died; a resume logs them instead of playing them again.
    recovered: list[RunKey] = field(default_factory=list)
    wall_seconds: float = 0.0
    #: Worker processes the run used (0: it ran in this process, on ``workers`` threads).
    worker_processes: int = 0
