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

import copy
import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, create_model

from pahf.decisions import Action, Turn
from pahf.memory.schema import RetrievedMemory
from pahf.reasoners.stances import named, option_phrases, phrase_pattern, same_situation
from pahf.request import Request

# --------------------------------------------------------------------------- decision schemas


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The schemas are built per call, so every id the model may answer with is an enum of the ids
# on offer (the request's candidates, the memories shown): a grammar-constrained decoder
# (llama.cpp, vLLM, Ollama, OpenAI strict mode) cannot produce an id that does not exist. They
# keep few, flat fields: small models (0.5-1.5B) fill long schemas inconsistently.


def _enum(values: Sequence[str]) -> Any:
    """``Literal[values...]`` built at run time (pydantic renders it as a JSON-schema enum)."""
    return Literal[tuple(values)]


def candidate_ids(request: Request) -> tuple[str, ...]:
    return tuple(c.id for c in request.candidates)


@dataclass(frozen=True, eq=False)
class DecisionSchema:
    """One call's decision schema: ``json`` is what the model is sent (the ids on offer as
    enums), ``model`` the class that validates a reply's shape. For assess and choose the class
    is the same for every id set (ids as plain strings) and the reply's ids are checked against
    ``json``'s enums instead (:func:`enum_errors`): building a pydantic class per id set cost
    more than the rest of the call's own work, and ids change with every request."""

    name: str
    model: type[_Schema]
    json: dict[str, Any]  # shared between calls: never modified


# Schemas are pure functions of the ids on offer: each is built once per id set.
_SCHEMAS = 4096


def assess_schema(request: Request) -> DecisionSchema:
    """Is the user's wish known? If so, which option (so a clear request costs one call)."""
    return _assess_schema(candidate_ids(request))


def choose_schema(request: Request) -> DecisionSchema:
    return _choose_schema(candidate_ids(request))


def learn_schema(revisable: Sequence[str]) -> DecisionSchema:
    """A memory id only exists when there is a stored preference this message may revise: the
    aliases of :func:`revisable_aliases`."""
    return _learn_schema(tuple(revisable))


def _assess_model(ids: Any) -> type[_Schema]:
    return create_model(
        "AssessDecision",
        __base__=_Schema,
        __doc__="Decide whether this person's wish is known; if it is, pick the option.",
        reason=(
            str, Field(description="One short sentence: what settles it, or why nothing does.")
        ),
        ambiguous=(bool, Field(description="true if you cannot tell which option they want.")),
        candidate_id=(
            ids | None,
            Field(description="The option to take when not ambiguous; null when ambiguous."),
        ),
        question=(
            str,
            Field(description="When ambiguous: one short question about their preference. "
                  "Else empty."),
        ),
    )


def _choose_model(ids: Any) -> type[_Schema]:
    return create_model(
        "ChooseDecision",
        __base__=_Schema,
        __doc__="Pick the option this person wants.",
        rationale=(
            str,
            Field(description="One short sentence first: what rules options out, what decides."),
        ),
        candidate_id=(ids, Field(description="The chosen option.")),
    )


#: Two placeholder ids: pydantic writes one id as ``const``, several as ``enum``.
_PLACEHOLDER_IDS = ("<id-1>", "<id-2>")


@functools.cache
def _id_schema(build: Callable[[Any], type[_Schema]]) -> tuple[type[_Schema], dict[str, Any]]:
    """(validating class with ids as plain strings, JSON template with placeholder enums)."""
    return build(str), build(_enum(_PLACEHOLDER_IDS)).model_json_schema()


def _with_ids(build: Callable[[Any], type[_Schema]], ids: tuple[str, ...]) -> DecisionSchema:
    model, template = _id_schema(build)
    if len(ids) < 2:  # pydantic's own rendering (a const): rare, not worth a template
        return DecisionSchema(model.__name__, model, build(_enum(ids)).model_json_schema())
    data = copy.deepcopy(template)
    for spec in data["properties"].values():
        for option in spec.get("anyOf", [spec]):
            if option.get("enum") == list(_PLACEHOLDER_IDS):
                option["enum"] = list(ids)
    return DecisionSchema(model.__name__, model, data)


@functools.lru_cache(maxsize=_SCHEMAS)
def _assess_schema(candidates: tuple[str, ...]) -> DecisionSchema:
    return _with_ids(_assess_model, candidates)


@functools.lru_cache(maxsize=_SCHEMAS)
def _choose_schema(candidates: tuple[str, ...]) -> DecisionSchema:
    return _with_ids(_choose_model, candidates)


@functools.lru_cache(maxsize=_SCHEMAS)
def _learn_schema(revisable: tuple[str, ...]) -> DecisionSchema:
    """What the message says the person wants and refuses, in a few of its words, and (when a
    stored preference may be revised) which one it replaces. The preference stored is the
    person's message itself (see LLMReasoner.learn): asked to write the preference, the 1.5B
    model wrote the options' features instead ("wants a 2.4 GHz dongle" after "I won't accept
    behind-the-neck band") or dropped the situation; asked only for a kind (add or none) or a
    yes/no, it answered the same for every message. Naming what is wanted and what refused,
    as words of the message, it tells a preference from none."""
    aliases = list(revisable)
    fields: dict[str, Any] = {
        "wants": (
            str,
            Field(description="What the message says they want or like, in a few of its "
                  "words. Empty if nothing."),
        ),
        "refuses": (
            str,
            Field(description="What the message says they do not want or will not accept, in "
                  "a few of its words. Empty if nothing."),
        ),
    }
    if aliases:
        fields["revises_memory_id"] = (
            _enum(aliases) | None,
            Field(description="The earlier preference the message says no longer holds (they "
                  "changed their mind). Else null."),
        )
    model = create_model(
        "LearnDecision",
        __base__=_Schema,
        __doc__="What the person's message says they want and refuse.",
        **fields,
    )
    return DecisionSchema(model.__name__, model, model.model_json_schema())


def enum_errors(data: dict[str, Any], schema: DecisionSchema) -> list[str]:
    """The fields of a reply whose value is not one of the schema's enum values (null where
    the field may be null), in pydantic's wording."""
    errors = []
    for name, spec in schema.json.get("properties", {}).items():
        options = spec.get("anyOf", [spec])
        allowed = [v for o in options for v in o.get("enum", [o["const"]] if "const" in o else [])]
        nullable = any(o.get("type") == "null" for o in options)
        value = data.get(name)
        if not allowed or (value is None and nullable) or value in allowed:
            continue
        listed = ", ".join(repr(v) for v in allowed[:-1])
        expected = f"{listed} or {allowed[-1]!r}" if listed else repr(allowed[-1])
        errors.append(f"{name} {value!r}: Input should be {expected}")
    return errors


# --------------------------------------------------------------------------- agent prompts

AGENT_SYSTEM = """\
You are the decision step of a personal assistant that learns one person's preferences from \
their own words.
- Follow this person's stated preferences literally, even unusual ones.
- A preference for the matching situation beats a general one; an answer given now beats \
anything stored.
- If a preference refuses a feature, options with that feature are wrong.
- Reply with the requested JSON only. Keep text fields short."""


Mentions = dict[str, dict[str, list[str]]]  # candidate id -> phrase -> memory aliases


def render_request(
    request: Request, mentions: Mentions | None = None, quotes: dict[str, str] | None = None
) -> str:
    """The request as the model sees it: task, situation, options with their ids. With
    ``mentions`` (:func:`option_mentions`), each feature (or option) named in a stored
    preference carries that preference's alias, or its words with ``quotes`` (alias -> text,
    oldest first): where the person said several things about one option, the model is told
    which came later, since a change of mind may have been stored beside the old preference
    instead of replacing it."""
    mentions = mentions or {}
    changed = False

    def marked(cand_id: str, phrase: str) -> str:
        nonlocal changed
        aliases = mentions.get(cand_id, {}).get(phrase)
        if not aliases:
            return phrase
        if quotes is None:
            return f"{phrase} [see {', '.join(aliases)}]"
        said = list(dict.fromkeys(quotes[a] for a in quotes if a in aliases))
        changed = changed or len(said) > 1
        return f"{phrase} (they said: {', later: '.join(repr(t) for t in said)})"

    lines = [f"Task: {request.task}"]
    if request.context:
        lines.append(f"Situation: {request.context}")
    if request.subject:
        lines.append(f"Item to act on: {request.subject}")
    lines.append("Options:")
    for cand in request.candidates:
        if cand.attributes:  # a product is its features (its text only lists them again)
            lines.append(f"- {cand.id}: {', '.join(marked(cand.id, f) for f in cand.attributes)}")
            continue
        text = "" if cand.text.strip().casefold() == cand.id.casefold() else f": {cand.text}"
        lines.append(f"- {cand.id}{text}{marked(cand.id, cand.text)[len(cand.text) :]}")
    if changed:
        lines.append("Where they said more than one thing about an option, the later one holds.")
    return "\n".join(lines)


def option_mentions(
    request: Request, memories: Sequence[RetrievedMemory]
) -> Mentions:
    """candidate id -> phrase -> aliases of the stored preferences that name it (whole words,
    any case; a phrase inside a longer phrase that is also named counts for the longer one).

    A pointer, not a verdict: whether the preference wants or refuses it is still the model's
    reading. The 1.5B model, shown three options of three features each beside the stored
    preferences, followed whichever preference it noticed first; with the features marked, it
    only has to read the preferences they point to."""
    phrases = option_phrases(request)
    out: Mentions = {}
    records = {m.record.id: m.record for m in memories}
    for alias, record_id in memory_aliases(memories).items():
        text = records[record_id].text.casefold()
        spans = []
        for cand_id, phrase in phrases:
            pattern = phrase_pattern(phrase)
            spans += [(m.start(), m.end(), cand_id, phrase) for m in re.finditer(pattern, text)]
        for start, end, cand_id, phrase in spans:
            if any(s <= start and end <= e and e - s > end - start for s, e, _, _ in spans):
                continue
            named = out.setdefault(cand_id, {}).setdefault(phrase, [])
            if alias not in named:
                named.append(alias)
    return out


def memory_aliases(memories: Sequence[RetrievedMemory]) -> dict[str, str]:
    """Short ids (M1, M2, ...) for the active memories, most relevant first.

    Record ids are long hashes a model can mangle; it sees and answers with these aliases.
    """
    active = [m for m in memories if m.record.status == "active"]
    return {f"M{i}": m.record.id for i, m in enumerate(active, start=1)}


def revisable_aliases(
    request: Request, memories: Sequence[RetrievedMemory], message: str | None = None
) -> dict[str, str]:
    """The aliases of the stored preferences a message about ``request`` may supersede: those
    learned in the same situation during an earlier request, and (given the ``message``) that
    name one of the request's options or features the message names too.

    A preference of another situation is not changed by this one (the 1.5B model superseded
    "when drowsy: herbal tea" with "when anxious: fruit smoothie"), and what the person said
    earlier in this same request (the answer to the question) is completed by a later
    correction, not replaced. Offered any preference of the same product, the 1.5B model
    superseded one with nearly every new like or dislike ("I don't want electrostatic
    transducer" replacing "I don't want behind-the-neck band"); a change of mind names what it
    is about ("I used to like X, but now ...").
    """
    records = {m.record.id: m.record for m in memories}
    said = named(request, message) if message is not None else None
    return {
        alias: record_id
        for alias, record_id in memory_aliases(memories).items()
        if same_situation(request, records[record_id])
        and records[record_id].request_id != request.request_id
        and (said is None or bool(said & named(request, records[record_id].text)))
    }


def render_memories(memories: Sequence[RetrievedMemory]) -> str:
    """The stored preferences with their aliases. Each is the person's own words, which name
    its situation; the situation each was learned in is not repeated (on the embodied data a
    tag of the task's text doubled every line's tokens)."""
    active = [m for m in memories if m.record.status == "active"]
    if not active:
        return "Stored preferences of this person: none yet."
    lines = ["Stored preferences of this person (most relevant first):"]
    lines += [f"- M{i}: {mem.record.text}" for i, mem in enumerate(active, start=1)]
    return "\n".join(lines)


def render_clarifications(clarifications: Sequence[Turn]) -> str:
    answers = [t for t in clarifications if t.kind == "clarification"]
    if not answers:
        return ""
    lines = ["You asked during this request, and the person answered:"]
    for turn in answers:
        lines.append(f"- Q: {turn.question}\n  A: {turn.text}")
    return "\n".join(lines)


def _situation_block(
    request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
) -> str:
    mentions = option_mentions(request, memories)
    records = {m.record.id: m.record for m in memories}
    aliases = sorted(
        memory_aliases(memories).items(),
        key=lambda item: (records[item[1]].created_at, item[1]),
    )
    quotes = {alias: records[rid].text for alias, rid in aliases}
    parts = [render_request(request, mentions, quotes), render_memories(memories)]
    answers = render_clarifications(clarifications)
    if answers:
        parts.append(answers)
    return "\n\n".join(parts)


def assess_messages(
    request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
) -> list[BaseMessage]:
    # Options described by features (a product's) are settled feature by feature, so the
    # question names one; otherwise it asks what they want in this situation (a question about
    # a "type of drink" got "no particular preference" from the paper's simulated user).
    if any(c.attributes for c in request.candidates):
        ask = "about the one feature that would decide it, one the options differ in that "
        ask += "nothing known covers"
    else:
        ask = "about what they like in this situation"
    instruction = (
        "Does what is known about this person settle which option they want here? If yes: "
        "ambiguous false and the option's candidate_id. If not (e.g. nothing known is about "
        f"this situation): ambiguous true and one short question {ask} (do not list the "
        "options)."
    )
    return [
        SystemMessage(AGENT_SYSTEM),
        HumanMessage(f"{_situation_block(request, memories, clarifications)}\n\n{instruction}"),
    ]


def choose_messages(
    request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
) -> list[BaseMessage]:
    instruction = (
        "Choose the option this person wants. If nothing known decides it, choose what best "
        "fits the task and situation."
    )
    if any(c.attributes for c in request.candidates):
        # Products: refusals rule options out, likes rank the rest; an option without
        # features (not buying) is right when every product is ruled out.
        decline = [c.id for c in request.candidates if not c.attributes]
        instruction = (
            "Choose the option this person wants. An option with a feature a stored "
            "preference refuses is wrong; among the others prefer features they like."
            + (
                f" If every option with features has a refused feature, choose {decline[0]!r}."
                if decline
                else ""
            )
        )
    return [
        SystemMessage(AGENT_SYSTEM),
        HumanMessage(f"{_situation_block(request, memories, clarifications)}\n\n{instruction}"),
    ]


def _render_turn(turn: Turn) -> str:
    if turn.kind == "clarification":
        return f"You asked the person: {turn.question}\nThey answered: {turn.text}"
    took = turn.action.candidate_text if turn.action is not None else "(unknown)"
    return f"You chose: {took}\nThe person corrected you: {turn.text}"


def learn_messages(
    request: Request,
    turn: Turn,
    memories: Sequence[RetrievedMemory],
    revisable: Mapping[str, str],
) -> list[BaseMessage]:
    """``revisable``: alias -> memory id, as :func:`revisable_aliases` gives for this message."""
    revise = (
        " If it says that one of the preferences learned earlier no longer holds (they changed "
        "their mind), give its id; a further like or dislike revises nothing."
        if revisable
        else ""
    )
    instruction = (
        "What does the person's message say they want or like, and what do they refuse? Leave "
        "a field empty when the message says nothing of it (e.g. no particular preference)."
        + revise
    )
    situation = f"Task: {request.task}" + (
        f"\nSituation: {request.context}" if request.context else ""
    )
    parts = [situation]
    if revisable:  # only what it may revise: the rest is no part of this decision
        records = {m.record.id: m.record for m in memories}
        parts.append(
            "Preferences learned earlier in this situation:\n"
            + "\n".join(f"- {alias}: {records[rid].text}" for alias, rid in revisable.items())
        )
    body = "\n\n".join([*parts, _render_turn(turn), instruction])
    return [SystemMessage(AGENT_SYSTEM), HumanMessage(body)]


def json_mode_instruction(schema: DecisionSchema) -> SystemMessage:
    """For JSON mode, where the API does not carry the schema: state it in the prompt."""
    return SystemMessage(
        "Reply with one JSON object that conforms to this JSON schema, with every property "
        f"present:\n{json.dumps(schema.json, indent=1)}"
    )


def retry_message(error: str) -> HumanMessage:
    """Sent after an unusable reply, so the model can correct exactly what was wrong."""
    return HumanMessage(
        f"Your previous reply could not be used: {error}\n"
        "Reply again with a corrected JSON object that follows the schema."
    )


def cut_off_message(error: str) -> HumanMessage:
    """Sent instead of replaying a reply that ran into the length or time limit: shown its own
    looping text again, a small model loops again."""
    return HumanMessage(
        f"Your previous reply could not be used: {error}. It was far too long (it probably "
        "repeated itself). Reply again with a short JSON object: one sentence per text field."
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
