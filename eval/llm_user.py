"""An LLM playing the benchmark's persona: answers questions and corrects actions in its words.

This is the paper's human simulator in LLM mode: a chat model given the persona prompt of the
user (e.g. the benchmark's persona for the phase) and its own situation. Answers to questions
get the persona, the situation and the question only, never the answer key (the intended
object, place or option, or a statement chosen with it); a shopper's persona includes their
taste table for the product. Corrections may use the answer key, as a person knows whether they
got what they wanted: whether an action is accepted is decided from ``truth.correct_ids`` (the
same rule the scorer uses), so an accepted action costs no call and a simulator cannot disagree
with the score; the LLM only words the corrections. Where the data has no persona prompt
(generated benchmarks) the persona's one preference for the situation stands in for it.

A reply that names an option id or letter ("option B") would leak the answer key instead of a
preference: it is sent back once with that error, then the turn fails with
:class:`~pahf.reasoners.llm.LLMDecisionError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from pahf.decisions import Action
from pahf.eval.episodes import Episode, TasteEntry
from pahf.reasoners.llm import (
    AttemptResult,
    chat_model_from_settings,
    message_text,
    run_decision,
)
from pahf.reasoners.prompts import (
    generic_persona,
    user_correction_messages,
)
from pahf.request import Request

NODE = "simulated user"

#: How the simulated person answers a question (this project's words).
ANSWER_RULES = (
    "\n\nAnswer the assistant's question as yourself, in one or two sentences: only what it "
    "asked, from your own preferences and situation. Mention one preference, not all of them. "
    "If your preferences say nothing about what it asked, say you have no particular "
    "preference. Never refer to options by letter or number."
)


def _tastes_text(tastes: list[TasteEntry]) -> str:
    lines = []
    for t in tastes:
        fine = ", ".join(t.like_second) or "nothing else"
        bad = ", ".join(t.dislike) or "nothing"
        lines.append(
            f"- {t.category}: favourite {t.like_most}; also acceptable {fine}; "
            f"you refuse {bad}"
        )
    return "\n".join(lines)


def answer_messages(
    persona: str, episode: Episode, question: str, *, preference: str | None = None
) -> list[BaseMessage]:
    """What the simulated person reads before answering: their persona (plus, for a shopper,
    their taste table for this product), their situation, their request and the question.
    ``preference`` stands in for a persona only where the data has none (generated data)."""
    request = episode.request
    system = persona
    if episode.truth.tastes:
        system += (
            f"\n\nYour taste for a {request.context}, feature by feature:\n"
            + _tastes_text(episode.truth.tastes)
        )
    if preference:
        system += f"\n\nYour preference in this situation: {preference}"
    situation = (
        f"\nYour situation: {request.context}"
        if request.context and episode.domain != "shopping"
        else ""
    )
    scene = f"\nWhat is at hand: {', '.join(c.text for c in request.candidates)}"
    subject = f"\nThe item to put away: {request.subject}" if request.subject else ""
    body = (
        f"You asked the assistant: {request.task}{situation}{subject}{scene}\n"
        f"The assistant asks you: {question}"
    )
    return [SystemMessage(system + ANSWER_RULES), HumanMessage(body)]


def _leaks_option(text: str, request: Request) -> str | None:
    """The option id the text names as an option ("option B", "choice 2"), if any."""
    for cand in request.candidates:
        pattern = rf"\b(?:option|choice|candidate)\s*[\(\[]?{re.escape(cand.id)}\b"
        if re.search(pattern, text, flags=re.IGNORECASE):
            return cand.id
    return None


class LLMSimulatedUser:
    """:class:`~pahf.eval.episodes.SimulatedUser` backed by a chat model and persona prompts.

    ``phase_personas`` (domain -> phase -> user -> prompt, a benchmark's
    :attr:`~pahf.eval.episodes.Benchmark.personas`) gives the persona the data has for an
    episode's user in its phase, so the simulated person changes with the persona shift as in
    the paper; ``persona_prompts`` (user -> prompt) serves the users it does not cover. A user
    in neither is an error (it usually means the wrong persona file was loaded), unless
    ``allow_generic_persona`` is set, which plays a plain persona built from the user's name.
    """

    def __init__(
        self,
        chat_model: BaseChatModel,
        persona_prompts: Mapping[str, str],
        *,
        allow_generic_persona: bool = False,
        output_retries: int = 1,
        phase_personas: Mapping[str, Mapping[int, Mapping[str, str]]] | None = None,
    ) -> None:
        self.chat_model = chat_model
        self.persona_prompts = dict(persona_prompts)
        self.phase_personas = {
            domain: {phase: dict(users) for phase, users in phases.items()}
            for domain, phases in (phase_personas or {}).items()
        }
        self.allow_generic_persona = allow_generic_persona
        self.output_retries = output_retries

    @classmethod
    def from_settings(
        cls,
        persona_prompts: Mapping[str, str],
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        *,
        cache_path: str | Path | None = None,
        allow_generic_persona: bool = False,
        phase_personas: Mapping[str, Mapping[int, Mapping[str, str]]] | None = None,
    ) -> LLMSimulatedUser:
        """Over ``ChatOpenAI`` configured like the LLM reasoner (same env variables)."""
        chat = chat_model_from_settings(
            model=model,
            base_url=base_url,
            api_key=api_key,
            temperature=temperature,
            timeout=timeout,
            max_retries=max_retries,
            cache_path=cache_path,
        )
        return cls(
            chat,
            persona_prompts,
            allow_generic_persona=allow_generic_persona,
            phase_personas=phase_personas,
        )

    def persona_for(self, episode: Episode) -> str:
        """The persona the user of ``episode`` is in that episode's phase."""
        by_phase = self.phase_personas.get(episode.domain, {})
        prompt = by_phase.get(episode.phase, {}).get(episode.user)
        return prompt or self.persona(episode.user)

    def persona(self, user: str) -> str:
        prompt = self.persona_prompts.get(user)
        if prompt:
            return prompt
        if self.allow_generic_persona:
            return generic_persona(user)
        known = ", ".join(sorted(self.persona_prompts)) or "none"
        raise KeyError(f"no persona prompt for user {user!r} (personas loaded: {known})")

    def _say(self, decision: str, episode: Episode, messages: list[BaseMessage]) -> str:
        def attempt(conversation: list[BaseMessage]) -> AttemptResult[str]:
            reply: Any = self.chat_model.invoke(
                conversation, config={"metadata": {"pahf_simulated_user": episode.user}}
            )
            text = message_text(reply).strip()
            if not text:
                return text, None, "the reply was empty"
            leaked = _leaks_option(text, episode.request)
            if leaked is not None:
                return text, None, (
                    f"the reply names option {leaked!r}; describe what you want in words, "
                    "without option ids or letters"
                )
            return text, text, None

        return run_decision(
            attempt,
            messages,
            decision=decision,
            node=NODE,
            output_retries=self.output_retries,
        )

    def answer(self, episode: Episode, question: str) -> str:
        """The persona's answer to the agent's question, from persona and situation only."""
        prompt = self.phase_personas.get(episode.domain, {}).get(episode.phase, {}).get(
            episode.user
        ) or self.persona_prompts.get(episode.user)
        if prompt:
            messages = answer_messages(prompt, episode, question)
        else:  # generated data: no persona prompt, the situation's preference stands in
            messages = answer_messages(
                self.persona(episode.user), episode, question, preference=episode.truth.statement
            )
        return self._say("user_answer", episode, messages)

    def feedback(self, episode: Episode, action: Action) -> str | None:
        """None when the action is one the persona accepts; else a correction (one call)."""
        truth = episode.truth
        if action.candidate_id in truth.correct_ids:
            return None
        messages = user_correction_messages(
            self.persona_for(episode),
            episode.request,
            action,
            truth.statement,
            truth.refused.get(action.candidate_id, []),
        )
        return self._say("user_feedback", episode, messages)
