"""Rare shared words tell situations apart where a shared request template does not."""

from __future__ import annotations

import pytest

from pahf.reasoners.situations import (
    condition_words,
    distinctive_overlap,
    names_situation,
    other_conditions,
    situation_words,
    times_of_day,
)

TEMPLATE = "Could you put them in the right place?"
TOPICS = [
    f"I want my pre-workout snacks stored in their designated area. {TEMPLATE}",
    f"I want my beverages stored in their designated area. {TEMPLATE}",
    f"I need to store these crackers in my usual spot. {TEMPLATE}",
]


def test_words_are_content_words_crudely_stemmed() -> None:
    assert situation_words("Could you bring me the snacks?") == {"snack"}
    assert situation_words("stored in the store") == {"stor"}


def test_the_topic_sharing_a_rare_word_ranks_first() -> None:
    request = f"I'm putting away my pre-workout bars. {TEMPLATE}"
    overlap = distinctive_overlap(request, TOPICS)
    assert overlap[0] > 0.1
    assert overlap[1] == overlap[2] == 0.0
    # Memoised for the several looks at one request, so nobody may change it in place.
    assert not overlap.flags.writeable
    assert distinctive_overlap(request, TOPICS) is overlap


def test_words_every_situation_shares_count_for_nothing() -> None:
    # Only the template is shared, and every topic has it: no overlap at all.
    assert distinctive_overlap(f"Hello. {TEMPLATE}", TOPICS) == pytest.approx([0.0, 0.0, 0.0])


def test_identical_situations_overlap_fully_and_no_topics_is_empty() -> None:
    assert distinctive_overlap(TOPICS[2], TOPICS)[2] == pytest.approx(1.0)
    assert distinctive_overlap("anything", []).shape == (0,)


def test_condition_words_drop_the_openers_and_the_speaker() -> None:
    assert condition_words("When I'm feeling sick") == condition_words("When sick") == {"sick"}
    assert condition_words("In general") == condition_words("Generally") == frozenset()


@pytest.mark.parametrize(
    ("old", "new", "differ"),
    [
        (["In the morning"], ["In the evening"], True),
        (["When I'm sick"], ["When sick"], False),
        (["When I'm celebrating"], ["For celebrating"], False),
        (["In general"], ["When sleepy"], False),  # a general liking covers every situation
        ([], ["When sleepy"], False),  # nothing stated: nothing to tell them apart
        (["When storing beverages", "In the morning"], ["In the morning"], False),
    ],
)
def test_statements_differ_in_situation_only_when_their_conditions_share_no_word(
    old: list[str], new: list[str], differ: bool
) -> None:
    assert other_conditions(old, new) is differ


def test_a_condition_fits_a_request_that_uses_its_words() -> None:
    situation = "dehydrated after a run: Bring me a drink"
    assert names_situation(["When I am dehydrated"], situation)
    assert names_situation(["after a run"], situation)
    assert not names_situation(["In the morning"], situation)
    assert names_situation(["In general"], situation)  # a general liking fits everywhere
    assert names_situation([], situation)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("It's 8 PM and I want something to drink.", {"evening", "night"}),
        ("It's 2 PM.", {"afternoon"}),
        ("at 7 a.m. please", {"morning"}),
        ("at 10:30pm", {"evening", "night"}),
        ("12 am", {"night"}),
        ("In the morning, I prefer hot coffee.", {"morning"}),
        ("I'm working late tonight", {"evening", "night"}),
        ("I missed lunch and I'm starving.", set()),  # a meal is no time of day
        ("the 3 pmol solution", set()),
    ],
)
def test_the_parts_of_the_day_a_text_names(text: str, parts: set[str]) -> None:
    assert times_of_day(text) == parts
