"""The built-in benchmark: seeded, deterministic, offline, for both domains (``pahf eval`` default).

Structure follows the PAHF paper: each simulated user has preferences per situation; phase 1
(learning) and phase 2 (test) visit the same situations, then ``drift`` of the preferences change
and phases 3 (learning) and 4 (test) visit them again.

* **embodied**: a situation is a context and a kind of request (fetch a drink, fetch a snack, or
  put an item somewhere); the preference is a liked item/place and a refused one.
* **shopping**: per product and feature category, one favourite value, two acceptable ones and
  three refused ones; items offer three options (plus "buy nothing") and the answer follows the
  published rule (acceptable = nothing refused; best = most favourites; none if no option is
  acceptable, see :mod:`pahf.eval.published_shopping`).

Realism the offline baselines cannot shortcut:

* things are named in other words later: what the user says, the candidates of phases 1/3 and the
  candidates of phases 2/4 use three different wordings of each concept (see
  :mod:`pahf.eval.generator_vocab`), and test phases also word the context and task differently,
  so memory must generalize through the embedding model, not string lookup;
* the user always describes one preference with the same statement (until it drifts);
* ``ambiguity`` is the fraction of episodes whose candidates contain several plausible items
  (embodied: the liked, the refused and another item of the requested kind; shopping: several
  acceptable options). The other episodes hold one plausible item among off-kind ones
  (embodied) or one or no acceptable option (shopping).

Everything is drawn from ``random.Random`` seeded with the domain and ``seed``: the same
arguments always give the same benchmark.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pahf.eval.episodes import DOMAINS, Benchmark, Episode, GroundTruth
from pahf.eval.generator_vocab import (
    DRINKS,
    PLACES,
    PRODUCTS,
    SHOPPING_TASKS,
    SITUATIONS,
    SNACKS,
    UNSUITABLE_PLACES,
    USERS,
    Forms,
    Situation,
)
from pahf.eval.published_shopping import NONE_ID, NONE_TEXT, Taste, derive_choice, statement
from pahf.request import Candidate, Request

LEARN, TEST = 0, 1  # which wording a phase uses: phases 1/3 learn, 2/4 test
STATEMENT_FORM, LEARN_FORM, TEST_FORM = 0, 1, 2


def _wording(phase: int) -> int:
    return LEARN if phase in (1, 3) else TEST


def _check_args(
    domain: str, users: int, episodes_per_phase: int, drift: float, ambiguity: float
) -> None:
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {', '.join(DOMAINS)}")
    if not 1 <= users <= len(USERS):
        raise ValueError(f"users must be between 1 and {len(USERS)}, got {users}")
    if episodes_per_phase < 1:
        raise ValueError(f"episodes_per_phase must be at least 1, got {episodes_per_phase}")
    if domain == "embodied" and episodes_per_phase > len(SITUATIONS):
        raise ValueError(
            f"embodied has {len(SITUATIONS)} situations; episodes_per_phase "
            f"{episodes_per_phase} would repeat them"
        )
    for name, value in (("drift", drift), ("ambiguity", ambiguity)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")


class _Words:
    """Which wording of each concept a user hears in each role (statement, learn, test)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._order: dict[str, list[int]] = {}

    def form(self, key: str, forms: Forms, role: int) -> str:
        order = self._order.get(key)
        if order is None:
            order = self._rng.sample(range(len(forms)), len(forms))
            self._order[key] = order
        text: str = forms[order[role]]
        return text


def _pick_count(rng: random.Random, n: int, fraction: float) -> set[int]:
    """Exactly round(fraction * n) of range(n), at random."""
    return set(rng.sample(range(n), round(fraction * n)))


def generate(
    domain: Literal["embodied", "shopping"],
    *,
    users: int = 4,
    episodes_per_phase: int = 12,
    seed: int = 0,
    drift: float = 0.5,
    ambiguity: float = 0.5,
) -> Benchmark:
    """A four-phase benchmark of ``users`` x ``episodes_per_phase`` episodes per phase."""
    _check_args(domain, users, episodes_per_phase, drift, ambiguity)
    rng = random.Random(f"pahf-generator:{domain}:{seed}")
    episodes: dict[int, list[Episode]] = {p: [] for p in (1, 2, 3, 4)}
    make = _embodied_user if domain == "embodied" else _shopping_user
    for name in USERS[:users]:
        for phase, eps in make(rng, name, episodes_per_phase, drift, ambiguity).items():
            episodes[phase].extend(eps)
    source = (
        f"generator(seed={seed}, users={users}, episodes_per_phase={episodes_per_phase}, "
        f"drift={drift}, ambiguity={ambiguity})"
    )
    return Benchmark(domain=domain, source=source, episodes=episodes)


# --------------------------------------------------------------------------- embodied


@dataclass(frozen=True)
class _Liking:
    liked: str
    refused: str


def _pool(kind: str) -> dict[str, Forms]:
    pool: dict[str, Forms]
    if kind == "drink":
        pool = DRINKS
    elif kind == "snack":
        pool = SNACKS
    else:
        pool = {key: place.forms for key, place in PLACES.items()}
    return pool


def _off_kind(kind: str) -> dict[str, Forms]:
    pool: dict[str, Forms]
    if kind == "drink":
        pool = SNACKS
    elif kind == "snack":
        pool = DRINKS
    else:
        pool = {place: (place, place, place) for place in UNSUITABLE_PLACES}
    return pool


def _drifted(rng: random.Random, liking: _Liking, pool: dict[str, Forms]) -> _Liking:
    """The changed preference: the old favourite is now refused; the new one is the formerly
    refused item (an inversion, as in the published personas) or a new item."""
    fresh = [k for k in pool if k not in (liking.liked, liking.refused)]
    if rng.random() < 0.5 or not fresh:
        return _Liking(liked=liking.refused, refused=liking.liked)
    return _Liking(liked=rng.choice(fresh), refused=liking.liked)


def _embodied_statement(sit: Situation, liking: _Liking, words: _Words) -> str:
    pool = _pool(sit.kind)
    liked = words.form(liking.liked, pool[liking.liked], STATEMENT_FORM)
    refused = words.form(liking.refused, pool[liking.refused], STATEMENT_FORM)
    if sit.kind == "placement":
        prep_l, prep_r = PLACES[liking.liked].preposition, PLACES[liking.refused].preposition
        return f"{sit.condition}, I want them {prep_l} {liked}, not {prep_r} {refused}."
    return f"{sit.condition}, I want {liked}, not {refused}."


def _embodied_user(
    rng: random.Random, user: str, n: int, drift: float, ambiguity: float
) -> dict[int, list[Episode]]:
    words = _Words(rng)
    situations = rng.sample(SITUATIONS, n)
    likings: dict[int, list[_Liking]] = {}
    first = [_Liking(*rng.sample(sorted(_pool(s.kind)), 2)) for s in situations]
    changed = _pick_count(rng, n, drift)
    later = [
        _drifted(rng, lk, _pool(s.kind)) if i in changed else lk
        for i, (s, lk) in enumerate(zip(situations, first, strict=True))
    ]
    likings = {1: first, 2: first, 3: later, 4: later}
    out: dict[int, list[Episode]] = {}
    for phase in (1, 2, 3, 4):
        wording = _wording(phase)
        ambiguous = _pick_count(rng, n, ambiguity)
        order = rng.sample(range(n), n)
        eps = []
        for i in order:
            sit, liking = situations[i], likings[phase][i]
            pool, off = _pool(sit.kind), _off_kind(sit.kind)
            role = LEARN_FORM if wording == LEARN else TEST_FORM
            plausible = [liking.liked]
            if i in ambiguous:
                others = [k for k in sorted(pool) if k not in (liking.liked, liking.refused)]
                plausible += [liking.refused, rng.choice(others)]
            distractors = rng.sample(sorted(off), 1 if i in ambiguous else 2)
            texts = [words.form(k, pool[k], role) for k in plausible]
            texts += [words.form(k, off[k], role) for k in distractors]
            liked_text = texts[0]
            refused_text = texts[1] if i in ambiguous else None
            rng.shuffle(texts)
            episode_id = f"embodied-p{phase}-{user}-{i}"
            request = Request(
                request_id=episode_id,
                user_id=user,
                domain="embodied",
                task=sit.tasks[wording],
                context=sit.labels[wording],
                subject=sit.subjects[role] if sit.subjects else "",
                candidates=[Candidate(id=t, text=t) for t in texts],
            )
            eps.append(
                Episode(
                    episode_id=episode_id,
                    domain="embodied",
                    phase=phase,
                    user=user,
                    index=i,
                    request=request,
                    truth=GroundTruth(
                        correct_ids=[liked_text],
                        statement=_embodied_statement(sit, liking, words),
                        refused={refused_text: [refused_text]} if refused_text else {},
                        drifted=phase >= 3 and i in changed,
                    ),
                )
            )
        out[phase] = eps
    return out


# --------------------------------------------------------------------------- shopping

_ProductTastes = dict[str, dict[str, tuple[int, tuple[int, ...], tuple[int, ...]]]]


def _tastes(rng: random.Random) -> _ProductTastes:
    """product -> category -> (favourite, fine, refused) value indices."""
    out: _ProductTastes = {}
    for product, categories in PRODUCTS.items():
        out[product] = {}
        for category, values in categories.items():
            order = rng.sample(range(len(values)), len(values))
            out[product][category] = (order[0], tuple(order[1:3]), tuple(order[3:]))
    return out


def _drift_tastes(rng: random.Random, tastes: _ProductTastes, drift: float) -> _ProductTastes:
    """Change round(drift x categories) tastes: the favourite swaps with a refused value."""
    slots = [(p, c) for p in sorted(tastes) for c in tastes[p]]
    changed = {slots[i] for i in _pick_count(rng, len(slots), drift)}
    out: _ProductTastes = {p: dict(cats) for p, cats in tastes.items()}
    for product, category in sorted(changed):
        fav, fine, refused = tastes[product][category]
        new_fav = rng.choice(refused)
        out[product][category] = (new_fav, fine, tuple(v if v != new_fav else fav for v in refused))
    return out


def _taste_words(
    product: str, tastes: _ProductTastes, words: _Words, role: int
) -> dict[str, Taste]:
    out = {}
    for category, (fav, fine, refused) in tastes[product].items():
        values = PRODUCTS[product][category]

        def say(i: int, category: str = category, values: tuple[Forms, ...] = values) -> str:
            return words.form(f"{product}|{category}|{i}", values[i], role)

        out[category] = Taste(
            category, say(fav), tuple(say(i) for i in fine), tuple(say(i) for i in refused)
        )
    return out


def _options(
    rng: random.Random, product: str, tastes: _ProductTastes, acceptable: int
) -> list[dict[str, int]]:
    """Three distinct options (category -> value index) with exactly ``acceptable`` acceptable
    ones and, when there are several, a single best (most favourites)."""
    cats = tastes[product]
    for _ in range(1000):
        options = []
        for k in range(3):
            if k < acceptable:
                opt = {c: rng.choice((fav, *fine)) for c, (fav, fine, _r) in cats.items()}
            else:
                opt = {c: rng.choice((fav, *fine, *ref)) for c, (fav, fine, ref) in cats.items()}
                if not any(opt[c] in ref for c, (_f, _n, ref) in cats.items()):
                    bad = rng.choice(sorted(cats))
                    opt[bad] = rng.choice(cats[bad][2])
            options.append(opt)
        if len({tuple(sorted(o.items())) for o in options}) < 3:
            continue
        favourites = [sum(o[c] == cats[c][0] for c in cats) for o in options[:acceptable]]
        if acceptable >= 2 and favourites.count(max(favourites)) > 1:
            continue
        rng.shuffle(options)
        return options
    raise RuntimeError(f"could not build options for {product!r}")  # pragma: no cover


def _shopping_user(
    rng: random.Random, user: str, n: int, drift: float, ambiguity: float
) -> dict[int, list[Episode]]:
    words = _Words(rng)
    before = _tastes(rng)
    after = _drift_tastes(rng, before, drift)
    products = sorted(PRODUCTS)
    offset = rng.randrange(len(products))
    out: dict[int, list[Episode]] = {}
    for phase in (1, 2, 3, 4):
        tastes = before if phase <= 2 else after
        wording = _wording(phase)
        role = LEARN_FORM if wording == LEARN else TEST_FORM
        ambiguous = _pick_count(rng, n, ambiguity)
        eps = []
        for i in range(n):
            product = products[(offset + i) % len(products)]
            acceptable = rng.choice((2, 3)) if i in ambiguous else rng.choice((0, 1))
            options = _options(rng, product, tastes, acceptable)
            seen = _taste_words(product, tastes, words, role)
            letters = "ABC"
            feats = {
                letters[k]: [
                    words.form(f"{product}|{c}|{v}", PRODUCTS[product][c][v], role)
                    for c, v in opt.items()
                ]
                for k, opt in enumerate(options)
            }
            best, acceptable_ids = derive_choice(seen, feats)
            episode_id = f"shopping-p{phase}-{user}-{i}"
            candidates = [
                Candidate(
                    id=letter,
                    text=f"{product} with {f[0]}, {f[1]} and {f[2]}",
                    attributes=f,
                )
                for letter, f in feats.items()
            ]
            candidates.append(Candidate(id=NONE_ID, text=NONE_TEXT))
            refused_words = {f for t in seen.values() for f in t.dislike}
            eps.append(
                Episode(
                    episode_id=episode_id,
                    domain="shopping",
                    phase=phase,
                    user=user,
                    index=i,
                    request=Request(
                        request_id=episode_id,
                        user_id=user,
                        domain="shopping",
                        task=rng.choice(SHOPPING_TASKS[wording]).format(product=product),
                        context=product,
                        candidates=candidates,
                    ),
                    truth=GroundTruth(
                        correct_ids=best,
                        statement=statement(
                            product, _taste_words(product, tastes, words, STATEMENT_FORM)
                        ),
                        acceptable_ids=acceptable_ids,
                        refused={
                            letter: bad
                            for letter, f in feats.items()
                            if (bad := [x for x in f if x in refused_words])
                        },
                        drifted=phase >= 3 and before[product] != after[product],
                    ),
                )
            )
        out[phase] = eps
    return out
