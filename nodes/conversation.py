"""The chat side of a run: reading the input as a request, and what the agent says.

A run's input is a structured ``request`` (SDK, Studio's form, evaluation) or a chat message
(``{"messages": [...]}`` from a chat UI), read once. Whatever the input, the run either starts
a request or ends with an AI message saying why not: no input can leave the thread unusable.
The agent's question, its action and a closing summary (what was done, what was learned) are
AI messages too, with ids derived from the request so a re-run node never repeats one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from pahf.chat_request import PLAIN_FORM, ChatRequestError, parse_plain_request
from pahf.context import RunContext
from pahf.decisions import Action
from pahf.memory.schema import AppliedMemoryOp
from pahf.nodes.services import ServicesProvider
from pahf.request import Request
from pahf.state import PahfState, RequestProblem


@dataclass
class InputReading:
    """What the entry node made of the run's input."""

    request: Request | None = None
    #: When no request could be started: what to tell the person (as an AI message).
    problem: str | None = None
    #: State updates that go with it (the message read, the request written).
    update: dict[str, Any] = field(default_factory=dict)
    #: A new request (start afresh), not the current one back from a question.
    fresh: bool = True


def message_text(message: AnyMessage) -> str:
    """A message's text, whether its content is a string or a list of content blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "\n".join(parts)


def unread_human_message(state: PahfState) -> HumanMessage | None:
    """The newest message if it is the person's and not read yet."""
    if not state.messages:
        return None
    last = state.messages[-1]
    if isinstance(last, HumanMessage) and (last.id or "") != state.read_message_id:
        return last
    return None


def read_chat_request(
    text: str, ctx: RunContext, services: ServicesProvider, user_id: str | None
) -> Request:
    """The request in a chat message: the plain form when the message is written in it;
    otherwise, when the run's reasoner is a chat model's (the LLM reasoner), that model reads
    the free text; otherwise the plain form's error, which says how to write a request."""
    try:
        return parse_plain_request(text, user_id)
    except ChatRequestError:
        chat_model = getattr(services(ctx).reasoner, "chat_model", None)
        if chat_model is None:
            raise
    from pahf.reasoners.chat_request import read_request_with_llm

    return read_request_with_llm(chat_model, text, user_id)


def read_input(state: PahfState, ctx: RunContext, services: ServicesProvider) -> InputReading:
    """Decide what this run is about (see the module docstring)."""
    request = state.request
    if isinstance(request, RequestProblem):
        return InputReading(problem=request.problem, update={"request": None})
    if (
        isinstance(request, Request)
        and state.after_question
        and request.request_id == state.active_request_id
    ):
        return InputReading(request=request, fresh=False)  # the same request, after a question
    msg = unread_human_message(state)
    if isinstance(request, Request) and (
        request.request_id != state.active_request_id
        or (msg is None and not state.request_from_chat)
    ):
        # A request sent as this run's input; one reusing the last request's id starts afresh.
        update: dict[str, Any] = {"request_from_chat": False}
        if msg is not None:
            update["read_message_id"] = msg.id or ""
        return InputReading(request=request, update=update)
    if msg is None:
        return InputReading(
            problem="there is no new request: send {'request': {...}} or a chat message "
            f"in the form {PLAIN_FORM}"
        )
    read = {"read_message_id": msg.id or ""}
    try:
        chat_request = read_chat_request(message_text(msg), ctx, services, ctx.user_id)
    except ChatRequestError as exc:
        return InputReading(problem=f"I could not read a request from your message: {exc}",
                            update=read)  # fmt: skip
    if chat_request.user_id is None and ctx.user_id is None:
        chat_request = chat_request.model_copy(update={"user_id": CHAT_USER})
    return InputReading(
        request=chat_request, update={**read, "request": chat_request, "request_from_chat": True}
    )


#: The user a chat message's request is for when neither the message (``user: NAME``) nor the
#: run context names one (a chat UI sends no context): a local single-person deployment.
CHAT_USER = "me"


def say(text: str, msg_id: str) -> AIMessage:
    return AIMessage(content=text, id=msg_id)


def problem_message(problem: str, state: PahfState) -> AIMessage:
    n = len(state.messages)
    return say(f"Sorry, I cannot start on that: {problem}", f"pahf-problem-{n}")


def question_message(request: Request, question: str, turn: int) -> AIMessage:
    return say(question, f"{request.request_id}-question-{turn}")


def action_message(request: Request, action: Action) -> AIMessage:
    text = f"I choose: **{action.candidate_text}**"
    if action.rationale:
        text += f"\n\nWhy: {action.rationale}"
    return say(text, f"{request.request_id}-action")


def learned_lines(ops: Sequence[AppliedMemoryOp]) -> list[str]:
    """What a request taught, quoting the preferences it touched so the person can check them."""
    lines = []
    for op in ops:
        if op.kind == "add" and op.text:
            lines.append(f'- remembered: "{op.text}"')
        elif op.kind == "supersede" and op.text:
            lines.append(f'- revised a preference: "{op.text}"')
        elif op.kind == "reinforce":
            lines.append(f'- confirmed: "{op.text}"' if op.text else "- confirmed a preference")
        elif op.kind == "challenge":
            quoted = f': "{op.text}"' if op.text else " a preference"
            lines.append(f"- no longer sure of{quoted}")
    return lines


def summary_message(
    request: Request, action: Action, ops: Sequence[AppliedMemoryOp], corrected: bool
) -> AIMessage:
    """What was done and what was learned, closing the request."""
    done = f"Done: {request.task} -> **{action.candidate_text}**"
    if corrected:
        done += " (you corrected me; I will do better next time)"
    lines = learned_lines(ops)
    learned = "\n".join(lines) if lines else "- nothing new about your preferences"
    return say(f"{done}\n\nWhat I learned:\n{learned}", f"{request.request_id}-summary")


def human_echo(text: str, msg_id: str) -> HumanMessage:
    """The person's reply to a turn answered in a widget, kept in the transcript."""
    return HumanMessage(content=text, id=msg_id)
