"""The published PAHF data layout loads into episodes that are complete, correct and leak-free.

Runs on pahf-mini (invented data laid out as the published data is read, owned by the tests:
``tests/unit/pahf_mini.py``) and on small synthetic trees for the error cases. The checks that only mean something
on the real published data run when its sample sits beside the repository
(``../shared/pahf-reference-sample``, or ``$PAHF_REFERENCE_SAMPLE``) and skip with a reason otherwise.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Literal, cast

import pytest

from pahf.eval.episodes import Benchmark
from pahf.eval.published import DataError, load_published
from pahf.eval.published_shopping import derive_choice, read_items, read_tastes
from pahf.reasoners.phrases import MILD, NEGATIVE, STRONG, parse_preferences
from tests.unit.pahf_mini import pahf_mini

MINI = pahf_mini()
#: The real published sample: ``$PAHF_REFERENCE_SAMPLE``, else ``../shared`` beside the checkout.
SAMPLE = Path(
    os.environ.get("PAHF_REFERENCE_SAMPLE")
    or Path(__file__).resolve().parents[2].parent / "shared" / "pahf-reference-sample"
)
needs_sample = pytest.mark.skipif(
    not SAMPLE.is_dir(),
    reason=f"the published PAHF sample is not beside the repository ({SAMPLE})",
)


@pytest.fixture(scope="module")
def embodied() -> Benchmark:
    return load_published(MINI, "embodied")


@pytest.fixture(scope="module")
def shopping() -> Benchmark:
    return load_published(MINI, "shopping")


def _episode(bench: Benchmark, episode_id: str) -> Any:
    return next(e for eps in bench.episodes.values() for e in eps if e.episode_id == episode_id)


# --------------------------------------------------------------------------- the fixture


@pytest.mark.parametrize(("domain", "users", "per_phase"), [("embodied", 2, 4), ("shopping", 2, 4)])
def test_every_phase_has_every_user_in_full(
    domain: Literal["embodied", "shopping"], users: int, per_phase: int
) -> None:
    bench = load_published(MINI, domain)
    assert sorted(bench.episodes) == [1, 2, 3, 4]
    for phase, episodes in bench.episodes.items():
        counts = Counter(e.user for e in episodes)
        assert len(counts) == users, phase
        assert set(counts.values()) == {per_phase}, (phase, counts)
        assert all(e.phase == phase and e.domain == domain for e in episodes)
    episodes = [e for eps in bench.episodes.values() for e in eps]
    assert len({e.episode_id for e in episodes}) == len(episodes)
    for e in episodes:
        assert e.episode_id == f"{domain}-p{e.phase}-{e.user}-{e.index}"
        assert e.request.request_id == e.episode_id


def test_accepts_the_data_folder_itself_and_loads_the_same(embodied: Benchmark) -> None:
    again = load_published(MINI / "data", "embodied")
    assert again.episodes == embodied.episodes


def test_every_correct_answer_is_a_candidate(embodied: Benchmark, shopping: Benchmark) -> None:
    for bench in (embodied, shopping):
        for episodes in bench.episodes.values():
            for e in episodes:
                ids = {c.id for c in e.request.candidates}
                assert set(e.truth.correct_ids) <= ids, e.episode_id
                assert set(e.truth.acceptable_ids) <= ids
                assert set(e.truth.refused) <= ids


def test_embodied_pick_up_episode(embodied: Benchmark) -> None:
    e = _episode(embodied, "embodied-p1-Quill-0")
    assert e.request.context == "Sleepy"
    assert e.request.subject == ""
    assert [c.id for c in e.request.candidates] == [
        "espresso", "sparkling lemon water", "oolong tea", "pretzels"
    ]
    assert e.truth.correct_ids == ["sparkling lemon water"]
    assert e.truth.statement == "When I'm sleepy, I prefer sparkling lemon water, not espresso."
    assert e.truth.drifted is False
    # Phase 3 revisits the same scene after Quill's preference changed.
    later = _episode(embodied, "embodied-p3-Quill-0")
    assert later.truth.correct_ids == ["espresso"]
    assert later.truth.drifted is True
    assert later.truth.statement == "When I'm sleepy, I prefer espresso, not sparkling water."


def test_embodied_placement_episode_takes_the_item_as_subject(embodied: Benchmark) -> None:
    e = _episode(embodied, "embodied-p1-Quill-3")
    assert e.request.subject == "spoons"
    assert [c.id for c in e.request.candidates] == ["drawer", "open shelf"]
    assert e.truth.correct_ids == ["drawer"]
    assert e.truth.statement == "Generally, I prefer drawer storage, not open shelves."


def test_embodied_statements_without_a_persona_line_fall_back_to_the_intent(
    tmp_path: Path,
) -> None:
    root = _write_tree(tmp_path / "pahf")
    rows = _scenarios()
    rows[0]["context"] = "Celebrating"
    rows[0]["task"] = "Bring me something festive"
    rows[0]["user_intent_object"] = rows[0]["scene_objects"][2] = "sparkling cider"
    (root / "data" / "embodied" / "scenarios" / "original_scenarios_A.json").write_text(
        json.dumps(rows)
    )
    e = load_published(root, "embodied").episodes[1][0]
    assert e.truth.statement == "For celebrating: I want sparkling cider."


def test_embodied_statements_name_a_liking(embodied: Benchmark) -> None:
    for episodes in embodied.episodes.values():
        for e in episodes:
            phrases = parse_preferences(e.truth.statement)
            assert any(p.weight > 0 for p in phrases), e.truth.statement


def test_shopping_episode_with_nothing_acceptable(shopping: Benchmark) -> None:
    e = _episode(shopping, "shopping-p1-Tobin-0")
    assert [c.id for c in e.request.candidates] == ["A", "B", "C", "none"]
    assert e.request.candidate("none").text == "Do not buy anything"
    assert e.request.candidate("A").attributes == [
        "gooseneck spout", "induction base", "borosilicate glass body"
    ]
    assert e.request.context == "kettle"
    assert e.truth.correct_ids == ["none"]
    assert e.truth.acceptable_ids == []
    assert e.truth.refused == {
        "A": ["gooseneck spout", "borosilicate glass body"],
        "B": ["coil element", "brushed steel body"],
        "C": ["short straight spout"],
    }


def test_shopping_episode_with_a_best_option(shopping: Benchmark) -> None:
    # Checked by hand: A has all three of Noor's favourites; B and C hold refused features.
    e = _episode(shopping, "shopping-p1-Noor-0")
    assert e.truth.correct_ids == ["A"]
    assert e.truth.acceptable_ids == ["A"]
    assert e.truth.refused == {"B": ["wide pour lip"], "C": ["stovetop base", "enamel body"]}
    assert e.truth.drifted is False
    assert _episode(shopping, "shopping-p3-Noor-0").truth.drifted is True


def test_shopping_statement_is_the_tastes_for_that_product(shopping: Benchmark) -> None:
    e = _episode(shopping, "shopping-p1-Noor-0")
    assert e.truth.statement.startswith(
        "For a kettle: For the spout shape, I like gooseneck spout best, short straight spout "
        "is fine too, and I won't accept wide pour lip or double spout. For the heating base,"
    )
    assert _episode(shopping, "shopping-p1-Noor-2").truth.statement.startswith(
        "For a desk lamp:"
    )


def test_shopping_episodes_carry_the_persona_tastes(shopping: Benchmark) -> None:
    """What the parity user answers from: the product's taste table, before and after."""
    e = _episode(shopping, "shopping-p3-Noor-0")
    assert [t.category for t in e.truth.tastes] == ["spout shape", "heating base", "body material"]
    assert e.truth.tastes[0].like_most == "short straight spout"
    assert e.truth.tastes_before[0].like_most == "gooseneck spout"
    assert _episode(shopping, "shopping-p1-Noor-0").truth.tastes_before == []


@pytest.mark.parametrize("persona", ["persona_info.json", "updated_persona_info.json"])
def test_every_taste_survives_parsing_with_its_polarity(persona: str) -> None:
    """The offline reasoner must read each feature back verbatim with the right sign."""
    from pahf.eval.published_shopping import statement

    users = read_tastes(MINI / "data" / "shopping" / persona)
    checked = 0
    for products in users.values():
        for product, tastes in products.items():
            parsed = {p.text: p.weight for p in parse_preferences(statement(product, tastes))}
            for taste in tastes.values():
                expected = {taste.like_most: STRONG}
                expected |= {f: MILD for f in taste.like_second}
                expected |= {f: NEGATIVE for f in taste.dislike}
                for feature, weight in expected.items():
                    assert parsed.get(feature) == weight, (product, feature, parsed.get(feature))
                    checked += 1
    assert checked > 40


def _agreement_with_the_taste_rule(root: Path) -> tuple[int, int, int]:
    """(agree, ties, total): how often ``gt`` is the option the taste rule picks (acceptable =
    nothing disliked, best = most favourites, none if nothing is acceptable); every other item
    must be a tie the rule leaves open."""
    shopping = root / "data" / "shopping"
    old = read_tastes(shopping / "persona_info.json")
    new = read_tastes(shopping / "updated_persona_info.json")
    agree = ties = total = 0
    for phase in (1, 2, 3, 4):
        tastes = old if phase <= 2 else new
        for item in read_items(shopping / f"phase{phase}.json"):
            best, _ = derive_choice(tastes[item.user][item.product], item.options)
            gt = item.gt or "none"
            total += 1
            if best == [gt]:
                agree += 1
            else:
                assert gt in best and len(best) > 1, (phase, item)
                ties += 1
    return agree, ties, total


def test_answers_follow_the_taste_rule_except_for_ties() -> None:
    agree, ties, total = _agreement_with_the_taste_rule(MINI)
    assert total > 0 and agree + ties == total


@needs_sample
def test_published_answers_follow_the_taste_rule_except_for_ties() -> None:
    """On the published sample: 534 of 540 agree; the 6 others are ties."""
    agree, ties, total = _agreement_with_the_taste_rule(SAMPLE)
    print(f"published gt agrees with the taste rule on {agree}/{total} items; {ties} ties")
    assert (agree, ties, total) == (534, 6, 540)


@needs_sample
def test_the_published_sample_loads_both_domains() -> None:
    for domain in ("embodied", "shopping"):
        bench = load_published(SAMPLE, cast(Any, domain))
        assert all(bench.episodes[p] for p in (1, 2, 3, 4))


def test_requests_carry_no_ground_truth(embodied: Benchmark, shopping: Benchmark) -> None:
    for bench in (embodied, shopping):
        for episodes in bench.episodes.values():
            for e in episodes:
                dumped = e.request.model_dump_json()
                keys = set(json.loads(dumped))
                assert keys == set(type(e.request).model_fields), keys
                for leak in ("user_intent", '"gt"', "correct", "truth", "refused", "acceptable"):
                    assert leak not in dumped, (e.episode_id, leak)
                assert e.truth.statement not in dumped


def test_episode_ids_are_stable_across_loads(shopping: Benchmark) -> None:
    again = load_published(MINI, "shopping")
    assert [e.episode_id for e in again.episodes[2]] == [e.episode_id for e in shopping.episodes[2]]


# --------------------------------------------------------------------------- left-out rows


def test_rows_that_contradict_their_scene_are_left_out_and_listed(embodied: Benchmark) -> None:
    """The fixture's two inconsistent rows (a target place outside the scene, an empty scene)
    are not episodes; each is listed with its file, position and reason."""
    ids = {e.episode_id for eps in embodied.episodes.values() for e in eps}
    assert "embodied-p1-Quill-8" not in ids and "embodied-p4-Rowan-8" not in ids
    assert [(r.row_id, r.file, r.item) for r in embodied.left_out] == [
        ("embodied-p1-Quill-8", "scenarios/original_scenarios_A.json", 8),
        ("embodied-p4-Rowan-8", "scenarios/evolved_scenarios_B.json", 8),
    ]
    assert "'hallway hook' is not in the scene" in embodied.left_out[0].reason
    assert "'scene_objects' is empty" in embodied.left_out[1].reason


# --------------------------------------------------------------------------- bad data

_PERSONA = (
    'prompt_zed = "YOUR PERSONA:\\n  * When you\'re thirsty, you prefer cold milk (not juice) '
    'as you like it\\n  * Generally prefer top shelf storage (not drawers)\\n"\n'
    'prompt_dict = {"Zed": prompt_zed}\n'
)


def _scenarios(index_base: int = 0) -> list[dict[str, Any]]:
    return [
        {"index": index_base, "scene": "", "task": "Bring me a drink", "context": "Thirsty",
         "user": "Zed", "user_intent_object": "cold milk", "user_intent_location": "pick-up",
         "scene_objects": ["orange juice", "cold milk", "walnuts"]},
        {"index": index_base + 1, "scene": "", "task": "Put these snacks away",
         "context": "Storage", "user": "Zed", "user_intent_object": "snacks",
         "user_intent_location": "top shelf",
         "scene_objects": ["snacks", "top shelf", "kitchen drawer"]},
    ]


def _tastes() -> dict[str, Any]:
    return {"Zed": {"persona_info": {"name": "Zed", "kettle": {"spout": {
        "dislike": ["wide spout"], "like_most": "gooseneck spout",
        "like_second": ["short spout"]}}}, "sample_list": ["kettle"]}}


def _item(gt: str | None = "A") -> dict[str, Any]:
    return {"product": "kettle", "Option A": ["gooseneck spout"], "Option B": ["wide spout"],
            "User": "Zed", "Task": "Buy me a kettle", "gt": gt}


def _write_tree(root: Path) -> Path:
    emb = root / "data" / "embodied"
    (emb / "scenarios").mkdir(parents=True)
    (emb / "personas").mkdir()
    for name in ("original_scenarios_A", "original_scenarios_B", "evolved_scenarios_A",
                 "evolved_scenarios_B"):
        (emb / "scenarios" / f"{name}.json").write_text(json.dumps(_scenarios()))
    for name in ("original_persona", "evolved_persona"):
        (emb / "personas" / f"{name}.py").write_text(_PERSONA)
    shop = root / "data" / "shopping"
    shop.mkdir(parents=True)
    for phase in (1, 2, 3, 4):
        (shop / f"phase{phase}.json").write_text(json.dumps([_item()]))
    for name in ("persona_info", "updated_persona_info"):
        (shop / f"{name}.json").write_text(json.dumps(_tastes()))
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return _write_tree(tmp_path / "pahf")


def test_small_tree_loads(tree: Path) -> None:
    emb = load_published(tree, "embodied")
    assert [e.truth.statement for e in emb.episodes[1]] == [
        "When I'm thirsty, I prefer cold milk, not juice.",
        "Generally, I prefer top shelf storage, not drawers.",
    ]
    assert emb.episodes[1][1].request.subject == "snacks"
    shop = load_published(tree, "shopping")
    assert shop.episodes[1][0].truth.correct_ids == ["A"]
    assert shop.episodes[1][0].truth.refused == {"B": ["wide spout"]}


def _expect(tree: Path, domain: Any, *fragments: str) -> DataError:
    with pytest.raises(DataError) as err:
        load_published(tree, domain)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(err.value, ValueError)
    return err.value


def test_missing_directory_is_named(tmp_path: Path) -> None:
    _expect(tmp_path / "nowhere", "embodied", "nowhere", "not found")


def test_directory_without_the_layout_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _expect(tmp_path / "empty", "shopping", "empty", "no data/")


def test_missing_file_is_named(tree: Path) -> None:
    (tree / "data" / "shopping" / "phase3.json").unlink()
    _expect(tree, "shopping", "phase3.json", "file not found")


def test_malformed_json_is_named(tree: Path) -> None:
    (tree / "data" / "embodied" / "scenarios" / "evolved_scenarios_B.json").write_text("[{")
    _expect(tree, "embodied", "evolved_scenarios_B.json", "malformed JSON")


def test_missing_field_is_named(tree: Path) -> None:
    rows = _scenarios()
    del rows[1]["task"]
    (tree / "data" / "embodied" / "scenarios" / "original_scenarios_B.json").write_text(
        json.dumps(rows)
    )
    _expect(tree, "embodied", "original_scenarios_B.json", "item 1", "'task'", "missing field")


def test_wrong_type_is_named(tree: Path) -> None:
    rows = _scenarios()
    rows[0]["scene_objects"] = "cold milk, orange juice"
    (tree / "data" / "embodied" / "scenarios" / "original_scenarios_A.json").write_text(
        json.dumps(rows)
    )
    _expect(tree, "embodied", "original_scenarios_A.json", "'scene_objects'", "expected list")


def test_wrong_gt_is_named(tree: Path) -> None:
    (tree / "data" / "shopping" / "phase2.json").write_text(json.dumps([_item(gt="D")]))
    _expect(tree, "shopping", "phase2.json", "'gt'", "'D'")


def test_empty_option_list_is_named(tree: Path) -> None:
    item = _item()
    item["Option B"] = []
    (tree / "data" / "shopping" / "phase1.json").write_text(json.dumps([item]))
    _expect(tree, "shopping", "phase1.json", "'Option B'", "empty list")


def test_item_without_options_is_named(tree: Path) -> None:
    item = {k: v for k, v in _item().items() if not k.startswith("Option")}
    (tree / "data" / "shopping" / "phase1.json").write_text(json.dumps([item]))
    _expect(tree, "shopping", "phase1.json", "no options")


def test_duplicate_option_key_is_named(tree: Path) -> None:
    raw = json.dumps([_item()]).replace('"Option B"', '"Option A"')
    (tree / "data" / "shopping" / "phase4.json").write_text(raw)
    _expect(tree, "shopping", "phase4.json", "duplicate key 'Option A'")


def test_duplicate_scenario_index_is_named(tree: Path) -> None:
    rows = _scenarios()
    rows[1]["index"] = rows[0]["index"]
    (tree / "data" / "embodied" / "scenarios" / "evolved_scenarios_A.json").write_text(
        json.dumps(rows)
    )
    _expect(tree, "embodied", "evolved_scenarios_A.json", "duplicate index 0")


def test_duplicate_scene_objects_are_named(tree: Path) -> None:
    rows = _scenarios()
    rows[0]["scene_objects"] = ["cold milk", "cold milk", "walnuts"]
    (tree / "data" / "embodied" / "scenarios" / "original_scenarios_A.json").write_text(
        json.dumps(rows)
    )
    _expect(tree, "embodied", "'scene_objects'", "duplicate entries ['cold milk']")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"user_intent_location": "garage"}, "target location 'garage' is not in the scene"),
        ({"scene_objects": ["top shelf", "snacks", "kitchen drawer"]}, "list its item first"),
        ({"scene_objects": []}, "'scene_objects' is empty"),
    ],
    ids=["place outside", "item not first", "empty scene"],
)
def test_rows_contradicting_their_scene_are_left_out_not_fatal(
    tree: Path, change: dict[str, Any], reason: str
) -> None:
    rows = _scenarios()
    rows[1].update(change)
    (tree / "data" / "embodied" / "scenarios" / "original_scenarios_A.json").write_text(
        json.dumps(rows)
    )
    bench = load_published(tree, "embodied")
    assert [e.index for e in bench.episodes[1]] == [0]
    assert [e.index for e in bench.episodes[2]] == [0, 1]
    [row] = bench.left_out
    assert (row.row_id, row.file, row.item) == (
        "embodied-p1-Zed-1", "scenarios/original_scenarios_A.json", 1
    )
    assert reason in row.reason


def test_a_pick_up_target_outside_the_scene_is_left_out(tree: Path) -> None:
    rows = _scenarios()
    rows[0]["user_intent_object"] = "lemonade"
    (tree / "data" / "embodied" / "scenarios" / "evolved_scenarios_B.json").write_text(
        json.dumps(rows)
    )
    bench = load_published(tree, "embodied")
    assert [r.row_id for r in bench.left_out] == ["embodied-p4-Zed-0"]
    assert "target object 'lemonade' is not in the scene" in bench.left_out[0].reason


def test_a_scene_that_is_not_a_list_stays_a_format_error(tree: Path) -> None:
    rows = _scenarios()
    rows[1]["scene_objects"] = None
    (tree / "data" / "embodied" / "scenarios" / "original_scenarios_A.json").write_text(
        json.dumps(rows)
    )
    _expect(tree, "embodied", "original_scenarios_A.json", "item 1", "'scene_objects'")


def test_persona_file_that_is_not_python_is_named(tree: Path) -> None:
    (tree / "data" / "embodied" / "personas" / "evolved_persona.py").write_text("prompt = (")
    _expect(tree, "embodied", "evolved_persona.py", "not valid Python")


def test_persona_file_without_a_table_is_named(tree: Path) -> None:
    (tree / "data" / "embodied" / "personas" / "original_persona.py").write_text(
        'prompt_zed = "hello"\n'
    )
    _expect(tree, "embodied", "original_persona.py", "no dict mapping person names")


def test_persona_files_are_never_executed(tree: Path, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    (tree / "data" / "embodied" / "personas" / "original_persona.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\n" + _PERSONA
    )
    load_published(tree, "embodied")
    assert not marker.exists()


def test_unknown_user_is_named(tree: Path) -> None:
    tastes = _tastes()
    tastes["Ann"] = tastes.pop("Zed")
    (tree / "data" / "shopping" / "updated_persona_info.json").write_text(json.dumps(tastes))
    _expect(tree, "shopping", "updated_persona_info.json", "no tastes for user 'Zed'")


def test_unknown_domain_is_refused(tree: Path) -> None:
    with pytest.raises(ValueError, match="unknown domain"):
        load_published(tree, cast(Any, "kitchen"))


# --------------------------------------------------------------------------- persona prompts


def test_each_phase_carries_the_persona_prompts_of_its_side_of_the_shift(
    embodied: Benchmark, shopping: Benchmark
) -> None:
    """What an LLM simulated user plays: the original persona in phases 1-2, the evolved or
    updated one in 3-4, exactly as the data files give them."""
    from pahf.eval.persona_text import persona_prompts

    personas = MINI / "data" / "embodied" / "personas"
    original = persona_prompts(personas / "original_persona.py")
    evolved = persona_prompts(personas / "evolved_persona.py")
    shop = MINI / "data" / "shopping"
    before = json.loads((shop / "original_persona.json").read_text())
    after = json.loads((shop / "updated_persona.json").read_text())
    for bench, old, new in ((embodied, original, evolved), (shopping, before, after)):
        users = bench.users()
        assert sorted(bench.personas) == [1, 2, 3, 4]
        for phase, prompts in ((1, old), (2, old), (3, new), (4, new)):
            assert bench.personas[phase] == {u: prompts[u] for u in users}
        assert all(bench.personas[1][u] != bench.personas[3][u] for u in users)


def test_shopping_without_persona_prompt_files_still_loads(tree: Path) -> None:
    shop = load_published(tree, "shopping")  # the small tree has tastes but no prompts
    assert shop.personas == {} and shop.episodes[1]
    prompts = tree / "data" / "shopping" / "original_persona.json"
    prompts.write_text(json.dumps({"Zed": "You are Zed, a shopper."}))
    shop = load_published(tree, "shopping")
    assert shop.personas == {1: {"Zed": "You are Zed, a shopper."}, 2: {"Zed": "You are Zed, a shopper."}}


@pytest.mark.parametrize(
    ("prompts", "fragments"),
    [
        ({"Zed": 3}, ["original_persona.json", "'Zed'", "expected str"]),
        ({"Amy": "You are Amy."}, ["original_persona.json", "no persona prompt for user 'Zed'"]),
        (["You are Zed."], ["original_persona.json", "top level"]),
    ],
    ids=["not a string", "user missing", "not an object"],
)
def test_bad_shopping_persona_prompts_are_named(
    tree: Path, prompts: object, fragments: list[str]
) -> None:
    (tree / "data" / "shopping" / "original_persona.json").write_text(json.dumps(prompts))
    _expect(tree, "shopping", *fragments)
