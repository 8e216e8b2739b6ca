"""How much two situations share the words that tell situations apart, without an LLM.

Requests of one benchmark share templates ("Could you put it in the right place?"), so an
embedding of the whole request is dominated by the template: "I want my pre-workout snacks
stored" sits closer to "I want my beverages stored" than to the request that taught the
pre-workout preference in other words. Words that occur in every situation this user has
spoken about carry nothing; words few of them share ("pre-workout", "famished", "guests")
carry the situation. So the words are weighted by their rarity among the situations compared
(an inverse document frequency over this request's and the memories' topics: a pure function
of what the reasoner is shown, no state).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_WORD = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")
# Function words: they say nothing about a situation in any benchmark.
_FUNCTION_WORDS = frozenset(
    (
        "a", "an", "the", "and", "or", "but", "of", "for", "in", "on", "at", "to", "from", "with",
        "by", "as", "is", "are", "was", "be", "been", "am", "it", "its", "it's", "this", "that",
        "these", "those", "my", "me", "i", "i'm", "i'd", "i've", "you", "your", "we", "our",
        "they", "their", "them", "he", "she", "his", "her", "could", "can", "would", "will",
        "should", "please", "some", "something", "anything", "any", "just", "so", "very", "do",
        "does", "did", "have", "has", "had", "get", "put", "bring", "give", "want", "need", "like",
    )
)
_SUFFIX = re.compile(r"(?:ing|ed|es|e|s)$")


@lru_cache(maxsize=50_000)
def situation_words(text: str) -> frozenset[str]:
    """The content words of a situation, crudely stemmed ("snacks" / "snack")."""
    out = set()
    for word in _WORD.findall(text.lower()):
        if word in _FUNCTION_WORDS:
            continue
        out.add(_SUFFIX.sub("", word) if len(word) > 4 else word)
    return frozenset(out)


def distinctive_overlap(situation: str, topics: Sequence[str]) -> np.ndarray:
    """For each topic, the cosine of its and the situation's word sets, each word weighted by
    its inverse frequency among the situation and the distinct topics (0 when nothing rare is
    shared). Read-only: the same request is weighed several times per decision."""
    return _overlap(situation, tuple(topics))


@lru_cache(maxsize=4_096)
def _overlap(situation: str, topics: tuple[str, ...]) -> np.ndarray:
    out = np.zeros(len(topics))
    out.flags.writeable = False
    if not topics:
        return out
    query = situation_words(situation)
    distinct = {situation, *topics}
    counts: Counter[str] = Counter(w for text in distinct for w in situation_words(text))
    n = len(distinct)
    weight = {w: math.log((n + 1) / (c + 1)) ** 2 for w, c in counts.items()}
    query_norm = math.sqrt(sum(weight[w] for w in query))
    if query_norm == 0.0:
        return out
    values = np.zeros(len(topics))
    norms: dict[str, float] = {}
    for i, topic in enumerate(topics):
        words = situation_words(topic)
        shared = sum(weight[w] for w in query & words)
        if shared == 0.0:
            continue
        norm = norms.get(topic)
        if norm is None:
            norm = norms[topic] = math.sqrt(sum(weight[w] for w in words))
        values[i] = shared / (query_norm * norm)
    values.flags.writeable = False
    return values


# Words that open a condition or describe the speaker, not the situation ("When I'm feeling
# sick" and "If sick" name the same one).
_CONDITION_WORDS = frozenset(
    ("when", "whenever", "if", "during", "while", "after", "before", "generally", "general",
     "normally", "usually", "typically", "every", "feel", "feeling", "really", "very")
)


def condition_words(condition: str) -> frozenset[str]:
    """The content words of a stated condition, crudely stemmed; empty for "In general"."""
    return frozenset(w for w in situation_words(condition) if w not in _CONDITION_WORDS)


def _particular(conditions: Sequence[str]) -> list[frozenset[str]]:
    """The word sets of the conditions that name a particular situation (not "In general")."""
    return [words for c in conditions if (words := condition_words(c))]


def other_conditions(old: Sequence[str], new: Sequence[str]) -> bool:
    """Do two statements say they are for different situations? Both must name a particular
    condition, and no condition of one shares a word with one of the other ("In the morning" /
    "In the evening"). Unstated and general ones ("In general") never differ."""
    a, b = _particular(old), _particular(new)
    if not a or not b:
        return False  # a general statement ("In general, ...") covers every situation
    return not any(x & y for x in a for y in b)


def names_situation(conditions: Sequence[str], situation: str) -> bool:
    """Does a statement's condition fit this request's own words ("When I'm dehydrated" for
    "dehydrated after a run")? One with no particular condition fits every situation."""
    words = _particular(conditions)
    if not words:
        return True
    request = situation_words(situation)
    return any(w & request for w in words)


# Parts of the day, with the hours each covers (overlapping: 8 PM is evening and night alike).
_PARTS_OF_DAY = (
    ("morning", range(5, 12)),
    ("afternoon", range(12, 18)),
    ("evening", range(17, 23)),
    ("night", (*range(20, 24), *range(0, 5))),
)
_NAMED_PARTS = {
    "morning": ("morning",),
    "afternoon": ("afternoon",),
    "noon": ("afternoon",),
    "evening": ("evening",),
    "tonight": ("evening", "night"),
    "night": ("night",),
    "midnight": ("night",),
}
_PART_WORD = re.compile(r"\b(" + "|".join(_NAMED_PARTS) + r")\b", re.I)
_CLOCK = re.compile(r"\b(1[0-2]|0?[1-9])(?::[0-5]\d)?\s*([ap])\.?\s?m\b\.?", re.I)


@lru_cache(maxsize=20_000)
def times_of_day(text: str) -> frozenset[str]:
    """The parts of the day a text names, in words ("in the evening", "tonight") or as a clock
    time ("It's 8 PM": evening and night), so a request made at 8 PM can be told from a
    preference stated for the morning."""
    parts = {p for w in _PART_WORD.findall(text) for p in _NAMED_PARTS[w.lower()]}
    for hour, half in _CLOCK.findall(text):
        h = int(hour) % 12 + (12 if half.lower() == "p" else 0)
        parts.update(name for name, hours in _PARTS_OF_DAY if h in hours)
    return frozenset(parts)
