"""An ordinary tool-calling LangGraph agent that gains preference memory through three tools.

The agent is the usual model -> tools -> model loop (``ToolNode`` + ``tools_condition``); the
only PAHF piece is ``make_memory_tools(store)``. Which user's memory a call touches comes from
``config["configurable"]["user_id"]``, set by the host app, never from the model.

To stay runnable offline the demo drives the agent with :class:`ScriptedToolModel`, a small
deterministic chat model that implements ``bind_tools`` (it records statements of preference and
recalls before answering questions). Any LangChain chat model with tool calling works in its
place, e.g. ``build_agent(ChatOpenAI(model=...), tools)``.

    python examples/memory_tools_agent.py
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import Field

from pahf.memory.base import PreferenceMemory
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.tools import make_memory_tools

_PREFERENCE = re.compile(r"\b(i (?:prefer|like|love|want|always|never|hate|don't|do not))\b", re.I)
_SITUATION = re.compile(r"\b(?:when|while|if|for)\b\s+(.+?)[.!?]*$", re.I)


class ScriptedToolModel(BaseChatModel):
    """A deterministic stand-in for a tool-calling chat model (offline demos and tests).

    A statement of preference ("I prefer ... when ...") becomes a ``record_preference`` call;
    any other user message becomes a ``recall_preferences`` call; after a tool result it
    answers in plain text from that result.
    """

    tool_names: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "pahf-scripted-tool-model"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        names = [convert_to_openai_tool(tool)["function"]["name"] for tool in tools]
        return self.model_copy(update={"tool_names": names})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(content=self._answer_from(last))
        text = str(last.content)
        call_id = f"call-{len(messages)}"
        if _PREFERENCE.search(text) and "record_preference" in self.tool_names:
            situation = _SITUATION.search(text)
            args = {"text": text, "topic": situation.group(1) if situation else ""}
            return AIMessage(
                content="",
                tool_calls=[{"name": "record_preference", "args": args, "id": call_id}],
            )
        if "recall_preferences" in self.tool_names:
            return AIMessage(
                content="",
                tool_calls=[{"name": "recall_preferences", "args": {"query": text}, "id": call_id}],
            )
        return AIMessage(content="I have no memory to consult.")

    @staticmethod
    def _answer_from(result: ToolMessage) -> str:
        if result.status == "error":
            return f"Sorry, that failed: {result.content}"
        if result.name == "record_preference":
            return f"Got it, I will remember that. ({result.content})"
        found = result.artifact or []
        if not found:
            return "I don't know your preference here yet. What would you like?"
        return "Going by what you told me: " + "; ".join(m["text"] for m in found[:2])


def build_agent(model: BaseChatModel, tools: list[BaseTool]) -> CompiledStateGraph[
    Any, Any, Any, Any
]:
    """The standard tool-calling loop: model, then tools while the model asks for them."""
    bound = model.bind_tools(tools)

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition, ["tools", END])
    builder.add_edge("tools", "model")
    return builder.compile(name="agent-with-preference-memory")


def chat(
    agent: CompiledStateGraph[Any, Any, Any, Any], user_id: str, text: str
) -> list[BaseMessage]:
    """One user turn; the host app says whose memory the tools may touch."""
    out = agent.invoke(
        {"messages": [HumanMessage(text)]}, {"configurable": {"user_id": user_id}}
    )
    messages: list[BaseMessage] = out["messages"]
    return messages


def main(memory: PreferenceMemory | None = None) -> list[str]:
    """Alice states a preference and later relies on it; Bob's memory stays separate."""
    store = memory if memory is not None else ChromaPreferenceMemory.in_memory()
    agent = build_agent(ScriptedToolModel(), make_memory_tools(store))
    transcript: list[str] = []
    for user, text in [
        ("alice", "I prefer ice water when I am dehydrated."),
        ("alice", "I am dehydrated, what should I drink?"),
        ("bob", "I am dehydrated, what should I drink?"),
    ]:
        messages = chat(agent, user, text)
        calls = [c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
        transcript.append(f"{user}: {text}")
        transcript.append(f"  tools: {json.dumps(calls)}")
        transcript.append(f"  agent: {messages[-1].content}")
    return transcript


if __name__ == "__main__":
    for line in main():
        print(line)
