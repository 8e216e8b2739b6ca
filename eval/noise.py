"""Noisy human feedback: a wrapper that sometimes says the wrong thing after an action.

Real people mis-click, answer about something else, or correct an action that was right. With
probability ``p`` per episode run (seeded, so a rerun or another worker count gets exactly the
same noise), the post-action feedback is replaced:

* the action was right: a false correction that restates one of the user's *other* preferences
  (a statement from a different situation of the same phase), as if the person confused tasks;
* the action was wrong: an irrelevant remark instead of the correction (the signal is lost and
  the remark may mislead a careless learner).

Clarification answers are never corrupted: the noise models feedback, the channel the issue asks
about. Ground truth is read only by the wrapped simulator and this wrapper, never by the agent.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence

from pahf.decisions import Action
from pahf.eval.episodes import Episode, SimulatedUser

IRRELEVANT_REMARKS = (
    "Sorry, I was distracted by the doorbell.",
    "It has been raining all morning here.",
    "I need to call my sister later today.",
    "The delivery should arrive tomorrow afternoon.",
    "Remind me to water the plants this evening.",
)


def statements_by_user_phase(episodes: Iterable[Episode]) -> dict[tuple[str, int], list[str]]:
    """Each user's distinct preference statements per phase (the pool false corrections use)."""
    pool: dict[tuple[str, int], set[str]] = {}
    for ep in episodes:
        pool.setdefault((ep.user, ep.phase), set()).add(ep.truth.statement)
    return {key: sorted(values) for key, values in pool.items()}


class NoisyFeedback:
    """Makes per-run :class:`SimulatedUser` views whose feedback is noisy with probability p."""

    def __init__(
        self,
        inner: SimulatedUser,
        probability: float,
        seed: int,
        statements: Mapping[tuple[str, int], Sequence[str]],
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"feedback noise must be between 0 and 1, got {probability}")
        self.inner = inner
        self.probability = probability
        self.seed = seed
        self.statements = statements

    def for_run(self, run_id: str) -> NoisyRun:
        """The simulated user for one episode run; its noise depends only on (seed, run_id)."""
        digest = hashlib.sha256(f"{self.seed}\x1f{run_id}".encode()).digest()
        return NoisyRun(self, random.Random(int.from_bytes(digest[:8], "big")))


class NoisyRun:
    """The simulated user of one episode run (a :class:`SimulatedUser`); ``noisy`` says
    whether this run's feedback is corrupted."""

    def __init__(self, owner: NoisyFeedback, rng: random.Random) -> None:
        self._owner = owner
        self._rng = rng
        # Draw up front so the decision does not depend on how often feedback is asked for.
        self.noisy = rng.random() < owner.probability
        self._pick = rng.random()

    def answer(self, episode: Episode, question: str) -> str:
        return self._owner.inner.answer(episode, question)

    def feedback(self, episode: Episode, action: Action) -> str | None:
        honest = self._owner.inner.feedback(episode, action)
        if not self.noisy:
            return honest
        if honest is None:
            others = [
                s
                for s in self._owner.statements.get((episode.user, episode.phase), [])
                if s != episode.truth.statement
            ]
            if not others:
                return "That's not what I wanted."
            return f"That's not what I wanted. {others[int(self._pick * len(others))]}"
        return IRRELEVANT_REMARKS[int(self._pick * len(IRRELEVANT_REMARKS))]
