"""The memory tools: what the model can call, whose memory each call touches, and errors."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.schema import MAX_MEMORY_CHARS, NewMemory
from pahf.memory.tools import MAX_RESULTS, make_memory_tools


def tools_by_name(memory: ChromaPreferenceMemory, **kwargs: Any) -> dict[str, BaseTool]:
    return {tool.name: tool for tool in make_memory_tools(memory, **kwargs)}


def call(tool: BaseTool, args: dict[str, Any], user: str | None = "alice") -> ToolMessage:
    """Invoke a tool the way an agent does: a tool call, with the run's config."""
    config: Any = {"configurable": {"user_id": user}} if user is not None else {}
    message = tool.invoke(
        {"type": "tool_call", "id": "call-1", "name": tool.name, "args": args}, config=config
    )
    assert isinstance(message, ToolMessage)
    return message


def test_the_model_never_chooses_the_user(hashing_memory: ChromaPreferenceMemory) -> None:
    tools = tools_by_name(hashing_memory)
    assert set(tools) == {"recall_preferences", "record_preference", "list_preferences"}
    for tool in tools.values():
        schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
        assert "user_id" not in schema["properties"]
        assert "config" not in schema["properties"]
        assert tool.description


def test_record_then_recall_for_the_configured_user(hashing_memory: ChromaPreferenceMemory) -> None:
    tools = tools_by_name(hashing_memory, domain="drinks")
    stored = call(tools["record_preference"], {"text": "ice water when dehydrated", "topic": "dehydrated"})
    assert stored.status == "success" and stored.artifact["text"] == "ice water when dehydrated"
    [record] = hashing_memory.get_all("alice")
    assert (record.topic, record.domain, record.source) == ("dehydrated", "drinks", "manual")

    recalled = call(tools["recall_preferences"], {"query": "dehydrated, what to drink", "k": 3})
    assert json.loads(str(recalled.content)) == recalled.artifact
    assert [m["id"] for m in recalled.artifact] == [record.id]
    assert 0 < recalled.artifact[0]["score"] <= 1


def test_users_never_see_each_other(hashing_memory: ChromaPreferenceMemory) -> None:
    tools = tools_by_name(hashing_memory)
    call(tools["record_preference"], {"text": "alice: ice water", "topic": "dehydrated"}, "alice")
    call(tools["record_preference"], {"text": "bob: hot coffee", "topic": "dehydrated"}, "bob")
    bob_recall = call(tools["recall_preferences"], {"query": "alice: ice water", "k": 10}, "bob")
    assert [m["text"] for m in bob_recall.artifact] == ["bob: hot coffee"]
    carol = call(tools["list_preferences"], {}, "carol")
    assert carol.artifact == [] and "No preferences" in str(carol.content)


def test_no_user_is_an_error_and_stores_nothing(hashing_memory: ChromaPreferenceMemory) -> None:
    tools = tools_by_name(hashing_memory)
    out = call(tools["record_preference"], {"text": "ice water"}, user=None)
    assert out.status == "error" and "no user id" in str(out.content)
    bad = call(tools["record_preference"], {"text": "ice water"}, user="evil\x00id")
    assert bad.status == "error" and "control characters" in str(bad.content)
    assert hashing_memory.users() == []


def test_bound_tools_refuse_a_run_for_another_user(hashing_memory: ChromaPreferenceMemory) -> None:
    tools = tools_by_name(hashing_memory, user_id="alice")
    assert call(tools["record_preference"], {"text": "ice water"}, user=None).status == "success"
    assert call(tools["list_preferences"], {}, user="alice").status == "success"
    refused = call(tools["list_preferences"], {}, user="bob")
    assert refused.status == "error" and "refusing to mix users" in str(refused.content)


def test_repeated_statement_is_not_duplicated(hashing_memory: ChromaPreferenceMemory) -> None:
    tools = tools_by_name(hashing_memory)
    first = call(tools["record_preference"], {"text": "ice water", "topic": "dehydrated"})
    again = call(tools["record_preference"], {"text": "ice water", "topic": "dehydrated"})
    assert again.artifact["id"] == first.artifact["id"] and "Already recorded" in str(again.content)
    other_topic = call(tools["record_preference"], {"text": "ice water", "topic": "at dinner"})
    assert other_topic.artifact["id"] != first.artifact["id"]
    assert hashing_memory.count("alice") == 2


def test_replacing_keeps_the_old_preference_as_history(
    hashing_memory: ChromaPreferenceMemory,
) -> None:
    tools = tools_by_name(hashing_memory)
    old = call(tools["record_preference"], {"text": "ice water", "topic": "dehydrated"}).artifact
    new = call(
        tools["record_preference"],
        {"text": "hot coffee now", "topic": "dehydrated", "replaces": old["id"]},
    ).artifact
    assert [r.id for r in hashing_memory.history("alice", new["id"])] == [old["id"], new["id"]]
    active = call(tools["list_preferences"], {}).artifact
    assert [m["id"] for m in active] == [new["id"]]
    everything = call(tools["list_preferences"], {"include_superseded": True}).artifact
    assert {m["id"]: m["status"] for m in everything} == {
        old["id"]: "superseded",
        new["id"]: "active",
    }
    # Replacing the old version again is refused: the newest one must be revised.
    again = call(tools["record_preference"], {"text": "tea", "replaces": old["id"]})
    assert again.status == "error" and "already superseded" in str(again.content)
    assert hashing_memory.count("alice") == 2


def test_bad_arguments_come_back_to_the_model(hashing_memory: ChromaPreferenceMemory) -> None:
    tools = tools_by_name(hashing_memory)
    hashing_memory.add("alice", NewMemory(text="ice water", topic="dehydrated"))
    unknown = call(tools["record_preference"], {"text": "tea", "replaces": "m-nope"})
    assert unknown.status == "error" and "m-nope" in str(unknown.content)
    empty = call(tools["record_preference"], {"text": ""})
    assert empty.status == "error" and "text" in str(empty.content)
    huge = call(tools["record_preference"], {"text": "x" * (MAX_MEMORY_CHARS + 1)})
    assert huge.status == "error" and "text" in str(huge.content)
    too_many = call(tools["recall_preferences"], {"query": "water", "k": MAX_RESULTS + 1})
    assert too_many.status == "error" and "k" in str(too_many.content)
    assert [r.text for r in hashing_memory.get_all("alice")] == ["ice water"]  # nothing lost


def test_tools_run_inside_a_langgraph_tool_node(hashing_memory: ChromaPreferenceMemory) -> None:
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode(make_memory_tools(hashing_memory)))
    builder.add_edge(START, "tools")
    graph = builder.compile()
    request = AIMessage(
        content="",
        tool_calls=[
            {"name": "record_preference", "args": {"text": "window seat"}, "id": "c1"},
            {"name": "list_preferences", "args": {}, "id": "c2"},
        ],
    )
    out = graph.invoke({"messages": [request]}, {"configurable": {"user_id": "dora"}})
    recorded, listed = out["messages"][1:]
    assert recorded.tool_call_id == "c1" and recorded.status == "success"
    assert listed.tool_call_id == "c2"
    assert hashing_memory.get_all("dora")[0].text == "window seat"


def _tool_graph(memory: ChromaPreferenceMemory) -> Any:
    """A graph with the PAHF run context (as an agent beside the PAHF graph would have)."""
    from pahf.context import RunContext

    builder = StateGraph(MessagesState, context_schema=RunContext)
    builder.add_node("tools", ToolNode(make_memory_tools(memory)))
    builder.add_edge(START, "tools")
    return builder.compile()


def _record_call(text: str) -> dict[str, Any]:
    call_ = {"name": "record_preference", "args": {"text": text}, "id": "c1", "type": "tool_call"}
    return {"messages": [AIMessage(content="", tool_calls=[call_])]}


def test_tools_take_the_user_from_the_run_context_like_the_graph(
    hashing_memory: ChromaPreferenceMemory,
) -> None:
    """The graph reads the run context's user_id; the tools read only configurable before, so
    an app passing context={"user_id": ...} to both got "no user id" from the tools."""
    graph = _tool_graph(hashing_memory)
    out = graph.invoke(_record_call("ice water"), context={"user_id": "alice"})
    assert out["messages"][-1].status == "success", out["messages"][-1].content
    assert [r.text for r in hashing_memory.get_all("alice")] == ["ice water"]
    clash = graph.invoke(
        _record_call("hot coffee"),
        {"configurable": {"user_id": "bob"}},
        context={"user_id": "alice"},
    )
    reply = clash["messages"][-1]
    assert reply.status == "error" and "refusing to mix users" in str(reply.content)
    assert "run context says 'alice'" in str(reply.content)
    assert hashing_memory.users() == ["alice"]
