"""The offline reasoner reads polarity from ordinary preference language."""

from __future__ import annotations

import pytest

from pahf.reasoners.phrases import (
    MILD,
    NEGATIVE,
    STRONG,
    parse_preferences,
    preference_sentences,
    rejects_action,
    stated_conditions,
)


def _as_dict(text: str) -> dict[str, float]:
    return {p.text: p.weight for p in parse_preferences(text)}


def test_condition_positive_and_inline_negative() -> None:
    got = _as_dict(
        "When I'm dehydrated, I want ice-cold water with lots of ice, not room-temperature water."
    )
    assert got == {"ice-cold water with lots of ice": STRONG, "room-temperature water": NEGATIVE}


def test_lists_keep_their_polarity_within_a_sentence() -> None:
    got = _as_dict(
        "For a microwave oven, I like steam injection most; magnetron or solid-state heating "
        "are fine too; I won't accept convection fan heating, infrared heating."
    )
    assert got == {
        "steam injection": STRONG,
        "magnetron": MILD,
        "solid-state heating": MILD,
        "convection fan heating": NEGATIVE,
        "infrared heating": NEGATIVE,
    }


def test_polarity_does_not_leak_across_sentences() -> None:
    got = _as_dict("I don't want sugar. Green tea is my favourite.")
    assert got == {"sugar": NEGATIVE, "Green tea": STRONG}


def test_bare_answer_is_a_liking_and_chatter_is_nothing() -> None:
    assert _as_dict("Herbal tea.") == {"Herbal tea": STRONG}
    assert parse_preferences("Thanks!") == ()
    assert parse_preferences("Not that one: my preference has changed.") == ()


def test_preference_sentences_drops_chatter_keeps_words() -> None:
    text = "Not that one: my preference has changed. When dehydrated I want coconut water."
    assert preference_sentences(text) == "When dehydrated I want coconut water."
    assert preference_sentences("ok thanks") == ""


def test_a_condition_may_carry_cue_words_of_its_own() -> None:
    got = _as_dict("When I need work energy, I prefer fresh vegetables, not processed snacks.")
    assert got == {"fresh vegetables": STRONG, "processed snacks": NEGATIVE}
    assert _as_dict("When I'm dehydrated I now want coconut water, not iced water.") == {
        "coconut water": STRONG,
        "iced water": NEGATIVE,
    }
    assert _as_dict("Generally, I prefer the top shelf.") == {"top shelf": STRONG}


def test_hyphenated_and_numeric_words_stay_whole() -> None:
    got = _as_dict(
        "For the wearing style, I like over-ear design best, on-ear design or in-ear design are "
        "fine too, and I won't accept behind-the-neck band or a 2.4 GHz dongle."
    )
    assert got == {
        "over-ear design": STRONG,
        "on-ear design": MILD,
        "in-ear design": MILD,
        "behind-the-neck band": NEGATIVE,
        "2.4 GHz dongle": NEGATIVE,
    }


def test_places_lose_their_linking_words_and_mild_phrases_stay_mild() -> None:
    assert _as_dict("I want them in the freezer compartment, not on the windowsill.") == {
        "freezer compartment": STRONG,
        "windowsill": NEGATIVE,
    }
    assert _as_dict("I don't mind green tea.") == {"green tea": MILD}


def test_the_conditions_a_statement_names_are_read_in_order() -> None:
    assert stated_conditions(
        "Not the milk. When it's hot outside, I prefer frozen drinks."
    ) == ("When it's hot outside",)
    assert stated_conditions("When dehydrated I want ice water") == ("When dehydrated",)
    assert stated_conditions("For celebrating: I want soda. In general, I like tea.") == (
        "For celebrating",
        "In general",
    )
    assert stated_conditions("I prefer warm milk, not coffee.") == ()


@pytest.mark.parametrize(
    ("reply", "rejects"),
    [
        ("That's not the one I wanted.", True),
        ("Not that one.", True),
        ("No.", True),
        ("Wrong one, sorry.", True),
        ("Nope", True),
        ("Not quite what I wanted.", True),
        ("meh", False),  # no preference and no refusal: nothing to read
        ("Not the tea. I want coffee.", False),  # says what instead: a correction to learn from
        ("thanks", False),
        ("That one is acceptable.", False),
        ("", False),
    ],
)
def test_an_action_turned_down_without_a_reason_is_told_apart(reply: str, rejects: bool) -> None:
    assert rejects_action(reply) is rejects
