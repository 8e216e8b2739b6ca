"""What a person's own words say about a request's options: wanted, refused, or nothing.

Read with the phrase parser, without a model, so that two rules hold whatever model reads the
rest: a message that refuses what an earlier preference of the same situation wanted revises
that preference (a change of mind), and an option whose feature the person's latest word
refuses is not offered. Small models follow neither rule from instructions alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pahf.memory.schema import MemoryRecord, RetrievedMemory
from pahf.reasoners.phrases import parse_preferences
from pahf.request import Request

#: A phrase the person named, and which way: +1 wanted, -1 refused.
Stances = dict[str, int]


def phrase_pattern(phrase: str) -> str:
    """``phrase`` as whole words, any case, optionally plural (match casefolded text)."""
    return r"(?<!\w)" + re.escape(phrase.strip().casefold()) + r"(?:e?s)?(?!\w)"


def option_phrases(request: Request) -> list[tuple[str, str]]:
    """(candidate id, phrase): an option's features, else its own text."""
    return [
        (cand.id, phrase)
        for cand in request.candidates
        for phrase in (cand.attributes or [cand.text])
        if phrase.strip()
    ]


def named(request: Request, text: str) -> set[str]:
    """The request's options and features ``text`` names (casefolded)."""
    folded = text.casefold()
    return {
        phrase.casefold()
        for _, phrase in option_phrases(request)
        if re.search(phrase_pattern(phrase), folded)
    }


def stances(request: Request, text: str) -> Stances:
    """The request's options and features that a preference phrase of ``text`` names, with the
    phrase's sign. One named both ways ("not X ... X is fine") is left out: unclear."""
    signs: dict[str, set[int]] = {}
    options = {option.casefold() for _, option in option_phrases(request)}
    for phrase in parse_preferences(text):
        found = {o for o in options if re.search(phrase_pattern(o), phrase.text.casefold())}
        # "room-temperature water" names that option, not also an option called "water".
        for option in found:
            if not any(o != option and re.search(phrase_pattern(option), o) for o in found):
                signs.setdefault(option, set()).add(1 if phrase.weight > 0 else -1)
    return {option: next(iter(s)) for option, s in signs.items() if len(s) == 1}


def contradicts(request: Request, old_text: str, new_text: str) -> bool:
    """Does ``new_text`` turn around what ``old_text`` said about one of the request's options
    or features (wanted then, refused now, or the reverse)?"""
    old = stances(request, old_text)
    new = stances(request, new_text)
    return any(old[phrase] != sign for phrase, sign in new.items() if phrase in old)


def same_situation(request: Request, record: MemoryRecord) -> bool:
    """Whether a preference was learned in this request's situation: the same context (e.g. the
    product) when the request has one, else the same task."""
    if request.context:
        return record.topic == request.topic() or record.topic.startswith(f"{request.context}: ")
    return record.topic == request.topic()


def refused_options(
    request: Request, memories: Sequence[RetrievedMemory], said_now: Iterable[str] = ()
) -> set[str]:
    """Ids of the options that have a feature (or are a thing) whose latest word from the
    person in this situation is a refusal: the active preferences learned here, oldest first,
    then what they said during this request (``said_now``)."""
    records = sorted(
        (
            m.record
            for m in memories
            if m.record.status == "active" and same_situation(request, m.record)
        ),
        key=lambda r: (r.created_at, r.id),
    )
    latest: Stances = {}
    for text in [*(r.text for r in records), *said_now]:
        latest.update(stances(request, text))
    if not any(sign < 0 for sign in latest.values()):
        return set()
    return {
        cand_id
        for cand_id, phrase in option_phrases(request)
        if latest.get(phrase.casefold(), 0) < 0
    }
