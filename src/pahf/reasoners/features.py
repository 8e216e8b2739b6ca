"""Judging options described by their features: what the user said about each feature, not
about the option as a whole.

A shopping option is a set of features ("on-ear design", "wired connection", ...); the user
accepts it only if no feature is one they refuse, and prefers the acceptable one with the most
favourites. So each feature is looked up on its own in what the user said, and an option is
scored from its features:

* **identity, not resemblance**: "in-ear design" and "on-ear design" are 0.93 apart for the
  sentence embedding model and are different things to the shopper. A statement is about a
  feature only when the two agree in words as well as in meaning (the lower of the cosine
  similarity and the word overlap), and only a statement clearly about this very feature counts;
* **the latest word wins**: of several statements about one feature, the most recent (among the
  most relevant) decides, so a changed taste replaces the old one even before the old memory is
  revised;
* **unknown is not neutral**: a feature nobody has spoken about is acceptable with the
  probability this user accepts the features they have spoken about in this situation, so a
  user who refuses most of what is offered makes "buy nothing" the likelier right answer;
* **ask about what is unknown**: the question names the unknown features of the options still
  in play, so the answer settles what the decision hangs on.

An option without features beside options with features (shopping's "Do not buy anything") is
the abstention: right when every option is refused.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from pahf.reasoners.phrases import MILD, NEGATIVE, STRONG, Phrase
from pahf.request import Candidate, Request

#: A statement counts as being about a feature from this agreement on (see :func:`agreement`).
IDENTITY = 0.85
#: The cosine similarity from which a statement in the user's own words names a feature.
PARAPHRASE = 0.5
#: How sure the agent must be of its choice to act without asking.
SURE = 0.9
#: Most features named in one question (a question that lists everything helps nobody).
QUESTION_FEATURES = 6

_WORD = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased, hyphenated words whole."""
    return _WORD.findall(text.lower())


def word_overlap(a: str, b: str) -> float:
    """Dice overlap of the two texts' words (hyphenated words count whole: "in-ear" is not
    "on-ear")."""
    return _lexical(a, b)[1]


def agreement(feature: str, statement: str, similarity: float) -> float:
    """How surely ``statement`` names ``feature`` (0-1; from :data:`IDENTITY` on it does): 1 for
    the same words, else the lower of meaning (cosine ``similarity``) and word overlap. A
    product's feature values are names, and names that differ in one word are different
    values ("in-ear design" / "on-ear design", "OLED panel" / "QD-OLED panel"), however close
    the embedding model puts them; the price is that a feature named in other words is not
    recognised (see bench/README.md, "tried and dropped")."""
    same, overlap = _lexical(feature, statement)
    if same:
        return 1.0
    return min(similarity, overlap)


@lru_cache(maxsize=1 << 16)
def _lexical(a: str, b: str) -> tuple[bool, float]:
    """(same words?, word overlap) of two texts: the word side of :func:`agreement`, a pure
    function of the two texts, which a run compares again for every option and statement of
    every request (a user's few hundred pairs, hundreds of thousands of times)."""
    la, lb = words(a), words(b)
    wa, wb = set(la), set(lb)
    overlap = 2.0 * len(wa & wb) / (len(wa) + len(wb)) if wa and wb else 0.0
    return la == lb, overlap


@lru_cache(maxsize=1_024)
def _lexical_matrices(
    features: tuple[str, ...], texts: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(same words?, word overlap) of every (feature, statement text) pair, as read-only
    matrices: deciding whether to ask and then acting name the same features against the
    same statements, so the whole table is kept, not only its pairs."""
    shape = (len(features), len(texts))
    lexical = [_lexical(f, t) for f in features for t in texts]
    same = np.array([sm for sm, _o in lexical], dtype=bool).reshape(shape)
    overlap = np.array([o for _sm, o in lexical], dtype=np.float64).reshape(shape)
    same.flags.writeable = False
    overlap.flags.writeable = False
    return same, overlap


def has_features(request: Request) -> bool:
    """Is this a choice between options described by features (two or more each; an option
    with one attribute is known by it as by a name)?"""
    return any(len(c.attributes) >= 2 for c in request.candidates)


def abstentions(request: Request) -> list[Candidate]:
    """Options without features beside options with them ("Do not buy anything")."""
    if not has_features(request):
        return []
    return [c for c in request.candidates if not c.attributes]


@dataclass(frozen=True)
class Statement:
    """One thing the user said, with its source and how much it bears on this request."""

    phrase: Phrase
    memory_id: str
    relevance: float  # weight of its memory for this request (answers in this run: highest)
    order: tuple[int, str, str]  # (this run?, created_at, id): later is larger
    #: Said in the user's own words: an answer or a statement of theirs, not a correction, which
    #: points at what was shown ("the one with X") in the catalogue's words whatever words
    #: the user speaks.
    own_words: bool = True


@dataclass
class OptionView:
    """What is known about one option's features."""

    candidate: Candidate
    liked: dict[str, float] = field(default_factory=dict)  # feature -> STRONG or MILD
    refused: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    support: set[str] = field(default_factory=set)  # memory ids the judgement rests on
    acceptable: float = 0.0  # probability that no feature is refused

    @property
    def favourites(self) -> int:
        return sum(1 for w in self.liked.values() if w >= STRONG)

    @property
    def value(self) -> float:
        """Expected worth: acceptable, and better the more favourites it has."""
        return self.acceptable * (1.0 + 0.5 * self.favourites)


@dataclass
class Judgement:
    """The options judged feature by feature, and the choice they lead to."""

    options: list[OptionView]
    abstain: Candidate | None
    abstain_probability: float
    acceptance_rate: float
    chosen: str
    sure: float  # probability the choice is right, as far as the statements tell

    def question_features(self) -> list[str]:
        """Unknown features of the options still in play, most promising option first; or,
        when nothing about them is unknown and several are equally good, the merely
        acceptable features that tell them apart (one of them may be a favourite nobody asked
        about). One question at a time: a person asked about many things answers some."""
        out: list[str] = []
        for view in sorted(self.options, key=lambda v: -v.value):
            if view.acceptable <= 0.0:
                continue
            for feature in view.unknown:
                if feature not in out:
                    out.append(feature)
        tied = self.tied()
        if len(tied) > 1 and not out:
            everywhere = set.intersection(*(set(v.candidate.attributes) for v in tied))
            for view in tied:
                for feature, weight in view.liked.items():
                    if weight < STRONG and feature not in everywhere and feature not in out:
                        out.append(feature)
        return out[:QUESTION_FEATURES]

    def tied(self) -> list[OptionView]:
        """The acceptable options as good as the chosen one, as far as anything is known."""
        chosen = next((v for v in self.options if v.candidate.id == self.chosen), None)
        if chosen is None or chosen.acceptable <= 0.0:
            return []
        return equally_good(self.options, chosen)


def equally_good(views: Sequence[OptionView], than: OptionView) -> list[OptionView]:
    """The acceptable options whose value is exactly ``than``'s (``than`` too, if acceptable)."""
    return [v for v in views if v.acceptable > 0.0 and abs(v.value - than.value) < 1e-9]


def _about(
    feature_row: int, statements: Sequence[Statement], named: np.ndarray
) -> list[tuple[float, Statement]]:
    """The statements that name a feature, with how surely each does."""
    return [
        (float(a), s) for s, a in zip(statements, named[feature_row], strict=True) if a >= IDENTITY
    ]


def _status(about: Sequence[tuple[float, Statement]]) -> Statement | None:
    """The statement that decides about a feature: of those that name it, the ones that name
    it best, then the most relevant, then the latest."""
    if not about:
        return None
    best = max(a for a, _s in about)
    closest = [s for a, s in about if a >= best - 0.02]
    top = max(s.relevance for s in closest)
    return max((s for s in closest if s.relevance >= 0.5 * top), key=lambda s: s.order)


def _liking(
    said: Statement,
    about: Sequence[tuple[float, Statement]],
    unsettled: frozenset[str] = frozenset(),
) -> float:
    """How much the user likes a feature ``said`` accepts (``about``: the statements that name
    it). A correction that points at an option ("the one with X would work for me") says the
    option will do, not how much X is liked: after it, the user's own latest liking of X
    counts ("I like X best"), unless they turned down something at least as close to X since."""
    if said.own_words:
        return said.phrase.weight
    settled = [(a, s) for a, s in about if s.memory_id not in unsettled]
    refusals = [(a, s.order) for a, s in settled if s.phrase.weight <= NEGATIVE / 2]
    standing = [
        s
        for a, s in settled
        if s.own_words
        and s.phrase.weight > 0
        and not any(order > s.order and near >= a - 0.02 for near, order in refusals)
    ]
    latest = max(standing, key=lambda s: s.order, default=None)
    return said.phrase.weight if latest is None else max(said.phrase.weight, latest.phrase.weight)


def naming(
    features: Sequence[str], statements: Sequence[Statement], similarities: np.ndarray
) -> np.ndarray:
    """``[i, j]``: how surely statement j names feature i.

    When the user names at least one of this request's features in the request's own words,
    they speak the catalogue's vocabulary, and only the same words name a feature (see
    :func:`agreement`). When they never do, they describe things in words of their own, and
    meaning decides: a statement counts for the features of this request it is closest to
    ("tough ballistic nylon fabric" is about "ballistic nylon", not "ripstop nylon") from a
    cosine similarity of :data:`PARAPHRASE` on, the surer the closer, so that of several
    statements about a feature the nearest decides. Only what users say for themselves shows their
    words (:attr:`Statement.own_words`): a correction quotes the option shown whatever words
    the user speaks, so corrections decide only when nothing else was said.
    """
    shape = (len(features), len(statements))
    same, overlap = _lexical_matrices(tuple(features), tuple(s.phrase.text for s in statements))
    # agreement() of every pair at once: 1 for the same words, else min(similarity, overlap)
    # (as Python's min picks it: the similarity unless the overlap is lower)
    sims = np.asarray(similarities, dtype=np.float64).reshape(shape)
    out = np.where(same, 1.0, np.where(overlap < sims, overlap, sims)).astype(np.float32)
    own = np.array([s.own_words for s in statements], dtype=bool)
    voiced = own if own.any() else np.ones_like(own)
    if not out.size or same[:, voiced].any():
        return out
    cosine = sims.astype(np.float32)
    # PARAPHRASE..1 onto IDENTITY..0.99, below the same words' 1.
    soft: np.ndarray = IDENTITY + (cosine - PARAPHRASE) * (0.99 - IDENTITY) / (1.0 - PARAPHRASE)
    soft[(cosine < PARAPHRASE) | (cosine < cosine.max(axis=0, keepdims=True) - 0.02)] = 0.0
    return soft


def judge(
    request: Request,
    statements: Sequence[Statement],
    similarities: np.ndarray,
    prior: float | None = None,
    unsettled: frozenset[str] = frozenset(),
) -> Judgement:
    """Judge every option of ``request`` from ``statements``.

    ``similarities[i, j]`` is the cosine similarity of the i-th feature (options in request
    order, features in option order) and the j-th statement's phrase. ``prior`` replaces the
    user's acceptance rate for unknown features (even odds when deciding whether to ask, so a
    run of refusals does not talk the agent out of asking); statements of ``unsettled`` memories
    leave their features unknown (what is in doubt is asked about again).
    """
    views: list[OptionView] = []
    named_features = [f for c in request.candidates for f in c.attributes]
    named = naming(named_features, statements, similarities)
    row = 0
    for candidate in request.candidates:
        if not candidate.attributes:
            continue
        view = OptionView(candidate)
        for feature in candidate.attributes:
            about = _about(row, statements, named)
            row += 1
            said = _status(about)
            if said is not None and said.memory_id in unsettled:
                said = None
            if said is None:
                view.unknown.append(feature)
                continue
            view.support.add(said.memory_id)
            if said.phrase.weight <= NEGATIVE / 2:
                view.refused.append(feature)
            else:
                liking = _liking(said, about, unsettled)
                view.liked[feature] = STRONG if liking >= STRONG else MILD
        views.append(view)
    # How readily this user accepts what is offered here: their statements about the features
    # of this request's kind (Laplace-smoothed, so no statement at all means even odds).
    relevant = [s for s in statements if s.relevance > 0]
    positive = sum(1 for s in relevant if s.phrase.weight > 0)
    negative = sum(1 for s in relevant if s.phrase.weight < 0)
    rate = (positive + 1.0) / (positive + negative + 2.0) if prior is None else prior
    for view in views:
        view.acceptable = 0.0 if view.refused else rate ** len(view.unknown)
    abstain = next(iter(abstentions(request)), None)
    nobody = math.prod(1.0 - v.acceptable for v in views)
    # Ties broken by a stable hash of the request and option, so no position is favoured.
    best = (
        max(views, key=lambda v: (round(v.value, 9), tiebreak(request, v.candidate.id)))
        if views
        else None
    )
    if best is None or (abstain is not None and nobody > best.acceptable):
        chosen = abstain.id if abstain is not None else request.candidates[0].id
        sure = nobody
    else:
        # Right if it is acceptable and no rival whose unknown features may make it acceptable
        # could have more favourites (a known tie is right either way).
        beaten = [
            v
            for v in views
            if v is not best
            and v.acceptable > 0
            and v.unknown
            and v.favourites + len(v.unknown) > best.favourites
        ]
        sure = best.acceptable * math.prod(1.0 - v.acceptable for v in beaten)
        # Options known to be exactly as good are a coin toss unless what tells them apart
        # is known to be only acceptable everywhere.
        equal = [v for v in equally_good(views, best) if v is not best]
        sure /= 1 + len(equal)
        chosen = best.candidate.id
    return Judgement(views, abstain, nobody, rate, chosen, sure)


def tiebreak(request: Request, candidate_id: str) -> str:
    """A stable, position-free order key for equal scores (both kinds of request use it)."""
    return hashlib.sha256(f"{request.situation()}|{candidate_id}".encode()).hexdigest()


def render(phrase: Phrase) -> str:
    """One preference as a sentence that parses back to the same phrase and strength."""
    if phrase.weight < 0:
        return f"I don't want {phrase.text}."
    if phrase.weight >= STRONG:
        return f"I like {phrase.text} best."
    return f"{phrase.text} would be fine."
