"""The shopping half of the published PAHF data: three shoppers, product options, feature tastes.

Phases: ``phase1.json`` .. ``phase4.json``; the shopper's tastes are ``persona_info.json`` in phases
1-2 and ``updated_persona_info.json`` in 3-4 (every product's tastes changed). Each item offers
options ``"Option A"``, ``"Option B"``, ... (lists of features) and ``gt``: the letter to buy, or
``null`` when nothing is acceptable. ``original_persona.json`` / ``updated_persona.json`` hold each
shopper's prompt for the human simulator before / after the shift (read when present, for the
LLM simulated user).

Candidates: one per option (id ``"A"``, ``"B"``, ...; text "<product> with f1, f2 and f3",
attributes = the features) plus ``"none"`` ("Do not buy anything"), because the reference scores
``gt = null`` as the answer "D) Do not buy anything".

Ground truth. The data's ``gt`` is what is scored (``null`` -> ``"none"``). The tastes also define a
rule, and :func:`derive_choice` computes it: an option is *acceptable* when none of its features is
disliked, the *best* is the acceptable option with the most favourite (``like_most``) features, and
nothing is bought when no option is acceptable. On the published sample the rule and ``gt`` agree
on 534 of 540 items (100% in phases 1-2); the six others are ties (two acceptable options with the
same number of favourites) where ``gt`` names one of the tied options. We keep ``gt`` as the only
correct answer, as the reference does, and list every acceptable option in ``acceptable_ids``.

What the user says (``GroundTruth.statement``): their tastes for this product, one sentence per
feature category, in words the offline reasoner can read ("For the door configuration, I like
top-hinged pull-down door best, right-hinged swing door or side-sliding door are fine too, and I
won't accept ..."). ``refused`` lists each option's disliked features, for corrections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pahf.eval.datafiles import object_list, object_map, read_json, require, string_list
from pahf.eval.episodes import Benchmark, Episode, GroundTruth, TasteEntry
from pahf.eval.errors import DataError
from pahf.request import Candidate, Request

PHASE_FILES = {p: f"phase{p}.json" for p in (1, 2, 3, 4)}
PERSONA_FILES = {
    1: "persona_info.json",
    2: "persona_info.json",
    3: "updated_persona_info.json",
    4: "updated_persona_info.json",
}
#: The shopper's prompt for the human simulator in LLM mode, before and after the shift. Read
#: when present (the rule-based simulator and the scorer do not need them).
PROMPT_FILES = {
    1: "original_persona.json",
    2: "original_persona.json",
    3: "updated_persona.json",
    4: "updated_persona.json",
}
NONE_ID = "none"
NONE_TEXT = "Do not buy anything"
_OPTION_KEY = re.compile(r"^Option ([A-Z])$")


@dataclass(frozen=True)
class Taste:
    """One feature category of one product: the favourite, the acceptable, the refused."""

    category: str
    like_most: str
    like_second: tuple[str, ...]
    dislike: tuple[str, ...]

    def sentence(self) -> str:
        parts = [f"For the {self.category}, I like {self.like_most} best"]
        if self.like_second:
            parts.append(f"{_either(self.like_second)} {_be(self.like_second)} fine too")
        if self.dislike:
            parts.append(f"and I won't accept {_any_of(self.dislike)}")
        return ", ".join(parts) + "."


def _either(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


_any_of = _either


def _be(items: tuple[str, ...]) -> str:
    return "is" if len(items) == 1 else "are"


Tastes = dict[str, dict[str, Taste]]  # product -> category -> taste


def read_tastes(path: Path) -> dict[str, Tastes]:
    """User -> product -> category -> :class:`Taste`, validated."""
    data = object_map(path, "top level", read_json(path))
    if not data:
        raise DataError(path, "no users")
    users: dict[str, Tastes] = {}
    for user, entry in data.items():
        entry = object_map(path, f"{user!r}", entry)
        info = require(path, f"{user!r}", entry, "persona_info", dict)
        products: Tastes = {}
        for product, categories in info.items():
            if product == "name":
                continue
            where = f"{user!r}: {product!r}"
            categories = object_map(path, where, categories)
            if not categories:
                raise DataError(path, "no feature categories", field=where)
            tastes: dict[str, Taste] = {}
            for category, prefs in categories.items():
                cw = f"{where}: {category!r}"
                prefs = object_map(path, cw, prefs)
                most = require(path, cw, prefs, "like_most", str)
                has_second = bool(require(path, cw, prefs, "like_second", list))
                second = string_list(path, cw, prefs, "like_second") if has_second else []
                dislike = string_list(path, cw, prefs, "dislike")
                overlap = ({most} | set(second)) & set(dislike)
                if overlap:
                    raise DataError(path, f"liked and disliked at once: {sorted(overlap)}", cw)
                tastes[category] = Taste(category, most, tuple(second), tuple(dislike))
            products[product] = tastes
        if not products:
            raise DataError(path, "no products", field=f"{user!r}: 'persona_info'")
        users[user] = products
    return users


@dataclass(frozen=True)
class Item:
    """One validated shopping item."""

    user: str
    product: str
    task: str
    options: dict[str, list[str]]  # letter -> features, in file order
    gt: str | None


def read_items(path: Path) -> list[Item]:
    rows = object_list(path, read_json(path))
    items = []
    for i, row in enumerate(rows):
        where = f"item {i}"
        options: dict[str, list[str]] = {}
        for key in row:
            match = _OPTION_KEY.match(key)
            if match:
                options[match.group(1)] = string_list(path, where, row, key)
        if not options:
            raise DataError(path, "no options ('Option A', 'Option B', ...)", field=where)
        gt = row.get("gt", ...)
        if gt is ...:
            raise DataError(path, "missing field", field=f"{where}: 'gt'")
        if gt is not None and (not isinstance(gt, str) or gt not in options):
            raise DataError(
                path,
                f"must be null or one of the option letters {sorted(options)}, got {gt!r}",
                field=f"{where}: 'gt'",
            )
        items.append(
            Item(
                user=require(path, where, row, "User", str),
                product=require(path, where, row, "product", str),
                task=require(path, where, row, "Task", str),
                options=options,
                gt=gt,
            )
        )
    return items


def classify(tastes: dict[str, Taste], feature: str) -> str:
    """"most", "second", "dislike" or "unknown" (a feature the shopper has no taste about)."""
    for taste in tastes.values():
        if feature == taste.like_most:
            return "most"
        if feature in taste.like_second:
            return "second"
        if feature in taste.dislike:
            return "dislike"
    return "unknown"


def derive_choice(
    tastes: dict[str, Taste], options: dict[str, list[str]]
) -> tuple[list[str], list[str]]:
    """(best option ids, acceptable option ids) by the rule; best is ``["none"]`` if none is
    acceptable, and lists every tied option when several have the most favourites."""
    acceptable: list[str] = []
    favourites: dict[str, int] = {}
    for letter, features in options.items():
        kinds = [classify(tastes, f) for f in features]
        if "dislike" not in kinds:
            acceptable.append(letter)
            favourites[letter] = kinds.count("most")
    if not acceptable:
        return [NONE_ID], []
    top = max(favourites.values())
    return [a for a in acceptable if favourites[a] == top], acceptable


def statement(product: str, tastes: dict[str, Taste]) -> str:
    """The shopper's tastes for one product, in their words, one sentence per category."""
    article = "an" if product[:1].lower() in "aeiou" else "a"
    return f"For {article} {product}: " + " ".join(t.sentence() for t in tastes.values())


def taste_entries(tastes: dict[str, Taste]) -> list[TasteEntry]:
    """The persona's tastes for one product as the simulated user holds them."""
    return [
        TasteEntry(
            category=t.category,
            like_most=t.like_most,
            like_second=list(t.like_second),
            dislike=list(t.dislike),
        )
        for t in tastes.values()
    ]


def _request(episode_id: str, item: Item) -> Request:
    candidates = [
        Candidate(
            id=letter,
            text=f"{item.product} with {', '.join(features[:-1])} and {features[-1]}"
            if len(features) > 1
            else f"{item.product} with {features[0]}",
            attributes=list(features),
        )
        for letter, features in item.options.items()
    ]
    candidates.append(Candidate(id=NONE_ID, text=NONE_TEXT))
    return Request(
        request_id=episode_id,
        user_id=item.user,
        domain="shopping",
        task=item.task,
        context=item.product,
        candidates=candidates,
    )


def read_persona_prompts(path: Path) -> dict[str, str]:
    """User -> persona prompt from ``path`` (``{"Emma": "You are Emma. ..."}``); {} if absent."""
    if not path.exists():
        return {}
    data = object_map(path, "top level", read_json(path))
    return {user: require(path, "top level", data, user, str) for user in data}


def load_shopping(root: Path) -> Benchmark:
    """All four phases of the shopping data under ``root`` (the ``data/shopping`` folder)."""
    if not root.is_dir():
        raise DataError(root, "shopping data folder not found")
    tastes = {p: read_tastes(root / PERSONA_FILES[p]) for p in (1, 3)}
    episodes: dict[int, list[Episode]] = {}
    for phase, rel in PHASE_FILES.items():
        path = root / rel
        current = tastes[1 if phase <= 2 else 3]
        counters: dict[str, int] = {}
        out = []
        for i, item in enumerate(read_items(path)):
            persona_path = root / PERSONA_FILES[phase]
            if item.user not in current:
                raise DataError(persona_path, f"no tastes for user {item.user!r} ({rel} item {i})")
            if item.product not in current[item.user]:
                raise DataError(
                    persona_path,
                    f"user {item.user!r} has no tastes for {item.product!r} ({rel} item {i})",
                )
            product_tastes = current[item.user][item.product]
            index = counters.get(item.user, 0)
            counters[item.user] = index + 1
            episode_id = f"shopping-p{phase}-{item.user}-{index}"
            _, acceptable = derive_choice(product_tastes, item.options)
            old = tastes[1].get(item.user, {}).get(item.product)
            out.append(
                Episode(
                    episode_id=episode_id,
                    domain="shopping",
                    phase=phase,
                    user=item.user,
                    index=index,
                    request=_request(episode_id, item),
                    truth=GroundTruth(
                        correct_ids=[item.gt if item.gt is not None else NONE_ID],
                        statement=statement(item.product, product_tastes),
                        acceptable_ids=acceptable,
                        refused={
                            letter: [
                                f for f in feats if classify(product_tastes, f) == "dislike"
                            ]
                            for letter, feats in item.options.items()
                            if any(classify(product_tastes, f) == "dislike" for f in feats)
                        },
                        drifted=phase >= 3 and old is not None and old != product_tastes,
                        tastes=taste_entries(product_tastes),
                        tastes_before=taste_entries(old) if phase >= 3 and old else [],
                    ),
                )
            )
        episodes[phase] = out
    prompts = {rel: read_persona_prompts(root / rel) for rel in set(PROMPT_FILES.values())}
    personas: dict[int, dict[str, str]] = {}
    for phase, eps in episodes.items():
        rel = PROMPT_FILES[phase]
        if not prompts[rel]:
            continue
        for user in sorted({e.user for e in eps}):
            if user not in prompts[rel]:
                needed = f"no persona prompt for user {user!r} (needed by {PHASE_FILES[phase]})"
                raise DataError(root / rel, needed)
            personas.setdefault(phase, {})[user] = prompts[rel][user]
    return Benchmark(domain="shopping", source=str(root), episodes=episodes, personas=personas)

