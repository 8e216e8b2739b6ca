"""The LLM-simulated user: persona prompt + situation in (and, for corrections only, what the
person actually wanted), the persona's words out."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from pahf.decisions import Action
from pahf.eval.episodes import Episode, GroundTruth, SimulatedUser
from pahf.eval.llm_user import LLMSimulatedUser
from pahf.reasoners.llm import LLMDecisionError, LLMOutputError
from pahf.request import Candidate, Request


class TextFake(BaseChatModel):
    """Replies with the scripted texts in order and logs what it was sent."""

    replies: list[str]
    log: list[list[BaseMessage]]

    @property
    def _llm_type(self) -> str:
        return "text-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.log.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.replies.pop(0)))])


def text_fake(*replies: str) -> TextFake:
    return TextFake(replies=list(replies), log=[])


PERSONA = "You are simulating Alex, who works in an office kitchen."


def episode() -> Episode:
    request = Request(
        request_id="r1",
        task="Could you bring me something to drink?",
        context="Dehydrated",
        candidates=[
            Candidate(id="A", text="ice-cold water"),
            Candidate(id="B", text="black coffee", attributes=["hot", "caffeinated"]),
        ],
    )
    return Episode(
        episode_id="e1",
        domain="embodied",
        phase=1,
        user="alex",
        index=0,
        request=request,
        truth=GroundTruth(
            correct_ids=["A"],
            statement="When I'm dehydrated I want ice-cold water with lots of ice.",
            refused={"B": ["hot drinks"]},
        ),
    )


def test_answer_plays_the_persona_in_its_situation_without_the_answer_key() -> None:
    """The question is answered from the persona and the user's situation; the preference
    chosen with the answer key (the statement) is not in the prompt."""
    model = text_fake("  Something ice-cold, ideally water with plenty of ice.  ")
    user: SimulatedUser = LLMSimulatedUser(model, {"alex": PERSONA})  # mypy checks the protocol
    text = user.answer(episode(), "What would you like when you're dehydrated?")
    assert text == "Something ice-cold, ideally water with plenty of ice."
    system, human = model.log[0]
    assert system.type == "system" and str(system.content).startswith(PERSONA)
    assert "Never refer to options by letter" in str(system.content)
    assert "only what it asked" in str(system.content)
    assert "What would you like when you're dehydrated?" in str(human.content)
    assert "Your situation: Dehydrated" in str(human.content)
    everything = str(system.content) + str(human.content)
    assert "ice-cold water with lots of ice" not in everything


def test_answer_without_a_persona_prompt_gets_the_situations_preference() -> None:
    """Generated data has no persona prompt: the persona's one preference for the situation
    stands in for it (it is written before any answer key there)."""
    model = text_fake("Ice water, please.")
    user = LLMSimulatedUser(model, {}, allow_generic_persona=True)
    user.answer(episode(), "What would you like?")
    system = str(model.log[0][0].content)
    assert "Your preference in this situation: When I'm dehydrated" in system


def test_feedback_accepts_correct_actions_without_a_call() -> None:
    model = text_fake()
    user = LLMSimulatedUser(model, {"alex": PERSONA})
    action = Action(candidate_id="A", candidate_text="ice-cold water")
    assert user.feedback(episode(), action) is None
    assert model.log == []


def test_feedback_corrects_wrong_actions_in_words() -> None:
    model = text_fake("Coffee is the last thing I want when I'm parched; give me iced water.")
    user = LLMSimulatedUser(model, {"alex": PERSONA})
    action = Action(candidate_id="B", candidate_text="B: hot, caffeinated")
    text = user.feedback(episode(), action)
    assert text == "Coffee is the last thing I want when I'm parched; give me iced water."
    body = str(model.log[0][1].content)
    assert "The assistant chose: B: hot, caffeinated" in body
    assert "you object to: hot drinks" in body


def test_a_reply_naming_an_option_is_retried_then_fails_clearly() -> None:
    model = text_fake("Option A please.", "Water with lots of ice.")
    user = LLMSimulatedUser(model, {"alex": PERSONA})
    assert user.answer(episode(), "Which drink?") == "Water with lots of ice."
    assert "names option 'A'" in str(model.log[1][-1].content)

    model = text_fake("Option A please.", "I'd go with choice (b).")
    with pytest.raises(LLMOutputError) as info:
        LLMSimulatedUser(model, {"alex": PERSONA}).answer(episode(), "Which drink?")
    assert info.value.decision == "user_answer" and info.value.node == "simulated user"
    assert "names option 'B'" in str(info.value)


def test_empty_replies_fail_as_decision_errors() -> None:
    with pytest.raises(LLMDecisionError, match="the reply was empty"):
        LLMSimulatedUser(text_fake("", "  "), {"alex": PERSONA}).answer(episode(), "Q?")


def test_missing_persona_is_an_error_unless_generic_is_allowed() -> None:
    with pytest.raises(KeyError, match=r"no persona prompt for user 'alex'.*loaded: bea"):
        LLMSimulatedUser(text_fake("x"), {"bea": PERSONA}).answer(episode(), "Q?")
    model = text_fake("Iced water, please.")
    user = LLMSimulatedUser(model, {}, allow_generic_persona=True)
    assert user.answer(episode(), "Q?") == "Iced water, please."
    assert str(model.log[0][0].content).startswith("You are alex")


def test_the_persona_played_is_the_one_the_data_gives_for_the_episodes_phase() -> None:
    """Phases 1-2 the original persona, 3-4 the evolved one, for answers and corrections;
    a user the benchmark has no persona for falls back to ``persona_prompts``."""
    before, after = "You are Alex, before the shift.", "You are Alex, after the shift."
    phases = {"embodied": {1: {"alex": before}, 3: {"alex": after}}}
    model = text_fake("Water.", "Not coffee; water.", "Water, please.")
    user = LLMSimulatedUser(model, {"alex": PERSONA}, phase_personas=phases)
    wrong = Action(candidate_id="B", candidate_text="black coffee")
    user.answer(episode(), "Which drink?")
    user.feedback(episode().model_copy(update={"phase": 3}), wrong)
    user.answer(episode().model_copy(update={"phase": 2}), "Which drink?")  # not in the data
    systems = [str(messages[0].content) for messages in model.log]
    assert systems[0].startswith(before)
    assert systems[1].startswith(after)
    assert systems[2].startswith(PERSONA)
