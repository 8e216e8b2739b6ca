"""What a request to the agent is: a task, its situation and the candidates to choose from.

Everything that enters the graph from outside is validated here, so bad input fails at the
boundary with a message that names the field.
"""

from __future__ import annotations

import functools
import unicodedata
import uuid

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Longest user id accepted. Ids are hashed into Chroma collection names, so length only
#: bounds what we keep in metadata; 256 is generous for emails, UUIDs and tenant-prefixed ids.
MAX_USER_ID_CHARS = 256
#: Longest free text accepted in a request field (task, context, candidate text).
MAX_REQUEST_TEXT_CHARS = 4000


def validate_user_id(user_id: object) -> str:
    """Return ``user_id`` if it is a usable user id, else raise ``ValueError`` saying why.

    Any printable unicode is allowed (ids are hashed before they reach storage, so quotes,
    slashes or ``$`` operators are inert); empty, whitespace-only, over-long ids and ids with
    control characters are refused because they are almost always a bug upstream. Format
    characters (Unicode category Cf: the right-to-left override U+202E, zero-width joiners)
    are refused too: they make two different ids print alike, so a person reading a log or a
    listing could take one user's data for another's.
    """
    if not isinstance(user_id, str):
        raise ValueError(f"user id must be a string, got {type(user_id).__name__}")
    _check_user_id(user_id)
    return user_id


@functools.lru_cache(maxsize=4_096)
def _check_user_id(user_id: str) -> None:
    """The checks of :func:`validate_user_id` on a string, remembered: every memory operation
    and every request read checks the same few ids again (a refusal raises, and is not kept)."""
    if not user_id.strip():
        raise ValueError("user id must not be empty")
    if len(user_id) > MAX_USER_ID_CHARS:
        raise ValueError(f"user id is {len(user_id)} characters; the limit is {MAX_USER_ID_CHARS}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in user_id):
        raise ValueError("user id must not contain control characters")
    for ch in user_id:
        if unicodedata.category(ch) == "Cf":
            raise ValueError(
                f"user id must not contain format characters (U+{ord(ch):04X}, Unicode "
                "category Cf, e.g. a bidirectional override or a zero-width character)"
            )


class StrictModel(BaseModel):
    """Base of every boundary type: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Candidate(StrictModel):
    """One option the agent may choose: a product option, a scene object or a target place."""

    id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=MAX_REQUEST_TEXT_CHARS)
    attributes: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        """Human-readable form used in questions and reports."""
        if self.attributes:
            return f"{self.id}: " + ", ".join(self.attributes)
        return self.text


class Request(StrictModel):
    """A multiple-choice request: a task, the situation it arises in, and the candidates.

    ``context`` is the situation the preference depends on (embodied: "Dehydrated";
    shopping: the product, "microwave oven"). ``subject`` is what a placement acts on.
    """

    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=200)
    user_id: str | None = None
    domain: str = Field(default="general", min_length=1, max_length=64)
    task: str = Field(min_length=1, max_length=MAX_REQUEST_TEXT_CHARS)
    context: str = Field(default="", max_length=MAX_REQUEST_TEXT_CHARS)
    subject: str = Field(default="", max_length=MAX_REQUEST_TEXT_CHARS)
    candidates: list[Candidate] = Field(min_length=1, max_length=200)

    @field_validator("user_id")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        return None if value is None else validate_user_id(value)

    @model_validator(mode="after")
    def _unique_candidates(self) -> Request:
        # Linear: pydantic runs "after" validators even when an existing Request is passed
        # through (LangGraph does so several times per step), so this check is on a hot path.
        seen: set[str] = set()
        dupes: set[str] = set()
        for candidate in self.candidates:
            (dupes if candidate.id in seen else seen).add(candidate.id)
        if dupes:
            raise ValueError(f"candidate ids must be unique; repeated: {sorted(dupes)}")
        return self

    def situation(self) -> str:
        """The text a preference for this request is keyed on (what memory is searched with)."""
        return f"{self.context}: {self.task}" if self.context else self.task

    def topic(self) -> str:
        """The topic every reasoner stores a preference learned from this request under: the
        situation it was learned in ("Dehydrated: bring me a drink", or the task alone).

        One rule for all reasoners, so a store written by one reads the same to another; the
        offline reasoner weighs a memory by its context and its task separately.
        """
        return self.situation()

    def candidate(self, candidate_id: str) -> Candidate:
        for cand in self.candidates:
            if cand.id == candidate_id:
                return cand
        raise KeyError(f"no candidate {candidate_id!r} in request {self.request_id}")
