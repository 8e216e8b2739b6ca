"""The paper's four methods as configurations of one graph."""

from __future__ import annotations

from typing import Any, Literal

from pahf.context import RunContext

Method = Literal["no-memory", "pre-only", "post-only", "pahf"]
METHODS: tuple[Method, ...] = ("no-memory", "pre-only", "post-only", "pahf")


def context_for_method(method: str, **overrides: Any) -> RunContext:
    """The RunContext of one of the paper's four methods (baselines are configurations)."""
    switches: dict[str, dict[str, bool]] = {
        "no-memory": {"use_memory": False, "pre_action": False, "post_action": False},
        "pre-only": {"use_memory": True, "pre_action": True, "post_action": False},
        "post-only": {"use_memory": True, "pre_action": False, "post_action": True},
        "pahf": {"use_memory": True, "pre_action": True, "post_action": True},
    }
    if method not in switches:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return RunContext(**{**switches[method], **overrides})
