"""The scripted story ``pahf demo`` tells: one user, a handful of requests, a change of mind.

Alex's requests name the same things in different words each time ("ice-cold water" then
"chilled water with ice"), so what the agent learns has to generalize; halfway through, Alex's
preference when dehydrated changes, which only post-action feedback can reveal.
"""

from __future__ import annotations

from pahf.eval.episodes import Episode, GroundTruth
from pahf.request import Candidate, Request

USER = "alex"

_ICE = "When I'm dehydrated, I want ice-cold water with lots of ice, not room-temperature water."
_COFFEE = "My favourite drink is black coffee; I don't want sugary juice."
_COCONUT = "When I'm dehydrated I now want coconut water, not iced water."
_SNACK = "When I need energy for work, I like fresh vegetables, not candy bars."

# (task, context, candidates, correct id, statement, drifted)
_STORY: list[tuple[str, str, list[str], str, str, bool]] = [
    (
        "Could you bring me something to drink?",
        "Dehydrated",
        ["black coffee", "ice-cold water", "room-temperature water", "herbal tea"],
        "ice-cold water",
        _ICE,
        False,
    ),
    (
        "Could you bring me my favourite drink?",
        "General preference",
        ["green juice", "black coffee", "herbal tea"],
        "black coffee",
        _COFFEE,
        False,
    ),
    (
        "I'm parched after my run, grab me a drink please.",
        "Dehydrated",
        ["chilled water with ice", "espresso", "lukewarm tap water"],
        "chilled water with ice",
        _ICE,
        False,
    ),
    (
        "Get me the usual drink, would you?",
        "General preference",
        ["a cup of dark roast coffee", "orange juice", "chamomile tea"],
        "a cup of dark roast coffee",
        _COFFEE,
        False,
    ),
    (
        "Could you bring me a snack for the afternoon?",
        "Work energy",
        ["carrot and celery sticks", "a chocolate bar", "salted crisps"],
        "carrot and celery sticks",
        _SNACK,
        False,
    ),
    # Alex's taste changes here; only a correction after the action can reveal it.
    (
        "I'm dehydrated, bring me something to drink.",
        "Dehydrated",
        ["a glass of iced water", "coconut water", "hot cocoa"],
        "coconut water",
        _COCONUT,
        True,
    ),
    (
        "Thirsty again, could you get me a drink?",
        "Dehydrated",
        ["fresh coconut water", "ice-cold water", "espresso"],
        "fresh coconut water",
        _COCONUT,
        True,
    ),
]


def demo_episodes() -> list[Episode]:
    episodes = []
    for index, (task, context, names, correct, statement, drifted) in enumerate(_STORY):
        request = Request(
            request_id=f"demo-{index}",
            user_id=USER,
            domain="embodied",
            task=task,
            context=context,
            candidates=[Candidate(id=name, text=name) for name in names],
        )
        episodes.append(
            Episode(
                episode_id=f"demo-{index}",
                domain="embodied",
                phase=3 if drifted else 1,
                user=USER,
                index=index,
                request=request,
                truth=GroundTruth(correct_ids=[correct], statement=statement, drifted=drifted),
            )
        )
    return episodes
