"""Preference memory as LangChain tools, so an existing tool-calling agent can use it.

Three tools: ``recall_preferences`` (search), ``record_preference`` (store, or revise an older
preference, keeping its history) and ``list_preferences``.

Whose memory a call touches is never the model's choice: the user id is bound when the tools
are made, or read from the run's config (``config["configurable"]["user_id"]``), and it is not
part of any tool's argument schema. A prompt-injected model therefore cannot read or write
another user's preferences; the host application, which knows who is logged in, decides.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

from pahf.memory.base import MemoryError_, PreferenceMemory
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
        user = configurable.get(USER_ID_KEY)
        if self.user_id is not None:
            if user is not None and user != self.user_id:
                raise ToolException(
                    f"these tools are bound to user {self.user_id!r} but the run is for "
                    f"{user!r}: refusing to mix users"
                )
            return self.user_id
        if user is None:
            raise ToolException(
                "no user id: bind the memory tools to a user or run them with "
                f"config={{'configurable': {{'{USER_ID_KEY}': ...}}}}"
            )
        try:
            return validate_user_id(user)
        except ValueError as exc:
            raise ToolException(f"bad user id in the run config: {exc}") from exc

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
            except (MemoryError_, ValueError) as exc:
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


def _explain_bad_arguments(exc: Exception) -> str:
    """Malformed tool arguments go back to the model naming the field, so it can retry."""
    return f"invalid arguments: {exc}"


def make_memory_tools(
    memory: PreferenceMemory, *, user_id: str | None = None, domain: str = "general"
) -> list[BaseTool]:
    """``[recall_preferences, record_preference, list_preferences]`` over ``memory``.

    ``user_id`` binds the tools to one user (a run configured for another user is refused);
    without it each call reads the user from ``config["configurable"]["user_id"]`` (LangGraph
    passes a run's config to its tools), so one set of tools serves every user of an agent.
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
