"""DirectChatOpenAI sends what ChatOpenAI sends and returns what it returns, without the SDK's
request transform; anything it does not handle goes through ChatOpenAI unchanged."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from openai.lib import _chat_completion_resources

from pahf.reasoners.direct_openai import DirectChatOpenAI, is_plain_json
from pahf.reasoners.settings import LLMSettings

SCHEMA = {
    "title": "choice",
    "type": "object",
    "properties": {
        "candidate_id": {"type": "string", "enum": ["A", "B"]},
        "rationale": {"type": "string"},
    },
    "required": ["candidate_id", "rationale"],
    "additionalProperties": False,
}
MESSAGES = [SystemMessage("Pick one."), HumanMessage("Coffee or tea? A: coffee, B: tea")]


def completion(content: str, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "system_fingerprint": "fp",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
    }


class Recorder:
    """MockTransport handler: answers every request with ``reply`` and keeps the requests."""

    def __init__(self, reply: Callable[[], httpx.Response]) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.reply()


def model(cls: type[ChatOpenAI], recorder: Recorder, **kwargs: Any) -> ChatOpenAI:
    return cls(
        model="m",
        api_key="k",
        base_url="http://llm.invalid/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(recorder)),
        max_retries=0,
        temperature=0,
        max_tokens=64,
        **kwargs,
    )


def structured(chat: BaseChatModel) -> Any:
    return chat.with_structured_output(SCHEMA, method="json_schema", strict=True, include_raw=True)


def both(reply: Callable[[], httpx.Response]) -> tuple[Recorder, ChatOpenAI, Recorder, ChatOpenAI]:
    stock, direct = Recorder(reply), Recorder(reply)
    return stock, model(ChatOpenAI, stock), direct, model(DirectChatOpenAI, direct)


def ok_reply() -> httpx.Response:
    return httpx.Response(200, json=completion('{"candidate_id": "A", "rationale": "r"}'))


def comparable(message: AIMessage) -> dict[str, Any]:
    data = message.model_dump()
    data.pop("id")  # LangChain's run id
    return data


def test_the_request_and_the_reply_are_chat_openais() -> None:
    stock_log, stock, direct_log, direct = both(ok_reply)
    expected = structured(stock).invoke(MESSAGES)
    got = structured(direct).invoke(MESSAGES)
    assert got["parsed"] == expected["parsed"] == {"candidate_id": "A", "rationale": "r"}
    assert comparable(got["raw"]) == comparable(expected["raw"])
    assert got["raw"].usage_metadata["total_tokens"] == 16
    [sent], [wanted] = direct_log.requests, stock_log.requests
    assert (sent.method, sent.url) == (wanted.method, wanted.url)
    assert json.loads(sent.content) == json.loads(wanted.content)
    # ChatOpenAI asks the SDK for the raw response (to read its headers) by this header.
    assert {**sent.headers, "x-stainless-raw-response": "true"} == dict(wanted.headers)


def test_the_sdk_transform_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the class: the SDK's parse (and its transform) is not run."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the SDK's request transform ran")

    monkeypatch.setattr(_chat_completion_resources, "maybe_transform", refuse)
    _, stock, _, direct = both(ok_reply)
    assert structured(direct).invoke(MESSAGES)["parsed"]["candidate_id"] == "A"
    with pytest.raises(AssertionError, match="transform ran"):
        structured(stock).invoke(MESSAGES)


@pytest.mark.parametrize("finish", ["length", "content_filter"])
def test_a_cut_off_or_filtered_reply_raises_what_chat_openai_raises(finish: str) -> None:
    def reply() -> httpx.Response:
        return httpx.Response(200, json=completion('{"candidate_id": "A", "rat', finish))

    _, stock, _, direct = both(reply)
    with pytest.raises(openai.OpenAIError) as wanted:
        structured(stock).invoke(MESSAGES)
    with pytest.raises(openai.OpenAIError) as got:
        structured(direct).invoke(MESSAGES)
    assert type(got.value) is type(wanted.value)
    assert type(got.value).__name__ in ("LengthFinishReasonError", "ContentFilterFinishReasonError")
    assert got.value.completion.choices[0].message.content == '{"candidate_id": "A", "rat'  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 503])
def test_http_errors_raise_what_chat_openai_raises(status: int) -> None:
    def reply() -> httpx.Response:
        return httpx.Response(status, json={"error": {"message": f"scripted {status}"}})

    _, stock, _, direct = both(reply)
    with pytest.raises(Exception) as wanted:
        structured(stock).invoke(MESSAGES)
    with pytest.raises(Exception) as got:
        structured(direct).invoke(MESSAGES)
    assert type(got.value) is type(wanted.value)
    assert str(got.value) == str(wanted.value)


def test_what_it_does_not_handle_goes_through_chat_openai() -> None:
    """Tool calls (function_calling), plain chat and streaming are ChatOpenAI's own path."""
    tool_reply = completion("")
    tool_reply["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "choice", "arguments": '{"candidate_id": "B", "rationale": "r"}'},
            }
        ],
    }
    tool_reply["choices"][0]["finish_reason"] = "tool_calls"
    stock_log, stock, direct_log, direct = both(lambda: httpx.Response(200, json=tool_reply))
    runs = [
        chat.with_structured_output(SCHEMA, method="function_calling").invoke(MESSAGES)
        for chat in (stock, direct)
    ]
    assert runs[0] == runs[1] == {"candidate_id": "B", "rationale": "r"}
    assert json.loads(direct_log.requests[0].content) == json.loads(stock_log.requests[0].content)
    assert "tools" in json.loads(direct_log.requests[0].content)
    plain = direct.invoke("hi")
    assert isinstance(plain, AIMessage) and plain.tool_calls


def test_direct_only_for_plain_json_structured_requests() -> None:
    chat = model(DirectChatOpenAI, Recorder(ok_reply))
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": False}
    rf = {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA, "strict": True}}
    assert chat.direct({**base, "response_format": rf})  # type: ignore[attr-defined]
    assert not chat.direct(base)  # type: ignore[attr-defined]
    assert not chat.direct({**base, "response_format": rf, "tools": []})  # type: ignore[attr-defined]
    assert not chat.direct({**base, "response_format": rf, "stream": True})  # type: ignore[attr-defined]
    odd = {**base, "response_format": rf, "metadata": {"when": object()}}
    assert not chat.direct(odd)  # type: ignore[attr-defined]
    headers = model(DirectChatOpenAI, Recorder(ok_reply), include_response_headers=True)
    assert not headers.direct({**base, "response_format": rf})  # type: ignore[attr-defined]


def test_is_plain_json() -> None:
    assert is_plain_json({"a": [1, 2.5, "x", None, True, {"b": []}]})
    assert not is_plain_json({"a": (1, 2)})
    assert not is_plain_json({1: "x"})
    assert not is_plain_json([b"bytes"])


def test_settings_build_it_and_response_caches_still_match() -> None:
    """The serialised model (what LangChain's response caches key on) is ChatOpenAI's, so a
    cache written before this class existed still answers."""
    chat = LLMSettings.resolve(env={}, model="m", base_url="http://llm.invalid/v1").chat_model()
    assert isinstance(chat, DirectChatOpenAI)
    recorder = Recorder(ok_reply)
    assert model(DirectChatOpenAI, recorder)._get_llm_string() == model(
        ChatOpenAI, recorder
    )._get_llm_string()


def test_without_the_private_helpers_settings_fall_back_to_chat_openai(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A release of the SDK or of langchain-openai that moves a private helper makes the import
    # fail: the model must still be built, as plain ChatOpenAI.
    monkeypatch.setitem(sys.modules, "pahf.reasoners.direct_openai", None)
    chat = LLMSettings.resolve(env={}, model="m", base_url="http://llm.invalid/v1").chat_model()
    assert type(chat) is ChatOpenAI
