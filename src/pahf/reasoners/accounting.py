"""LLM usage accounting: calls, tokens and latency, per graph node, from LangChain callbacks.

Pass a :class:`UsageTracker` in the run config (``{"callbacks": [tracker]}``): LangChain hands
it to every chat-model call made inside the graph's nodes, with the node's name in the run
metadata (``langgraph_node``). Token counts are what the provider reported (the message's
``usage_metadata``, else ``llm_output["token_usage"]``), never estimated; a provider that
reports nothing shows zero tokens and is counted in ``calls_without_usage``.

Responses served from :class:`pahf.reasoners.cache.SQLiteResponseCache` count as calls and as
``cached_calls``, with no tokens billed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import ChatGeneration, LLMResult
from pydantic import BaseModel, ConfigDict, Field

from pahf.reasoners.cache import CACHE_HIT_KEY

#: Node name used for calls made outside a LangGraph node (e.g. the simulated user).
OUTSIDE_GRAPH = "(outside graph)"


class NodeUsage(BaseModel):
    """Usage of one node (or of the whole run)."""

    model_config = ConfigDict(extra="forbid")

    calls: int = 0
    cached_calls: int = 0
    failed_calls: int = 0
    calls_without_usage: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def plus(self, other: NodeUsage) -> NodeUsage:
        return NodeUsage(
            **{
                name: getattr(self, name) + getattr(other, name)
                for name in NodeUsage.model_fields
            }
        )

    def minus(self, other: NodeUsage) -> NodeUsage:
        return NodeUsage(
            **{
                name: getattr(self, name) - getattr(other, name)
                for name in NodeUsage.model_fields
            }
        )


class UsageSnapshot(BaseModel):
    """Totals plus a per-node breakdown, frozen at one moment."""

    model_config = ConfigDict(extra="forbid")

    total: NodeUsage = Field(default_factory=NodeUsage)
    by_node: dict[str, NodeUsage] = Field(default_factory=dict)

    def minus(self, before: UsageSnapshot) -> UsageSnapshot:
        """Usage since ``before`` (e.g. one episode's share of a shared tracker)."""
        nodes = set(self.by_node) | set(before.by_node)
        by_node = {
            n: self.by_node.get(n, NodeUsage()).minus(before.by_node.get(n, NodeUsage()))
            for n in sorted(nodes)
        }
        return UsageSnapshot(
            total=self.total.minus(before.total),
            by_node={n: u for n, u in by_node.items() if u != NodeUsage()},
        )


def _tokens(response: LLMResult) -> tuple[int, int, bool, bool]:
    """(input, output, usage reported?, served from cache?) of one model call."""
    inp = out = 0
    reported = False
    cached = False
    for generations in response.generations:
        for gen in generations:
            if not isinstance(gen, ChatGeneration):
                continue
            meta = gen.message.response_metadata or {}
            if meta.get(CACHE_HIT_KEY):
                cached = True
            usage = getattr(gen.message, "usage_metadata", None)
            if usage:
                reported = True
                inp += int(usage.get("input_tokens", 0) or 0)
                out += int(usage.get("output_tokens", 0) or 0)
    if not reported and isinstance(response.llm_output, Mapping):
        usage_map = response.llm_output.get("token_usage") or response.llm_output.get("usage")
        if isinstance(usage_map, Mapping) and usage_map:
            reported = True
            inp = int(usage_map.get("prompt_tokens", usage_map.get("input_tokens", 0)) or 0)
            out = int(usage_map.get("completion_tokens", usage_map.get("output_tokens", 0)) or 0)
    return inp, out, reported, cached


class UsageTracker(BaseCallbackHandler):
    """Counts LLM calls, reported tokens and latency, per node; safe across threads.

    One tracker may serve many concurrent runs: every update holds a lock, and in-flight calls
    are keyed by their run id.
    """

    raise_error = False
    run_inline = True

    # Only model calls matter here: skipping the other events spares every graph step the
    # dispatch (LangChain checks these before calling a handler).
    ignore_chain = True
    ignore_agent = True
    ignore_retriever = True
    ignore_retry = True
    ignore_custom_event = True

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._pending: dict[UUID, tuple[str, float]] = {}
        self._usage: dict[str, NodeUsage] = {}

    # ------------------------------------------------------------------ callbacks

    def _start(self, run_id: UUID, metadata: dict[str, Any] | None) -> None:
        node = str((metadata or {}).get("langgraph_node") or OUTSIDE_GRAPH)
        with self._lock:
            self._pending[run_id] = (node, time.perf_counter())

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, metadata)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, metadata)

    def _finish(self, run_id: UUID) -> tuple[str, float]:
        node, started = self._pending.pop(run_id, (OUTSIDE_GRAPH, time.perf_counter()))
        return node, time.perf_counter() - started

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        inp, out, reported, cached = _tokens(response)
        with self._lock:
            node, elapsed = self._finish(run_id)
            usage = self._usage.setdefault(node, NodeUsage())
            usage.calls += 1
            usage.latency_seconds += elapsed
            if cached:
                usage.cached_calls += 1
            else:
                usage.input_tokens += inp
                usage.output_tokens += out
                if not reported:
                    usage.calls_without_usage += 1

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            node, elapsed = self._finish(run_id)
            usage = self._usage.setdefault(node, NodeUsage())
            usage.calls += 1
            usage.failed_calls += 1
            usage.latency_seconds += elapsed

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> UsageSnapshot:
        """A copy of the usage so far (later calls do not change it)."""
        with self._lock:
            by_node = {n: u.model_copy() for n, u in sorted(self._usage.items())}
        total = NodeUsage()
        for usage in by_node.values():
            total = total.plus(usage)
        return UsageSnapshot(total=total, by_node=by_node)

    def reset(self) -> None:
        """Forget all usage (calls in flight are still timed and counted when they end)."""
        with self._lock:
            self._usage.clear()
