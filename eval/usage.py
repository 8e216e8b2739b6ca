"""Count the LLM calls and tokens of one episode through LangChain callbacks.

The harness puts a fresh :class:`~pahf.reasoners.accounting.UsageTracker` in each episode's
graph config (``callbacks``); LangChain propagates it to every chat model a node invokes, so the
count covers whatever reasoner runs inside the graph. The simulated user's own LLM calls (if
any) happen outside the graph and are not counted: the figures are the agent's cost. With the
offline reasoner they are all zero.
"""

from __future__ import annotations

from pahf.reasoners.accounting import UsageTracker


def new_tracker() -> UsageTracker:
    """A fresh per-episode tracker."""
    return UsageTracker()


def read_usage(tracker: UsageTracker) -> tuple[int, int, int]:
    """(calls, input tokens, output tokens) the tracker has seen."""
    total = tracker.snapshot().total
    return total.calls, total.input_tokens, total.output_tokens
