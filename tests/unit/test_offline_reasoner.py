"""The offline reasoner's decisions with the real MiniLM model: refusals veto, memories from other
situations prompt a question, drift revises the memory behind a wrong action."""

from __future__ import annotations

import pytest

from pahf.decisions import Action, Turn
from pahf.memory.embeddings import MiniLMEncoder
from pahf.memory.schema import MemoryRecord, RetrievedMemory
from pahf.reasoners.offline import OfflineReasoner, OfflineReasonerConfig
from pahf.request import Candidate, Request


@pytest.fixture(scope="module")
def reasoner() -> OfflineReasoner:
    return OfflineReasoner(MiniLMEncoder.shared())


def _memory(text: str, topic: str, confidence: float = 1.0, mid: str = "m-1") -> RetrievedMemory:
    record = MemoryRecord(
        id=mid, user_id="u", text=text, topic=topic, confidence=confidence,
        created_at="2026-01-01T00:00:00+00:00",
    )
    return RetrievedMemory(record=record, score=0.9)


def _options(task: str, context: str, *options: str) -> Request:
    return Request(
        request_id="r", user_id="u", task=task, context=context,
        candidates=[Candidate(id=t, text=t) for t in options],
    )


def _corrected(
    reasoner: OfflineReasoner, request: Request, took: str, text: str, old: RetrievedMemory
) -> list[tuple[str, str | None]]:
    """(kind, target) of each memory operation a correction of the action ``took`` makes."""
    turn = Turn(kind="correction", text=text, action=Action(candidate_id=took, candidate_text=took))
    return [(op.kind, op.target_id) for op in reasoner.learn(request, turn, [old])]


def _drink_request(task: str = "Could you bring me something to drink?",
                   context: str = "Dehydrated") -> Request:
    return Request(
        request_id="r1", user_id="u", task=task, context=context,
        candidates=[Candidate(id=t, text=t) for t in
                    ("a tall glass of iced water", "lukewarm tap water", "a bag of crisps")],
    )


ICE = "When I'm dehydrated, I want ice-cold water with lots of ice, not room-temperature water."


def test_a_paraphrased_liking_wins_and_the_refusal_ranks_last(reasoner: OfflineReasoner) -> None:
    request = _drink_request()
    memory = _memory(ICE, request.situation())
    action = reasoner.choose(request, [memory], [])
    assert action.candidate_id == "a tall glass of iced water"
    assert min(action.scores, key=lambda k: action.scores[k]) == "lukewarm tap water"
    assessment = reasoner.assess(request, [memory], [])
    assert not assessment.ambiguous
    # The clear assessment carries the very action choose would take (act then skips choose).
    assert assessment.proposed == action


def test_the_rationale_quotes_the_persons_words_not_memory_ids(
    reasoner: OfflineReasoner,
) -> None:
    request = _drink_request()
    memory = _memory(ICE, request.situation())
    answer = Turn(kind="clarification", text="Iced water, please.", question="Which?")
    action = reasoner.choose(request, [memory], [answer])
    assert action.memory_ids == ["m-1"]  # the ids stay for programs
    assert action.rationale == f'best supported by what you said: "Iced water, please."; "{ICE}"'
    assert "m-1" not in action.rationale


def test_one_refused_feature_makes_an_option_unacceptable(reasoner: OfflineReasoner) -> None:
    request = Request(
        request_id="r2", user_id="u", task="Buy me a kettle", context="kettle",
        candidates=[
            Candidate(id="A", text="kettle A", attributes=["gooseneck spout", "glass body",
                                                           "wooden handle"]),
            Candidate(id="B", text="kettle B", attributes=["wide spout", "glass body",
                                                           "wooden handle"]),
            Candidate(id="none", text="Do not buy anything"),
        ],
    )
    said = ("For a kettle: For the spout, I like gooseneck spout best, and I won't accept wide "
            "spout. For the body, I like glass body best. For the handle, I like wooden handle "
            "best.")
    turn = Turn(kind="clarification", text=said)
    scores = reasoner.choose(request, [], [turn]).scores
    assert scores["A"] > scores["none"] == 0.0 > scores["B"]
    # With the favourite gone, two liked features do not outweigh the refused one.
    only_b = request.model_copy(update={"candidates": request.candidates[1:]})
    assert reasoner.choose(only_b, [], [turn]).candidate_id == "none"


def test_memories_from_other_situations_prompt_a_question(reasoner: OfflineReasoner) -> None:
    request = _drink_request(task="It's freezing outside. Could you bring me a drink?",
                             context="Cold weather")
    other = _memory(ICE, "Hot weather: It's so hot today. Could you bring me a drink?")
    assessment = reasoner.assess(request, [other], [])
    assert assessment.ambiguous
    assert "other situations" in assessment.reason
    # The same memory, learned in this very situation, settles it.
    same = _memory(ICE, request.situation())
    assert not reasoner.assess(request, [same], []).ambiguous


def test_a_preference_said_for_another_time_of_day_prompts_a_question(
    reasoner: OfflineReasoner,
) -> None:
    coffee = _memory("In the morning, I prefer hot coffee.",
                     "It's 7 AM. Could you bring me a drink?")

    def at(hour: str) -> Request:
        return _options(f"It's {hour}. Could you bring me a drink?", "", "hot coffee", "warm milk")

    evening = reasoner.assess(at("8 PM"), [coffee], [])
    assert evening.ambiguous and "another time of day" in evening.reason
    assert not reasoner.assess(at("9 AM"), [coffee], []).ambiguous
    # A preference said for every time of day applies at 8 PM too.
    always = _memory("I prefer hot coffee.", "It's 7 AM. Could you bring me a drink?")
    assert not reasoner.assess(at("8 PM"), [always], []).ambiguous


def test_a_correction_supersedes_the_memory_behind_the_wrong_action(
    reasoner: OfflineReasoner,
) -> None:
    request = _drink_request()
    old = _memory(ICE, request.situation())
    wrong = Action(candidate_id="a tall glass of iced water", candidate_text="iced water")
    changed = ("Not that one: my preference has changed. When I'm dehydrated, I want "
               "room-temperature water, not ice-cold water with lots of ice.")
    ops = reasoner.learn(request, Turn(kind="correction", text=changed, action=wrong), [old])
    assert [(op.kind, op.target_id) for op in ops] == [("supersede", "m-1")]
    assert ops[0].memory is not None
    assert ops[0].memory.text.startswith("When I'm dehydrated, I want room-temperature")
    assert ops[0].memory.topic == request.situation()


def test_a_challenged_memory_no_longer_settles_a_request_alone(
    reasoner: OfflineReasoner,
) -> None:
    request = _drink_request()
    assert not reasoner.assess(request, [_memory(ICE, request.situation())], []).ambiguous
    # Challenged once from where a single confirmation-free memory stands (confidence 1 -> 0):
    # it still points the same way, but too weakly to act on without asking.
    doubted = _memory(ICE, request.situation(), confidence=0.0)
    assert reasoner.assess(request, [doubted], []).ambiguous
    assert reasoner.choose(request, [doubted], []).candidate_id == "a tall glass of iced water"


def test_a_correction_stated_for_another_situation_keeps_the_memory_and_adds(
    reasoner: OfflineReasoner,
) -> None:
    # The morning memory led to the wrong evening action: it was misapplied, not outgrown.
    request = _options("It's 8 PM. Could you bring me something to drink?", "",
                       "hot coffee", "warm milk", "crackers")
    old = _memory("In the morning, I prefer hot coffee.",
                  "It's 7 AM. Could you bring me something to drink?")
    evening = "Not the hot coffee. In the evening, I prefer warm milk."
    assert _corrected(reasoner, request, "hot coffee", evening, old) == [("add", None)]
    # Stated for the same situation (or for none in particular), it is a change of mind.
    for text in ("Not the hot coffee. In the morning, I prefer warm milk.",
                 "Not the hot coffee. I prefer warm milk."):
        assert _corrected(reasoner, request, "hot coffee", text, old) == [("supersede", "m-1")]


def test_two_conditions_that_both_fit_the_request_are_one_situation(
    reasoner: OfflineReasoner,
) -> None:
    # "When dehydrated" and "after a run" both describe "dehydrated after a run".
    request = _options("Bring me a drink", "dehydrated after a run", "hot coffee", "ice water")
    old = _memory("When I am dehydrated I want ice water, never hot coffee.", request.situation())
    change = "No: after a run I want hot coffee now, not ice water."
    assert _corrected(reasoner, request, "ice water", change, old) == [("supersede", "m-1")]


def test_restating_reinforces_even_in_other_words_of_the_situation(
    reasoner: OfflineReasoner,
) -> None:
    stored = _memory(ICE, "Dehydrated: Could you bring me something to drink?")
    request = _drink_request(task="I'm parched after my run, grab me a drink please.")
    ops = reasoner.learn(request, Turn(kind="clarification", text=ICE), [stored])
    assert [(op.kind, op.target_id) for op in ops] == [("reinforce", "m-1")]


def test_the_same_words_in_another_order_are_a_change_not_a_restatement(
    reasoner: OfflineReasoner,
) -> None:
    # Nearly the same sentence for the embedding model, the opposite preference for the person.
    request = _options("Good morning! Could you bring me a drink?", "Morning",
                       "sweet drink", "salty broth", "walnuts")
    stored = _memory("In the morning, I prefer salty drinks, not sweet.", request.situation())
    answer = Turn(kind="clarification", text="In the morning, I prefer sweet drinks, not salty.")
    ops = reasoner.learn(request, answer, [stored])
    assert [(op.kind, op.target_id) for op in ops] == [("supersede", "m-1")]
    again = Turn(kind="clarification", text="In the morning, I prefer salty drinks, not sweet.")
    assert [op.kind for op in reasoner.learn(request, again, [stored])] == ["reinforce"]


PLACE = "Could you put them in the right place?"


def _placement(task: str) -> Request:
    return Request(
        request_id="r-place", user_id="u", task=f"{task} {PLACE}", context="",
        candidates=[Candidate(id=t, text=t) for t in ("top shelf", "middle shelf", "low shelf")],
    )


def test_the_memory_sharing_the_situations_rare_words_decides(
    reasoner: OfflineReasoner,
) -> None:
    # Without the context label, the shared request template makes every placement memory
    # look alike; "pre-workout" is what tells this one apart.
    memories = [
        _memory("For pre-workout snacks, I want the top shelf.",
                f"I need my pre-workout items together. {PLACE}", mid="m-workout"),
        *(
            _memory(f"For {things}, I want the {shelf}.",
                    f"I want my {things} stored in their designated area. {PLACE}",
                    mid=f"m-{index}")
            for index, (things, shelf) in enumerate(
                [("drinks", "middle shelf"), ("books", "low shelf"), ("spices", "middle shelf"),
                 ("cleaning supplies", "low shelf"), ("teas", "middle shelf")]
            )
        ),
    ]
    request = _placement("I want my pre-workout snacks stored in their designated area.")
    assert reasoner.choose(request, memories, []).candidate_id == "top shelf"


def test_loosely_related_refusals_do_not_outvote_this_situations_liking(
    reasoner: OfflineReasoner,
) -> None:
    drink = "Could you bring me something to drink?"
    memories = [
        _memory("When thirsty, I prefer ice water.", f"I'm really thirsty right now. {drink}",
                confidence=2.0, mid="m-thirsty"),
        _memory("Not the cold peppermint tea. When sick, I prefer hot ginger tea, not cold "
                "beverages.", f"I'm feeling sick and have a fever. {drink}", confidence=2.0,
                mid="m-sick"),
        _memory("Not the room temperature water. When it's cold outside, I prefer hot tea.",
                f"It's freezing outside and I just came in. {drink}", confidence=2.0,
                mid="m-cold"),
        _memory("Not the cold chamomile tea. In the evening, I prefer warm herbal blend, not "
                "cold.", f"It's 8 PM and I want something to drink to unwind. {drink}",
                confidence=2.0, mid="m-evening"),
    ]
    request = Request(
        request_id="r-parched", user_id="u", context="",
        task=f"I just finished exercising and I'm parched. {drink}",
        candidates=[Candidate(id=t, text=t) for t in ("cold water", "hot water", "apple slices")],
    )
    assert reasoner.choose(request, memories, []).candidate_id == "cold water"


def test_with_nothing_known_the_option_that_fits_the_task_is_taken(
    reasoner: OfflineReasoner,
) -> None:
    """Memory silent: a drink for a drink request, not the nuts offered beside it (whatever
    their position); memory's evidence still outweighs the prior; and the prior does not make
    the agent surer, so it asks as before."""
    drinks = ("salted almonds", "herbal tea", "walnuts")
    for order in (drinks, drinks[::-1]):
        request = Request(
            request_id="r-fit", user_id="u", task="Could you bring me my favourite drink?",
            candidates=[Candidate(id=t, text=t) for t in order],
        )
        assert reasoner.choose(request, [], []).candidate_id == "herbal tea"
        assessment = reasoner.assess(request, [], [])
        assert assessment.ambiguous and assessment.question is not None
        nuts = _memory("I like walnuts best, whatever I ask for.", request.situation())
        assert reasoner.choose(request, [nuts], []).candidate_id == "walnuts"
    # Without the prior the stable hash decides, and here it would not take the tea.
    no_prior = OfflineReasoner(reasoner.encoder, OfflineReasonerConfig(task_fit=0.0))
    assert no_prior.choose(request, [], []).candidate_id != "herbal tea"
