"""State, request, memory and configuration types: the one place every other module imports.

Everything that crosses a module boundary (the graph state, what an interrupt asks and what a
resume must carry, what the reasoner decides, what memory stores) is a pydantic model here, so
bad input fails at the boundary with a message that names the field, and LangGraph Studio can
render every step.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from langgraph.channels.last_value import LastValue
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Longest user id accepted. Ids are hashed into Chroma collection names, so length only
#: bounds what we keep in metadata; 256 is generous for emails, UUIDs and tenant-prefixed ids.
MAX_USER_ID_CHARS = 256
#: Longest text stored as one memory: feedback beyond this is truncated, so a hostile or
#: rambling user cannot blow up the store or every later prompt.
MAX_MEMORY_CHARS = 2000
#: Longest free text accepted in a request field (task, context, candidate text).
MAX_REQUEST_TEXT_CHARS = 4000


def utc_now() -> str:
    """ISO-8601 UTC timestamp (microseconds, so records made in one second still sort in
    creation order); stored as text so Chroma metadata can hold it."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def validate_user_id(user_id: object) -> str:
    """Return ``user_id`` if it is a usable user id, else raise ``ValueError`` saying why.

    Any printable unicode is allowed (ids are hashed before they reach storage, so quotes,
    slashes or ``$`` operators are inert); empty, whitespace-only, over-long ids and ids with
    control characters are refused because they are almost always a bug upstream.
    """
    if not isinstance(user_id, str):
        raise ValueError(f"user id must be a string, got {type(user_id).__name__}")
    if not user_id.strip():
        raise ValueError("user id must not be empty")
    if len(user_id) > MAX_USER_ID_CHARS:
        raise ValueError(f"user id is {len(user_id)} characters; the limit is {MAX_USER_ID_CHARS}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in user_id):
        raise ValueError("user id must not contain control characters")
    return user_id


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- requests


class Candidate(_Model):
    """One option the agent may choose: a product option, a scene object or a target place."""

    id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=MAX_REQUEST_TEXT_CHARS)
    attributes: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        """Human-readable form used in questions and reports."""
        if self.attributes:
            return f"{self.id}: " + ", ".join(self.attributes)
        return self.text


class Request(_Model):
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
        """What a preference learned from this request is about: the situation's context
        (embodied "Dehydrated", shopping "microwave oven"), or the task when there is none."""
        return self.context or self.task

    def candidate(self, candidate_id: str) -> Candidate:
        for cand in self.candidates:
            if cand.id == candidate_id:
                return cand
        raise KeyError(f"no candidate {candidate_id!r} in request {self.request_id}")


# --------------------------------------------------------------------------- memory


MemoryStatus = Literal["active", "superseded"]
MemorySource = Literal["clarification", "feedback", "manual", "import"]


class HistoryEntry(_Model):
    at: str
    event: Literal["created", "superseded", "reinforced", "imported", "challenged"]
    detail: str = ""


class NewMemory(_Model):
    """What a reasoner asks memory to store: the user's own words and where they apply."""

    text: str = Field(min_length=1)
    topic: str = Field(default="", description="the situation the preference applies to")
    domain: str = "general"
    source: MemorySource = "manual"
    request_id: str = ""
    confidence: float = Field(default=1.0, ge=0.0)

    @field_validator("text")
    @classmethod
    def _bound(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("memory text must not be empty")
        return value[:MAX_MEMORY_CHARS]


#: Confirmations stop raising a memory's confidence here: at 2 a memory is "established" (one
#: contradicting signal only challenges it), and each further confirmation would cost a store
#: write and a history entry on every accepted action for as long as the preference is used.
#: Measured against 4 on the generated benchmark: the same success without feedback noise, equal
#: or better with 20% noise, 40-60% fewer reinforcement writes (bench/README.md).
CONFIDENCE_CEILING = 2.0


class MemoryRecord(_Model):
    """A stored preference. Superseded records are kept, linked both ways, with their history."""

    id: str
    user_id: str
    text: str
    topic: str = ""
    domain: str = "general"
    source: MemorySource = "manual"
    status: MemoryStatus = "active"
    confidence: float = 1.0
    created_at: str
    request_id: str = ""
    supersedes: str | None = None
    superseded_by: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)


class RetrievedMemory(_Model):
    """A memory as the graph sees it after a search: the record plus its similarity."""

    record: MemoryRecord
    score: float


class MemoryOp(_Model):
    """One change a reasoner wants made to memory.

    ``add`` stores ``memory``; ``supersede`` stores ``memory`` and marks ``target_id`` superseded
    by it; ``reinforce`` raises the confidence of ``target_id``; ``challenge`` records a
    contradicting signal against ``target_id`` without replacing it yet (noisy feedback).
    """

    kind: Literal["add", "supersede", "reinforce", "challenge"]
    memory: NewMemory | None = None
    target_id: str | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> MemoryOp:
        if self.kind in ("add", "supersede") and self.memory is None:
            raise ValueError(f"memory op {self.kind!r} needs a memory")
        if self.kind in ("supersede", "reinforce", "challenge") and not self.target_id:
            raise ValueError(f"memory op {self.kind!r} needs a target_id")
        return self


class AppliedMemoryOp(_Model):
    """A memory op after it was applied: what happened, to which record ids."""

    kind: Literal["add", "supersede", "reinforce", "challenge"]
    memory_id: str
    target_id: str | None = None
    text: str = ""
    reason: str = ""


def memory_id_for(user_id: str, request_id: str, turn: str, index: int) -> str:
    """Deterministic memory id, so a node re-run after a crash rewrites, never duplicates."""
    digest = hashlib.sha256(f"{user_id}\x1f{request_id}\x1f{turn}\x1f{index}".encode()).hexdigest()
    return f"m-{digest[:24]}"


# --------------------------------------------------------------------------- decisions


class Assessment(_Model):
    """The ambiguity decision: is this request ambiguous for this user, and what to ask."""

    ambiguous: bool
    reason: str = ""
    question: str = ""
    confidence: float = 0.0


class Action(_Model):
    """The agent's choice: one of the request's candidates, with why."""

    candidate_id: str
    candidate_text: str
    rationale: str = ""
    scores: dict[str, float] = Field(default_factory=dict)
    memory_ids: list[str] = Field(
        default_factory=list, description="the stored memories that led to this choice"
    )


class Turn(_Model):
    """A human turn the agent learns from: a clarification answer or a post-action correction."""

    kind: Literal["clarification", "correction"]
    text: str
    question: str = ""
    action: Action | None = None


# --------------------------------------------------------------------------- human turns


class QuestionPrompt(_Model):
    """Payload of the ask-user interrupt (what Studio or a chat UI shows the person)."""

    type: Literal["question"] = "question"
    user_id: str
    request_id: str
    question: str
    candidates: list[str]


class FeedbackPrompt(_Model):
    """Payload of the post-action feedback interrupt."""

    type: Literal["feedback"] = "feedback"
    user_id: str
    request_id: str
    action: Action
    hint: str = "Resume with null/'' to accept, or with the correction in your own words."


class ClarificationReply(_Model):
    """Resume value for a question: the answer text (a bare string is accepted too)."""

    answer: str = Field(min_length=1, max_length=20_000)


class FeedbackReply(_Model):
    """Resume value for feedback: ``accepted`` or a ``correction`` in the user's words."""

    accepted: bool = False
    correction: str | None = Field(default=None, max_length=20_000)

    @model_validator(mode="after")
    def _one_of(self) -> FeedbackReply:
        if self.correction is not None and not self.correction.strip():
            self.correction = None
        if self.correction is None:
            self.accepted = True
        return self


def parse_clarification(value: Any) -> ClarificationReply:
    """Accept ``"text"`` or ``{"answer": "text"}``; raise ``ValueError`` naming the problem."""
    if isinstance(value, str):
        value = {"answer": value}
    if not isinstance(value, dict):
        raise ValueError(
            "ask_user: resume value must be the answer text or {'answer': str}, "
            f"got {type(value).__name__}"
        )
    try:
        return ClarificationReply.model_validate(value)
    except Exception as exc:  # pydantic's message names the field
        raise ValueError(f"ask_user: malformed resume value: {exc}") from exc


def parse_feedback(value: Any) -> FeedbackReply:
    """Accept ``None``/``""``/``True`` (accepted), a correction string, or a dict."""
    if value is None or value is True or value == "":
        return FeedbackReply(accepted=True)
    if isinstance(value, str):
        value = {"correction": value}
    if not isinstance(value, dict):
        raise ValueError(
            "ingest_feedback: resume value must be null (accept), a correction string or "
            f"{{'accepted': bool, 'correction': str}}, got {type(value).__name__}"
        )
    try:
        return FeedbackReply.model_validate(value)
    except Exception as exc:
        raise ValueError(f"ingest_feedback: malformed resume value: {exc}") from exc


# --------------------------------------------------------------------------- graph state


class ValidatedRequestChannel(LastValue[Any]):
    """The graph's ``request`` channel: every write is validated as a :class:`Request`.

    LangGraph writes a run's input to its channels, and checkpoints it, before any node reads
    (and so validates) it: a malformed request used to be saved to the thread, after which
    every call on that thread, even ``get_state`` or a valid new request, failed with the old
    error. Validating on write refuses it before anything is saved.
    """

    def update(self, values: Sequence[Any]) -> bool:
        return super().update([Request.model_validate(v) for v in values])


class PahfState(BaseModel):
    """Everything one request's run carries; what Studio shows. Never holds ground truth."""

    model_config = ConfigDict(extra="forbid")

    request: Annotated[Request, ValidatedRequestChannel(Request)]
    user_id: str = ""
    memories: list[RetrievedMemory] = Field(default_factory=list)
    assessment: Assessment | None = None
    questions_asked: int = 0
    clarifications: list[Turn] = Field(default_factory=list)
    action: Action | None = None
    feedback: FeedbackReply | None = None
    memory_ops: list[AppliedMemoryOp] = Field(default_factory=list)
    active_request_id: str = ""


class PahfInput(BaseModel):
    """The graph's narrow input: just the request (Studio shows one field to fill)."""

    request: Request


class PahfOutput(BaseModel):
    """What a finished run returns to a host application.

    ``memories`` are the user's preferences the action was grounded in (the last retrieval), so
    a host can show why the agent acted as it did without reading the thread's state.
    """

    request: Request
    user_id: str = ""
    memories: list[RetrievedMemory] = Field(default_factory=list)
    action: Action | None = None
    assessment: Assessment | None = None
    clarifications: list[Turn] = Field(default_factory=list)
    feedback: FeedbackReply | None = None
    memory_ops: list[AppliedMemoryOp] = Field(default_factory=list)


# --------------------------------------------------------------------------- run config


class RunContext(BaseModel):
    """Per-run configuration (LangGraph context schema): one deployed graph serves every user.

    The switches express the paper's baselines: ``no-memory`` (use_memory off, both channels
    off), ``pre-only`` (post_action off), ``post-only`` (pre_action off), ``pahf`` (all on).
    """

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    use_memory: bool = True
    pre_action: bool = True
    post_action: bool = True
    question_budget: int = Field(default=1, ge=0, le=10)
    top_k: int = Field(default=8, ge=1, le=100)
    reasoner: Literal["offline", "llm"] = "offline"
    model: str | None = None
    memory_location: str | None = Field(
        default=None,
        description="directory of an embedded Chroma store, or http(s)://host:port of a server",
    )

    @field_validator("user_id")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        return None if value is None else validate_user_id(value)


Method = Literal["no-memory", "pre-only", "post-only", "pahf"]
METHODS: tuple[Method, ...] = ("no-memory", "pre-only", "post-only", "pahf")


def context_for_method(method: str, **overrides: Any) -> RunContext:
    """The RunContext of one of the paper's four methods (baselines are configurations)."""
    switches: dict[str, dict[str, bool]] = {
        "no-memory": {"use_memory": False, "pre_action": False, "post_action": False},
        "pre-only": {"use_memory": True, "pre_action": True, "post_action": False},
        "post-only": {"use_memory": True, "pre_action": False, "post_action": True},
        "pahf": {"use_memory": True, "pre_action": True, "post_action": True},
    }
    if method not in switches:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return RunContext(**{**switches[method], **overrides})


#: The pydantic types a checkpoint of this graph may contain (msgpack allowlist for savers).
SERDE_ALLOWLIST: tuple[tuple[str, str], ...] = tuple(
    (cls.__module__, cls.__name__)
    for cls in (
        Candidate,
        Request,
        HistoryEntry,
        NewMemory,
        MemoryRecord,
        RetrievedMemory,
        MemoryOp,
        AppliedMemoryOp,
        Assessment,
        Action,
        Turn,
        FeedbackReply,
        ClarificationReply,
        PahfState,
        PahfInput,
        PahfOutput,
        RunContext,
    )
)
