"""Small hand-made benchmarks for harness tests.

Two users, three situations each. Every request names the things in other words than the
user's statement ("chilled water with ice" vs "ice-cold water"), so only a memory that
generalizes helps. Between phase 2 and phase 3 one preference of each user changes (drift),
which only post-action feedback can reveal.
"""

from __future__ import annotations

from pahf.decisions import Action
from pahf.eval.episodes import Benchmark, Episode, GroundTruth
from pahf.eval.results import EpisodeRecord
from pahf.request import Candidate, Request

# user -> situation -> (statement before drift, statement after drift or None)
_PREFS: dict[str, dict[str, tuple[str, str | None]]] = {
    "alex": {
        "Dehydrated": (
            "When I'm dehydrated, I want ice-cold water with lots of ice, not room-temperature "
            "water.",
            "When I'm dehydrated I now want coconut water, not iced water.",
        ),
        "Morning": ("In the morning my favourite drink is black coffee; no sugary juice.", None),
        "Work snack": ("When I need energy for work, I like fresh vegetables, not candy.", None),
    },
    "bea": {
        "Dehydrated": ("When I'm dehydrated I want warm herbal tea, never cold drinks.", None),
        "Morning": (
            "In the morning I want a glass of orange juice, not coffee.",
            "In the morning I now want green tea, not orange juice.",
        ),
        "Work snack": ("When I work I want a handful of almonds, not chips.", None),
    },
}

# situation -> list of (task, candidates); the right candidate is chosen per user below.
_REQUESTS: dict[str, list[tuple[str, list[str]]]] = {
    "Dehydrated": [
        ("Could you bring me something to drink?",
         ["ice-cold water", "coconut water", "warm herbal tea", "black coffee"]),
        ("I'm parched, grab me a drink please.",
         ["chilled water with ice", "fresh coconut water", "hot chamomile tea", "espresso"]),
        ("Thirsty again, could you get me a drink?",
         ["a glass of iced water", "a carton of coconut water", "a mug of peppermint tea",
          "a can of cola"]),
    ],
    "Morning": [
        ("What should I drink with breakfast?",
         ["black coffee", "orange juice", "green tea", "hot chocolate"]),
        ("Bring me my morning drink.",
         ["a cup of dark roast coffee", "freshly squeezed orange juice", "a cup of sencha tea",
          "a glass of milk"]),
        ("Start my day with a drink, please.",
         ["an americano", "a glass of OJ", "a mug of matcha green tea", "sparkling water"]),
    ],
    "Work snack": [
        ("Could you bring me a snack for the afternoon?",
         ["carrot and celery sticks", "a chocolate bar", "salted almonds", "potato chips"]),
        ("I need a bite while I work.",
         ["cucumber slices", "a candy bar", "a handful of almonds", "a bag of crisps"]),
        ("Grab me something to nibble at my desk.",
         ["raw veggie sticks", "gummy candy", "roasted almonds", "tortilla chips"]),
    ],
}

# user -> situation -> (index of right candidate before drift, after drift)
_ANSWERS: dict[str, dict[str, tuple[int, int]]] = {
    "alex": {"Dehydrated": (0, 1), "Morning": (0, 0), "Work snack": (0, 0)},
    "bea": {"Dehydrated": (2, 2), "Morning": (1, 2), "Work snack": (2, 2)},
}

# phase -> which request variants of each situation it uses
_PHASE_VARIANTS: dict[int, list[int]] = {1: [0, 1], 2: [2], 3: [1, 0], 4: [2]}


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def tiny_benchmark(domain: str = "embodied", users: tuple[str, ...] = ("alex", "bea")) -> Benchmark:
    """Phases 1-4 for the given users: 6 episodes in learning phases, 3 in test phases."""
    episodes: dict[int, list[Episode]] = {p: [] for p in (1, 2, 3, 4)}
    for user in users:
        for phase, variants in _PHASE_VARIANTS.items():
            index = 0
            for variant in variants:
                for situation, requests in _REQUESTS.items():
                    before, after = _PREFS[user][situation]
                    drifted = phase >= 3 and after is not None
                    statement = after if drifted and after is not None else before
                    right = _ANSWERS[user][situation][1 if phase >= 3 else 0]
                    task, names = requests[variant]
                    episode_id = f"{user}-p{phase}-{index:02d}-{_slug(situation)}"
                    request = Request(
                        request_id=episode_id,
                        user_id=user,
                        domain=domain,
                        task=task,
                        context=situation,
                        candidates=[Candidate(id=f"c{i}", text=n) for i, n in enumerate(names)],
                    )
                    episodes[phase].append(
                        Episode(
                            episode_id=episode_id,
                            domain=domain,
                            phase=phase,
                            user=user,
                            index=index,
                            request=request,
                            truth=GroundTruth(
                                correct_ids=[f"c{right}"], statement=statement, drifted=drifted
                            ),
                        )
                    )
                    index += 1
    return Benchmark(domain=domain, source="tests/unit/eval_fixtures.py", episodes=episodes)


def make_record(
    *,
    domain: str = "embodied",
    method: str = "pahf",
    phase: int = 1,
    iteration: int = 1,
    user: str = "alex",
    index: int = 0,
    seq: int = 0,
    correct: bool = True,
    question: str | None = None,
    feedback: str | None = None,
    memory_active: int = 0,
    memory_total: int = 0,
    llm_calls: int = 0,
    input_tokens: int = 0,
    output_tokens: int = 0,
    seconds: float = 0.01,
) -> EpisodeRecord:
    """A hand-made episode record for metric tests (only the scored fields vary)."""
    episode_id = f"{user}-p{phase}-{index}"
    return EpisodeRecord(
        domain=domain,
        method=method,
        phase=phase,
        iteration=iteration,
        episode_id=episode_id,
        user=user,
        index=index,
        seq=seq,
        request_id=f"{episode_id}@p{phase}i{iteration}",
        request=Request(
            request_id=episode_id,
            user_id=user,
            task="bring me a drink",
            candidates=[Candidate(id="a", text="water"), Candidate(id="b", text="tea")],
        ),
        question=question,
        answer=None if question is None else "I want water.",
        action=Action(candidate_id="a" if correct else "b", candidate_text="water"),
        correct=correct,
        correct_ids=["a"],
        feedback_requested=feedback is not None,
        feedback=feedback,
        memory_active=memory_active,
        memory_total=memory_total,
        llm_calls=llm_calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens=input_tokens + output_tokens,
        seconds=seconds,
    )
