"""The two human turns: what an interrupt shows the person and what a resume must carry.

One contract for both turns (the clarification question; the proposed action for feedback):

* the interrupt value is a dict in LangChain's human-in-the-loop shape (``action_requests`` /
  ``review_configs``, what ``HumanInTheLoopMiddleware`` publishes and Agent Chat UI renders),
  which also carries the Agent Inbox fields (``action_request`` / ``config`` /
  ``description``, what the npm ``create-agent-chat-app`` build of Agent Chat UI renders) and
  pahf's own fields (``type``, ``question`` or ``action``, ``user_id``, ``request_id``, and
  ``error`` when a reply was refused), so SDK callers keep reading what they read before;
* the resume value is ``{"decisions": [...]}`` (approve / edit / reject with a message), an
  Agent Inbox response list, or, for existing callers, a plain string or ``{"answer": ...}``
  (question) / ``{"accepted": ..., "correction": ...}`` (feedback).

An application that answers the turns in-process (the evaluation's simulated users) passes a
:class:`HumanService` to ``build_graph(..., human=...)``: it gets the same dict an interrupt
would carry and returns what a resume would.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol

from pydantic import Field, model_validator

from pahf.decisions import Action
from pahf.request import StrictModel

#: The action names of the two turns in ``action_requests`` / ``review_configs``.
QUESTION_ACTION = "answer_question"
FEEDBACK_ACTION = "review_action"


class QuestionPrompt(StrictModel):
    """pahf's fields of the ask-user interrupt (what Studio or a chat UI shows the person)."""

    type: Literal["question"] = "question"
    user_id: str
    request_id: str
    question: str
    candidates: list[str]


class FeedbackPrompt(StrictModel):
    """pahf's fields of the post-action feedback interrupt."""

    type: Literal["feedback"] = "feedback"
    user_id: str
    request_id: str
    action: Action
    hint: str = (
        'Approve ({"decisions": [{"type": "approve"}]} or "") to accept, or reject with a '
        "message: the correction in your own words."
    )


class ClarificationReply(StrictModel):
    """Resume value for a question: the answer text (a bare string is accepted too)."""

    answer: str = Field(min_length=1, max_length=20_000)


class FeedbackReply(StrictModel):
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


#: JSON Schema of a human-in-the-loop resume (``{"decisions": [...]}``), published with both
#: interrupts as their ``response_schema`` so a client can render or check a reply.
DECISIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["decisions"],
    "properties": {
        "decisions": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"const": "approve"}},
                    },
                    {
                        "type": "object",
                        "required": ["type", "edited_action"],
                        "properties": {
                            "type": {"const": "edit"},
                            "edited_action": {
                                "type": "object",
                                "required": ["name", "args"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "args": {"type": "object"},
                                },
                            },
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type"],
                        "properties": {
                            "type": {"const": "reject"},
                            "message": {"type": "string"},
                        },
                    },
                ]
            },
        }
    },
}

_QUESTION_ARGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string", "minLength": 1}},
}


def _hitl(
    name: str,
    args: dict[str, Any],
    description: str,
    allowed: list[str],
    args_schema: dict[str, Any],
    inbox_config: dict[str, bool],
    inbox_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The human-in-the-loop request fields plus their Agent Inbox twin."""
    return {
        "action_requests": [{"name": name, "args": args, "description": description}],
        "review_configs": [
            {"action_name": name, "allowed_decisions": allowed, "args_schema": args_schema}
        ],
        "action_request": {"action": name, "args": args if inbox_args is None else inbox_args},
        "config": inbox_config,
        "description": description,
    }


def _inbox_config(*, accept: bool) -> dict[str, bool]:
    """Agent Inbox's switches: a text reply always; accept only where there is a proposal."""
    return {
        "allow_respond": True,
        "allow_accept": accept,
        "allow_edit": False,
        "allow_ignore": False,
    }


def question_interrupt(prompt: QuestionPrompt, error: str | None = None) -> dict[str, Any]:
    """The interrupt value of a clarification question.

    The person answers by rejecting the (empty) proposal with their answer as the message, or
    by editing ``args.answer``: a question has nothing to approve.
    """
    options = "\n".join(f"- {c}" for c in prompt.candidates)
    description = f"{prompt.question}\n\nOptions:\n{options}"
    if error:
        description = f"{description}\n\n(Your last reply could not be used: {error})"
    value = {
        **_hitl(
            QUESTION_ACTION,
            {"answer": ""},
            description,
            ["edit", "reject"],
            _QUESTION_ARGS_SCHEMA,
            _inbox_config(accept=False),
            {},  # Agent Inbox shows args as fields: a question has none to show
        ),
        **prompt.model_dump(mode="json"),
    }
    if error:
        value["error"] = error
    return value


def feedback_interrupt(prompt: FeedbackPrompt, error: str | None = None) -> dict[str, Any]:
    """The interrupt value of the post-action feedback turn.

    Approve accepts the action; reject with a message is a correction in the person's words;
    edit names another candidate (``args.candidate_id``), which becomes the correction
    "I want <that candidate>, not <this one>".
    """
    action = prompt.action
    description = f"I chose: {action.candidate_text}"
    if action.rationale:
        description += f"\n\nWhy: {action.rationale}"
    description += "\n\nApprove it, or reject it and tell me what you prefer."
    if error:
        description = f"{description}\n\n(Your last reply could not be used: {error})"
    args = {"candidate_id": action.candidate_id, "candidate_text": action.candidate_text}
    args_schema = {
        "type": "object",
        "required": ["candidate_id"],
        "properties": {"candidate_id": {"type": "string"}, "candidate_text": {"type": "string"}},
    }
    value = {
        **_hitl(
            FEEDBACK_ACTION,
            args,
            description,
            ["approve", "edit", "reject"],
            args_schema,
            _inbox_config(accept=True),
        ),
        **prompt.model_dump(mode="json"),
    }
    if error:
        value["error"] = error
    return value


def _decision(value: Any, turn: str) -> dict[str, Any] | None:
    """The one decision of a ``{"decisions": [...]}`` or Agent Inbox reply, else None.

    Agent Inbox responses (``[{"type": "accept"|"response"|"edit"|"ignore", "args": ...}]``)
    are translated to decisions: accept -> approve, response -> reject with the text as the
    message, edit -> edit.
    """
    if isinstance(value, dict) and "decisions" in value:
        decisions = value["decisions"]
        if not isinstance(decisions, list) or len(decisions) != 1:
            raise ValueError(f"{turn}: 'decisions' must be a list of exactly one decision")
        decision = decisions[0]
        if not isinstance(decision, dict) or not isinstance(decision.get("type"), str):
            raise ValueError(f"{turn}: a decision must be an object with a 'type'")
        return decision
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], dict) or "type" not in value[0]:
            raise ValueError(f"{turn}: a response list must hold exactly one {{'type': ...}}")
        inbox = value[0]
        kind, args = inbox["type"], inbox.get("args")
        if kind == "accept":
            return {"type": "approve"}
        if kind == "response":
            return {"type": "reject", "message": args if isinstance(args, str) else ""}
        if kind == "edit":
            inner = args.get("args") if isinstance(args, dict) else None
            return {"type": "edit", "edited_action": {"args": inner if inner is not None else {}}}
        raise ValueError(f"{turn}: response type {kind!r} is not one of accept, response, edit")
    return None


def _edited_args(decision: dict[str, Any], turn: str) -> dict[str, Any]:
    edited = decision.get("edited_action")
    args = edited.get("args") if isinstance(edited, dict) else None
    if not isinstance(args, dict):
        raise ValueError(f"{turn}: an edit decision needs edited_action.args (an object)")
    return args


def parse_clarification(value: Any) -> ClarificationReply:
    """Accept a decision (reject with the answer as message, or edit ``args.answer``), the
    answer text, or ``{"answer": "text"}``; raise ``ValueError`` naming the problem."""
    turn = "ask_user"
    decision = _decision(value, turn)
    if decision is not None:
        kind = decision["type"]
        if kind == "reject":
            value = {"answer": decision.get("message") or ""}
        elif kind == "edit":
            value = {"answer": _edited_args(decision, turn).get("answer", "")}
        else:
            raise ValueError(
                f"{turn}: a question cannot be approved: answer it (reject with your answer "
                f"as the message, or edit args.answer), got decision {kind!r}"
            )
    if isinstance(value, str):
        value = {"answer": value}
    if not isinstance(value, dict):
        raise ValueError(
            f"{turn}: resume value must be {{'decisions': [...]}}, the answer text or "
            f"{{'answer': str}}, got {type(value).__name__}"
        )
    if isinstance(value.get("answer"), str) and not value["answer"].strip():
        raise ValueError(f"{turn}: the answer is empty; say what you prefer")
    try:
        return ClarificationReply.model_validate(value)
    except Exception as exc:  # pydantic's message names the field
        raise ValueError(f"{turn}: malformed resume value: {exc}") from exc


#: Words that approve: a reply that only approves must say at least one ("What?" approves
#: nothing).
_APPROVING = frozenset(
    (
        "perfect", "great", "thanks", "thank", "yes", "yep", "yeah", "ok", "okay", "good",
        "nice", "excellent", "awesome", "exactly", "fine", "cool", "love", "works", "worked",
        "correct", "right", "sure", "done",
    )
)
#: Every word a reply that only approves may hold ("Perfect, thanks!", "Yes, that's it").
_APPROVAL_WORDS = _APPROVING | frozenset(
    (
        "you", "it", "that", "that's", "this", "is", "was", "work", "for", "me", "job", "well",
        "what", "i", "wanted", "just", "much", "so", "very", "all", "looks", "one", "the",
        "i'll", "take",
    )
)
_REPLY_WORD = re.compile(r"[a-z']+")


def only_approves(text: str) -> bool:
    """Does a typed reply do nothing but approve? Such a reply is an acceptance, not a
    correction to learn from: "Perfect, thanks!" would otherwise be kept as a liking of
    "Perfect"."""
    words = _REPLY_WORD.findall(text.lower().replace("\u2019", "'"))
    return any(w in _APPROVING for w in words) and all(w in _APPROVAL_WORDS for w in words)


def parse_feedback(value: Any, action: Action | None = None) -> FeedbackReply:
    """Accept a decision (approve; reject with the correction as message; edit naming another
    candidate), ``""`` or ``True`` (accepted), a correction string (one that only approves,
    such as "Perfect, thanks!", is an acceptance), or ``{"accepted": bool, "correction": str}``.

    ``None`` is refused: LangGraph and its server do not carry a null resume to the node
    reliably, so a client meaning "accept" must say so.
    """
    turn = "ingest_feedback"
    if value is None:
        raise ValueError(
            f"{turn}: an empty (null) reply; approve with {{'decisions': [{{'type': "
            f"'approve'}}]}} or '', or reject with the correction as the message"
        )
    decision = _decision(value, turn)
    if decision is not None:
        kind = decision["type"]
        if kind == "approve":
            return FeedbackReply(accepted=True)
        if kind == "reject":
            message = decision.get("message")
            if not isinstance(message, str) or not message.strip():
                raise ValueError(
                    f"{turn}: a reject decision needs a 'message' saying what you prefer"
                )
            value = {"correction": message}
        elif kind == "edit":
            chosen = _edited_args(decision, turn).get("candidate_id")
            if not isinstance(chosen, str) or not chosen:
                raise ValueError(f"{turn}: an edit decision needs args.candidate_id")
            if action is not None and chosen == action.candidate_id:
                return FeedbackReply(accepted=True)
            shown = f", not {action.candidate_text}" if action is not None else ""
            value = {"correction": f"I want {chosen}{shown}."}
        else:
            raise ValueError(f"{turn}: decision type {kind!r} is not one of approve, edit, reject")
    if value is True or value == "" or (isinstance(value, str) and only_approves(value)):
        return FeedbackReply(accepted=True)
    if isinstance(value, str):
        value = {"correction": value}
    if not isinstance(value, dict):
        raise ValueError(
            f"{turn}: resume value must be {{'decisions': [...]}}, '' (accept), a correction "
            f"string or {{'accepted': bool, 'correction': str}}, got {type(value).__name__}"
        )
    try:
        return FeedbackReply.model_validate(value)
    except Exception as exc:
        raise ValueError(f"{turn}: malformed resume value: {exc}") from exc


class HumanService(Protocol):
    """Answers a human turn in-process: gets the dict an interrupt would carry and returns
    what ``Command(resume=...)`` would. Given at build time: ``build_graph(..., human=...)``."""

    def __call__(self, payload: dict[str, Any]) -> Any: ...


class HumanDesk:
    """A :class:`HumanService` that hands each turn to whoever attends its request.

    One compiled graph serves many requests (the evaluation plays thousands of episodes on
    one); each episode attends its own request id for the duration of its run, and every turn
    goes to the human of the request it names. A turn of a request nobody attends is an error.
    """

    def __init__(self) -> None:
        self._humans: dict[str, HumanService] = {}
        self._lock = threading.Lock()

    @contextmanager
    def attending(self, request_id: str, human: HumanService) -> Iterator[None]:
        with self._lock:
            if request_id in self._humans:
                raise ValueError(f"request {request_id!r} is already attended")
            self._humans[request_id] = human
        try:
            yield
        finally:
            with self._lock:
                self._humans.pop(request_id, None)

    def __call__(self, payload: dict[str, Any]) -> Any:
        request_id = payload.get("request_id")
        with self._lock:
            human = self._humans.get(str(request_id))
        if human is None:
            raise LookupError(f"no human attends request {request_id!r}")
        return human(payload)
