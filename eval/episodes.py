"""Benchmark episodes and the simulated-user contract shared by loaders, generator and harness.

An :class:`Episode` pairs the request the agent sees with the :class:`GroundTruth` only the
simulated user and the scorer see. The harness passes ``episode.request`` into the graph and
nothing else: ground truth never reaches graph state.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from pahf.decisions import Action
from pahf.request import Request

Domain = Literal["embodied", "shopping"]
DOMAINS: tuple[Domain, ...] = ("embodied", "shopping")
PHASES = (1, 2, 3, 4)
LEARNING_PHASES = (1, 3)


class TasteEntry(BaseModel):
    """One feature category of a shopper's persona for one product: what a person knows about
    their own taste (the persona), as opposed to which option is right (the answer key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str = Field(min_length=1)
    like_most: str = Field(min_length=1)
    like_second: list[str] = Field(default_factory=list)
    dislike: list[str] = Field(default_factory=list)


class GroundTruth(BaseModel):
    """What the simulated user knows and the scorer checks; never shown to the agent.

    ``correct_ids``: the candidate ids that count as success (usually one): the answer key.
    ``statement``: the persona's preference for this situation in its own words. On published
    embodied data it is chosen with the answer key in hand (the persona line that names the
    target, else the target itself), so only feedback and the upper-bound user may say it.
    ``acceptable_ids``/``refused``: shopping detail for realistic corrections (answer key).
    ``tastes``: the shopper's persona for this product, category by category (persona, not
    answer key: the paper-parity user answers questions from it).
    """

    model_config = ConfigDict(extra="forbid")

    correct_ids: list[str] = Field(min_length=1)
    statement: str = Field(min_length=1)
    acceptable_ids: list[str] = Field(default_factory=list)
    refused: dict[str, list[str]] = Field(
        default_factory=dict, description="candidate id -> the features the user refuses in it"
    )
    drifted: bool = False
    tastes: list[TasteEntry] = Field(default_factory=list)
    tastes_before: list[TasteEntry] = Field(
        default_factory=list, description="after the shift: the tastes of phases 1-2"
    )


class LeftOutRow(BaseModel):
    """A row of published data that contradicts its own scene, left out of the run by policy
    (counted and listed in ``summary.json`` and the report, never silently dropped)."""

    model_config = ConfigDict(extra="forbid")

    row_id: str = Field(description="the episode id the row would have had")
    file: str
    item: int = Field(ge=0, description="position of the row in its file")
    reason: str


class Episode(BaseModel):
    """One request of one user in one phase of a benchmark."""

    model_config = ConfigDict(extra="forbid")

    episode_id: str = Field(min_length=1)
    domain: Domain
    phase: int = Field(ge=1, le=4)
    user: str = Field(min_length=1)
    index: int = Field(ge=0)
    request: Request
    truth: GroundTruth


class Benchmark(BaseModel):
    """All episodes of one domain, by phase, plus where they came from."""

    model_config = ConfigDict(extra="forbid")

    domain: Domain
    source: str
    episodes: dict[int, list[Episode]]
    #: phase -> user -> the persona prompt the data gives that user in that phase (the paper's
    #: human simulator prompt, original before the shift and evolved after it), which an LLM
    #: simulated user plays; empty where the data has none (the generated benchmarks).
    personas: dict[int, dict[str, str]] = Field(default_factory=dict)
    #: Rows of the data left out because they contradict their own scene (see
    #: :class:`LeftOutRow`); empty for data that is consistent.
    left_out: list[LeftOutRow] = Field(default_factory=list)

    def users(self) -> list[str]:
        return sorted({e.user for eps in self.episodes.values() for e in eps})


class SimulatedUser(Protocol):
    """Plays the person: answers a clarification question, reacts to an action."""

    def answer(self, episode: Episode, question: str) -> str:
        """The answer to a clarification question (states the preference, never a letter)."""
        ...

    def feedback(self, episode: Episode, action: Action) -> str | None:
        """None when the action is right; otherwise a correction in the user's words."""
        ...
