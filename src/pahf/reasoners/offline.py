"""The offline, deterministic reference reasoner: PAHF's decisions from retrieval alone, no LLM.

How it decides:

* **relevance** of a memory = the mean of two cosine similarities between the situation it was
  learned in and this request's: of the contexts ("Dehydrated" / "Very thirsty") and of the tasks
  ("bring me a drink"). Memories below ``min_relevance`` are ignored, weights grow up to
  ``full_relevance``, and memories much less relevant than the best one are discounted
  exponentially, so "when dehydrated: ice water" beats "favourite drink: coffee" for a
  dehydrated request. Which one is "the best" also weighs the rare words two situations share
  (:mod:`pahf.reasoners.situations`): without a context label, a request's template says
  little and "pre-workout" says much;
* **candidate score** = for each of the candidate's features and each usable memory, the
  polarity of the memory's phrases (see :mod:`pahf.reasoners.phrases`) the feature resembles,
  softly assigned (a feature goes to the phrase it is closest to; a phrase counts mostly for the
  candidate it describes best), scaled by match strength and memory weight, and by that
  weight again relative to the memory most about this situation that has an opinion on the
  feature. A feature with a net refusal makes the whole candidate unacceptable, below "no
  opinion";
* **choosing** takes the best score, with a weak prior for the candidates that fit the task
  (their cosine to it): what memory leaves open goes to a drink for a drink request;
* **ambiguous** = the best candidate is not ahead of the runner-up by a margin (covers "no
  relevant memory" and "memory cannot separate these candidates"), or the memories that decide
  were learned in other situations only (asking costs less than a wrong guess while learning);
* **learning**: an answer or correction is stored in the user's own words under the request's
  situation; a correction supersedes the same-situation memory that, on its own, leads to the
  corrected action (preference drift), a restated preference reinforces its memory instead of
  duplicating it, and an established memory is only challenged by a single contradiction.

Options described by features (shopping) are judged feature by feature instead, and learned one
preference per memory: see :mod:`pahf.reasoners.features` and :meth:`OfflineReasoner.judge`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pahf.decisions import Action, Assessment, Turn
from pahf.memory.base import Encoder
from pahf.memory.schema import MemoryOp, MemoryRecord, NewMemory, RetrievedMemory
from pahf.reasoners import features
from pahf.reasoners.features import Judgement, Statement
from pahf.reasoners.phrases import (
    MILD,
    Phrase,
    approves_action,
    parse_preferences,
    preference_sentences,
    stated_conditions,
)
from pahf.reasoners.situations import (
    distinctive_overlap,
    names_situation,
    other_conditions,
    times_of_day,
)
from pahf.request import Candidate, Request


@dataclass(frozen=True)
class OfflineReasonerConfig:
    """Thresholds of the offline reasoner (cosine similarities of the embedding model)."""

    # A memory about a situation this far from the request's is ignored; from full_relevance
    # on it counts fully (the same situation in other words sits around 0.55-0.9, another
    # situation of the same kind around 0.3-0.5).
    min_relevance: float = 0.4
    full_relevance: float = 0.7
    # Without a memory at least this close to the situation, the agent asks even when other
    # situations' memories point one way (in learning, a question is cheaper than a mistake).
    sure_relevance: float = 0.8
    relevance_temperature: float = 0.04  # how fast less relevant memories are discounted
    # Share of relevance that comes from the rare words two situations share (see
    # :mod:`pahf.reasoners.situations`) rather than from the embedding's cosine.
    word_weight: float = 0.4
    # A feature and a phrase this close start to count; from match_full on they count fully
    # (paraphrases like "chilled water with ice" / "ice-cold water" sit around 0.6).
    match_floor: float = 0.3
    match_full: float = 0.6
    # Within one memory, a feature is split between the phrases it resembles with this
    # softmax temperature: "iced water" goes to "ice-cold water", not to "room-temperature
    # water", even when both are somewhat similar.
    phrase_temperature: float = 0.03
    # And a phrase counts mostly for the candidate(s) it describes best: "middle shelf" backs
    # "middle shelf", not "top shelf", although both are close to it.
    candidate_temperature: float = 0.05
    margin: float = 0.5  # best - runner-up below this is ambiguous
    same_topic: float = 0.8  # situations this close are "the same" (revise, not add)
    duplicate: float = 0.97  # statements this close are the same statement (reinforce)
    same_phrase: float = 0.8  # phrases this close name the same thing (contradiction check)
    # Noise robustness: a memory confirmed this many times is only challenged by one
    # contradicting correction; a second one supersedes it.
    established_confidence: float = 2.0
    # When choosing, each candidate also gets this times (its similarity to the task - the
    # best candidate's): a weak prior that settles what memory leaves open ("my favourite
    # drink" -> a drink, not the nuts offered beside it) and that memory evidence outweighs.
    task_fit: float = 0.2


@dataclass(frozen=True)
class _Evidence:
    phrase: Phrase
    memory_id: str
    weight: float  # relevance weight x confidence factor


def _parts(situation: str) -> tuple[str, str]:
    """(context, task) of a situation written as ``Request.situation()`` ("Dehydrated: bring me
    a drink"); a bare topic ("drinks") stands for both."""
    context, sep, task = situation.partition(": ")
    return (context, task) if sep and task else (situation, situation)


#: What an answer given during this request is called where a memory id would stand.
_ANSWER = "answer-"

#: How many (situation, memories) weighings a reasoner keeps (cleared when full).
_RELEVANT_CACHE_SIZE = 256


class OfflineReasoner:
    """Reference :class:`~pahf.reasoners.base.Reasoner` over an embedding encoder."""

    def __init__(self, encoder: Encoder, config: OfflineReasonerConfig | None = None) -> None:
        self.encoder = encoder
        self.config = config or OfflineReasonerConfig()
        self._relevant_rows: dict[
            tuple[str, tuple[tuple[str, str, float], ...]], tuple[tuple[int, float, float], ...]
        ] = {}

    # ------------------------------------------------------------------ helpers

    def _sim(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Cosine similarities (read-only), from the encoder's cache of matrices when it has
        one: the same texts are compared when deciding to ask, when acting, and in every later
        iteration."""
        cached = getattr(self.encoder, "similarity", None)
        if cached is not None:
            return np.asarray(cached(a, b))
        if not a or not b:
            return np.zeros((len(a), len(b)), dtype=np.float32)
        vectors = self.encoder.encode([*a, *b])
        return np.asarray(vectors[: len(a)] @ vectors[len(a) :].T)

    @staticmethod
    def _topic(record: MemoryRecord) -> str:
        return record.topic or record.text

    def _relevance(self, situation: str, topics: Sequence[str]) -> np.ndarray:
        """How much each memory topic is about this situation: the mean of the similarity of
        the contexts ("Dehydrated" / "Very thirsty") and of the tasks ("bring me a drink"). The
        context alone confuses a drink and a snack wanted "when celebrating"; the task alone
        confuses every "bring me a drink"."""
        context, task = _parts(situation)
        pairs = [_parts(t) for t in topics]
        by_context = self._sim([context], [c for c, _ in pairs])[0]
        by_task = self._sim([task], [t for _, t in pairs])[0]
        return np.asarray(0.5 * (by_context + by_task))

    def _ranking(self, situation: str, topics: Sequence[str], rel: np.ndarray) -> np.ndarray:
        """Which memories are most about this situation, for discounting the others: the
        meaning's relevance blended with the rare words the situations share."""
        w = self.config.word_weight
        if w <= 0.0:
            return rel
        return np.asarray((1.0 - w) * rel + w * distinctive_overlap(situation, topics))

    def _relevant(
        self, request: Request, memories: Sequence[RetrievedMemory]
    ) -> list[tuple[MemoryRecord, float, float]]:
        """(record, relevance, weight) of the active memories usable for this request."""
        records = [m.record for m in memories]
        situation = request.situation()
        # Deciding whether to ask and then acting weigh the same request and memories; the
        # numbers depend only on the situation and each memory's status, topic and confidence
        # (and on this reasoner's encoder and frozen configuration).
        key = (situation, tuple((r.status, self._topic(r), r.confidence) for r in records))
        rows = self._relevant_rows.get(key)
        if rows is None:
            rows = self._weigh(situation, records)
            if len(self._relevant_rows) >= _RELEVANT_CACHE_SIZE:
                self._relevant_rows.clear()
            self._relevant_rows[key] = rows
        return [(records[i], r, w) for i, r, w in rows]

    def _weigh(
        self, situation: str, records: Sequence[MemoryRecord]
    ) -> tuple[tuple[int, float, float], ...]:
        """(index, relevance, weight) of the usable ones among ``records``."""
        cfg = self.config
        active = [i for i, r in enumerate(records) if r.status == "active"]
        if not active:
            return ()
        topics = [self._topic(records[i]) for i in active]
        rel = self._relevance(situation, topics)
        rank = self._ranking(situation, topics, rel)
        best = float(rank.max())
        out = []
        for i, r, k in zip(active, rel, rank, strict=True):
            if r < cfg.min_relevance:
                continue
            discount = math.exp((float(k) - best) / cfg.relevance_temperature)
            closeness = min(
                1.0, (float(r) - cfg.min_relevance) / (cfg.full_relevance - cfg.min_relevance)
            )
            confidence = 1.0 - math.exp(-max(records[i].confidence, 0.05))
            out.append((i, float(r), discount * closeness * confidence / 0.632))
        return tuple(out)

    def _closest(self, request: Request, memories: Sequence[RetrievedMemory]) -> float:
        """How surely some usable memory is about this very situation: its relevance, or the
        similarity of its context alone when the request is the same context asked in other
        words ("Dehydrated: grab me a drink" / "Dehydrated: bring me something to drink")."""
        usable = self._relevant(request, memories)
        if not usable:
            return 0.0
        context = _parts(request.situation())[0]
        by_context = self._sim([context], [_parts(self._topic(rec))[0] for rec, _r, _w in usable])
        return max(max(r, float(c)) for (_rec, r, _w), c in zip(usable, by_context[0], strict=True))

    def _weighted_memories(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> list[tuple[str, str, float]]:
        """(memory id, text, weight) of the evidence usable for this request."""
        items = [(rec.id, rec.text, w) for rec, _r, w in self._relevant(request, memories)]
        # Answers given in this very run count fully, even when memory is off.
        items.extend((key, text, 1.5) for key, text, _index in _answers(clarifications))
        return items

    def _evidence(self, items: list[tuple[str, str, float]]) -> list[_Evidence]:
        out = []
        for memory_id, text, weight in items:
            for phrase in parse_preferences(text):
                out.append(_Evidence(phrase, memory_id, weight))
        return out

    @staticmethod
    def _features(candidate: Candidate) -> list[str]:
        return candidate.attributes or [candidate.text]

    def _match(self, s: np.ndarray) -> np.ndarray:
        """How much a similarity counts as a match: 0 at the floor, 1 from ``match_full``."""
        cfg = self.config
        return np.clip((s - cfg.match_floor) / (cfg.match_full - cfg.match_floor), 0.0, 1.0)

    def _statements(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> list[Statement]:
        """Every phrase the user said that bears on this request, with its memory's weight and
        when it was said (answers in this run last)."""
        out = [
            Statement(phrase, rec.id, w, (0, rec.created_at, rec.id), rec.source != "feedback")
            for rec, _r, w in self._relevant(request, memories)
            for phrase in parse_preferences(rec.text)
        ]
        for key, text, index in _answers(clarifications):
            out.extend(
                Statement(phrase, key, 1.5, (1, f"{index:06d}", ""))
                for phrase in parse_preferences(text)
            )
        return out

    def judge(
        self,
        request: Request,
        memories: Sequence[RetrievedMemory],
        clarifications: Sequence[Turn],
        asking: bool = False,
    ) -> Judgement:
        """Options described by features, judged feature by feature (see
        :mod:`pahf.reasoners.features`). ``asking``: judged for whether to ask, at even odds
        for unknown features and with memories in doubt left out."""
        statements = self._statements(request, memories, clarifications)
        named = [f for c in request.candidates for f in c.attributes]
        sims = self._sim(named, [s.phrase.text for s in statements])
        if not asking:
            return features.judge(request, statements, sims)
        return features.judge(
            request, statements, sims, prior=0.5, unsettled=self._in_doubt(request, memories)
        )

    def _in_doubt(self, request: Request, memories: Sequence[RetrievedMemory]) -> frozenset[str]:
        """Memories about this situation not confirmed since the user last contradicted one of
        them (once a taste has been seen to change, what else is known about it from before
        may have changed too, and is worth a question), and memories challenged since they
        were last confirmed."""
        usable = [rec for rec, _r, _w in self._relevant(request, memories)]
        revised = [rec.created_at for rec in usable if rec.supersedes is not None]
        since = max(revised, default="")

        def confirmed(rec: MemoryRecord) -> str:
            times = [h.at for h in rec.history if h.event in ("created", "reinforced")]
            return max([rec.created_at, *times])

        def challenged(rec: MemoryRecord) -> str:
            return max((h.at for h in rec.history if h.event == "challenged"), default="")

        return frozenset(
            rec.id
            for rec in usable
            if confirmed(rec) < since or challenged(rec) > confirmed(rec)
        )

    def score(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> tuple[dict[str, float], dict[str, set[str]]]:
        """Score of each candidate and, per candidate, the memory ids that supported it.

        Each feature of a candidate takes, from every usable memory, the polarity of the
        phrases it resembles (a softmax over that memory's phrases, scaled by how good the
        match is and by the memory's weight). A feature with a net refusal makes the whole
        candidate unacceptable, however much else about it is liked.
        """
        cfg = self.config
        evidence = self._evidence(self._weighted_memories(request, memories, clarifications))
        scores = {c.id: 0.0 for c in request.candidates}
        support: dict[str, set[str]] = {c.id: set() for c in request.candidates}
        if not evidence:
            return scores, support
        features = [(c.id, f) for c in request.candidates for f in self._features(c)]
        sims = self._sim([f for _, f in features], [e.phrase.text for e in evidence])
        groups: dict[str, list[int]] = {}
        for col, ev in enumerate(evidence):
            groups.setdefault(ev.memory_id, []).append(col)
        polarity = np.array([e.phrase.weight for e in evidence])
        # How much each phrase is about each feature compared with the feature it fits best.
        aboutness = np.exp((sims - sims.max(axis=0, keepdims=True)) / cfg.candidate_temperature)
        liked: dict[str, float] = {c.id: 0.0 for c in request.candidates}
        refused: dict[str, float] = {c.id: 0.0 for c in request.candidates}
        for row, (cid, _) in enumerate(features):
            opinions: list[tuple[str, float, float]] = []  # (memory id, value, weight)
            for memory_id, cols in groups.items():
                s = sims[row, cols]
                best = float(s.max())
                if best < cfg.match_floor:
                    continue
                share = np.exp((s - best) / cfg.phrase_temperature)
                share /= share.sum()
                strength = self._match(s) * aboutness[row, cols]
                value = float((share * polarity[cols] * strength).sum())
                opinions.append((memory_id, value, evidence[cols[0]].weight))
            # The memory most about this situation that has an opinion on this feature
            # speaks for it; memories less about the situation count in proportion again,
            # so many loosely related remarks do not outvote the one about this situation.
            top = max((w for _m, v, w in opinions if abs(v) > 0.05), default=0.0)
            net = 0.0
            backers: list[str] = []
            for memory_id, value, w in opinions:
                value *= w * (min(1.0, w / top) if top > 0 else 1.0)
                net += value
                if value > 0:
                    backers.append(memory_id)
            if net > 0:
                liked[cid] += net
                support[cid].update(backers)
            else:
                refused[cid] += net
        for cid in scores:
            # A refused feature makes the whole candidate unacceptable: it ranks below "no
            # opinion" and below every acceptable candidate.
            scores[cid] = refused[cid] if refused[cid] < -1e-6 else liked[cid]
        return scores, support

    @staticmethod
    def _ranked(request: Request, scores: dict[str, float]) -> list[str]:
        """Candidates best first; ties broken by a stable hash so no position is favoured."""
        return sorted(
            scores, key=lambda cid: (-round(scores[cid], 6), features.tiebreak(request, cid))
        )

    def _by_fit(self, request: Request, scores: dict[str, float]) -> list[str]:
        """Candidates in the order the agent would take them: memory's scores plus the weak
        task-fit prior (see ``OfflineReasonerConfig.task_fit``)."""
        weight = self.config.task_fit
        if weight <= 0.0:
            return self._ranked(request, scores)
        ids = list(scores)
        fit = self._sim([request.task], [request.candidate(cid).text for cid in ids])[0]
        prior = weight * (fit - fit.max())
        fitted = {cid: scores[cid] + float(p) for cid, p in zip(ids, prior, strict=True)}
        return self._ranked(request, fitted)

    # ------------------------------------------------------------------ decisions

    def assess(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Assessment:
        if features.has_features(request):
            return self._assess_features(request, memories, clarifications)
        scores, support = self.score(request, memories, clarifications)
        ranked = self._ranked(request, scores)
        best = scores[ranked[0]]
        runner = scores[ranked[1]] if len(ranked) > 1 else -math.inf
        margin = best - runner
        if len(ranked) == 1:
            return Assessment(ambiguous=False, reason="only one candidate", confidence=1.0)
        answered = any(t.kind == "clarification" for t in clarifications)
        if margin >= self.config.margin and not answered:
            elsewhere = self._elsewhere(request, memories, support[ranked[0]])
            if elsewhere is not None:  # memory points one way, but maybe not for here: ask
                reason, confidence = elsewhere
                return Assessment(
                    ambiguous=True,
                    reason=reason,
                    question=self.question(request, self._by_fit(request, scores)[:4]),
                    confidence=confidence,
                )
        if margin >= self.config.margin:
            # The action these scores lead to travels with the assessment (graph state), so
            # ``act`` does not score the same request against the same memories again.
            return Assessment(
                ambiguous=False,
                reason=f"memory separates the candidates (margin {margin:.2f})",
                confidence=min(1.0, margin / (2 * self.config.margin)),
                proposed=self._action(request, scores, support, memories, clarifications),
            )
        reason = (
            "no stored preference bears on these candidates"
            if all(abs(v) < 1e-9 for v in scores.values())
            else f"stored preferences do not separate the top candidates (margin {margin:.2f})"
        )
        return Assessment(
            ambiguous=True,
            reason=reason,
            question=self.question(request, self._by_fit(request, scores)[:4]),
            confidence=max(0.0, margin / (2 * self.config.margin)),
        )

    def _elsewhere(
        self, request: Request, memories: Sequence[RetrievedMemory], backing: set[str]
    ) -> tuple[str, float] | None:
        """(reason, confidence) when the memories that decide may not be about this request:
        learned only in other situations, or said for another time of day; None otherwise."""
        closest = self._closest(request, memories)
        if closest < self.config.sure_relevance:
            return f"what I know comes from other situations (closest {closest:.2f})", closest
        stated_for = self._for_another_time(request, backing, memories)
        if stated_for is not None:
            return f'what I know was said for another time of day ("{stated_for}")', 0.5
        return None

    @staticmethod
    def _for_another_time(
        request: Request, backing: set[str], memories: Sequence[RetrievedMemory]
    ) -> str | None:
        """The condition the memories behind a candidate were stated for, when the request
        names a time of day and every one of them names another ("In the morning" for "It's
        8 PM"); None otherwise. Words, not embeddings: "2 PM" and "8 PM" are close for MiniLM."""
        now = times_of_day(request.situation())
        if not now:
            return None
        records = {m.record.id: m.record for m in memories}
        said = [stated_conditions(records[i].text) for i in sorted(backing) if i in records]
        if not said or not all(
            (times := times_of_day(" ".join(c))) and not times & now for c in said
        ):
            return None
        return said[0][0]

    def _assess_features(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Assessment:
        judgement = self.judge(request, memories, clarifications, asking=True)
        unknown = judgement.question_features()
        if judgement.sure >= features.SURE or not unknown:
            return Assessment(
                ambiguous=False,
                reason=f"what I know of the features decides (sure {judgement.sure:.2f})",
                confidence=judgement.sure,
            )
        return Assessment(
            ambiguous=True,
            reason=f"the choice hangs on features I know nothing about (sure {judgement.sure:.2f})",
            question=self.feature_question(request, unknown),
            confidence=judgement.sure,
        )

    @staticmethod
    def feature_question(request: Request, unknown: Sequence[str]) -> str:
        named = unknown[0] if len(unknown) == 1 else ", ".join(unknown[:-1]) + " or " + unknown[-1]
        return (
            f"Before I act on \"{request.task}\": how do you feel about {named}? "
            "Is there any of these you would not want?"
        )

    @staticmethod
    def question(request: Request, top_ids: Sequence[str]) -> str:
        options = "; ".join(request.candidate(cid).describe() for cid in top_ids)
        where = f" ({request.context})" if request.context else ""
        return (
            f"Before I act on \"{request.task}\"{where}: I could go with {options}. "
            "What do you prefer here, and is there anything you would not want?"
        )

    def choose(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Action:
        if features.has_features(request):
            return self._choose_features(request, memories, clarifications)
        scores, support = self.score(request, memories, clarifications)
        return self._action(request, scores, support, memories, clarifications)

    def _action(
        self,
        request: Request,
        scores: dict[str, float],
        support: dict[str, set[str]],
        memories: Sequence[RetrievedMemory],
        clarifications: Sequence[Turn],
    ) -> Action:
        """The best-scored candidate as an action, with what backs it."""
        chosen = request.candidate(self._by_fit(request, scores)[0])
        backing = sorted(support[chosen.id])
        rationale = (
            f"best supported by what you said: {_quotes(backing, memories, clarifications)}"
            if backing
            else "no preference known for this; default choice"
        )
        return Action(
            candidate_id=chosen.id,
            candidate_text=chosen.describe(),
            rationale=rationale,
            scores={k: round(v, 4) for k, v in scores.items()},
            memory_ids=[m for m in backing if not m.startswith(_ANSWER)],
        )

    def _choose_features(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Action:
        judgement = self.judge(request, memories, clarifications)
        chosen = request.candidate(judgement.chosen)
        views = {v.candidate.id: v for v in judgement.options}
        # Refused options score below every other (negative), as in the general path.
        scores = {cid: -1.0 if v.refused else round(v.value, 4) for cid, v in views.items()}
        if judgement.abstain is not None:
            scores[judgement.abstain.id] = round(judgement.abstain_probability, 4)
        if chosen.id in views:
            view = views[chosen.id]
            backing = sorted(view.support)
            rationale = (
                f"acceptable with {view.favourites} favourite(s), "
                f"{len(view.unknown)} feature(s) unknown (sure {judgement.sure:.2f})"
            )
        else:
            backing = sorted({m for v in judgement.options for m in v.support})
            rationale = f"every option has a feature the user refuses (sure {judgement.sure:.2f})"
        return Action(
            candidate_id=chosen.id,
            candidate_text=chosen.describe(),
            rationale=rationale,
            scores=scores,
            memory_ids=[m for m in backing if not m.startswith(_ANSWER)],
        )

    def _pairs(self, old_text: str, new_text: str) -> list[tuple[Phrase, Phrase]]:
        """(new phrase, old phrase) pairs that speak about the same thing: the same words, or
        one naming the other with more words ("sweet" / "sweet drinks"), or close in meaning
        while sharing most words. Meaning alone is not enough: "sweet drinks" and "salty
        drinks" are close for the embedding model and opposite for the person."""
        old, new = parse_preferences(old_text), parse_preferences(new_text)
        if not old or not new:
            return []
        sims = self._sim([p.text for p in new], [p.text for p in old])
        pairs = []
        for i, p_new in enumerate(new):
            for j, p_old in enumerate(old):
                sim = float(sims[i, j])
                a, b = set(features.words(p_new.text)), set(features.words(p_old.text))
                if (
                    features.agreement(p_new.text, p_old.text, sim) >= features.IDENTITY
                    or (a and b and (a <= b or b <= a) and sim >= 0.5)
                    or (
                        sim >= self.config.same_phrase
                        and features.word_overlap(p_new.text, p_old.text) > 0.5
                    )
                ):
                    pairs.append((p_new, p_old))
        return pairs

    def _contradicts(self, old_text: str, new_text: str) -> bool:
        """Does the new statement flip the polarity of something the old one said?"""
        pairs = self._pairs(old_text, new_text)
        return any((p_new.weight > 0) != (p_old.weight > 0) for p_new, p_old in pairs)

    def _restates(self, old_text: str, new_text: str) -> bool:
        """Does the new statement say again what the old one said (nothing flipped, and each of
        its phrases found in the old one with the same polarity)?"""
        pairs = self._pairs(old_text, new_text)
        if any((a.weight > 0) != (b.weight > 0) for a, b in pairs):
            return False
        return {a for a, _b in pairs} == set(parse_preferences(new_text))

    def _leads_to(self, request: Request, record: MemoryRecord, candidate_id: str) -> bool:
        """Would this memory alone make ``candidate_id`` the choice (and have an opinion)?"""
        alone = [RetrievedMemory(record=record, score=1.0)]
        scores, _ = self.score(request, alone, [])
        if all(abs(v) < 1e-9 for v in scores.values()):
            return False
        return self._ranked(request, scores)[0] == candidate_id

    def _points_elsewhere(self, request: Request, new: NewMemory, candidate_id: str) -> bool:
        """Does the correction, on its own, make another of this request's candidates the
        choice? (A genuine change of mind does; a remark about another situation does not.)"""
        pseudo = MemoryRecord(
            id="correction", user_id="", text=new.text, topic=new.topic, created_at=""
        )
        scores, _ = self.score(request, [RetrievedMemory(record=pseudo, score=1.0)], [])
        if all(abs(v) < 1e-9 for v in scores.values()):
            return False
        return self._ranked(request, scores)[0] != candidate_id

    def _revise(
        self, target: MemoryRecord, new: NewMemory, why: str, decisive: bool = False
    ) -> list[MemoryOp]:
        # An established memory survives one contradiction that does not itself point at
        # another option (noise: a remark about some other situation); a decisive one, or a
        # second in a row, replaces it.
        challenged = bool(target.history) and target.history[-1].event == "challenged"
        if (
            target.confidence >= self.config.established_confidence
            and not decisive
            and not challenged
        ):
            return [
                MemoryOp(
                    kind="challenge",
                    target_id=target.id,
                    reason="one contradiction against an established preference: waiting for "
                    "corroboration before revising it",
                )
            ]
        return [MemoryOp(kind="supersede", memory=new, target_id=target.id, reason=why)]

    def learn(
        self, request: Request, turn: Turn, memories: Sequence[RetrievedMemory]
    ) -> list[MemoryOp]:
        cfg = self.config
        # Keep the user's own words, minus sentences that state no preference ("Not that one.").
        text = preference_sentences(turn.text.strip())
        if not text:
            return []  # nothing preference-like to keep ("thanks", "ok")
        if features.has_features(request):
            return self._learn_features(request, turn, memories, text)
        new = NewMemory(
            text=text,
            topic=request.topic(),
            domain=request.domain,
            source="clarification" if turn.kind == "clarification" else "feedback",
            request_id=request.request_id,
        )
        active = [m.record for m in memories if m.record.status == "active"]
        if not active:
            return [MemoryOp(kind="add", memory=new, reason="first preference for this situation")]
        topic_sims = self._relevance(new.topic, [self._topic(r) for r in active])
        text_sims = self._sim([text], [r.text for r in active])[0]
        # Statements for two different situations ("In the morning ..." / "In the evening ...")
        # do not revise each other: the memory was misapplied here, or the new remark is about
        # somewhere else; the memory is kept and the statement added. Conditions that both fit
        # this request ("When dehydrated" / "after a run" for "dehydrated after a run")
        # describe one situation.
        said_for = stated_conditions(text)
        situation = request.situation()
        fits_here = names_situation(said_for, situation)

        def misapplied(record: MemoryRecord) -> bool:
            stated = stated_conditions(record.text)
            return other_conditions(stated, said_for) and not (
                fits_here and names_situation(stated, situation)
            )

        same = sorted(
            (
                (float(t), float(x), r)
                for t, x, r in zip(topic_sims, text_sims, active, strict=True)
                if t >= cfg.same_topic and not misapplied(r)
            ),
            key=lambda item: (-item[0], item[2].created_at, item[2].id),
        )
        if turn.kind == "correction" and turn.action is not None:
            # A same-situation memory that, on its own, leads to the corrected action is what
            # the user contradicts (preference drift): revise it rather than keep two that
            # disagree. Checked before "restated": a changed preference restated in almost the
            # same words is still a change.
            for _t, _x, record in same:
                if self._leads_to(request, record, turn.action.candidate_id):
                    return self._revise(
                        record,
                        new,
                        "the user corrected an action this memory led to",
                        decisive=self._points_elsewhere(request, new, turn.action.candidate_id),
                    )
        # The same words again (whatever the request looked like) confirm what is stored.
        restated = sorted(
            (
                (float(x), r)
                for t, x, r in zip(topic_sims, text_sims, active, strict=True)
                if x >= cfg.duplicate and t >= cfg.min_relevance
            ),
            key=lambda item: (-item[0], item[1].created_at, item[1].id),
        )
        for _text_sim, record in restated:
            if self._restates(record.text, text):
                return [
                    MemoryOp(kind="reinforce", target_id=record.id, reason="user restated it")
                ]
        for _t, _x, record in same:
            if self._contradicts(record.text, text):
                # A direct answer to the agent's question is not post-hoc feedback noise.
                return self._revise(
                    record,
                    new,
                    "the new statement contradicts this memory",
                    decisive=turn.kind == "clarification",
                )
        return [MemoryOp(kind="add", memory=new, reason="new preference")]

    # ------------------------------------------------------------------ one feature at a time

    def _implied_fine(
        self,
        request: Request,
        memories: Sequence[RetrievedMemory],
        acted: str,
        text: str,
        said: Sequence[Phrase],
    ) -> list[Phrase]:
        """What a correction says is fine without naming it: the features nobody spoke about
        of the option acted on, if the person calls it okay ("That one is okay, but ..."), and
        of the one option they point at instead, by a feature only it has ("I'd prefer one
        with X", "the one with X would work for me"): they would take it."""
        liked = [features.words(p.text) for p in said if p.weight > 0]
        pointed = {
            c.id
            for c in request.candidates
            if c.id != acted and any(features.words(f) in liked for f in c.attributes)
        }
        if len(pointed) > 1:
            pointed = set()  # a feature several options have points at none of them
        okay = approves_action(text) and acted in {c.id for c in request.candidates}
        if not okay and not pointed:
            return []
        fine: list[str] = []
        for view in self.judge(request, memories, []).options:
            if (okay and view.candidate.id == acted) or (
                view.candidate.id in pointed and not view.refused
            ):
                fine.extend(f for f in view.unknown if f not in fine)
        stated = {p.text for p in said}
        return [Phrase(f, MILD) for f in fine if f not in stated]

    def _learn_features(
        self, request: Request, turn: Turn, memories: Sequence[RetrievedMemory], text: str
    ) -> list[MemoryOp]:
        """One memory per preference: each phrase revises the memory that spoke about the same
        feature in this situation (keeping that memory's other phrases), reinforces one that said
        the same, or is added on its own."""
        cfg = self.config
        said = list(parse_preferences(text))
        action = turn.action if turn.kind == "correction" else None
        if action is not None:
            said.extend(self._implied_fine(request, memories, action.candidate_id, text, said))
        if not said:
            return []
        active = [m.record for m in memories if m.record.status == "active"]
        same: list[tuple[MemoryRecord, tuple[Phrase, ...]]] = []
        if active:
            topic_sims = self._relevance(request.topic(), [self._topic(r) for r in active])
            same = [
                (r, parse_preferences(r.text))
                for r, t in zip(active, topic_sims, strict=True)
                if t >= cfg.same_topic
            ]
        old = [(r, i, p) for r, phrases in same for i, p in enumerate(phrases)]
        sims = self._sim([p.text for p in said], [p.text for _r, _i, p in old])
        changes: dict[str, dict[int, Phrase]] = {}
        records: dict[str, tuple[MemoryRecord, tuple[Phrase, ...]]] = {}
        fresh: list[Phrase] = []
        for row, phrase in enumerate(said):
            hits = [
                (r, i)
                for col, (r, i, p) in enumerate(old)
                if features.agreement(phrase.text, p.text, float(sims[row, col]))
                >= features.IDENTITY
            ]
            if not hits:
                fresh.append(phrase)
            for r, i in hits:
                records[r.id] = (r, parse_preferences(r.text))
                changes.setdefault(r.id, {})[i] = phrase
        explains = set()
        if action is not None and action.candidate_id in {c.id for c in request.candidates}:
            explains = set(request.candidate(action.candidate_id).attributes)
        changed_taste = turn.kind == "correction" and _CHANGE.search(text) is not None
        ops: list[MemoryOp] = []
        for record_id in sorted(changes, key=lambda k: (records[k][0].created_at, k)):
            record, phrases = records[record_id]
            replaced = changes[record_id]
            if all(
                (phrases[i].weight > 0) == (p.weight > 0) for i, p in replaced.items()
            ):
                stronger = [p for i, p in replaced.items() if p.weight > phrases[i].weight]
                if stronger:
                    # "X would work" then "I like X best": more than was known, not a change
                    # of mind; the later statement wins without revising the earlier one.
                    fresh.extend(q for q in stronger if q not in fresh)
                else:
                    ops.append(
                        MemoryOp(kind="reinforce", target_id=record_id, reason="user restated it")
                    )
                continue
            revised = [replaced.get(i, p) for i, p in enumerate(phrases)]
            new = NewMemory(
                text=" ".join(features.render(p) for p in revised),
                topic=request.topic(),
                domain=request.domain,
                source="clarification" if turn.kind == "clarification" else "feedback",
                request_id=request.request_id,
            )
            decisive = (
                turn.kind == "clarification"
                or changed_taste
                or any(p.weight < 0 and p.text in explains for p in replaced.values())
            )
            ops.extend(
                self._revise(record, new, "the user now says otherwise about it", decisive)
            )
        for phrase in fresh:
            ops.append(
                MemoryOp(
                    kind="add",
                    memory=NewMemory(
                        text=features.render(phrase),
                        topic=request.topic(),
                        domain=request.domain,
                        source="clarification" if turn.kind == "clarification" else "feedback",
                        request_id=request.request_id,
                    ),
                    reason="new preference",
                )
            )
        return ops


def _answers(clarifications: Sequence[Turn]) -> list[tuple[str, str, int]]:
    """(key, text, position) of this request's answers; the key ("answer-<position>") stands
    where a memory id would, in evidence and in what backs an action."""
    return [
        (f"{_ANSWER}{index}", turn.text, index)
        for index, turn in enumerate(clarifications)
        if turn.kind == "clarification"
    ]


#: How many of the person's statements an action's rationale quotes.
_QUOTED = 3


def _quotes(
    backing: Sequence[str], memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
) -> str:
    """The person's own words behind an action, quoted (memory ids mean nothing to them):
    stored preferences by id, this request's answers by :func:`_answers`' keys."""
    texts = {m.record.id: m.record.text for m in memories}
    texts.update((key, text) for key, text, _index in _answers(clarifications))
    said = list(dict.fromkeys(texts[key] for key in backing if key in texts))
    quoted = "; ".join(f'"{t}"' for t in said[:_QUOTED])
    more = len(said) - _QUOTED
    return quoted + (f" (and {more} more)" if more > 0 else "")


#: Words with which a person says their taste changed, not that the agent misheard.
_CHANGE = re.compile(r"\b(?:changed|used to|no longer|any ?more|these days)\b", re.I)
