"""Count the LLM calls and tokens of one episode through LangChain callbacks.

The harness puts a fresh tracker in each episode's graph config (``callbacks``); LangChain
propagates it to every chat model a node invokes, so the count covers whatever reasoner runs
inside the graph. The simulated user's own LLM calls (if any) happen outside the graph and are
not counted: the figures are the agent's cost. With the offline reasoner they are all zero.

:class:`pahf.reasoners.accounting.UsageTracker` is used when it can be imported; otherwise the
minimal :class:`CallCounter` below does the same job.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult


class Usage(Protocol):
    """What the harness reads from a tracker after an episode."""

    calls: int
    input_tokens: int
    output_tokens: int


def _usage_of(response: LLMResult) -> tuple[int, int]:
    """(input, output) tokens of one LLM result: message usage metadata, else llm_output."""
    inputs = outputs = 0
    found = False
    for generations in response.generations:
        for gen in generations:
            meta = getattr(getattr(gen, "message", None), "usage_metadata", None)
            if meta:
                inputs += int(meta.get("input_tokens", 0) or 0)
                outputs += int(meta.get("output_tokens", 0) or 0)
                found = True
    if not found and response.llm_output:
        usage = response.llm_output.get("token_usage") or response.llm_output.get("usage") or {}
        inputs = int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0)
        outputs = int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0)
    return inputs, outputs


class CallCounter(BaseCallbackHandler):
    """Counts finished LLM calls and their tokens (thread-safe: nodes may run in threads)."""

    def __init__(self) -> None:
        self.calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self._lock = threading.Lock()

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        inputs, outputs = _usage_of(response)
        with self._lock:
            self.calls += 1
            self.input_tokens += inputs
            self.output_tokens += outputs


def new_tracker() -> BaseCallbackHandler:
    """A fresh per-episode tracker: the shared ``UsageTracker`` if present, else ours."""
    try:
        from pahf.reasoners.accounting import UsageTracker
    except ImportError:
        return CallCounter()
    tracker: BaseCallbackHandler = UsageTracker()
    return tracker


def read_usage(tracker: Any) -> tuple[int, int, int]:
    """(calls, input tokens, output tokens) of a tracker of either kind.

    ``UsageTracker`` reports through ``snapshot().total``; :class:`CallCounter` has the counts
    as attributes.
    """
    source = tracker.snapshot().total if hasattr(tracker, "snapshot") else tracker
    return (
        int(getattr(source, "calls", 0)),
        int(getattr(source, "input_tokens", 0)),
        int(getattr(source, "output_tokens", 0)),
    )
