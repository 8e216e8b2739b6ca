"""Every text an LLM sees in pahf: the decision schemas, the prompts, and how state is rendered.

Kept in one module so prompt changes are reviewed in one place. The schemas live here too
because their field descriptions are sent to the model as part of the instructions. They use
only plain types (str, bool, enum, nullable str), with every field required, so they stay valid
under OpenAI's strict JSON-schema mode and under the grammar-constrained decoders of vLLM,
Ollama and llama.cpp. What the model returns is checked in :mod:`pahf.reasoners.llm`.

The wording is written for this project. From the paper we take facts only: the agent asks at
most one question before acting, learns from answers and corrections, and lets newer
statements revise older ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from pahf.decisions import Action, Turn
from pahf.memory.schema import RetrievedMemory
from pahf.request import Request

# --------------------------------------------------------------------------- decision schemas


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssessDecision(_Schema):
    """Decide whether the user's wishes for this request are known; if so, also pick the option."""

    reason: str = Field(
        description="One or two sentences: which stored preference or answer settles this "
        "request, or why none does."
    )
    ambiguous: bool = Field(
        description="true when you cannot tell which option this user wants from what is known."
    )
    question: str = Field(
        description="When ambiguous: one short question asking the user about their preference "
        "for this situation. Empty string when not ambiguous."
    )
    candidate_id: str | None = Field(
        description="The id of the option to take (exactly as listed). Required when not "
        "ambiguous; your best guess or null when ambiguous."
    )


class ChooseDecision(_Schema):
    """Pick the option this user wants."""

    rationale: str = Field(
        description="One sentence: which preference or answer leads to this option."
    )
    candidate_id: str = Field(description="The id of the chosen option, exactly as listed.")


class LearnDecision(_Schema):
    """What a user's answer or correction teaches about their lasting preferences."""

    reason: str = Field(description="One sentence explaining the decision.")
    has_preference: bool = Field(
        description="true when the message states a preference worth remembering for later "
        "requests; false for thanks, acknowledgements or messages with no preference."
    )
    kind: Literal["add", "supersede", "none"] = Field(
        description="'add': store a new preference. 'supersede': the message changes or "
        "contradicts a stored preference, which the new one replaces. 'none': store nothing."
    )
    memory_text: str = Field(
        description="The preference as one self-contained sentence that names the situation it "
        "applies to and what the user wants or refuses. Empty string when kind is 'none'."
    )
    revises_memory_id: str | None = Field(
        description="With kind 'supersede': the id (M1, M2, ...) of the stored preference being "
        "replaced. Otherwise null."
    )


# --------------------------------------------------------------------------- agent prompts

AGENT_SYSTEM = """\
You are the decision step of a personal assistant that serves one person over many requests \
and learns what this person likes from their own words. For each request you see the task, the \
situation, the numbered options, the preferences stored for this person, and any answers they \
gave during this request.

How to decide:
- Follow this person's stated preferences, not what most people would want. Their wishes may be \
unusual; take them literally.
- A preference stated for a specific situation beats a general favourite when the situation \
matches; an answer given during this request beats anything stored.
- If a preference refuses a feature, an option with that feature is wrong for them.
- Refer to options and stored preferences only by the ids shown.
- Reply with the JSON object requested and nothing else."""


def render_request(request: Request) -> str:
    """The request as the model sees it: task, situation, options with their ids."""
    lines = [f"Task: {request.task}"]
    if request.context:
        lines.append(f"Situation: {request.context}")
    if request.subject:
        lines.append(f"Item to act on: {request.subject}")
    lines.append("Options (id: description):")
    for cand in request.candidates:
        detail = f" (features: {', '.join(cand.attributes)})" if cand.attributes else ""
        lines.append(f"- {cand.id}: {cand.text}{detail}")
    return "\n".join(lines)


def memory_aliases(memories: Sequence[RetrievedMemory]) -> dict[str, str]:
    """Short ids (M1, M2, ...) for the active memories, most relevant first.

    Record ids are long hashes a model can mangle; it sees and answers with these aliases.
    """
    active = [m for m in memories if m.record.status == "active"]
    return {f"M{i}": m.record.id for i, m in enumerate(active, start=1)}


def render_memories(memories: Sequence[RetrievedMemory]) -> str:
    active = [m for m in memories if m.record.status == "active"]
    if not active:
        return "Stored preferences of this person: none yet."
    lines = ["Stored preferences of this person (most relevant first):"]
    for i, mem in enumerate(active, start=1):
        where = f" [learned when: {mem.record.topic}]" if mem.record.topic else ""
        lines.append(f"- M{i}: {mem.record.text}{where}")
    return "\n".join(lines)


def render_clarifications(clarifications: Sequence[Turn]) -> str:
    answers = [t for t in clarifications if t.kind == "clarification"]
    if not answers:
        return ""
    lines = ["During this request you asked, and the person answered:"]
    for turn in answers:
        lines.append(f"- Q: {turn.question}\n  A: {turn.text}")
    return "\n".join(lines)


def _situation_block(
    request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
) -> str:
    parts = [render_request(request), render_memories(memories)]
    answers = render_clarifications(clarifications)
    if answers:
        parts.append(answers)
    return "\n\n".join(parts)


def assess_messages(
    request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
) -> list[BaseMessage]:
    instruction = (
        "Can you tell which option this person wants? If what is known settles it, set "
        "ambiguous to false and give the option's id. If several options remain plausible "
        "for this person (for example nothing known bears on this situation), set ambiguous "
        "to true and write one short, friendly question about their preference in this "
        "situation; ask about what they like, do not ask them to pick an option id."
    )
    return [
        SystemMessage(AGENT_SYSTEM),
        HumanMessage(f"{_situation_block(request, memories, clarifications)}\n\n{instruction}"),
    ]


def choose_messages(
    request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
) -> list[BaseMessage]:
    instruction = (
        "Choose the option this person wants. If nothing known decides it, choose the option "
        "that best fits the task and situation."
    )
    return [
        SystemMessage(AGENT_SYSTEM),
        HumanMessage(f"{_situation_block(request, memories, clarifications)}\n\n{instruction}"),
    ]


def _render_turn(turn: Turn) -> str:
    if turn.kind == "clarification":
        return (
            "Before acting you asked the person:\n"
            f"Q: {turn.question}\n"
            f"Their answer: {turn.text}"
        )
    took = turn.action.candidate_text if turn.action is not None else "(unknown)"
    return (
        f"You acted by choosing: {took}\n"
        f"The person replied with this correction: {turn.text}"
    )


def learn_messages(
    request: Request, turn: Turn, memories: Sequence[RetrievedMemory]
) -> list[BaseMessage]:
    instruction = (
        "Decide what this message teaches about the person's lasting preferences. Write the "
        "preference as one sentence naming the situation it applies to and what they want or "
        "refuse, keeping their own words where possible. If it changes or contradicts one of "
        "the stored preferences, use kind 'supersede' with that preference's id and write the "
        "updated preference in full: keep what still holds from the old one, change what the "
        "person changed. If it is new, use 'add'; if it holds no preference, use 'none'."
    )
    body = "\n\n".join(
        [render_request(request), render_memories(memories), _render_turn(turn), instruction]
    )
    return [SystemMessage(AGENT_SYSTEM), HumanMessage(body)]


def json_mode_instruction(schema: type[BaseModel]) -> SystemMessage:
    """For JSON mode, where the API does not carry the schema: state it in the prompt."""
    return SystemMessage(
        "Reply with one JSON object that conforms to this JSON schema, with every property "
        f"present:\n{json.dumps(schema.model_json_schema(), indent=1)}"
    )


def retry_message(error: str) -> HumanMessage:
    """Sent after an unusable reply, so the model can correct exactly what was wrong."""
    return HumanMessage(
        f"Your previous reply could not be used: {error}\n"
        "Reply again with a corrected JSON object that follows the schema."
    )


# --------------------------------------------------------------------------- simulated user

USER_RULES = """\

Rules for this conversation:
- Stay in character and speak as this person, in one or two sentences.
- Describe what you want in words; never name option letters or option ids.
- Reply with the message only, no preamble."""


def user_answer_messages(
    persona: str, request: Request, question: str, preference: str
) -> list[BaseMessage]:
    """The simulated person answers the agent's clarification question."""
    body = (
        f"You asked the assistant: {request.task}"
        + (f" (situation: {request.context})" if request.context else "")
        + f"\nThe assistant asks you: {question}\n\n"
        f"What you actually want in this situation: {preference}\n"
        "Answer the question as yourself."
    )
    return [SystemMessage(persona + USER_RULES), HumanMessage(body)]


def user_correction_messages(
    persona: str,
    request: Request,
    action: Action,
    preference: str,
    refused: Sequence[str],
) -> list[BaseMessage]:
    """The simulated person corrects an action that was not what they wanted."""
    refusal = f"\nIn what it did, you object to: {', '.join(refused)}." if refused else ""
    body = (
        f"You asked the assistant: {request.task}"
        + (f" (situation: {request.context})" if request.context else "")
        + f"\nThe assistant chose: {action.candidate_text}\n"
        "That is not what you wanted."
        + refusal
        + f"\nWhat you actually want in this situation: {preference}\n"
        "Tell the assistant, as yourself, what was wrong and what you prefer."
    )
    return [SystemMessage(persona + USER_RULES), HumanMessage(body)]


def generic_persona(user: str) -> str:
    """A minimal persona for users without a benchmark persona prompt."""
    return (
        f"You are {user}, a person using a personal assistant that acts on your behalf. You "
        "answer its questions and tell it when it got something wrong."
    )
