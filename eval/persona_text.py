"""Read the embodied personas of the published PAHF data and say their preferences in first person.

The published personas are system prompts for an LLM that plays the person ("When you're
dehydrated, you prefer ice-cold water with lots of ice (not room temperature) as you think ...").
The offline benchmark has no LLM to play them, so the simulated user answers with the persona line
that fits the situation, turned into what the person would say: "When I'm dehydrated, I prefer
ice-cold water with lots of ice, not room temperature." The justification ("as you think ...") is
dropped: it explains the preference but names nothing the agent could pick.

The persona files are Python source. They are parsed with :mod:`ast` and never imported or
executed: only module-level string assignments and one dict of name -> prompt are read.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from pahf.eval.errors import DataError

# --------------------------------------------------------------------------- persona files


def _string_value(node: ast.expr, names: dict[str, str]) -> str | None:
    """The string an expression stands for: a constant, a known name, or "a" + "b"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _string_value(node.left, names), _string_value(node.right, names)
        if left is not None and right is not None:
            return left + right
    return None


def persona_prompts(path: Path) -> dict[str, str]:
    """Person name -> persona prompt, from a persona module's ``{name: prompt_x}`` dict.

    Raises :class:`DataError` naming the file when it is missing, is not valid Python, or holds
    no dict mapping names to string prompts.
    """
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read: {exc}") from exc
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise DataError(path, f"not valid Python (line {exc.lineno}): {exc.msg}") from exc
    names: dict[str, str] = {}
    tables: list[tuple[str, dict[str, str]]] = []
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            continue
        target = stmt.targets[0]
        if not isinstance(target, ast.Name):
            continue
        text = _string_value(stmt.value, names)
        if text is not None:
            names[target.id] = text
            continue
        if isinstance(stmt.value, ast.Dict):
            table: dict[str, str] = {}
            for key, value in zip(stmt.value.keys, stmt.value.values, strict=True):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    raise DataError(path, f"{target.id}: keys must be person names (strings)")
                prompt = _string_value(value, names)
                if prompt is None:
                    raise DataError(
                        path,
                        f"{target.id}[{key.value!r}]: not a string or a name assigned a string "
                        "earlier in the file",
                    )
                if key.value in table:
                    raise DataError(path, f"{target.id}: duplicate person {key.value!r}")
                table[key.value] = prompt
            if table:
                tables.append((target.id, table))
    if not tables:
        raise DataError(path, "no dict mapping person names to persona prompts")
    # Several tables: the one named like a table of prompts ("prompt_dict") wins, else the last.
    named = [t for name, t in tables if "dict" in name.lower()]
    return (named or [t for _, t in tables])[-1]


# --------------------------------------------------------------------------- persona lines


_STOP = frozenset(
    (
        "a", "an", "the", "of", "to", "in", "on", "at", "for", "with", "and", "or", "but",
        "not", "no", "is", "are", "be", "you", "your", "you're", "i", "my", "me", "it",
        "its", "that", "this", "these", "those", "as", "like", "some", "any", "very", "so",
        "from", "into", "by", "than", "rather", "when", "while", "if", "during", "items",
        "item", "things", "thing", "stuff", "area", "areas", "storage", "placement",
        "placed", "place", "prefer", "best", "preferred", "prefers", "choose", "chose",
        "want", "need",
    )
)
# The verb that starts the preference; "prefer"/"choose" win over verbs that also occur in
# conditions ("When you need focus for work, you prefer ...").
_MAIN_VERB = re.compile(r"\b(?:you\s+|I\s+)?(prefer(?:red)?|choose|chose)\b", re.I)
_OTHER_VERB = re.compile(
    r"\b(?:you\s+|I\s+)?(store[sd]?|group(?:ed)?|arrange[sd]?|avoid(?:ed)?|eat|ate|"
    r"focus(?:ed)?|embrace)\b",
    re.I,
)
_LABEL = re.compile(r"^(morning|midday|noon|afternoon|evening|late night|night)\b:?\s*", re.I)
_LABEL_PHRASE = {
    "morning": "In the morning",
    "midday": "At midday",
    "noon": "At noon",
    "afternoon": "In the afternoon",
    "evening": "In the evening",
    "late night": "Late at night",
    "night": "At night",
}
_PRESENT = {
    "preferred": "prefer",
    "chose": "choose",
    "stored": "store",
    "stores": "store",
    "grouped": "group",
    "arranged": "arrange",
    "arranges": "arrange",
    "avoided": "avoid",
    "ate": "eat",
    "focused": "focus",
}
# "Your favorite drink is black coffee but context matters ..." (the default preference).
_FAVOURITE = re.compile(
    r"^your favou?rite(?: \w+)? (?:is|was) (.+?)(?:\s+but\b.*)?$", re.I
)
# What starts the justification of a preference (dropped from the statement).
_WHY = re.compile(
    r"\s(?:because|as|since|believing|due to|so that|so)\b|\s-\s|\s(?:to|for|when)\s", re.I
)


def _words(text: str) -> set[str]:
    """Content words, crudely stemmed, for matching a persona line to a scenario."""
    return set(_cached_words(text))


@functools.lru_cache(maxsize=65536)
def _cached_words(text: str) -> frozenset[str]:
    """:func:`_words` of each text computed once: the loaders and simulated users match the
    same persona lines, tasks and options against each other thousands of times."""
    out = set()
    for word in re.findall(r"[a-z0-9]+", text.lower().replace("'", "")):
        if word in _STOP or len(word) < 2:
            continue
        for suffix in ("ing", "ies", "es", "ed", "ly", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                word = word[: -len(suffix)]
                break
        out.add(word.rstrip("e"))
    return frozenset(out)


#: Content words of a text (public name of the matcher's word rule, for the simulated users).
content_words = _words


def _first_person(text: str) -> str:
    text = re.sub(r"\byou'?re\b", "I'm", text, flags=re.I)
    text = re.sub(r"\byou are\b", "I am", text, flags=re.I)
    text = re.sub(r"\byou'?ve\b", "I've", text, flags=re.I)
    text = re.sub(r"\byourself\b", "myself", text, flags=re.I)
    text = re.sub(r"\byour\b", "my", text, flags=re.I)
    text = re.sub(r"\byou\b", "I", text, flags=re.I)
    return text


def _cut_why(text: str) -> str:
    """``text`` up to where its justification starts (needs a word before the cut)."""
    for match in _WHY.finditer(text):
        if match.start() > 0 and text[: match.start()].strip():
            return text[: match.start()].strip(" ,")
    return text.strip(" ,")


@dataclass(frozen=True)
class PersonaLine:
    """One preference of a persona: when it applies, what is wanted, what is refused."""

    condition: str  # "When I'm dehydrated" (may be empty)
    verb: str  # "prefer", "choose", "store", ...
    wanted: str  # "ice-cold water with lots of ice"
    refused: str  # "room temperature" (may be empty)

    def statement(self) -> str:
        """The preference in the person's own words, one sentence."""
        head = f"{self.condition}, " if self.condition else ""
        tail = f", not {self.refused}" if self.refused else ""
        sentence = f"{head}I {self.verb} {self.wanted}{tail}."
        return sentence[0].upper() + sentence[1:]

    def condition_words(self) -> set[str]:
        return _words(self.condition)

    def wanted_words(self) -> set[str]:
        return _words(self.wanted)


def _parse_line(raw: str) -> PersonaLine | None:
    text = raw.strip().lstrip("*-• ").strip()
    if "→" in text:
        after = text.split("→", 1)[1].strip()
        if not after.upper().startswith("NOW:"):
            return None
        text = after[4:].strip()
    elif text.upper().startswith("PREVIOUSLY:"):
        return None
    favourite = _FAVOURITE.match(text)
    if favourite:
        wanted = _cut_why(favourite.group(1))
        if not _words(wanted):
            return None
        return PersonaLine(condition="In general", verb="like", wanted=wanted + " best",
                           refused="")
    verb_match = _MAIN_VERB.search(text) or _OTHER_VERB.search(text)
    if verb_match is None:
        return None
    condition = text[: verb_match.start()].strip(" ,:")
    verb = verb_match.group(1)
    rest = text[verb_match.end() :].strip()
    # Parentheticals: "(not X as ...)" says what is refused; any other one is a reason.
    refused_parts: list[str] = []

    def _paren(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        if re.match(r"not\b", inner, re.I):
            refused_parts.append(_cut_why(inner[3:].strip()))
        return " "

    rest = re.sub(r"\(([^()]*)\)", _paren, rest)
    rest = _cut_why(" ".join(rest.split()))
    inline = re.search(r",?\s\b(not|rather than|instead of|over)\b\s", rest, re.I)
    wanted = rest
    if inline:
        wanted = rest[: inline.start()]
        refused_parts.append(_cut_why(rest[inline.end() :]))
    wanted = _cut_why(wanted)
    if not _words(wanted):
        return None
    label = _LABEL.match(condition)
    if label:
        condition = _LABEL_PHRASE[label.group(1).lower()] + condition[label.end() :]
    condition = _first_person(condition).strip(" ,:")
    if condition and not re.match(r"(when|if|for|on|in|at|during|while|late|generally|"
                                  r"normally|usually)\b", condition, re.I):
        return None  # "Your favorite drink is ..." headers and rule lines
    refused = " or ".join(p for p in refused_parts if p)
    return PersonaLine(
        condition=condition,
        verb=_PRESENT.get(verb.lower(), verb.lower()),
        wanted=_first_person(wanted),
        refused=_first_person(refused),
    )


def persona_lines(prompt: str) -> list[PersonaLine]:
    """The situational preference lines of a persona prompt (current ones for evolved personas)."""
    body = re.split(r"\n\s*INTERACTION TYPES\b", prompt, maxsplit=1)[0]
    lines = []
    for raw in body.splitlines():
        if not raw.strip().startswith(("*", "-", "•")):
            continue
        parsed = _parse_line(raw)
        if parsed is not None:
            lines.append(parsed)
    return lines


def _cover(target: set[str], words: set[str]) -> float:
    return len(target & words) / len(target) if target else 0.0


def match_line(
    lines: list[PersonaLine], *, context: str, task: str, target: str, others: list[str]
) -> PersonaLine | None:
    """The persona line that tells ``target`` apart from ``others`` in this situation, if any.

    A line qualifies when its wanted part names at least half of the target's content words,
    names the target more fully than any other candidate, does not refuse the target, and
    either names the target fully or has a condition that fits the scenario. Among those, the
    one whose condition best fits the context and task wins ("Dehydrated" -> "When I'm
    dehydrated"). None when no line qualifies: the caller falls back to a plain sentence.
    """
    want = _words(target)
    rivals = [_words(o) for o in others]
    situation = _words(context)
    task_words = _words(task)
    best: tuple[float, PersonaLine] | None = None
    for line in lines:
        wanted = line.wanted_words()
        cover = _cover(want, wanted)
        if cover < 0.5 or any(_cover(r, wanted) >= cover for r in rivals):
            continue
        if _cover(want, _words(line.refused)) > 0:
            continue
        cond = line.condition_words()
        fit = _cover(situation, cond)
        task_fit = len(task_words & cond) / max(1, len(cond))
        if cover < 1.0 and fit == 0.0 and task_fit == 0.0:
            continue
        # Extra words in the line beyond the target make it a looser match.
        spill = len(wanted - want) / (len(wanted) + 3)
        score = 2.0 * cover + fit + 0.5 * task_fit - 0.3 * spill
        if best is None or score > best[0]:
            best = (score, line)
    return None if best is None else best[1]


_GENERAL = re.compile(r"^(in general|generally|normally|usually)\b", re.I)


def answer_line(
    lines: list[PersonaLine], *, situation: str, task: str, asked: str
) -> PersonaLine | None:
    """The persona line a person would give when asked ``asked`` in this situation, chosen
    without the answer key: its condition must fit the situation (the user's own label, e.g.
    "Drowsy", and the task's words); among those, the one whose wanted or refused things the
    question mentions most wins. Without such a line, a general line ("Generally, I prefer
    high shelves") whose wanted things the question or task mentions. None when the persona
    says nothing that applies: the caller then says so.
    """
    situation_words = _words(situation)
    task_words = _words(task)
    asked_words = _words(asked) | task_words
    best: tuple[float, PersonaLine] | None = None
    for line in lines:
        cond = line.condition_words()
        fit = _cover(situation_words, cond)
        task_fit = len(task_words & cond) / max(1, len(cond))
        if (fit == 0.0 and task_fit == 0.0) or _GENERAL.match(line.condition):
            continue
        mentioned = _cover(line.wanted_words() | _words(line.refused), asked_words)
        score = 2.0 * fit + task_fit + 0.5 * mentioned
        if best is None or score > best[0]:
            best = (score, line)
    if best is not None:
        return best[1]
    for line in lines:
        if not (_GENERAL.match(line.condition) or not line.condition):
            continue
        mentioned = len(line.wanted_words() & asked_words) / max(1, len(line.wanted_words()))
        if mentioned >= 0.5 and (best is None or mentioned > best[0]):
            best = (mentioned, line)
    return None if best is None else best[1]
