"""The LLM reasoner: PAHF's decisions made by any LangChain chat model, as structured output.

Each decision is one ``with_structured_output`` call with the JSON schema
:mod:`pahf.reasoners.prompts` gives that call (the ids on offer are enums), and the reply is
checked against the request before it is used: the chosen option must be one of the request's
candidates, a revised memory must be one of the memories the model was shown. What is safely
repairable is repaired (case, whitespace, quotes around an id, a revision id on an ``add``, a
``supersede`` with nothing to supersede); anything else is sent back once with the error, then
the decision fails with :class:`LLMDecisionError`, naming the decision and the graph node and
keeping the model's raw replies.

Calls per episode are kept low:

* ``assess`` also picks the option when the request is clear and returns it in the assessment
  (``Assessment.proposed``); the ``act`` node takes it from the graph state, so a clear request
  costs one call in total and nothing is hidden in the reasoner;
* ``learn`` runs only on an answer or a correction (an accepted action costs nothing), and is
  one call that decides whether there is a preference, its text and what it replaces.

The reasoner never writes memory: it returns ops, and nodes apply them only after ``learn``
returned, so a failed call leaves the store as it was. It keeps no state between calls, so one
instance serves every user and thread.

Failures are sorted by what they mean for a run: a model that answered unusably, ran into the
token cap or the timeout (:class:`LLMOutputError`, :class:`LLMOverrunError`) failed that
decision; a model that cannot be reached after the retries (:class:`LLMCallError`) fails
everything that follows.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from langchain_core.exceptions import (
    ModelError,
    ModelRefusalError,
    ModelTimeoutError,
    OutputParserException,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableBinding, RunnableSequence
from pydantic import BaseModel, ValidationError

from pahf.decisions import Action, Assessment, Turn
from pahf.memory.schema import MemoryOp, NewMemory, RetrievedMemory
from pahf.reasoners.prompts import (
    DecisionSchema,
    assess_messages,
    assess_schema,
    choose_messages,
    choose_schema,
    cut_off_message,
    enum_errors,
    json_mode_instruction,
    learn_messages,
    learn_schema,
    retry_message,
    revisable_aliases,
)
from pahf.reasoners.settings import DEFAULT_MODEL, LLMConfigError, LLMSettings
from pahf.reasoners.stances import contradicts, refused_options
from pahf.request import Candidate, Request

__all__ = [
    "DEFAULT_MODEL",
    "LLMCallError",
    "LLMConfigError",
    "LLMDecisionError",
    "LLMOutputError",
    "LLMOverrunError",
    "LLMReasoner",
    "LLMSettings",
    "UnusableReply",
    "chat_model_from_settings",
    "run_decision",
]
StructuredMethod = Literal["json_schema", "function_calling", "json_mode"]
STRUCTURED_METHODS: tuple[StructuredMethod, ...] = ("json_schema", "function_calling", "json_mode")

#: The graph node each decision runs in, so an error says where an episode stopped.
DECISION_NODES = {
    "assess": "ambiguity_detect",
    "choose": "act",
    "learn:clarification": "ask_user",
    "learn:correction": "ingest_feedback",
}

T = TypeVar("T")


# --------------------------------------------------------------------------- errors


#: Why an option was taken without asking the model: the person refused every other one.
_EVERY_OTHER_REFUSED = "Every other option has something they said they do not want."


class LLMDecisionError(RuntimeError):
    """An LLM decision could not be made. Names the decision and the node it runs in.

    Raised out of the graph's ``invoke``. The evaluation harness records an episode whose
    decision failed on the model's output (:class:`LLMOutputError`) as failed and goes on; a
    model it cannot reach (:class:`LLMCallError`) stops the run, to be resumed.
    """

    def __init__(
        self,
        decision: str,
        node: str,
        detail: str,
        *,
        attempts: int,
        errors: Sequence[str] = (),
        replies: Sequence[str] = (),
    ) -> None:
        where = f"{node}: " if node else ""
        super().__init__(
            f"{where}LLM decision {decision!r} failed after {attempts} attempt(s): {detail}"
        )
        self.decision = decision
        self.node = node
        self.detail = detail
        self.attempts = attempts
        self.errors = list(errors)
        #: The model's raw reply of every failed attempt ("" where none arrived), kept so an
        #: episode record shows what the model said.
        self.replies = list(replies)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled when an evaluation worker process raises it: rebuild from the fields, since
        # the default (the message as the only argument) does not fit this constructor.
        return (
            _rebuild_decision_error,
            (
                type(self), self.decision, self.node, self.detail, self.attempts, self.errors,
                self.replies,
            ),
        )


def _rebuild_decision_error(
    cls: type[LLMDecisionError],
    decision: str,
    node: str,
    detail: str,
    attempts: int,
    errors: Sequence[str],
    replies: Sequence[str] = (),
) -> LLMDecisionError:
    return cls(decision, node, detail, attempts=attempts, errors=errors, replies=replies)


class LLMOutputError(LLMDecisionError):
    """The model answered, but not with a usable decision (malformed or invalid), even after
    being told what was wrong."""


class LLMOverrunError(LLMOutputError):
    """The model did not finish a decision within the timeout: it is too slow for the setting
    or loops. That decision fails (a retry at the same temperature would loop again); the
    server answered, so the run goes on."""


class LLMCallError(LLMDecisionError):
    """The model cannot be reached (connection refused, HTTP 429/5xx after the retries, or a
    non-retryable HTTP error such as 401): every later decision would fail the same way."""


class UnusableReply(Exception):
    """Raised by an attempt whose reply arrived but cannot be used. ``replay=False`` leaves the
    reply out of the retry's conversation (a reply cut off at the length limit: shown its own
    loop, a model loops again)."""

    def __init__(self, error: str, raw_text: str = "", *, replay: bool = True) -> None:
        super().__init__(error)
        self.error = error
        self.raw_text = raw_text
        self.replay = replay


def is_timeout(exc: BaseException) -> bool:
    """The call ran out of time (the server answered too slowly; it is reachable)."""
    if isinstance(exc, ModelTimeoutError):
        return True
    try:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return True
    except ImportError:  # pragma: no cover
        pass
    try:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: timeouts, connection failures, HTTP 408/409/429 and 5xx.

    LangChain's provider-neutral errors say so themselves (``ModelError.is_retryable``);
    the OpenAI SDK, httpx and plain status codes cover models that raise their own.
    """
    if isinstance(exc, ModelError):
        return bool(exc.is_retryable)
    try:
        import openai

        if isinstance(
            exc,
            openai.APITimeoutError
            | openai.APIConnectionError
            | openai.RateLimitError
            | openai.InternalServerError,
        ):
            return True
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        pass
    try:
        import httpx

        if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
            return True
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status in (408, 409, 429) or status >= 500)


def _short(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- the retry loop

#: One attempt's outcome: the reply as text (kept in the conversation for the retry), the
#: value when usable, else the error the model is told about.
AttemptResult = tuple[str, T | None, str | None]


def run_decision(
    attempt: Callable[[list[BaseMessage]], AttemptResult[T]],
    messages: Sequence[BaseMessage],
    *,
    decision: str,
    node: str,
    output_retries: int = 1,
    transport_retries: int = 0,
    backoff_seconds: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt`` until it yields a value.

    An unusable reply is retried ``output_retries`` times with the error appended to the
    conversation (the reply itself too, unless the attempt raised :class:`UnusableReply` with
    ``replay=False``). A transient transport failure (connection, 429, 5xx) is retried
    ``transport_retries`` times with exponential backoff; each retry is a call of its own, so
    usage counts see it. A timeout is not retried: it fails the decision as
    :class:`LLMOverrunError`. Everything else becomes an :class:`LLMCallError`.
    """
    conversation = list(messages)
    errors: list[str] = []
    replies: list[str] = []
    calls = 0
    transport_failures = 0
    output_failures = 0
    while True:
        calls += 1
        replay = True
        try:
            raw_text, value, error = attempt(conversation)
        except UnusableReply as exc:
            raw_text, value, error, replay = exc.raw_text, None, exc.error, exc.replay
        except Exception as exc:
            described = f"{type(exc).__name__}: {_short(str(exc))}"
            errors.append(described)
            replies.append("")
            if is_timeout(exc):
                raise LLMOverrunError(
                    decision, node, f"the model did not answer in time: {described}",
                    attempts=calls, errors=errors, replies=replies,
                ) from exc
            if is_transient(exc) and transport_failures < transport_retries:
                sleep(min(8.0, backoff_seconds * (2**transport_failures)))
                transport_failures += 1
                continue
            raise LLMCallError(
                decision, node, f"the model call failed: {described}", attempts=calls,
                errors=errors, replies=replies,
            ) from exc
        if error is None and value is not None:
            return value
        error = error or "the reply held no decision"
        errors.append(error)
        replies.append(raw_text)
        output_failures += 1
        if output_failures > output_retries:
            raise LLMOutputError(
                decision, node, f"unusable reply: {error}", attempts=calls, errors=errors,
                replies=replies,
            )
        if replay:
            conversation = [
                *messages,
                AIMessage(content=raw_text or "(empty reply)"),
                retry_message(error),
            ]
        else:
            conversation = [*messages, cut_off_message(error)]


@functools.cache
def _output_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a model call raises when the reply arrived but is unusable (not transport).

    Built on first use: importing the OpenAI SDK is slow, and every process that merely
    imports this module (each evaluation worker, the offline CLI) would pay for it."""
    errors: list[type[BaseException]] = [ValidationError, OutputParserException, ModelRefusalError]
    try:
        import openai

        errors += [openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError]
    except (ImportError, AttributeError):  # pragma: no cover - depends on the openai version
        pass
    return tuple(errors)


def _is_length_error(exc: BaseException) -> bool:
    try:
        import openai

        return isinstance(exc, openai.LengthFinishReasonError)
    except (ImportError, AttributeError):  # pragma: no cover
        return False


def _failed_text(exc: BaseException) -> str:
    """The model's text behind a parsing exception, when the exception carries it."""
    completion = getattr(exc, "completion", None)  # openai's LengthFinishReasonError
    if completion is not None:
        try:
            return str(completion.choices[0].message.content or "")
        except (AttributeError, IndexError):
            return ""
    if isinstance(exc, OutputParserException) and exc.llm_output:
        return str(exc.llm_output)
    if isinstance(exc, ValidationError):
        for err in exc.errors():
            if isinstance(err.get("input"), str):
                return str(err["input"])
            if isinstance(err.get("input"), dict):
                return json.dumps(err["input"])
    return ""


def message_text(message: Any) -> str:
    """What a reply said, as text: its content, else the arguments of its tool call."""
    if not isinstance(message, BaseMessage):
        return "" if message is None else str(message)
    content = message.content
    if isinstance(content, str) and content.strip():
        return content
    if isinstance(content, list):
        parts = [
            p if isinstance(p, str) else str(p.get("text", ""))
            for p in content
            if isinstance(p, str | dict)
        ]
        joined = "".join(parts)
        if joined.strip():
            return joined
    if isinstance(message, AIMessage):
        if message.tool_calls:
            return json.dumps(message.tool_calls[0].get("args", {}))
        if message.invalid_tool_calls:
            return str(message.invalid_tool_calls[0].get("args") or "")
    return ""


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.casefold())


def _quoted(phrase: str, message: str) -> bool:
    """Every word of ``phrase`` is a word of ``message`` (any case, order and punctuation),
    and ``phrase`` is not a null word."""
    words = _words(phrase)
    if " ".join(words) in _NULL_WORDS:
        return False
    return set(words) <= set(_words(message))


def _validation_errors(exc: ValidationError) -> str:
    """Pydantic's errors in a line a small model can act on (no URLs, no error codes)."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "the reply"
        got = f" {err['input']!r}" if err.get("type") != "missing" and "input" in err else ""
        parts.append(f"{field}{got}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _cut_off(message: AIMessage) -> bool:
    """The reply stopped at the output token limit (its JSON may still have parsed leniently)."""
    meta = message.response_metadata or {}
    return meta.get("finish_reason") == "length" or meta.get("stop_reason") == "max_tokens"


def _is_chat_openai(model: BaseChatModel) -> bool:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(model, ChatOpenAI)


#: What an id field's value strips off before it is matched (quotes, brackets, list marks).
_ID_JUNK = "()[]{}.:;,'\"`*- \t\n"
_NULL_WORDS = {"", "none", "null", "nil", "n/a", "no"}


def _choices(spec: dict[str, Any]) -> tuple[list[str] | None, bool]:
    """(enum values, nullable) of one property of a generated JSON schema."""
    options = spec.get("anyOf") or [spec]
    values: list[str] | None = None
    nullable = False
    for option in options:
        if option.get("type") == "null":
            nullable = True
        elif "enum" in option:
            values = [str(v) for v in option["enum"]]
        elif "const" in option:
            values = [str(option["const"])]
    return values, nullable


def _match(value: str, values: list[str], nullable: bool) -> str | None:
    """``value`` as one of ``values`` when that is unambiguous after case and whitespace."""
    if value in values:
        return value
    cleaned = " ".join(value.strip(_ID_JUNK).split())
    if nullable and cleaned.casefold() in _NULL_WORDS:
        return None
    folded = [v for v in values if " ".join(v.split()).casefold() == cleaned.casefold()]
    return folded[0] if len(folded) == 1 else value


def _normalized(data: Any, schema: DecisionSchema) -> Any:
    """A parsed reply with what is safely repairable repaired: enum values matched up to case,
    whitespace and quotes, "none"/"null" read as null where null is allowed, text fields
    stripped, keys the schema does not know dropped, and absent text fields empty. What is
    left wrong is left for validation to report."""
    if not isinstance(data, dict):
        return data
    props: dict[str, Any] = schema.json.get("properties", {})
    out: dict[str, Any] = {}
    for name, spec in props.items():
        values, nullable = _choices(spec)
        if name not in data:
            if nullable:
                out[name] = None
            elif spec.get("type") == "string" and values is None:
                out[name] = ""
            continue
        value = data[name]
        if isinstance(value, str):
            value = _match(value, values, nullable) if values is not None else value.strip()
        out[name] = value
    return out


# --------------------------------------------------------------------------- settings


def chat_model_from_settings(
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    temperature: float | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    cache_path: str | Path | None = None,
    max_tokens: int | None = None,
    *,
    settings: LLMSettings | None = None,
) -> BaseChatModel:
    """The chat model of ``settings``, else of :class:`LLMSettings` resolved from these
    arguments over the environment
    (``PAHF_MODEL``, ``PAHF_LLM_BASE_URL`` or ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``,
    ``PAHF_LLM_TIMEOUT``, ``PAHF_LLM_MAX_TOKENS``, ``PAHF_LLM_TEMPERATURE``, ``PAHF_LLM_RETRIES``,
    ``PAHF_LLM_CACHE``). ``ChatOpenAI`` for a plain model name, ``init_chat_model`` for
    ``provider:model``. ``max_retries`` is :attr:`LLMSettings.retries`: the reasoner's own
    retries, so the client's are off.
    """
    if settings is None:
        settings = LLMSettings.resolve(
            model=model,
            base_url=base_url,
            api_key=api_key,
            temperature=temperature,
            timeout=timeout,
            retries=max_retries,
            cache_path=cache_path,
            max_tokens=max_tokens,
        )
    return settings.chat_model()


def _method_from_env(method: str | None) -> StructuredMethod | None:
    value = method or None
    if value is None:
        return None
    for known in STRUCTURED_METHODS:
        if value == known:
            return known
    raise LLMConfigError(
        f"unknown structured-output method {value!r}; use one of {', '.join(STRUCTURED_METHODS)}"
    )


# --------------------------------------------------------------------------- structured calls


@dataclass(frozen=True)
class _Structured:
    """One schema's structured-output call as the model call and its parser, run in turn.

    ``with_structured_output(include_raw=True)`` wraps the same two in ``RunnableParallel``
    steps, each of which starts a thread pool and threads on every call: with many users in
    flight that was a large share of the harness's CPU per call. Split, the call returns what
    the wrapper did (``raw``, ``parsed``, ``parsing_error``: a parser failure is reported,
    not raised) with the model call on the caller's thread. ``parse`` is None when the
    provider's runnable is not the usual ``model | parser`` sequence; ``model`` is then the
    ``include_raw`` wrapper itself.
    """

    model: Runnable[Any, Any]
    parse: Runnable[Any, Any] | None

    def invoke(self, messages: list[BaseMessage]) -> dict[str, Any]:
        if self.parse is None:
            out = self.model.invoke(messages)
            return out if isinstance(out, dict) else {"raw": out, "parsed": None}
        raw = self.model.invoke(messages)
        try:
            return {"raw": raw, "parsed": self.parse.invoke(raw), "parsing_error": None}
        except Exception as exc:  # the wrapper's fallback catches the same
            return {"raw": raw, "parsed": None, "parsing_error": exc}


def _split_structured(
    chat_model: BaseChatModel, schema: dict[str, Any], kwargs: dict[str, Any]
) -> _Structured:
    """``chat_model.with_structured_output(schema, **kwargs)`` as a :class:`_Structured`."""
    plain = chat_model.with_structured_output(schema, **kwargs)
    if isinstance(plain, RunnableSequence) and _calls_model(plain.first, chat_model):
        rest = plain.steps[1:]
        parse = rest[0] if len(rest) == 1 else RunnableSequence(*rest)
        return _Structured(plain.first.with_config(tags=["nostream"]), parse)
    wrapped = chat_model.with_structured_output(schema, include_raw=True, **kwargs)
    return _Structured(wrapped.with_config(tags=["nostream"]), None)


def _calls_model(step: Runnable[Any, Any], chat_model: BaseChatModel) -> bool:
    """``step`` is ``chat_model`` itself or bound to arguments (``bind``, ``bind_tools``)."""
    while isinstance(step, RunnableBinding):
        step = step.bound
    return step is chat_model


# --------------------------------------------------------------------------- the reasoner


class LLMReasoner:
    """A :class:`~pahf.reasoners.base.Reasoner` over any LangChain ``BaseChatModel``.

    ``method`` is passed to ``with_structured_output`` (``json_schema``, ``function_calling``
    or ``json_mode``; None = the model's default). Use ``function_calling`` for servers that
    support tools but not JSON-schema response formats.
    """

    def __init__(
        self,
        chat_model: BaseChatModel,
        *,
        method: StructuredMethod | None = None,
        output_retries: int = 1,
        transport_retries: int = 0,
        backoff_seconds: float = 0.5,
        enforce_refusals: bool = True,
    ) -> None:
        if output_retries < 0 or transport_retries < 0:
            raise ValueError("retry counts must be >= 0")
        self.chat_model = chat_model
        #: Options the person's latest word refuses are not offered to the model (see
        #: :meth:`_offered`); False leaves every option to the model's reading.
        self.enforce_refusals = enforce_refusals
        self.method = method
        self.output_retries = output_retries
        self.transport_retries = transport_retries
        self.backoff_seconds = backoff_seconds
        #: Structured-output runnables by schema: a pure function of the schema (not state
        #: between decisions), kept because building one costs more than the call's own work.
        self._structured: dict[DecisionSchema, _Structured] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        *,
        method: str | None = None,
        cache_path: str | Path | None = None,
        output_retries: int = 1,
        max_tokens: int | None = None,
        settings: LLMSettings | None = None,
    ) -> LLMReasoner:
        """An LLM reasoner over the chat model of ``settings``, else of :class:`LLMSettings`
        resolved from the arguments over the environment (``PAHF_STRUCTURED_OUTPUT`` sets
        ``method``). Transport failures are retried ``retries`` times by the reasoner itself."""
        if settings is None:
            settings = LLMSettings.resolve(
                model=model,
                base_url=base_url,
                api_key=api_key,
                temperature=temperature,
                timeout=timeout,
                retries=max_retries,
                cache_path=cache_path,
                max_tokens=max_tokens,
                method=method,
            )
        return cls(
            chat_model_from_settings(settings=settings),
            method=_method_from_env(settings.method),
            output_retries=output_retries,
            transport_retries=settings.retries,
        )

    # ------------------------------------------------------------------ plumbing

    def _runnable(self, schema: DecisionSchema) -> _Structured:
        # The schema goes as JSON schema, not as the class: the provider then returns the
        # parsed object as it came, and a repairable reply ("Black Coffee ") gets repaired
        # here instead of failing inside the provider's own validation. One per schema
        # (schemas are per id set): building one costs more than the decision's own work.
        with self._lock:
            structured = self._structured.get(schema)
        if structured is not None:
            return structured
        kwargs: dict[str, Any] = {}
        if self.method is not None:
            kwargs["method"] = self.method
        if _is_chat_openai(self.chat_model) and self.method in (None, "json_schema"):
            kwargs.update(method="json_schema", strict=True)
        # A decision is data, not a reply: it must never stream to a chat UI. Under
        # stream_mode="messages" LangGraph would switch the model to streaming (a path no
        # decision is checked on), so streaming is turned off on the model itself (not a copy:
        # callers may reconfigure the instance they passed) and the call is tagged "nostream".
        if self.chat_model.disable_streaming is not True:
            self.chat_model.disable_streaming = True
        structured = _split_structured(self.chat_model, copy.deepcopy(schema.json), kwargs)
        with self._lock:
            if len(self._structured) >= 4096:
                self._structured.clear()
            self._structured[schema] = structured
        return structured

    def _decide(
        self,
        decision: str,
        node: str,
        schema: DecisionSchema,
        messages: list[BaseMessage],
        check: Callable[[Any], T],
        prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> T:
        structured = self._runnable(schema)
        if self.method == "json_mode":
            messages = [*messages, json_mode_instruction(schema)]

        def attempt(conversation: list[BaseMessage]) -> AttemptResult[T]:
            try:
                out = structured.invoke(conversation)
            except _output_errors() as exc:
                # ChatOpenAI's json_schema mode parses inside the call and raises, rather
                # than returning ``parsing_error``: the model answered, but unusably.
                if _is_length_error(exc):
                    raise UnusableReply(
                        "the reply ran into the output token limit", _failed_text(exc),
                        replay=False,
                    ) from exc
                return _failed_text(exc), None, (
                    f"the reply is not valid {schema.name} JSON: {_short(str(exc))}"
                )
            raw = out.get("raw") if isinstance(out, dict) else out
            raw_text = message_text(raw)
            if isinstance(raw, AIMessage) and _cut_off(raw):
                raise UnusableReply(
                    "the reply ran into the output token limit", raw_text, replay=False
                )
            if isinstance(out, dict) and out.get("parsing_error") is not None:
                err = out["parsing_error"]
                return raw_text, None, f"the reply is not valid {schema.name} JSON: " + _short(
                    str(err)
                )
            parsed = out.get("parsed") if isinstance(out, dict) else None
            if parsed is None:
                if isinstance(raw, AIMessage) and raw.invalid_tool_calls:
                    return raw_text, None, (
                        f"the {schema.name} arguments are not valid JSON: "
                        + _short(str(raw.invalid_tool_calls[0].get("args") or ""), 200)
                    )
                return raw_text, None, f"the reply held no {schema.name} object"
            data = parsed.model_dump() if isinstance(parsed, BaseModel) else parsed
            data = _normalized(data, schema)
            if prepare is not None and isinstance(data, dict):
                data = prepare(data)
            try:
                value = schema.model.model_validate(data)
            except ValidationError as exc:
                return raw_text, None, _short(
                    f"the reply is not a valid {schema.name}: {_validation_errors(exc)}"
                )
            wrong_ids = enum_errors(data, schema)
            if wrong_ids:
                return raw_text, None, _short(
                    f"the reply is not a valid {schema.name}: {'; '.join(wrong_ids)}"
                )
            try:
                return raw_text, check(value), None
            except ValueError as exc:
                return raw_text, None, _short(str(exc))

        return run_decision(
            attempt,
            messages,
            decision=decision,
            node=node,
            output_retries=self.output_retries,
            transport_retries=self.transport_retries,
            backoff_seconds=self.backoff_seconds,
        )

    @staticmethod
    def _candidate(request: Request, candidate_id: str) -> Candidate:
        """The candidate a model named; tolerant of case and stray punctuation only."""
        ids = [c.id for c in request.candidates]
        if candidate_id in ids:
            return request.candidate(candidate_id)
        cleaned = candidate_id.strip().strip("()[].:'\"` ").casefold()
        matches = [c for c in request.candidates if c.id.casefold() == cleaned]
        if len(matches) == 1:
            return matches[0]
        raise ValueError(
            f"candidate_id {candidate_id!r} is not one of the options; valid ids: {', '.join(ids)}"
        )

    def _offered(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Request:
        """The request without the options whose feature (or whose thing) the person's latest
        word in this situation refuses, unless that would leave none. The instruction alone
        did not do it: the 1.5B model bought products with a feature the person had said they
        would not accept, beside that very quote."""
        if not self.enforce_refusals:
            return request
        said_now = [t.text for t in clarifications if t.kind == "clarification"]
        refused = refused_options(request, memories, said_now)
        kept = [c for c in request.candidates if c.id not in refused]
        if not refused or not kept:
            return request
        return request.model_copy(update={"candidates": kept})

    @staticmethod
    def _only(request: Request) -> Action | None:
        """The action when a single option is left: no call decides what is already decided."""
        if len(request.candidates) != 1:
            return None
        cand = request.candidates[0]
        return Action(
            candidate_id=cand.id, candidate_text=cand.describe(), rationale=_EVERY_OTHER_REFUSED
        )

    # ------------------------------------------------------------------ decisions

    def assess(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Assessment:
        """Ambiguity decision; when the request is clear, the same call picks the option, which
        the assessment carries (``proposed``) to ``act`` through the graph state."""
        request = self._offered(request, memories, clarifications)
        only = self._only(request)
        if only is not None:
            return Assessment(
                ambiguous=False, reason=_EVERY_OTHER_REFUSED, confidence=1.0, proposed=only
            )

        def check(d: Any) -> Assessment:
            question = str(d.question).strip()
            if d.ambiguous:
                if not question:
                    raise ValueError(
                        "ambiguous is true but question is empty: write the question to ask"
                    )
                return Assessment(ambiguous=True, reason=d.reason, question=question)
            if not d.candidate_id:
                raise ValueError(
                    "ambiguous is false but candidate_id is null: give the option to take"
                )
            cand = self._candidate(request, d.candidate_id)
            action = Action(
                candidate_id=cand.id, candidate_text=cand.describe(), rationale=d.reason
            )
            return Assessment(ambiguous=False, reason=d.reason, confidence=1.0, proposed=action)

        return self._decide(
            "assess",
            DECISION_NODES["assess"],
            assess_schema(request),
            assess_messages(request, memories, clarifications),
            check,
        )

    def choose(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Action:
        """One call; ``act`` skips it when the assessment already proposed an action."""
        request = self._offered(request, memories, clarifications)
        only = self._only(request)
        if only is not None:
            return only

        def check(d: Any) -> Action:
            cand = self._candidate(request, d.candidate_id)
            return Action(
                candidate_id=cand.id, candidate_text=cand.describe(), rationale=d.rationale
            )

        return self._decide(
            "choose",
            DECISION_NODES["choose"],
            choose_schema(request),
            choose_messages(request, memories, clarifications),
            check,
        )

    def learn(
        self, request: Request, turn: Turn, memories: Sequence[RetrievedMemory]
    ) -> list[MemoryOp]:
        """Feedback analysis in one call: does the message state a preference, and does it
        replace one learned earlier; the preference stored is the message itself."""
        message = " ".join(turn.text.split())
        revisable = revisable_aliases(request, memories, message)
        records = {m.record.id: m.record for m in memories}

        def check(d: Any) -> list[MemoryOp]:
            # Stored is the person's own message, not a text the model writes (the 1.5B model
            # paraphrased the options into it, or dropped the situation). The model's phrases
            # only decide whether there is a preference: one that is not words of the message
            # ("fits my style preferences" for "I have no particular preference") is ignored.
            if not any(_quoted(phrase, message) for phrase in (d.wants, d.refuses)):
                return []
            new = NewMemory(
                text=message,
                topic=request.topic(),
                domain=request.domain,
                source="clarification" if turn.kind == "clarification" else "feedback",
                request_id=request.request_id,
            )
            target = revisable.get(str(getattr(d, "revises_memory_id", None) or ""))
            if target is None:
                # A change of mind the model did not mark: the message turns around what an
                # earlier preference of this situation said about the same option or feature.
                target = next(
                    (
                        record_id
                        for record_id in revisable.values()
                        if contradicts(request, records[record_id].text, message)
                    ),
                    None,
                )
            if target is None:
                return [MemoryOp(kind="add", memory=new)]
            return [MemoryOp(kind="supersede", memory=new, target_id=target)]

        return self._decide(
            "learn",
            DECISION_NODES[f"learn:{turn.kind}"],
            learn_schema(list(revisable)),
            learn_messages(request, turn, memories, revisable),
            check,
        )
