"""The built-in benchmark is deterministic, has the shape it promises, and is fair but not
solvable by string lookup."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any, Literal

import pytest

from pahf.eval.episodes import Benchmark, Episode
from pahf.eval.generator import generate
from pahf.eval.generator_vocab import DRINKS, PLACES, PRODUCTS, SITUATIONS, SNACKS
from pahf.eval.published_shopping import NONE_ID
from pahf.reasoners.phrases import MILD, NEGATIVE, STRONG, parse_preferences

Domain = Literal["embodied", "shopping"]
DOMAINS: tuple[Domain, ...] = ("embodied", "shopping")


def _by_user(bench: Benchmark, phase: int) -> dict[str, dict[int, Episode]]:
    out: dict[str, dict[int, Episode]] = defaultdict(dict)
    for e in bench.episodes[phase]:
        out[e.user][e.index] = e
    return out


@pytest.mark.parametrize("domain", DOMAINS)
def test_same_seed_same_benchmark(domain: Domain) -> None:
    assert generate(domain, seed=7) == generate(domain, seed=7)


@pytest.mark.parametrize("domain", DOMAINS)
def test_different_seeds_differ(domain: Domain) -> None:
    a = generate(domain, seed=1)
    b = generate(domain, seed=2)
    assert [e.truth.statement for e in a.episodes[1]] != [e.truth.statement for e in b.episodes[1]]


@pytest.mark.parametrize("domain", DOMAINS)
def test_shape_and_ids(domain: Domain) -> None:
    bench = generate(domain, users=3, episodes_per_phase=8)
    assert bench.domain == domain and "seed=0" in bench.source
    assert sorted(bench.episodes) == [1, 2, 3, 4]
    for phase, episodes in bench.episodes.items():
        assert Counter(e.user for e in episodes) == {u: 8 for u in bench.users()}
        assert len(bench.users()) == 3
        for e in episodes:
            assert e.episode_id == f"{domain}-p{phase}-{e.user}-{e.index}"
            assert e.request.request_id == e.episode_id
            assert e.request.user_id == e.user
            assert set(e.truth.correct_ids) <= {c.id for c in e.request.candidates}
    every = [e.episode_id for eps in bench.episodes.values() for e in eps]
    assert len(every) == len(set(every))


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("drift", [0.0, 0.25, 0.5, 1.0])
def test_drift_changes_that_fraction_of_preferences(domain: Domain, drift: float) -> None:
    bench = generate(domain, drift=drift)
    before, after = _by_user(bench, 1), _by_user(bench, 3)
    for user in bench.users():
        if domain == "embodied":
            changed = sum(
                before[user][i].truth.statement != after[user][i].truth.statement
                for i in before[user]
            )
            assert changed == round(drift * 12), user
            assert sum(e.truth.drifted for e in after[user].values()) == changed
        else:
            # One sentence per (product, category); count the sentences that changed.
            def sentences(eps: dict[int, Episode]) -> set[str]:
                return {s for e in eps.values() for s in re.split(r"(?<=\.) ", e.truth.statement)}

            old, new = sentences(before[user]), sentences(after[user])
            total = sum(len(c) for c in PRODUCTS.values())
            assert len(old) == len(new) == total
            assert len(new - old) == round(drift * total), user
    assert not any(e.truth.drifted for p in (1, 2) for e in bench.episodes[p])


@pytest.mark.parametrize("ambiguity", [0.0, 0.5, 1.0])
def test_ambiguity_is_the_fraction_with_several_plausible_candidates(ambiguity: float) -> None:
    embodied = generate("embodied", ambiguity=ambiguity)
    shopping = generate("shopping", ambiguity=ambiguity)
    for phase in (1, 2, 3, 4):
        for user, eps in _by_user(embodied, phase).items():
            # Ambiguous embodied episodes show the refused item next to the liked one.
            several = sum(bool(e.truth.refused) for e in eps.values())
            assert several == round(ambiguity * 12), (phase, user)
            for e in eps.values():
                assert len(e.request.candidates) == (4 if e.truth.refused else 3)
        for user, eps in _by_user(shopping, phase).items():
            several = sum(len(e.truth.acceptable_ids) >= 2 for e in eps.values())
            assert several == round(ambiguity * 12), (phase, user)


def test_embodied_wording_differs_between_learning_and_test_phases() -> None:
    bench = generate("embodied")
    p1, p2, p3 = _by_user(bench, 1), _by_user(bench, 2), _by_user(bench, 3)
    for user in bench.users():
        for i, first in p1[user].items():
            test = p2[user][i]
            assert first.truth.statement == test.truth.statement  # same preference, same words
            assert first.truth.correct_ids != test.truth.correct_ids  # named differently
            assert first.request.task != test.request.task
            assert first.request.context != test.request.context
            # Learning phases share their wording: phase 3 repeats phase 1's situation.
            assert p3[user][i].request.task == first.request.task
            said = {p.text for p in parse_preferences(first.truth.statement)}
            for e in (first, test):
                assert e.truth.correct_ids[0] not in said


def test_shopping_wording_differs_between_learning_and_test_phases() -> None:
    bench = generate("shopping", drift=0.0)
    learn = {f for e in bench.episodes[1] for c in e.request.candidates for f in c.attributes}
    test = {f for e in bench.episodes[2] for c in e.request.candidates for f in c.attributes}
    said = {p.text for e in bench.episodes[1] for p in parse_preferences(e.truth.statement)}
    # Per user a feature has three wordings; across users they overlap, so compare per user.
    for user in bench.users():
        mine_learn = {f for e in bench.episodes[1] if e.user == user
                      for c in e.request.candidates for f in c.attributes}
        mine_test = {f for e in bench.episodes[2] if e.user == user
                     for c in e.request.candidates for f in c.attributes}
        mine_said = {p.text for e in bench.episodes[1] if e.user == user
                     for p in parse_preferences(e.truth.statement)}
        assert not mine_learn & mine_test
        assert not mine_learn & mine_said
        assert not mine_test & mine_said
    assert learn and test and said


def test_shopping_truth_follows_the_rule_and_statements_parse() -> None:
    bench = generate("shopping")
    kinds: Counter[int] = Counter()
    for episodes in bench.episodes.values():
        for e in episodes:
            options = [c for c in e.request.candidates if c.id != NONE_ID]
            assert len(options) == 3 and all(len(c.attributes) == 3 for c in options)
            refused = {f for fs in e.truth.refused.values() for f in fs}
            acceptable = [c.id for c in options if not set(c.attributes) & refused]
            assert acceptable == e.truth.acceptable_ids
            if not acceptable:
                assert e.truth.correct_ids == [NONE_ID]
            else:
                assert e.truth.correct_ids[0] in acceptable and len(e.truth.correct_ids) == 1
            kinds[len(acceptable)] += 1
            weights = {p.weight for p in parse_preferences(e.truth.statement)}
            assert weights == {STRONG, MILD, NEGATIVE}
    assert set(kinds) == {0, 1, 2, 3}


def test_every_wording_reads_as_one_clean_phrase() -> None:
    """No wording may contain cue words ("over", "not", "or", commas) that would split or
    flip it when the user says it."""
    forms = [f for pool in (DRINKS, SNACKS) for fs in pool.values() for f in fs]
    forms += [f for place in PLACES.values() for f in place.forms]
    forms += [f for cats in PRODUCTS.values() for vals in cats.values() for fs in vals for f in fs]
    forms += [f for s in SITUATIONS for f in s.subjects]
    for form in forms:
        phrases = parse_preferences(f"I want {form}.")
        assert len(phrases) == 1 and phrases[0].weight == STRONG, (form, phrases)
    assert all(len(fs) >= 3 for pool in (DRINKS, SNACKS) for fs in pool.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"domain": "garden"}, "unknown domain"),
        ({"users": 0}, "users must be"),
        ({"users": 99}, "users must be"),
        ({"episodes_per_phase": 0}, "episodes_per_phase"),
        ({"episodes_per_phase": 99}, "situations"),
        ({"drift": 1.5}, "drift"),
        ({"ambiguity": -0.1}, "ambiguity"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"domain": "embodied", **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(**args)


@pytest.mark.parametrize(("domain", "floor"), [("embodied", 0.95), ("shopping", 0.85)])
def test_the_statement_identifies_the_answer_through_embeddings(domain: Domain, floor: float) -> None:
    """Fairness: told the preference (in other words than the candidates), the offline
    reasoner with the real MiniLM model finds the answer; otherwise the benchmark would
    measure the vocabulary, not the agent."""
    from pahf.decisions import Turn
    from pahf.memory.embeddings import MiniLMEncoder
    from pahf.reasoners.offline import OfflineReasoner

    reasoner = OfflineReasoner(MiniLMEncoder.shared())
    bench = generate(domain)
    episodes = [e for eps in bench.episodes.values() for e in eps]
    right = sum(
        reasoner.choose(e.request, [], [Turn(kind="clarification", text=e.truth.statement)])
        .candidate_id in e.truth.correct_ids
        for e in episodes
    )
    print(f"{domain}: statement alone finds the answer in {right}/{len(episodes)} episodes")
    assert right / len(episodes) >= floor


@pytest.mark.slow
def test_the_published_size_is_generated() -> None:
    """`pahf bench full` plays the published size: embodied 40 users x 30, shopping 20 x 45,
    every user distinct and every embodied situation once per user and phase."""
    sizes = {"embodied": (40, 30), "shopping": (20, 45)}
    for domain, (users, per_phase) in sizes.items():
        bench = generate(domain, users=users, episodes_per_phase=per_phase)  # type: ignore[arg-type]
        assert len(bench.users()) == users
        for phase in (1, 2, 3, 4):
            assert len(bench.episodes[phase]) == users * per_phase
            for user in bench.users():
                mine = [e for e in bench.episodes[phase] if e.user == user]
                assert len({e.index for e in mine}) == per_phase
