"""A chat message read as a request, offline: a small plain form a person can type.

    Bring me a drink | situation: dehydrated after a run | options: hot coffee; ice water

The task comes first (or after ``task:``); ``situation:`` (or ``context:``) names what the
preference depends on; ``options:`` (or ``choices:``) lists the candidates, separated by ``;``
or on their own lines; ``user:`` optionally names the user. Parts are separated by ``|`` or
new lines. With the LLM reasoner the model reads free text instead
(:mod:`pahf.reasoners.chat_request`); this form works with either.
"""

from __future__ import annotations

import re
from typing import Any

from pahf.request import MAX_REQUEST_TEXT_CHARS, Request

#: How a person is told to write a request when a message cannot be read as one.
PLAIN_FORM = (
    "task | situation: <when or where> | options: <first>; <second>; ...  "
    "(e.g. `Bring me a drink | situation: dehydrated | options: hot coffee; ice water`)"
)

_KEY = re.compile(r"(?i)\b(task|situation|context|options|choices|user)\s*:")
_ALIASES = {"context": "situation", "choices": "options"}
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")


class ChatRequestError(ValueError):
    """A chat message that cannot be read as a request; the message says how to write one."""


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-") or "option"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def candidates_from(options: list[str]) -> list[dict[str, Any]]:
    """Candidate dicts (ids made from the text, unique) for option texts, blanks dropped."""
    taken: set[str] = set()
    texts = [o.strip() for o in options if o.strip()]
    return [{"id": _slug(t, taken), "text": t} for t in texts]


def parse_plain_request(text: str, user_id: str | None = None) -> Request:
    """Read ``text`` in the plain form (module docstring) as a :class:`Request`.

    Raises :class:`ChatRequestError` saying what is missing and how to write it.
    """
    if not isinstance(text, str) or not text.strip():
        raise ChatRequestError(f"the message is empty; write a request as: {PLAIN_FORM}")
    if len(text) > 4 * MAX_REQUEST_TEXT_CHARS:
        raise ChatRequestError(f"the message is {len(text)} characters; that is too long")
    parts: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    head = text[: matches[0].start()] if matches else text
    for i, match in enumerate(matches):
        key = _ALIASES.get(match.group(1).lower(), match.group(1).lower())
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        parts[key] = text[match.end() : end].strip().strip("|").strip()
    task = parts.get("task") or head.strip().strip("|").strip()
    if "options" not in parts:
        raise ChatRequestError(
            "I could not find the options to choose from in your message; "
            f"write a request as: {PLAIN_FORM}"
        )
    raw = parts["options"]
    pieces = re.split(r"[;\n|]", raw) if re.search(r"[;\n|]", raw) else raw.split(",")
    candidates = candidates_from([_BULLET.sub("", p) for p in pieces])
    if not candidates:
        raise ChatRequestError(f"the options list is empty; write a request as: {PLAIN_FORM}")
    if not task:
        raise ChatRequestError(f"the message names no task; write a request as: {PLAIN_FORM}")
    data: dict[str, Any] = {
        "task": task,
        "context": parts.get("situation", ""),
        "candidates": candidates,
    }
    if "user" in parts and not parts["user"]:
        raise ChatRequestError("the `user:` part names no user; leave it out or name one")
    user = parts.get("user") or user_id
    if user:
        data["user_id"] = user
    try:
        return Request.model_validate(data)
    except ValueError as exc:
        raise ChatRequestError(f"the request read from your message is not valid: {exc}") from exc
