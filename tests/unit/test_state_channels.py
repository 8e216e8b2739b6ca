"""The state's typed channels: a step that does not write a channel costs it nothing."""

from __future__ import annotations

import pytest

import pahf.state as state
from pahf.decisions import Action
from pahf.state import JsonChannel, ValidatedRequestChannel


def test_a_step_without_writes_neither_validates_nor_changes_a_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LangGraph notifies every unwritten channel of each step with an empty update."""
    channel = JsonChannel(Action | None, "action")
    assert channel.update([{"candidate_id": "a", "candidate_text": "tea"}])
    held = channel.get()

    def no_validation(typ: object) -> object:
        raise AssertionError("an empty update was validated")

    monkeypatch.setattr(state, "_adapter", no_validation)
    monkeypatch.setattr(state, "_checked", no_validation)
    assert channel.update([]) is False
    assert channel.get() is held
    assert ValidatedRequestChannel(object, "request").update([]) is False
