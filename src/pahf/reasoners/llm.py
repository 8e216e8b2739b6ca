"""The LLM reasoner: PAHF's decisions made by any LangChain chat model, as structured output.

Each decision is one ``with_structured_output`` call with a pydantic schema from
:mod:`pahf.reasoners.prompts`, and the reply is checked against the request before it is used:
the chosen option must be one of the request's candidates, a revised memory must be one of the
memories the model was shown. An unusable reply is sent back once with the error, then the
decision fails with :class:`LLMDecisionError`, naming the decision and the graph node.

Calls per episode are kept low:

* ``assess`` also picks the option when the request is clear, and hands that choice to the
  ``choose`` that follows for the same request, memories and answers: a clear request costs
  one call in total;
* ``learn`` runs only on an answer or a correction (an accepted action costs nothing), and is
  one call that decides whether there is a preference, its text and what it replaces.

The reasoner never writes memory: it returns ops, and nodes apply them only after ``learn``
returned, so a failed call leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from langchain_core.exceptions import ModelError, ModelRefusalError, OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel, SecretStr, ValidationError

from pahf.decisions import Action, Assessment, Turn
from pahf.errors import InputError
from pahf.memory.schema import MemoryOp, NewMemory, RetrievedMemory
from pahf.reasoners.prompts import (
    AssessDecision,
    ChooseDecision,
    LearnDecision,
    assess_messages,
    choose_messages,
    json_mode_instruction,
    learn_messages,
    memory_aliases,
    retry_message,
)
from pahf.request import Candidate, Request

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

DEFAULT_MODEL = "gpt-4o-mini"
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
S = TypeVar("S", bound=BaseModel)


# --------------------------------------------------------------------------- errors


class LLMConfigError(InputError):
    """The LLM cannot be configured (no API key, unknown structured-output method)."""


class LLMDecisionError(RuntimeError):
    """An LLM decision could not be made. Names the decision and the node it runs in.

    Raised out of the graph's ``invoke``. The evaluation harness records an episode whose
    decision failed on the model's output (:class:`LLMOutputError`) as failed and goes on; a
    model it cannot reach (:class:`LLMCallError`) stops the run, to be resumed.
    """

    def __init__(
        self, decision: str, node: str, detail: str, *, attempts: int, errors: Sequence[str] = ()
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

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled when an evaluation worker process raises it: rebuild from the fields, since
        # the default (the message as the only argument) does not fit this constructor.
        return (
            _rebuild_decision_error,
            (type(self), self.decision, self.node, self.detail, self.attempts, self.errors),
        )


def _rebuild_decision_error(
    cls: type[LLMDecisionError],
    decision: str,
    node: str,
    detail: str,
    attempts: int,
    errors: Sequence[str],
) -> LLMDecisionError:
    return cls(decision, node, detail, attempts=attempts, errors=errors)


class LLMOutputError(LLMDecisionError):
    """The model answered, but not with a usable decision (malformed or invalid), even after
    being told what was wrong."""


class LLMCallError(LLMDecisionError):
    """The request to the model failed (timeout, connection, HTTP 429/5xx after retries, or a
    non-retryable HTTP error such as 401)."""


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
    conversation; a transient transport failure is retried ``transport_retries`` times with
    exponential backoff (on top of any retries the client does itself, e.g. ChatOpenAI's
    ``max_retries``). Everything else becomes an :class:`LLMDecisionError`.
    """
    conversation = list(messages)
    errors: list[str] = []
    calls = 0
    transport_failures = 0
    output_failures = 0
    while True:
        calls += 1
        try:
            raw_text, value, error = attempt(conversation)
        except Exception as exc:
            described = f"{type(exc).__name__}: {_short(str(exc))}"
            errors.append(described)
            if is_transient(exc) and transport_failures < transport_retries:
                sleep(min(8.0, backoff_seconds * (2**transport_failures)))
                transport_failures += 1
                continue
            raise LLMCallError(
                decision, node, f"the model call failed: {described}", attempts=calls,
                errors=errors,
            ) from exc
        if error is None and value is not None:
            return value
        error = error or "the reply held no decision"
        errors.append(error)
        output_failures += 1
        if output_failures > output_retries:
            raise LLMOutputError(
                decision, node, f"unusable reply: {error}", attempts=calls, errors=errors
            )
        conversation = [
            *conversation,
            AIMessage(content=raw_text or "(empty reply)"),
            retry_message(error),
        ]


def _output_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a model call raises when the reply arrived but is unusable (not transport)."""
    errors: list[type[BaseException]] = [ValidationError, OutputParserException, ModelRefusalError]
    try:
        import openai

        errors += [openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError]
    except (ImportError, AttributeError):  # pragma: no cover - depends on the openai version
        pass
    return tuple(errors)


_OUTPUT_ERRORS = _output_errors()


def _failed_text(exc: BaseException) -> str:
    """The model's text behind a parsing exception, when the exception carries it."""
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


# --------------------------------------------------------------------------- settings


def chat_model_from_settings(
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    temperature: float = 0.0,
    timeout: float = 30.0,
    max_retries: int = 2,
    cache_path: str | Path | None = None,
) -> ChatOpenAI:
    """A ``ChatOpenAI`` for OpenAI or any OpenAI-compatible server (vLLM, Ollama, llama.cpp).

    Arguments win over the environment: ``PAHF_MODEL`` (default ``gpt-4o-mini``),
    ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` (a local server without a key gets a placeholder),
    ``PAHF_LLM_CACHE`` (a SQLite file caching responses, see :mod:`pahf.reasoners.cache`).
    ``max_retries`` is the client's retry budget for timeouts, 429 and 5xx, with exponential
    backoff that honours ``Retry-After``.
    """
    from langchain_openai import ChatOpenAI

    model = model or os.environ.get("PAHF_MODEL") or DEFAULT_MODEL
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
    if api_key is None:
        if base_url is None:
            raise LLMConfigError(
                "no API key for the LLM: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local "
                "OpenAI-compatible server that needs none"
            )
        api_key = "not-needed"  # local servers ignore it, but the client insists on one
    if timeout <= 0:
        raise LLMConfigError(f"LLM timeout must be positive, got {timeout}")
    if max_retries < 0:
        raise LLMConfigError(f"LLM max_retries must be >= 0, got {max_retries}")
    cache_location = cache_path or os.environ.get("PAHF_LLM_CACHE") or None
    cache: Any = None
    if cache_location:
        from pahf.reasoners.cache import SQLiteResponseCache

        cache = SQLiteResponseCache(cache_location)
    kwargs: dict[str, Any] = {
        "model": model,
        "api_key": SecretStr(api_key),
        "temperature": temperature,
        "timeout": timeout,
        "max_retries": max_retries,
    }
    if base_url:
        kwargs["base_url"] = base_url
    if cache is not None:
        kwargs["cache"] = cache
    return ChatOpenAI(**kwargs)


def _method_from_env(method: str | None) -> StructuredMethod | None:
    value = method or os.environ.get("PAHF_STRUCTURED_OUTPUT") or None
    if value is None:
        return None
    for known in STRUCTURED_METHODS:
        if value == known:
            return known
    raise LLMConfigError(
        f"unknown structured-output method {value!r}; use one of {', '.join(STRUCTURED_METHODS)}"
    )


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
        handoff_capacity: int = 1024,
    ) -> None:
        if output_retries < 0 or transport_retries < 0:
            raise ValueError("retry counts must be >= 0")
        self.chat_model = chat_model
        self.method = method
        self.output_retries = output_retries
        self.transport_retries = transport_retries
        self.backoff_seconds = backoff_seconds
        self._structured: dict[type[BaseModel], Runnable[Any, Any]] = {}
        self._handoff: OrderedDict[str, Action] = OrderedDict()
        self._handoff_capacity = handoff_capacity
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float = 0.0,
        timeout: float = 30.0,
        max_retries: int = 2,
        *,
        method: str | None = None,
        cache_path: str | Path | None = None,
        output_retries: int = 1,
    ) -> LLMReasoner:
        """An LLM reasoner over ``ChatOpenAI`` configured from arguments and the environment
        (see :func:`chat_model_from_settings`; ``PAHF_STRUCTURED_OUTPUT`` sets ``method``)."""
        chat = chat_model_from_settings(
            model=model,
            base_url=base_url,
            api_key=api_key,
            temperature=temperature,
            timeout=timeout,
            max_retries=max_retries,
            cache_path=cache_path,
        )
        return cls(chat, method=_method_from_env(method), output_retries=output_retries)

    # ------------------------------------------------------------------ plumbing

    def _runnable(self, schema: type[BaseModel]) -> Runnable[Any, Any]:
        with self._lock:
            runnable = self._structured.get(schema)
            if runnable is None:
                kwargs: dict[str, Any] = {"include_raw": True}
                if self.method is not None:
                    kwargs["method"] = self.method
                # A decision is data, not a reply: it must never stream to a chat UI. Under
                # stream_mode="messages" LangGraph would switch the model to streaming (a path
                # no decision is checked on), so streaming is turned off on the model itself
                # (not a copy: callers may reconfigure the instance they passed) and the call
                # is tagged "nostream".
                if self.chat_model.disable_streaming is not True:
                    self.chat_model.disable_streaming = True
                runnable = self.chat_model.with_structured_output(schema, **kwargs).with_config(
                    tags=["nostream"]
                )
                self._structured[schema] = runnable
            return runnable

    def _decide(
        self,
        decision: str,
        node: str,
        schema: type[S],
        messages: list[BaseMessage],
        check: Callable[[S], T],
    ) -> T:
        runnable = self._runnable(schema)
        if self.method == "json_mode":
            messages = [*messages, json_mode_instruction(schema)]

        def attempt(conversation: list[BaseMessage]) -> AttemptResult[T]:
            try:
                out = runnable.invoke(conversation)
            except _OUTPUT_ERRORS as exc:
                # ChatOpenAI's json_schema mode parses inside the call and raises, rather
                # than returning ``parsing_error``: the model answered, but unusably.
                return _failed_text(exc), None, (
                    f"the reply is not valid {schema.__name__} JSON: {_short(str(exc))}"
                )
            raw = out.get("raw") if isinstance(out, dict) else out
            raw_text = message_text(raw)
            if isinstance(out, dict) and out.get("parsing_error") is not None:
                err = out["parsing_error"]
                return raw_text, None, f"the reply is not valid {schema.__name__} JSON: " + _short(
                    str(err)
                )
            parsed = out.get("parsed") if isinstance(out, dict) else None
            if parsed is None:
                if isinstance(raw, AIMessage) and raw.invalid_tool_calls:
                    return raw_text, None, (
                        f"the {schema.__name__} arguments are not valid JSON: "
                        + _short(str(raw.invalid_tool_calls[0].get("args") or ""), 200)
                    )
                return raw_text, None, f"the reply held no {schema.__name__} object"
            try:
                value = schema.model_validate(
                    parsed.model_dump() if isinstance(parsed, BaseModel) else parsed
                )
                return raw_text, check(value), None
            except ValueError as exc:  # pydantic ValidationError is a ValueError
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

    @staticmethod
    def _handoff_key(
        request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> str:
        payload = {
            "request": request.model_dump(mode="json"),
            "memories": [
                [m.record.id, m.record.text, m.record.topic, m.record.status] for m in memories
            ],
            "clarifications": [t.model_dump(mode="json") for t in clarifications],
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _remember_choice(self, key: str, action: Action) -> None:
        with self._lock:
            self._handoff[key] = action
            self._handoff.move_to_end(key)
            while len(self._handoff) > self._handoff_capacity:
                self._handoff.popitem(last=False)

    def _take_choice(self, key: str) -> Action | None:
        with self._lock:
            return self._handoff.pop(key, None)

    # ------------------------------------------------------------------ decisions

    def assess(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Assessment:
        """Ambiguity decision; when the request is clear, the choice is made in the same call
        and handed to the ``choose`` that follows."""

        def check(d: AssessDecision) -> tuple[Assessment, Action | None]:
            if d.ambiguous:
                if not d.question.strip():
                    raise ValueError(
                        "ambiguous is true but question is empty: write the question to ask"
                    )
                guess = None
                if d.candidate_id:
                    try:
                        cand = self._candidate(request, d.candidate_id)
                        guess = Action(
                            candidate_id=cand.id, candidate_text=cand.describe(),
                            rationale=d.reason,
                        )
                    except ValueError:
                        guess = None  # a best guess is optional; the question is what counts
                question = d.question.strip()
                return Assessment(ambiguous=True, reason=d.reason, question=question), guess
            if not d.candidate_id:
                raise ValueError(
                    "ambiguous is false but candidate_id is null: give the id of the option "
                    "to take"
                )
            cand = self._candidate(request, d.candidate_id)
            action = Action(
                candidate_id=cand.id, candidate_text=cand.describe(), rationale=d.reason
            )
            return Assessment(ambiguous=False, reason=d.reason, confidence=1.0), action

        assessment, action = self._decide(
            "assess",
            DECISION_NODES["assess"],
            AssessDecision,
            assess_messages(request, memories, clarifications),
            check,
        )
        if action is not None:
            self._remember_choice(self._handoff_key(request, memories, clarifications), action)
        return assessment

    def choose(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Action:
        """The choice made by ``assess`` for exactly this input, else one call."""
        handed = self._take_choice(self._handoff_key(request, memories, clarifications))
        if handed is not None:
            return handed

        def check(d: ChooseDecision) -> Action:
            cand = self._candidate(request, d.candidate_id)
            return Action(
                candidate_id=cand.id, candidate_text=cand.describe(), rationale=d.rationale
            )

        return self._decide(
            "choose",
            DECISION_NODES["choose"],
            ChooseDecision,
            choose_messages(request, memories, clarifications),
            check,
        )

    def learn(
        self, request: Request, turn: Turn, memories: Sequence[RetrievedMemory]
    ) -> list[MemoryOp]:
        """Feedback analysis in one call: is there a preference, its text, what it replaces."""
        aliases = memory_aliases(memories)
        record_ids = set(aliases.values())

        def resolve(memory_id: str) -> str:
            key = memory_id.strip().strip("()[].:'\"` ")
            if key.upper() in aliases:
                return aliases[key.upper()]
            if key in record_ids:
                return key
            shown = ", ".join(aliases) or "none are stored"
            raise ValueError(
                f"revises_memory_id {memory_id!r} is not one of the stored preferences shown "
                f"({shown})"
            )

        def check(d: LearnDecision) -> list[MemoryOp]:
            if d.kind == "none":
                if d.has_preference:
                    raise ValueError(
                        "has_preference is true but kind is 'none': use 'add' or 'supersede', "
                        "or set has_preference to false"
                    )
                return []
            if not d.has_preference:
                raise ValueError(f"kind is {d.kind!r} but has_preference is false")
            text = d.memory_text.strip()
            if not text:
                raise ValueError(f"kind is {d.kind!r} but memory_text is empty")
            revises = (d.revises_memory_id or "").strip()
            target = resolve(revises) if revises else None
            if d.kind == "supersede" and target is None:
                raise ValueError(
                    "kind is 'supersede' but revises_memory_id is null: give the id of the "
                    "stored preference it replaces, or use 'add'"
                )
            new = NewMemory(
                text=text,
                topic=request.topic(),
                domain=request.domain,
                source="clarification" if turn.kind == "clarification" else "feedback",
                request_id=request.request_id,
            )
            if d.kind == "add":
                return [MemoryOp(kind="add", memory=new, reason=d.reason)]
            return [MemoryOp(kind="supersede", memory=new, target_id=target, reason=d.reason)]

        return self._decide(
            "learn",
            DECISION_NODES[f"learn:{turn.kind}"],
            LearnDecision,
            learn_messages(request, turn, memories),
            check,
        )
