"""Split a person's preference statement into weighted phrases, without an LLM.

"When I'm dehydrated, I want ice-cold water with lots of ice, not room-temperature water" becomes
a condition ("when I'm dehydrated"), a strong positive ("ice-cold water with lots of ice") and a
negative ("room-temperature water"). The offline reasoner then matches candidates against the
phrases by embedding similarity, so "chilled water with ice" finds the first phrase although no
word but "water" is shared. The cue lists are ordinary English preference vocabulary, not the
wording of any simulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

#: Weights of the three kinds of evidence. A refusal outweighs a liking: an option with a
#: disliked feature is unacceptable however much else about it is liked.
STRONG = 2.0
MILD = 1.0
NEGATIVE = -3.0

_NEGATIVE_CUES = (
    r"(?<!-)\bnot\b", r"(?<!-)\bno\b(?!-)", r"\bnever\b", r"\bdon'?t\b", r"\bdoesn'?t\b",
    r"\bwon'?t\b",
    r"\bcan'?t\b", r"\bcannot\b", r"\bwouldn'?t\b", r"\bisn'?t\b", r"\baren'?t\b",
    r"\bdislike[sd]?\b", r"\bhate[sd]?\b", r"\bavoid(s|ed)?\b", r"\brefuse[sd]?\b",
    r"\breject(s|ed)?\b", r"\bno longer\b", r"\bdeal-?breaker\b", r"\bstay away\b",
    r"\bnone of\b", r"\bexcept\b", r"\binstead of\b", r"\brather than\b", r"(?<!-)\bover\b(?!-)",
    r"\bwithout\b", r"\bstop\b", r"\bnothing with\b", r"\bunacceptable\b",
)
_MILD_CUES = (
    r"\bfine\b", r"\bok(ay)?\b", r"\bacceptable\b", r"\baccept(s|ed)?\b", r"\balright\b",
    r"\bsecond\b", r"\bwould do\b", r"\bcan live with\b", r"\bgood enough\b", r"\balso\b",
    r"\btoo\b", r"\bas well\b", r"\balternatives?\b", r"\bdon'?t mind\b", r"\bworks\b",
    r"\bwould work\b", r"\bwork(s)? (fine|for me)\b",
)
_STRONG_CUES = (
    r"\bfavou?rite\b", r"\blove[sd]?\b", r"\bmost\b", r"\bbest\b", r"\bprefer(s|red)?\b",
    r"\bwant(s|ed)?\b", r"\bneed(s|ed)?\b", r"\balways\b", r"\btop choice\b", r"\blike[sd]?\b",
    r"\bgo for\b", r"\bpick\b", r"\bchoose\b", r"\bget me\b", r"\bbring me\b", r"\bshould\b",
    r"\bwould like\b", r"\bI'?d like\b", r"\bnow\b", r"\bideal\b",
)
_CONDITION_START = re.compile(
    r"^(when(ever)?|if|on|during|while|for|in|at|after|before|because|since|as|generally|"
    r"normally|usually|typically|late at night|most days|every)\b(?!-)",
    re.I,
)
# Conditions that may carry a cue word of their own ("When I need work energy, ..."): when
# another segment follows in the clause, they are still conditions. Reasons ("because I
# don't want ...") are not: they often carry the preference itself.
_SITUATION_START = re.compile(
    r"^(when(ever)?|if|on|during|while|for|in|at|after|before|generally|normally|usually|"
    r"typically|late at night|most days|every)\b(?!-)",
    re.I,
)
# "When dehydrated I want ice water": the main clause starts at the last "I <verb>".
_MAIN_CLAUSE = re.compile(
    r"\bI(?:'d|'ll)?(?:\s+(?:now|really|always|usually|definitely|also|still|just|much|"
    r"would|do|will|totally|actually))*\s+(?:want|prefer|like|love|need|choose|go for|pick|"
    r"take|don'?t|won'?t|can'?t|never|hate|avoid|refuse|rather)\b",
    re.I,
)
# Words that carry no content once the polarity has been read off.
_FILLER_WORDS = (
    r"alternatives?", r"deal-?breaker", r"dislike[sd]?", r"unacceptable", r"refuse[sd]?",
    r"acceptable", r"favou?rite", r"hate[sd]?", r"preferred", r"preferences?", r"changed",
    r"change", r"taste", r"something", r"wouldn'?t", r"actually", r"anything", r"doesn'?t",
    r"reject(?:s|ed)?", r"whenever", r"accepts", r"alright", r"aren'?t", r"feeling", r"instead",
    r"nothing", r"options", r"prefers", r"with me", r"without", r"accept", r"always", r"avoids",
    r"can'?t", r"cannot", r"choice", r"choose", r"don'?t", r"either", r"enough", r"except",
    r"isn'?t", r"longer", r"option", r"please", r"prefer", r"rather", r"really", r"second",
    r"should", r"thanks", r"that's", r"things", r"wanted", r"won'?t", r"works", r"avoid",
    r"bring", r"could", r"ideal", r"liked", r"likes", r"loves", r"needs", r"never", r"sorry",
    r"there", r"these", r"thing", r"think", r"those", r"wants", r"would", r"wrong", r"also",
    r"away", r"best", r"does", r"feel", r"fine", r"good", r"have", r"here", r"i'll", r"i've",
    r"it's", r"just", r"like", r"live", r"look", r"love", r"mind", r"mine", r"most", r"need",
    r"none", r"okay", r"ones", r"over(?!-)", r"pick", r"some", r"stay", r"stop", r"than",
    r"that", r"then", r"this", r"very", r"want", r"well", r"were", r"what", r"when", r"will",
    r"your", r"and", r"any", r"are", r"but", r"can", r"did", r"for", r"get", r"had", r"has",
    r"hmm", r"i'd", r"i'm", r"its", r"not", r"now", r"one", r"the", r"too", r"top choice",
    r"was", r"yes", r"you", r"am", r"an", r"as", r"be", r"do", r"go", r"if", r"is", r"it",
    r"me", r"my", r"no(?!-)", r"oh", r"ok", r"them", r"they", r"or", r"so", r"to", r"a", r"i",
    r"which", r"more", r"another", r"even", r"better", r"meets?", r"nope", r"nah", r"meh",
    r"quite", r"incorrect",
)
# Not inside hyphenated words: "behind-the-neck", "one-cup" keep their parts.
_FILLER = re.compile(r"(?<![\w-])(" + "|".join(_FILLER_WORDS) + r")(?![\w-])", re.I)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
# A period inside a number ("2.4 GHz") does not end anything.
_SPLIT = re.compile(
    r"(?:[;:!?]|\.(?!\d)|(?<!\d)\.)+|,|\s+-\s+|\bbut\b|\bwhereas\b|\bthough\b|\bhowever\b", re.I
)
_INLINE_NEGATION = re.compile(
    r"(?<!-)\b(not|rather than|instead of|over(?!-)|never|no longer|without|except)\b", re.I
)
_LIST_SPLIT = re.compile(r"\s+or\s+|\s*/\s*|\s+nor\s+", re.I)


@dataclass(frozen=True)
class Phrase:
    """A unit of preference evidence: what is (dis)liked and how strongly."""

    text: str
    weight: float


_NOT_NEGATIVE = re.compile(r"\b(?:don'?t|do not) mind\b", re.I)  # "I don't mind X": fine


def _polarity(segment: str) -> float | None:
    segment = _NOT_NEGATIVE.sub("fine", segment)
    if any(re.search(cue, segment, re.I) for cue in _NEGATIVE_CUES):
        return NEGATIVE
    if any(re.search(cue, segment, re.I) for cue in _MILD_CUES):
        return MILD
    if any(re.search(cue, segment, re.I) for cue in _STRONG_CUES):
        return STRONG
    return None


# Words that only link a phrase to the sentence around it ("them *in* the freezer").
_LEADING = re.compile(r"^(?:(?:in|on|at|into|onto|inside|by|near|with|of)\s+)+", re.I)


# "It would work for me", "that won't work": the verb only carries the polarity.
_WORKS = re.compile(
    r"\b(?:(?:would|will|won'?t|doesn'?t|does not|didn'?t|wouldn'?t)\s+)?work(?:s|ed)?"
    r"(?=\s+for\s+me\b)|\b(?:would|will|won'?t|doesn'?t|does not|didn'?t|wouldn'?t)\s+"
    r"work\b",
    re.I,
)
# A past preference ("I used to like X") says nothing about now by itself; what follows
# ("but now I don't want it") does, about the same thing.
_PAST = re.compile(r"\bused to\b", re.I)
_PRONOUN = re.compile(r"\b(?:it|them|that|those|this|these)\b", re.I)


def _content(segment: str) -> str:
    cleaned = _WORKS.sub(" ", segment)
    cleaned = _PAST.sub(" ", cleaned)
    cleaned = _FILLER.sub(" ", cleaned)
    cleaned = re.sub(r"[\"'()\[\]]", " ", cleaned)
    cleaned = " ".join(cleaned.split()).strip(" ,.-")
    return _LEADING.sub("", cleaned)


def _pieces(segment: str) -> list[tuple[str, float | None]]:
    """Split "ice water, not room-temperature water" style inline negations."""
    match = _INLINE_NEGATION.search(segment)
    if match and match.start() > 0 and _content(segment[: match.start()]):
        head, tail = segment[: match.start()], segment[match.start() :]
        return [(head, _polarity(head)), (tail, NEGATIVE)]
    return [(segment, _polarity(segment))]


def _sentence_phrases(sentence: str) -> list[Phrase]:
    phrases: list[Phrase] = []
    for clause in sentence.split(":"):
        phrases.extend(_clause_phrases(clause, first=not phrases))
    return phrases


def _main_clause(segment: str) -> str | None:
    """What follows the condition in "When dehydrated I want ice water" ("I want ice water");
    None when the segment has no main clause after its condition."""
    starts = [m.start() for m in _MAIN_CLAUSE.finditer(segment)]
    for start in reversed(starts):
        if len(segment[:start].split()) >= 2:
            return segment[start:]
    return None


def _segments(clause: str) -> list[str]:
    return [s.strip() for s in _SPLIT.split(clause) if s and s.strip()]


def _condition(segment: str, last: bool) -> tuple[str | None, str | None]:
    """(condition, preference) of one segment: "When dehydrated I want X" is both, "When I'm
    dehydrated" (or "When I need work energy" with more to follow, ``last`` false) only a
    condition, anything else only a preference."""
    if not _CONDITION_START.match(segment):
        return None, segment
    main = _main_clause(segment)
    if main is not None:
        return segment[: len(segment) - len(main)].strip(" ,"), main
    if _polarity(segment) is None or (_SITUATION_START.match(segment) and not last):
        return segment, None
    return None, segment


def _clause_phrases(clause: str, first: bool) -> list[Phrase]:
    phrases: list[Phrase] = []
    previous: float | None = None
    referent = ""  # what a past preference was about, for a later "it"
    segments = _segments(clause)
    for position, segment in enumerate(segments):
        if _PAST.search(segment):
            referent = _content(segment)
            continue
        if referent and not _content(segment) and _PRONOUN.search(segment):
            weight = _polarity(segment)
            if weight is not None:
                phrases.append(Phrase(referent, weight))
                previous = weight
            continue
        _said_for, preference = _condition(segment, last=position + 1 == len(segments))
        if preference is None:  # only a condition: what follows is not its polarity
            previous = None
            continue
        segment = preference  # "When dehydrated I want X": keep "I want X"
        for piece, polarity in _pieces(segment):
            weight = polarity if polarity is not None else previous
            if weight is None:
                # A bare answer ("Herbal tea.") is a liking.
                weight = STRONG if first and not phrases else None
            for item in _LIST_SPLIT.split(piece):
                content = _content(item)
                if content and weight is not None:
                    phrases.append(Phrase(content, weight))
            if weight is not None:
                previous = weight
    return phrases


_DEICTIC = re.compile(r"^\s*(?:that|this|it)\b(?:\s+one)?", re.I)


def approves_action(text: str) -> bool:
    """Does the person say the action itself was acceptable ("That one is okay, but ...")?"""
    for sentence in split_sentences(text):
        for segment in _SPLIT.split(sentence):
            if (
                segment
                and _DEICTIC.match(segment)
                and not _content(segment)
                and (_polarity(segment) or 0.0) > 0
            ):
                return True
    return False


_REJECTION = re.compile(r"\b(?:wrong|nope|nah|incorrect)\b", re.I)


def rejects_action(text: str) -> bool:
    """Does the person turn the action down without saying what they want instead ("That's not
    the one I wanted.", "No.", "Wrong.")?"""
    return not preference_sentences(text) and any(
        _polarity(s) == NEGATIVE or _REJECTION.search(s) for s in split_sentences(text)
    )


@lru_cache(maxsize=20_000)
def stated_conditions(text: str) -> tuple[str, ...]:
    """The conditions a statement names ("When it's cold outside", "In general"), in order:
    the situations the person says its preferences are for."""
    found: list[str] = []
    for sentence in split_sentences(text):
        for clause in sentence.split(":"):
            segments = _segments(clause)
            for position, segment in enumerate(segments):
                said_for, _ = _condition(segment, last=position + 1 == len(segments))
                if said_for is not None:
                    found.append(said_for)
    return tuple(dict.fromkeys(found))


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCES.split(text) if s.strip()]


@lru_cache(maxsize=20_000)
def parse_preferences(text: str) -> tuple[Phrase, ...]:
    """The weighted phrases of a preference statement (conditions are dropped).

    Within a sentence, a segment without a cue inherits the polarity of the one before it, so
    lists ("I refuse A, B, C") keep their sign; a segment opening with "when/if/for..." is a
    condition. Polarity never carries across sentences.
    """
    phrases: list[Phrase] = []
    for sentence in split_sentences(text):
        phrases.extend(_sentence_phrases(sentence))
    return tuple(dict.fromkeys(phrases))


def preference_sentences(text: str) -> str:
    """Only the sentences that state a preference ("Not that one." and "Thanks!" dropped)."""
    kept = [s for s in split_sentences(text) if _sentence_phrases(s)]
    return " ".join(kept)
