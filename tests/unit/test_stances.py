"""What the phrase parser reads from a person's words about a request's options."""

from __future__ import annotations

from pahf.reasoners.stances import contradicts, stances
from pahf.request import Candidate, Request


def request(*options: str) -> Request:
    return Request(
        task="Bring me a drink.",
        candidates=[Candidate(id=f"o{i}", text=text) for i, text in enumerate(options)],
    )


def test_each_named_option_gets_the_sign_of_the_phrase_that_names_it() -> None:
    req = request("herbal tea", "black coffee", "water", "room-temperature water")
    assert stances(req, "When drowsy, I prefer herbal tea over black coffee.") == {
        "herbal tea": 1,
        "black coffee": -1,
    }
    # A longer option named in full is what the phrase is about, not a shorter one inside it.
    assert stances(req, "Never room-temperature water.") == {"room-temperature water": -1}
    # Named both ways in one message: unclear, left out. A past liking turned down is a refusal.
    assert stances(req, "Not black coffee. Black coffee is fine.") == {}
    assert stances(req, "I used to like herbal tea, but now I don't want it.") == {
        "herbal tea": -1
    }
    assert stances(req, "Thanks!") == {}


def test_a_contradiction_turns_around_an_option_both_texts_name() -> None:
    req = request("herbal tea", "black coffee")
    old = "When drowsy, I like black coffee."
    assert contradicts(req, old, "Not the black coffee. I prefer herbal tea.")
    assert not contradicts(req, old, "Black coffee, always.")
    assert not contradicts(req, old, "I prefer herbal tea.")  # says nothing about coffee
