"""Rule-based simulated users: the paper-parity user (default) and the generous upper bound.

:class:`ParityUser` plays the person as the paper's simulator does. Asked a question, it answers
that question from what the person knows, the phase's persona and its own situation, never from
the answer key (which object, place or option is right): one focused preference about what the
question mentions, or a plain "no particular preference" where the persona says nothing that
applies. After an action it accepts a right one and, after a wrong one, names one thing that is
wrong (feedback may use the answer key: a person knows whether they got what they wanted). The
facts of what the reference user says (facebookresearch/PAHF, ``agents/shopping_agent.py``):
a disliked feature, a preference that changed since phase 1-2, "acceptable but another has a
feature I like more", "one of them would have worked" after buying nothing.

:class:`RuleBasedUser` is the generous user of earlier versions, kept as an explicit upper bound
(``--simulator rule-generous``): it answers every question with the persona's whole preference
for the situation as chosen with the answer key (shopping: the whole taste table of the product),
so one question settles an episode. Neither ever names an option letter or candidate id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pahf.decisions import Action
from pahf.eval.episodes import Episode, TasteEntry
from pahf.eval.persona_text import PersonaLine, answer_line, persona_lines
from pahf.eval.persona_text import content_words as _words
from pahf.eval.published_shopping import NONE_ID

#: What the parity user says when its persona has nothing that applies to the question.
NO_PREFERENCE = "I don't have a particular preference about that."
#: What the parity user says when its persona prompt is not available and the episode carries no
#: persona knowledge either (so it cannot answer from the persona).
NOT_SURE = "I'm not sure; whatever you think is best."


class RuleBasedUser:
    """The generous upper-bound user: answers with the persona's statement for the situation
    (chosen with the answer key on published embodied data; the whole taste table in shopping)
    and corrects wrong actions with it. Not the default: it overstates what one question buys."""

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


GenerousUser = RuleBasedUser


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _mentioned(value: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(value.lower())}(?![\w-])", text) is not None


class ParityUser:
    """The paper-parity simulated user (see the module docstring).

    ``personas``: domain -> phase -> user -> the persona prompt the data gives that user in that
    phase (:attr:`~pahf.eval.episodes.Benchmark.personas`); embodied answers come from its
    preference lines. Shopping answers come from the episode's ``truth.tastes`` (the persona's
    taste table for the product). Generated benchmarks have neither: their ``statement`` is the
    persona's one preference for the situation, written before any answer key exists, and is
    what this user answers with there (shopping: the one sentence of it the question is about).
    """

    def __init__(self, personas: Mapping[str, Mapping[int, Mapping[str, str]]] | None = None):
        self.personas = {
            d: {p: dict(users) for p, users in phases.items()}
            for d, phases in (personas or {}).items()
        }
        self._lines: dict[tuple[str, int, str], list[PersonaLine]] = {}

    # ------------------------------------------------------------------ answers

    def answer(self, episode: Episode, question: str) -> str:
        if episode.domain == "shopping":
            return self._shopping_answer(episode, question)
        return self._situated_answer(episode, question)

    def _persona_lines(self, episode: Episode) -> list[PersonaLine] | None:
        prompt = self.personas.get(episode.domain, {}).get(episode.phase, {}).get(episode.user)
        if not prompt:
            return None
        key = (episode.domain, episode.phase, episode.user)
        if key not in self._lines:
            self._lines[key] = persona_lines(prompt)
        return self._lines[key]

    def _situated_answer(self, episode: Episode, question: str) -> str:
        lines = self._persona_lines(episode)
        request = episode.request
        if lines is None:
            # Generated data: the statement is the persona's one preference here.
            return episode.truth.statement
        asked = f"{question} {request.subject}"
        line = answer_line(lines, situation=request.context, task=request.task, asked=asked)
        return line.statement() if line is not None else NO_PREFERENCE

    def _shopping_answer(self, episode: Episode, question: str) -> str:
        tastes = episode.truth.tastes
        if not tastes:
            return self._statement_sentence(episode, question)
        text = question.lower()
        asked_words = _words(question)
        best: tuple[float, int, TasteEntry, list[str], list[str], list[str]] | None = None
        for order, taste in enumerate(tastes):
            most = [taste.like_most] if _mentioned(taste.like_most, text) else []
            fine = [f for f in taste.like_second if _mentioned(f, text)]
            bad = [f for f in taste.dislike if _mentioned(f, text)]
            named = len(_words(taste.category) & asked_words) / max(1, len(_words(taste.category)))
            # What a person asked "what do you prefer, anything you would not want?" brings
            # up first: something offered that they refuse, then a favourite, then the rest.
            score = 3.0 * len(bad) + 2.0 * len(most) + 1.0 * len(fine) + 2.0 * named
            if best is None or score > best[0]:
                best = (score, order, taste, most, fine, bad)
        assert best is not None
        score, _order, taste, most, fine, bad = best
        if score == 0.0:
            # The question names none of the features or categories: any one preference about
            # the product answers it; the first of the persona's categories.
            taste = tastes[0]
            return f"For the {taste.category}, I like {taste.like_most} best."
        parts = []
        if most:
            parts.append(f"I like {most[0]} best")
        elif fine:
            parts.append(f"{_join(fine)} would be fine")
        if bad:
            parts.append(f"I won't accept {_join(bad)}")
        if not parts:  # only the category was named
            parts.append(f"I like {taste.like_most} best")
        return f"For the {taste.category}, " + ", and ".join(parts) + "."

    @staticmethod
    def _statement_sentence(episode: Episode, question: str) -> str:
        """The one sentence of a per-category statement the question is most about."""
        body = episode.truth.statement.split(": ", 1)[-1]
        sentences = [s.strip() for s in re.split(r"(?<=\.)\s+", body) if s.strip()]
        if not sentences:
            return NOT_SURE
        # What is asked about, not the request the question quotes ("... a coffee maker ...":
        # every sentence may name the product).
        request = episode.request
        asked = _words(question) - _words(f"{request.task} {request.context}")
        scored = [(len(_words(s) & asked), -i, s) for i, s in enumerate(sentences)]
        return max(scored)[2]

    # ------------------------------------------------------------------ feedback

    def feedback(self, episode: Episode, action: Action) -> str | None:
        truth = episode.truth
        if action.candidate_id in truth.correct_ids:
            return None
        if episode.domain == "shopping":
            return self._shopping_feedback(episode, action)
        what = episode.request.candidate(action.candidate_id).text
        return f"Not the {what}. {truth.statement}"

    def _shopping_feedback(self, episode: Episode, action: Action) -> str:
        truth = episode.truth
        request = episode.request
        tastes = truth.tastes
        chosen = request.candidate(action.candidate_id)
        right = request.candidate(truth.correct_ids[0])
        chosen_features = chosen.attributes or [chosen.text]
        right_features = right.attributes or [right.text]
        if chosen.id == NONE_ID:  # bought nothing, but an option was right
            feature = self._favourite_in(right_features, tastes) or right_features[0]
            return f"I did want one: the one with {feature} would work for me."
        refused = truth.refused.get(chosen.id, [])
        if tastes and truth.tastes_before:
            changed = self._changed(chosen_features, truth.tastes_before, tastes)
            if changed is not None:
                return (
                    f"My taste has changed: I used to like {changed}, but now I don't want it."
                )
        if refused:
            return f"That won't work for me: I don't want {refused[0]}."
        if not tastes:
            return "That's not the one I wanted."
        acceptable = all(self._kind(f, tastes) in ("most", "second") for f in chosen_features)
        if not acceptable:
            return "That one doesn't meet my needs."
        if right.id != NONE_ID:
            better = self._better_in(right_features, chosen_features, tastes)
            if better is not None:
                return f"That one is okay, but I'd prefer one with {better}, which I like more."
            return "That one works, but another option would be even better for me."
        return "That one is acceptable."

    @staticmethod
    def _kind(feature: str, tastes: list[TasteEntry]) -> str:
        for t in tastes:
            if feature == t.like_most:
                return "most"
            if feature in t.like_second:
                return "second"
            if feature in t.dislike:
                return "dislike"
        return "unknown"

    @classmethod
    def _favourite_in(cls, features: list[str], tastes: list[TasteEntry]) -> str | None:
        return next((f for f in features if cls._kind(f, tastes) == "most"), None)

    @staticmethod
    def _better_in(
        right: list[str], chosen: list[str], tastes: list[TasteEntry]
    ) -> str | None:
        """A favourite of the right option in a category where the chosen one is only fine."""
        for feature in right:
            for t in tastes:
                if feature == t.like_most and any(c in t.like_second for c in chosen):
                    return feature
        return None

    @staticmethod
    def _changed(
        features: list[str], before: list[TasteEntry], now: list[TasteEntry]
    ) -> str | None:
        """A feature of the action that was liked before the shift and is refused now, when the
        action had been acceptable before it (the reference's "my preferences changed")."""
        old = {t.category: t for t in before}
        if any(f in t.dislike for f in features for t in before):
            return None
        for feature in features:
            for t in now:
                prior = old.get(t.category)
                if (
                    feature in t.dislike
                    and prior is not None
                    and (feature == prior.like_most or feature in prior.like_second)
                ):
                    return feature
        return None
