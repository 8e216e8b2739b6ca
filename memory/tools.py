"""Preference memory as LangChain tools, so an existing tool-calling agent can use it.

Three tools: ``recall_preferences`` (search), ``record_preference`` (store, or revise an older
preference, keeping its history) and ``list_preferences``.

Whose memory a call touches is never the model's choice, and it comes from the same place the
PAHF graph reads it: the run context's ``user_id`` (``graph.invoke(..., context={"user_id":
...})``, a :class:`~pahf.context.RunContext` or any context with that field). Tools may also be
bound to one user when made, and ``config["configurable"]["user_id"]`` is still read for hosts
written before; where several are given they must agree, or the call is refused. The user id
is part of no tool's argument schema, so a prompt-injected model cannot read or write another
user's preferences; the host application, which knows who is logged in, decides.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.runtime import get_runtime
from pydantic import BaseModel, Field

from pahf.memory.base import PreferenceMemory, PreferenceMemoryError
from pahf.memory.schema import MAX_MEMORY_CHARS, MemoryRecord, NewMemory
from pahf.request import validate_user_id

#: Key of ``config["configurable"]`` that names the user when the tools are not bound to one.
USER_ID_KEY = "user_id"
#: Most memories one tool call returns (keeps the model's context small).
MAX_RESULTS = 50


class RecallArgs(BaseModel):
    query: str = Field(
        min_length=1,
        max_length=2000,
        description="the situation or question to recall preferences for, "
        "e.g. 'choosing a drink when dehydrated'",
    )
    k: int = Field(default=5, ge=1, le=MAX_RESULTS, description="how many preferences to return")


class RecordArgs(BaseModel):
    text: str = Field(
        min_length=1,
        max_length=MAX_MEMORY_CHARS,
        description="the preference in the user's own words, e.g. 'I drink ice water when "
        "dehydrated, never coffee'",
    )
    topic: str = Field(
        default="",
        max_length=500,
        description="the situation it applies to, e.g. 'dehydrated' or 'microwave oven'",
    )
    replaces: str | None = Field(
        default=None,
        description="id of an older preference this one replaces (it is kept as history); "
        "omit to add a new preference",
    )


class ListArgs(BaseModel):
    include_superseded: bool = Field(
        default=False, description="also list preferences that were replaced"
    )


def _view(record: MemoryRecord, score: float | None = None) -> dict[str, Any]:
    """What the model sees of a record: enough to cite or revise it, no internal history."""
    out: dict[str, Any] = {
        "id": record.id,
        "text": record.text,
        "topic": record.topic,
        "status": record.status,
        "confidence": record.confidence,
    }
    if score is not None:
        out["score"] = round(score, 3)
    return out


class _MemoryToolkit:
    """The three tool functions over one store, resolving the user per call."""

    def __init__(self, memory: PreferenceMemory, user_id: str | None, domain: str) -> None:
        self.memory = memory
        self.user_id = None if user_id is None else validate_user_id(user_id)
        self.domain = domain

    def user(self, config: RunnableConfig | None) -> str:
        configurable = (config or {}).get("configurable") or {}
        sources = {
            "the tools' binding": self.user_id,
            "the run context": _context_user(),
            "config['configurable']": configurable.get(USER_ID_KEY),
        }
        given = {where: user for where, user in sources.items() if user is not None}
        if len(set(map(str, given.values()))) > 1:
            said = ", ".join(f"{where} says {user!r}" for where, user in given.items())
            raise ToolException(f"the user id is ambiguous ({said}): refusing to mix users")
        if not given:
            raise ToolException(
                "no user id: run the tools with context={'user_id': ...} (as the PAHF graph), "
                "or bind them to a user"
            )
        try:
            return validate_user_id(next(iter(given.values())))
        except ValueError as exc:
            raise ToolException(f"bad user id for the memory tools: {exc}") from exc

    def recall(
        self, query: str, config: RunnableConfig, k: int = 5
    ) -> tuple[str, list[dict[str, Any]]]:
        found = self.memory.search(self.user(config), query, k=k)
        views = [_view(m.record, m.score) for m in found]
        if not views:
            return "No stored preferences match.", []
        return json.dumps(views, ensure_ascii=False), views

    def record(
        self, text: str, config: RunnableConfig, topic: str = "", replaces: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        user = self.user(config)
        try:
            new = NewMemory(text=text, topic=topic.strip(), domain=self.domain, source="manual")
        except ValueError as exc:
            raise ToolException(f"record_preference: {exc}") from exc
        if replaces:
            try:
                rec = self.memory.supersede(user, replaces, new)
            except (PreferenceMemoryError, ValueError) as exc:
                raise ToolException(f"record_preference: nothing stored: {exc}") from exc
            view = _view(rec)
            return f"Recorded {rec.id}, replacing {replaces}.", view
        for existing in self.memory.get_all(user, include_superseded=False):
            if existing.text == new.text and existing.topic == new.topic:
                # The same statement again (agents repeat calls): no duplicate record.
                return f"Already recorded as {existing.id}.", _view(existing)
        rec = self.memory.add(user, new)
        return f"Recorded {rec.id}.", _view(rec)

    def list_all(
        self, config: RunnableConfig, include_superseded: bool = False
    ) -> tuple[str, list[dict[str, Any]]]:
        records = self.memory.get_all(self.user(config), include_superseded=include_superseded)
        views = [_view(r) for r in records[-MAX_RESULTS:]]
        if not views:
            return "No preferences stored yet.", []
        return json.dumps(views, ensure_ascii=False), views


def _context_user() -> Any:
    """The current graph run's context ``user_id`` (None outside a run or without one)."""
    try:
        runtime = get_runtime()
    except (RuntimeError, KeyError):  # not inside a runnable call
        return None
    context = getattr(runtime, "context", None)
    if isinstance(context, dict):
        return context.get("user_id")
    return getattr(context, "user_id", None)


def _explain_bad_arguments(exc: Exception) -> str:
    """Malformed tool arguments go back to the model naming the field, so it can retry."""
    return f"invalid arguments: {exc}"


def make_memory_tools(
    memory: PreferenceMemory, *, user_id: str | None = None, domain: str = "general"
) -> list[BaseTool]:
    """``[recall_preferences, record_preference, list_preferences]`` over ``memory``.

    ``user_id`` binds the tools to one user (a run for another user is refused); without it
    each call reads the user from the run context's ``user_id``, as the PAHF graph does (or,
    for older hosts, ``config["configurable"]["user_id"]``), so one set of tools serves every
    user of an agent.
    Tool errors (unknown memory id, no user) come back to the model as the tool's message
    instead of crashing the agent. Each tool returns JSON text for the model and the same
    records as the message's ``artifact``.
    """
    kit = _MemoryToolkit(memory, user_id, domain)
    recall = StructuredTool.from_function(
        kit.recall,
        name="recall_preferences",
        description="Look up what this user told us they prefer in a situation. Call it before "
        "choosing anything on the user's behalf.",
        args_schema=RecallArgs,
        response_format="content_and_artifact",
        handle_tool_error=True,
        handle_validation_error=_explain_bad_arguments,
    )
    record = StructuredTool.from_function(
        kit.record,
        name="record_preference",
        description="Remember a preference the user just stated, in their own words. When it "
        "contradicts a recalled preference, pass that preference's id as `replaces`.",
        args_schema=RecordArgs,
        response_format="content_and_artifact",
        handle_tool_error=True,
        handle_validation_error=_explain_bad_arguments,
    )
    listing = StructuredTool.from_function(
        kit.list_all,
        name="list_preferences",
        description="List every preference stored for this user, oldest first.",
        args_schema=ListArgs,
        response_format="content_and_artifact",
        handle_tool_error=True,
        handle_validation_error=_explain_bad_arguments,
    )
    return [recall, record, listing]
