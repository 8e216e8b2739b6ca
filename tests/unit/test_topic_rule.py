"""One topic rule for every reasoner: a memory learned from the same request gets the same
topic whichever reasoner learned it, so a store written by one reads the same to the other."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from pahf.decisions import Turn
from pahf.memory.embeddings import HashingEmbeddingFunction, encoder_of
from pahf.reasoners.llm import LLMReasoner
from pahf.reasoners.offline import OfflineReasoner
from pahf.request import Candidate, Request


class _LearnOnce(BaseChatModel):
    """Answers the learn decision once, through a tool call (LangChain's structured output)."""

    @property
    def _llm_type(self) -> str:
        return "learn-once"

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        args = {"wants": "ice-cold water", "refuses": "", "revises_memory_id": None}
        name = kw["tools"][0]["function"]["name"]
        msg = AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "c1"}])
        return ChatResult(generations=[ChatGeneration(message=msg)])


def _request(context: str) -> Request:
    return Request(
        user_id="alex",
        task="Could you bring me something to drink?",
        context=context,
        candidates=[Candidate(id="A", text="ice-cold water"), Candidate(id="B", text="coffee")],
    )


def test_both_reasoners_store_the_same_topic_for_the_same_request() -> None:
    offline = OfflineReasoner(encoder_of(HashingEmbeddingFunction()))
    llm = LLMReasoner(_LearnOnce())
    turn = Turn(kind="clarification", text="When I'm dehydrated I want ice-cold water.")
    for context in ("Dehydrated", ""):
        request = _request(context)
        [by_offline] = offline.learn(request, turn, [])
        [by_llm] = llm.learn(request, turn, [])
        assert by_offline.memory is not None and by_llm.memory is not None
        assert by_offline.memory.topic == by_llm.memory.topic == request.topic()
    assert _request("Dehydrated").topic() == "Dehydrated: Could you bring me something to drink?"
