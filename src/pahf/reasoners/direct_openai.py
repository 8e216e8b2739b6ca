"""``ChatOpenAI`` whose structured calls send their request without the OpenAI SDK's transform.

Why: ``ChatOpenAI`` sends a structured (``response_format``) call through the SDK's
``chat.completions.parse``, which first runs ``maybe_transform`` over the whole request: a
recursive walk of every message and of the JSON schema against the SDK's typed-dict unions,
there to rename aliased keys and format dates or files. The chat request has no such keys, and
LangChain's payload is plain JSON already, so the walk returns its input unchanged; it was the
largest single cost of the evaluation harness per model call (a quarter of its CPU at 32 users
in flight, bench/README.md section 6), all of it under the GIL the other users' threads wait on.

:class:`DirectChatOpenAI` posts such a payload as it is, through the same SDK client (its HTTP
pool, timeout, headers, error types), with the checks ``parse`` makes of the reply, so the
request on the wire, the message returned and the errors raised are those of ``ChatOpenAI``
(tests/unit/test_direct_openai.py compares them). Anything else (async calls, streaming,
tools, the Responses API, response headers, the LangSmith gateway, payloads holding more than
JSON values) takes ``ChatOpenAI``'s own path.
"""

from __future__ import annotations

from typing import Any

import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import (
    _handle_openai_api_error,
    _handle_openai_bad_request,
)
from openai._base_client import make_request_options
from openai.types.chat import ChatCompletion

#: Request keys the SDK takes as request options rather than as the JSON body.
_OPTION_KEYS = ("extra_headers", "extra_query", "extra_body", "timeout")
#: Payload keys whose SDK handling is more than copying them (parsed tool definitions).
_SDK_ONLY_KEYS = ("tools", "functions", "stream_options")


def is_plain_json(value: Any) -> bool:
    """``value`` is built from JSON's types only (what the SDK's transform leaves unchanged)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_plain_json(v) for v in value)
    return False


class DirectChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` that posts plain-JSON structured calls without the SDK's request transform
    (see the module docstring); every other call is ``ChatOpenAI``'s."""

    @classmethod
    def lc_id(cls) -> list[str]:
        """``ChatOpenAI``'s: response caches key on the serialised model, which must not change
        because this class sends the same requests faster."""
        return ChatOpenAI.lc_id()

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        """``ChatOpenAI``'s too (it is part of the serialised model, and of traces)."""
        if name is None and not self.name:
            name = ChatOpenAI.__name__
        return super().get_name(suffix, name=name)

    def direct(self, payload: dict[str, Any]) -> bool:
        """Whether this request payload takes the direct path."""
        return (
            isinstance(payload.get("response_format"), dict)
            and not payload.get("stream")
            and not any(key in payload for key in _SDK_ONLY_KEYS)
            and not self.include_response_headers
            and not self._uses_gateway
            and is_plain_json({k: v for k, v in payload.items() if k not in _OPTION_KEYS})
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._ensure_sync_client_available()
        payload = self._get_request_payload(messages, stop=stop, **kwargs)
        if not self.direct(payload):
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        payload.pop("stream", None)
        extra_headers = payload.pop("extra_headers", None) or {}
        options = make_request_options(
            # What ``chat.completions.parse`` sends, so the server sees the same request.
            extra_headers={"X-Stainless-Helper-Method": "chat.completions.parse", **extra_headers},
            extra_query=payload.pop("extra_query", None),
            extra_body=payload.pop("extra_body", None),
            timeout=payload.pop("timeout", openai.NOT_GIVEN),
            post_parser=_check_finish,
            security={"bearer_auth": True},
        )
        try:
            response = self.root_client.post(
                "/chat/completions",
                body={"stream": False, **payload},
                options=options,
                cast_to=ChatCompletion,
                stream=False,
            )
        except openai.BadRequestError as e:
            _handle_openai_bad_request(e)
            raise
        except openai.APIError as e:
            _handle_openai_api_error(e)
            raise
        result = self._create_chat_result(response, {})
        # What the SDK's parse adds for a JSON-schema response format: nothing parsed (the
        # reasoner parses), but the key is there.
        result.generations[0].message.additional_kwargs["parsed"] = None
        return result


def _check_finish(completion: ChatCompletion) -> ChatCompletion:
    """What ``chat.completions.parse`` checks before returning a JSON-schema reply: a reply cut
    at the token limit or by a content filter raises, with the completion attached. (Its
    ``ParsedChatCompletion`` copy, a second model construction, holds nothing more for a
    JSON-schema format without tools: ``parsed`` is None.)"""
    for choice in completion.choices:
        if choice.finish_reason == "length":
            raise openai.LengthFinishReasonError(completion=completion)
        if choice.finish_reason == "content_filter":
            raise openai.ContentFilterFinishReasonError(completion=completion)
    return completion
