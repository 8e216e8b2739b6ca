"""The paper-parity evaluation: the simulated user never answers from the answer key, answers the
question that was asked, corrects with one reason; the agent sees what the paper's agent sees.

Runs on pahf-mini (invented data laid out as the published data is read:
``tests/unit/pahf_mini.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pahf.decisions import Action
from pahf.eval.episodes import Benchmark, Episode, GroundTruth
from pahf.eval.llm_user import answer_messages
from pahf.eval.published import load_published
from pahf.eval.runner import (
    EvalServices,
    EvalSettings,
    replay_request,
    run_evaluation,
    simulator_for,
)
from pahf.eval.simulators import NO_PREFERENCE, ParityUser, RuleBasedUser
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.reasoners.offline import OfflineReasoner
from pahf.request import Candidate, Request
from tests.unit.pahf_mini import pahf_mini

MINI = pahf_mini()


def _load(root: Path) -> dict[str, Benchmark]:
    return {d: load_published(root, d) for d in ("embodied", "shopping")}  # type: ignore[arg-type]


def _episode(bench: Benchmark, episode_id: str) -> Episode:
    return next(e for eps in bench.episodes.values() for e in eps if e.episode_id == episode_id)


def _action(episode: Episode, candidate_id: str) -> Action:
    cand = episode.request.candidate(candidate_id)
    return Action(candidate_id=cand.id, candidate_text=cand.describe(), rationale="test")


@pytest.fixture(scope="module")
def mini() -> dict[str, Benchmark]:
    return _load(MINI)


@pytest.fixture(scope="module")
def user(mini: dict[str, Benchmark]) -> ParityUser:
    return ParityUser({d: b.personas for d, b in mini.items()})


# --------------------------------------------------------------------------- leak tests


def _move_answer_key(root: Path) -> None:
    """Point every answer key of the data at another candidate, leaving personas and scenes."""
    scenarios = root / "data" / "embodied" / "scenarios"
    for path in scenarios.glob("*.json"):
        rows = json.loads(path.read_text())
        for row in rows:
            objects = row["scene_objects"]
            if row["user_intent_location"] == "pick-up":
                if row["user_intent_object"] in objects:
                    others = [o for o in objects if o != row["user_intent_object"]]
                    row["user_intent_object"] = others[0]
            elif len(objects) > 2 and row["user_intent_location"] in objects[1:]:
                others = [o for o in objects[1:] if o != row["user_intent_location"]]
                row["user_intent_location"] = others[0]
        path.write_text(json.dumps(rows))
    for path in (root / "data" / "shopping").glob("phase*.json"):
        items = json.loads(path.read_text())
        for item in items:
            item["gt"] = {"A": "B", "B": "C", "C": None, None: "A"}[item["gt"]]
        path.write_text(json.dumps(items))


def _pre_only_actions(
    benchmarks: dict[str, Benchmark], simulator: Any, out: Path
) -> dict[tuple[str, int, int, str], tuple[str | None, str | None]]:
    def open_memory(path: Path) -> ChromaPreferenceMemory:
        return ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())

    services = EvalServices(
        open_memory=open_memory,
        make_reasoner=lambda memory: OfflineReasoner(memory.encoder),
        simulator=simulator,
    )
    outcome = run_evaluation(
        benchmarks,
        EvalSettings(domains=["embodied", "shopping"], methods=["pre-only"], iterations=2),
        out,
        services=services,
    )
    assert outcome.complete
    return {
        (r.domain, r.phase, r.iteration, r.episode_id): (
            r.action.candidate_id if r.action else None,
            r.answer,
        )
        for r in outcome.records
    }


def test_pre_only_plays_the_same_whatever_the_answer_key(tmp_path: Path) -> None:
    """A run on a copy of the data whose answer key points at other candidates gives the same
    answers and actions for pre-only (questions, no feedback) in both domains: nothing the
    agent or the answering user does depends on the key. The generous upper-bound user, which
    answers with the statement chosen with the key, does not (so the test can tell)."""
    moved = tmp_path / "moved"
    shutil.copytree(MINI, moved)
    _move_answer_key(moved)
    original, changed = _load(MINI), _load(moved)
    keys_differ = [
        (a.episode_id, a.truth.correct_ids, b.truth.correct_ids)
        for d in original
        for p in (1, 2, 3, 4)
        for a, b in zip(original[d].episodes[p], changed[d].episodes[p], strict=True)
        if a.truth.correct_ids != b.truth.correct_ids
    ]
    assert len(keys_differ) == sum(len(e) for b in original.values() for e in b.episodes.values())

    def parity(benches: dict[str, Benchmark]) -> ParityUser:
        return ParityUser({d: b.personas for d, b in benches.items()})

    before = _pre_only_actions(original, parity(original), tmp_path / "a")
    after = _pre_only_actions(changed, parity(changed), tmp_path / "b")
    assert before == after
    assert {d for d, *_ in before} == {"embodied", "shopping"}
    assert sum(answer is not None for _, answer in before.values()) > 10  # questions were asked

    generous_before = _pre_only_actions(original, RuleBasedUser(), tmp_path / "c")
    generous_after = _pre_only_actions(changed, RuleBasedUser(), tmp_path / "d")
    assert generous_before != generous_after


def test_embodied_answers_do_not_read_the_answer_key(
    mini: dict[str, Benchmark], user: ParityUser
) -> None:
    """The same episode with another answer key gets the same answer."""
    bench = mini["embodied"]
    for episodes in bench.episodes.values():
        for e in episodes:
            request = replay_request(e, e.phase, 1)
            question = OfflineReasoner.question(request, [c.id for c in request.candidates])
            other = next(c.id for c in e.request.candidates if c.id not in e.truth.correct_ids)
            moved = e.model_copy(
                update={
                    "truth": GroundTruth(correct_ids=[other], statement=f"I want {other}.")
                }
            )
            assert user.answer(e, question) == user.answer(moved, question), e.episode_id


# --------------------------------------------------------------------------- answers


def test_shopping_answer_stays_on_the_feature_asked_about(
    mini: dict[str, Benchmark], user: ParityUser
) -> None:
    """Asked about one category, the shopper answers about it alone, naming none of the
    features of the other categories (the generous user recites the whole table)."""
    e = _episode(mini["shopping"], "shopping-p1-Noor-0")
    answer = user.answer(e, "Which heating base would you like for the kettle?")
    assert answer == "For the heating base, I like induction base best."
    others = [f for t in e.truth.tastes if t.category != "heating base"
              for f in (t.like_most, *t.like_second, *t.dislike)]
    assert not [f for f in others if f in answer]
    generous = RuleBasedUser().answer(e, "Which heating base would you like for the kettle?")
    assert [f for f in others if f in generous]


def test_a_generated_shopper_answers_about_what_is_asked_not_the_product_named(
    user: ParityUser,
) -> None:
    """Generated data has no taste table: the answer is the sentence of the statement the
    question is about. Every question quotes the request, whose product words ("coffee") may
    also be in another sentence; they do not decide which one is answered."""
    statement = (
        "For a coffee maker: For the brewing method, I like single-serve coffee pods best, "
        "and I won't accept French press plunger. For the controls, I like touchscreen "
        "control panel best, and I won't accept single power switch."
    )
    e = Episode(
        episode_id="shopping-p1-Gen-0", domain="shopping", phase=1, user="Gen", index=0,
        request=Request(
            request_id="shopping-p1-Gen-0", user_id="Gen", domain="shopping",
            task="Could you order me a coffee maker I'd like?", context="coffee maker",
            candidates=[Candidate(id="A", text="A", attributes=["color touchscreen"]),
                        Candidate(id="none", text="Do not buy anything")],
        ),
        truth=GroundTruth(correct_ids=["A"], statement=statement),
    )
    question = (
        'Before I act on "Could you order me a coffee maker I\'d like?": how do you feel '
        "about color touchscreen? Is there any of these you would not want?"
    )
    assert user.answer(e, question).startswith("For the controls, I like touchscreen")


def test_shopping_answer_to_the_offered_options_names_what_is_refused(
    mini: dict[str, Benchmark], user: ParityUser
) -> None:
    """Asked about options that hold refused features, the shopper names the refused features
    of one category among those offered, and nothing that was not mentioned."""
    e = _episode(mini["shopping"], "shopping-p1-Noor-0")
    question = (
        "I could go with a kettle with wide pour lip, coil element and brushed steel body, or "
        "one with short straight spout, stovetop base and enamel body. What do you prefer?"
    )
    answer = user.answer(e, question)
    assert answer.startswith("For the ")
    assert answer.count("For the ") == 1  # one category
    mentioned = [f for t in e.truth.tastes for f in (t.like_most, *t.like_second, *t.dislike)
                 if f in question]
    named = [f for t in e.truth.tastes for f in (t.like_most, *t.like_second, *t.dislike)
             if f in answer]
    assert named and set(named) <= set(mentioned), (named, mentioned)
    assert "won't accept" in answer


def test_embodied_answer_is_the_persona_line_for_the_users_situation(
    mini: dict[str, Benchmark], user: ParityUser
) -> None:
    """The answer is the persona's line for this situation (the user knows it is sleepy even
    though the agent is not told), one sentence, not the rest of the persona."""
    e = _episode(mini["embodied"], "embodied-p1-Quill-0")
    request = replay_request(e, 1, 1)
    assert request.context == ""  # the agent does not see "Sleepy"
    answer = user.answer(e, OfflineReasoner.question(request, [c.id for c in request.candidates]))
    assert answer == "When I'm sleepy, I prefer sparkling lemon water, not espresso."
    assert "cider" not in answer and "chickpeas" not in answer
    # After the shift the same question gets the evolved persona's line.
    later = _episode(mini["embodied"], "embodied-p3-Quill-0")
    assert user.answer(later, "What would you like?") == (
        "When I'm sleepy, I prefer espresso, not sparkling water."
    )


def test_embodied_answer_says_so_when_the_persona_has_nothing(
    mini: dict[str, Benchmark], user: ParityUser
) -> None:
    """A situation the persona does not cover gets "no particular preference", not the target
    (the generous user names the target there)."""
    e = _episode(mini["embodied"], "embodied-p1-Quill-0")
    party = e.model_copy(
        update={
            "request": Request(
                request_id=e.episode_id, user_id="Quill", domain="embodied",
                task="We are celebrating tonight. Could you bring me something?",
                context="Celebrating",
                candidates=e.request.candidates,
            ),
            "truth": GroundTruth(
                correct_ids=["pretzels"], statement="For celebrating: I want pretzels."
            ),
        }
    )
    assert user.answer(party, "What would you like to celebrate with?") == NO_PREFERENCE
    assert "pretzels" in RuleBasedUser().answer(party, "What would you like?")


# --------------------------------------------------------------------------- feedback


def test_a_right_action_is_accepted(mini: dict[str, Benchmark], user: ParityUser) -> None:
    for bench in mini.values():
        for episodes in bench.episodes.values():
            for e in episodes:
                assert user.feedback(e, _action(e, e.truth.correct_ids[0])) is None


def test_shopping_correction_names_one_refused_feature(
    mini: dict[str, Benchmark], user: ParityUser
) -> None:
    e = _episode(mini["shopping"], "shopping-p1-Noor-0")  # C refuses stovetop base, enamel body
    reply = user.feedback(e, _action(e, "C"))
    assert reply == "That won't work for me: I don't want stovetop base."
    assert "enamel body" not in reply


def test_shopping_correction_after_the_shift_says_the_taste_changed(
    mini: dict[str, Benchmark], user: ParityUser
) -> None:
    """Noor liked the gooseneck spout before the shift and refuses it after: buying it again
    is met with "my taste has changed", naming that one feature."""
    e = _episode(mini["shopping"], "shopping-p3-Noor-0")
    assert e.request.candidate("A").attributes[0] == "gooseneck spout"
    assert "A" not in e.truth.correct_ids
    reply = user.feedback(e, _action(e, "A"))
    assert reply is not None
    assert "changed" in reply and "gooseneck spout" in reply


def test_shopping_buying_nothing_when_something_fits_names_a_feature_never_a_letter(
    mini: dict[str, Benchmark], user: ParityUser
) -> None:
    e = _episode(mini["shopping"], "shopping-p1-Noor-0")
    reply = user.feedback(e, _action(e, "none"))
    assert reply is not None
    assert any(f in reply for f in e.request.candidate("A").attributes)
    assert "Option" not in reply and " A" not in reply


def test_embodied_correction_says_what_was_wrong_and_what_was_wanted(
    mini: dict[str, Benchmark], user: ParityUser
) -> None:
    e = _episode(mini["embodied"], "embodied-p1-Quill-0")
    reply = user.feedback(e, _action(e, "espresso"))
    assert reply == (
        "Not the espresso. When I'm sleepy, I prefer sparkling lemon water, not espresso."
    )


# --------------------------------------------------------------------------- what the agent sees


def test_the_agent_sees_no_embodied_situation_label_unless_asked(mini: dict[str, Benchmark]) -> None:
    e = _episode(mini["embodied"], "embodied-p1-Rowan-5")
    assert e.request.context == "Cold"
    assert replay_request(e, 1, 1).context == ""
    assert replay_request(e, 1, 1, show_context=True).context == "Cold"
    shop = _episode(mini["shopping"], "shopping-p1-Noor-0")
    assert replay_request(shop, 1, 1).context == "kettle"  # the product is on the options


def test_settings_name_what_departs_from_the_paper() -> None:
    base = EvalSettings(domains=["embodied"], methods=["pahf"])
    assert base.simulator == "parity" and base.question_budget == 1 and not base.show_context
    assert base.parity_gaps() == []
    gaps = EvalSettings(
        domains=["embodied"], methods=["pahf"], simulator="rule-generous", show_context=True,
        question_budget=3, iterations=1,
    ).parity_gaps()
    assert len(gaps) == 4 and "upper bound" in gaps[0]
    assert gaps[-1] == "1 learning iteration(s) per phase (the paper: 3)"


def test_simulator_kinds(mini: dict[str, Benchmark]) -> None:
    assert isinstance(simulator_for("parity", None, mini), ParityUser)
    assert isinstance(simulator_for("rule-generous", None, mini), RuleBasedUser)
    with pytest.raises(ValueError, match="parity, rule-generous, llm"):
        simulator_for("rule", None, mini)


def test_llm_answer_prompt_holds_persona_and_situation_never_the_key(
    mini: dict[str, Benchmark],
) -> None:
    for domain, bench in mini.items():
        for episodes in bench.episodes.values():
            for e in episodes:
                persona = bench.personas[e.phase][e.user]
                messages = answer_messages(persona, e, "What would you like?")
                text = "\n".join(str(m.content) for m in messages)
                assert persona in text
                assert e.truth.statement not in text, e.episode_id
                if domain == "embodied":
                    assert f"Your situation: {e.request.context}" in text
                else:
                    assert e.truth.tastes[0].like_most in text  # the shopper knows its tastes
                    assert "gt" not in text.split() and "none" not in text.split()
