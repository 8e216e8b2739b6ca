"""Rule-based simulated users built from persona ground truth.

They talk the way a person would: asked a question, they state the preference behind what they
want; corrected, they say what was wrong with the action and restate the preference. They never
name the answer key (no option letters, no candidate ids).
"""

from __future__ import annotations

from pahf.decisions import Action
from pahf.eval.episodes import Episode


class RuleBasedUser:
    """Answers with the persona's statement for the situation; corrects wrong actions."""

    def answer(self, episode: Episode, question: str) -> str:
        return episode.truth.statement

    def feedback(self, episode: Episode, action: Action) -> str | None:
        truth = episode.truth
        if action.candidate_id in truth.correct_ids:
            return None
        refused = truth.refused.get(action.candidate_id)
        if refused:
            opening = f"That won't work for me: I don't want {' or '.join(refused)}."
        elif truth.drifted:
            opening = "Not that one: my preference has changed."
        else:
            opening = "That's not what I wanted."
        return f"{opening} {truth.statement}"
