"""The embodied half of the published PAHF data: office-kitchen scenarios for five personas.

Phases (as in the reference ``run_agent.py``): 1 = ``original_scenarios_A.json``, 2 =
``original_scenarios_B.json`` (same situations, other wording and objects), 3 =
``evolved_scenarios_A.json``, 4 = ``evolved_scenarios_B.json`` (the personas' preferences have
changed). Personas 1-2 come from ``personas/original_persona.py``, 3-4 from
``personas/evolved_persona.py``.

What the agent sees (no ground truth): the task and candidates built from the scene alone; the
context label ("Drowsy") is the user's situation, which the reference agent never sees, so the
harness hides it unless ``show_context`` is asked for (see :func:`pahf.eval.runner.replay_request`).
Rows that contradict their own scene are left out and listed (:attr:`Scenario.problem`).
A pick-up task offers every scene object. A placement task names its item first in
``scene_objects`` and the places after it (checked on every scenario of the published data), so the
item becomes ``Request.subject`` and the places the candidates. Which of the two a task is comes
from ``user_intent_location == "pick-up"``; the task text says the same ("bring me" / "put it"),
and only the kind of task is read from it, never the answer.

Differences from the reference, on purpose: the reference has an LLM write four options per
episode and an LLM judge pick the matching letter; here the scene objects are the options and
the intent object (pick-up) or location (placement) is the answer, so scoring is exact and free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pahf.eval.datafiles import object_list, read_json, require, string_list
from pahf.eval.episodes import Benchmark, Episode, GroundTruth, LeftOutRow
from pahf.eval.errors import DataError
from pahf.eval.persona_text import PersonaLine, match_line, persona_lines, persona_prompts
from pahf.request import Candidate, Request

SCENARIO_FILES = {
    1: "scenarios/original_scenarios_A.json",
    2: "scenarios/original_scenarios_B.json",
    3: "scenarios/evolved_scenarios_A.json",
    4: "scenarios/evolved_scenarios_B.json",
}
PERSONA_FILES = {
    1: "personas/original_persona.py",
    2: "personas/original_persona.py",
    3: "personas/evolved_persona.py",
    4: "personas/evolved_persona.py",
}
PICK_UP = "pick-up"


class Scenario:
    """One validated scenario row (only the fields the benchmark uses).

    Format errors (a missing field, a wrong type, duplicate objects) raise :class:`DataError`.
    A row that is well formed but contradicts its own scene (the target is not among the scene
    objects, an empty scene, a placement whose item is not listed first) is kept with
    ``problem`` saying why: the loader leaves such rows out and lists them (the published data
    has 59 of them in 4,800 rows; refusing the whole data set for one would make it unusable).
    """

    def __init__(self, path: Path, i: int, row: dict[str, Any]) -> None:
        where = f"item {i}"
        self.item = i
        self.index: int = require(path, where, row, "index", int)
        where = f"item {i} (index {self.index})"
        self.user: str = require(path, where, row, "user", str)
        self.task: str = require(path, where, row, "task", str)
        self.context: str = require(path, where, row, "context", str)
        self.intent_object: str = require(path, where, row, "user_intent_object", str)
        self.intent_location: str = require(path, where, row, "user_intent_location", str)
        objects = require(path, where, row, "scene_objects", list)
        self.objects: list[str] = (
            string_list(path, where, row, "scene_objects") if objects else []
        )
        self.problem: str | None = self._contradiction()

    def _contradiction(self) -> str | None:
        """Why the row contradicts its own scene, or None when it is consistent."""
        if not self.objects:
            return "'scene_objects' is empty: the scene offers nothing to choose"
        if self.placement:
            if len(self.objects) < 2:
                return "a placement task needs the item and at least one place in the scene"
            if self.objects[0] != self.intent_object:
                return (
                    f"a placement task must list its item first; got {self.objects[0]!r}, "
                    f"expected {self.intent_object!r}"
                )
            if self.intent_location not in self.objects[1:]:
                return f"target location {self.intent_location!r} is not in the scene"
        elif self.intent_object not in self.objects:
            return f"target object {self.intent_object!r} is not in the scene"
        return None

    @property
    def placement(self) -> bool:
        return self.intent_location != PICK_UP

    @property
    def target(self) -> str:
        """The candidate that is right: the object to fetch or the place to put the item."""
        return self.intent_location if self.placement else self.intent_object

    def intent(self) -> tuple[str, str]:
        return (self.intent_object, self.intent_location)

    def request(self, episode_id: str) -> Request:
        """The scenario as a request. ``context`` holds the situation label: the simulated user
        knows it; the harness hides it from the agent unless asked to (``show_context``)."""
        places = self.objects[1:] if self.placement else self.objects
        return Request(
            request_id=episode_id,
            user_id=self.user,
            domain="embodied",
            task=self.task,
            context=self.context,
            subject=self.objects[0] if self.placement else "",
            candidates=[Candidate(id=name, text=name) for name in places],
        )


def read_scenarios(path: Path) -> list[Scenario]:
    """Every row of a scenario file, consistent or not (see :attr:`Scenario.problem`)."""
    rows = object_list(path, read_json(path))
    scenarios = [Scenario(path, i, row) for i, row in enumerate(rows)]
    seen: dict[int, int] = {}
    for i, sc in enumerate(scenarios):
        if sc.index in seen:
            raise DataError(
                path, f"duplicate index {sc.index} (items {seen[sc.index]} and {i})",
                field=f"item {i}: 'index'",
            )
        seen[sc.index] = i
    return scenarios


def fallback_statement(sc: Scenario) -> str:
    """What the person says when no persona line covers the scenario: the plain intent."""
    situation = sc.context.strip().rstrip(".").lower()
    if sc.placement:
        return f"For {situation} ({sc.intent_object}): I want the {sc.intent_location}."
    return f"For {situation}: I want {sc.intent_object}."


def statement_for(sc: Scenario, lines: list[PersonaLine]) -> str:
    others = [c for c in (sc.objects[1:] if sc.placement else sc.objects) if c != sc.target]
    line = match_line(lines, context=sc.context, task=sc.task, target=sc.target, others=others)
    return line.statement() if line is not None else fallback_statement(sc)


def load_embodied(root: Path) -> Benchmark:
    """All four phases of the embodied data under ``root`` (the ``data/embodied`` folder)."""
    if not root.is_dir():
        raise DataError(root, "embodied data folder not found")
    prompts = {p: persona_prompts(root / rel) for p, rel in PERSONA_FILES.items()}
    phases = {p: read_scenarios(root / rel) for p, rel in SCENARIO_FILES.items()}
    episodes: dict[int, list[Episode]] = {}
    left_out: list[LeftOutRow] = []
    for phase, scenarios in phases.items():
        path = root / SCENARIO_FILES[phase]
        # Phases 3/4 revisit the situations of 1/2 under the same index.
        before = {sc.index: sc for sc in phases[phase - 2]} if phase >= 3 else {}
        line_cache: dict[str, list[PersonaLine]] = {}
        out = []
        for i, sc in enumerate(scenarios):
            if sc.user not in prompts[phase]:
                raise DataError(
                    root / PERSONA_FILES[phase],
                    f"no persona for user {sc.user!r} (needed by {path.name} item {i})",
                )
            lines = line_cache.get(sc.user)
            if lines is None:  # parsed once per user and phase, not once per row
                lines = line_cache[sc.user] = persona_lines(prompts[phase][sc.user])
            episode_id = f"embodied-p{phase}-{sc.user}-{sc.index}"
            if sc.problem is not None:
                left_out.append(
                    LeftOutRow(
                        row_id=episode_id, file=SCENARIO_FILES[phase], item=i, reason=sc.problem
                    )
                )
                continue
            old = before.get(sc.index)
            out.append(
                Episode(
                    episode_id=episode_id,
                    domain="embodied",
                    phase=phase,
                    user=sc.user,
                    index=sc.index,
                    request=sc.request(episode_id),
                    truth=GroundTruth(
                        correct_ids=[sc.target],
                        statement=statement_for(sc, lines),
                        drifted=old is not None and old.intent() != sc.intent(),
                    ),
                )
            )
        episodes[phase] = out
    personas = {
        phase: {user: prompts[phase][user] for user in sorted({e.user for e in eps})}
        for phase, eps in episodes.items()
    }
    return Benchmark(
        domain="embodied", source=str(root), episodes=episodes, personas=personas,
        left_out=left_out,
    )
