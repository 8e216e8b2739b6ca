"""LLM-mode runs over real HTTP that the scripted tests cannot show: users played concurrently
against one model server give the records of a serial run; the reasoner's calls work when the
graph is streamed in ``messages`` mode; retries count as calls; the raw replies of a failed
decision reach the episode record; a retry after a cut-off reply does not replay it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pahf.cli import main
from pahf.context import RunContext
from pahf.graphs import build_graph
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.reasoners.accounting import UsageTracker
from pahf.reasoners.llm import LLMCallError, LLMReasoner, LLMSettings

from .test_openai_server import Stub, drink_request
from .test_openai_server import stub as stub  # a fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _settings(stub: Stub, **kwargs: Any) -> LLMSettings:
    return LLMSettings.resolve(env={}, model="stub-model", base_url=stub.base_url, **kwargs)


def _records(path: Path) -> list[dict[str, Any]]:
    """The run's records without what legitimately differs between runs (time)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for row in rows:
        row.pop("seconds")
    return sorted(rows, key=lambda r: (r["method"], r["user"], r["seq"]))


def test_concurrent_eval_gives_the_records_of_a_serial_run(
    stub: Stub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stub.http.post(f"{stub.root}/_script", json={"auto": {"delay": 0.02}}).raise_for_status()
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PAHF_LLM_CACHE", raising=False)
    argv = [
        "eval", "--domain", "embodied", "--method", "pahf,no-memory", "--users", "3",
        "--iterations", "1", "--episodes-per-phase", "3", "--reasoner", "llm",
        "--model", "stub-model", "--quiet",
    ]
    assert main([*argv, "--out", str(tmp_path / "serial")]) == 0
    serial = _records(tmp_path / "serial" / "episodes.jsonl")
    assert main([*argv, "--concurrency", "6", "--out", str(tmp_path / "threads")]) == 0
    threaded = _records(tmp_path / "threads" / "episodes.jsonl")
    assert len(serial) == 3 * 2 * 4 * 3
    assert threaded == serial
    # The run learned from answers (the auto model asks when nothing is stored), so the
    # comparison covers memory writes, not only choices.
    assert any(r["memory_ops"] for r in serial) and max(r["memory_active"] for r in serial) > 0
    assert all(r["error"] is None for r in serial)


def test_llm_flags_reach_the_model_calls(
    stub: Stub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stub.http.post(f"{stub.root}/_script", json={"auto": {"delay": 0}}).raise_for_status()
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "PAHF_LLM_BASE_URL", "PAHF_LLM_MAX_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    argv = [
        "eval", "--domain", "embodied", "--method", "no-memory", "--users", "1",
        "--iterations", "1", "--episodes-per-phase", "1", "--reasoner", "llm",
        "--model", "flag-model", "--llm-base-url", stub.base_url, "--llm-max-tokens", "77",
        "--llm-temperature", "0.3", "--quiet",
        "--out", str(tmp_path / "run"),
    ]
    assert main(argv) == 0
    bodies = stub.log()["requests"]
    assert bodies and all(
        (b["model"], b["max_tokens"] if "max_tokens" in b else b["max_completion_tokens"],
         b["temperature"]) == ("flag-model", 77, 0.3)
        for b in bodies
    )
    # Enum of the request's ids, strict schema.
    schema = bodies[0]["response_format"]["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["properties"]["candidate_id"]["enum"]
    # The flags were the command's only: nothing is left in the environment.
    import os

    assert "PAHF_LLM_MAX_TOKENS" not in os.environ and "PAHF_LLM_BASE_URL" not in os.environ


def test_decisions_work_when_the_graph_streams_messages(stub: Stub) -> None:
    """stream_mode="messages" would switch a streaming-capable model to ``stream: true``; the
    reasoner's structured calls stay whole requests, and the stream still carries them."""
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    reasoner = LLMReasoner.from_settings(settings=_settings(stub))
    graph = build_graph(reasoner, memory)
    stub.script(
        {"content": {"reason": "r", "ambiguous": False, "candidate_id": "C", "question": ""}}
    )
    ctx = RunContext(user_id="u", reasoner="llm", post_action=False)
    chunks = list(
        graph.stream(
            {"request": drink_request()}, context=ctx, stream_mode=["messages", "values"]
        )
    )
    final = [c for mode, c in chunks if mode == "values"][-1]
    assert final["action"].candidate_id == "C"
    assert any(mode == "messages" for mode, _ in chunks)
    [body] = stub.log()["requests"]
    assert not body.get("stream")


def test_retries_are_calls_and_a_cut_off_reply_is_not_replayed(stub: Stub) -> None:
    """A 503 is retried by the reasoner (so the usage counts it); a reply cut off at the token
    limit is re-asked without being replayed; a repairable id ("b ") is repaired."""
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    graph = build_graph(LLMReasoner.from_settings(settings=_settings(stub, retries=1)), memory)
    loop = '{"candidate_id": "A", "rationale": "' + "again and " * 30
    stub.script(
        {"status": 503},
        {"raw": loop, "finish_reason": "length"},
        {"content": {"candidate_id": "b ", "rationale": "ok"}},
    )
    tracker = UsageTracker()
    ctx = RunContext(user_id="u", reasoner="llm", pre_action=False, post_action=False)
    out = graph.invoke({"request": drink_request()}, {"callbacks": [tracker]}, context=ctx)
    assert out["action"].candidate_id == "B"
    usage = tracker.snapshot().by_node["act"]
    assert (usage.calls, usage.failed_calls) == (3, 2)  # the 503 and the cut-off reply
    bodies = stub.log()["requests"]
    assert len(bodies) == 3
    retry = bodies[2]["messages"]
    assert all("again and again" not in str(m.get("content")) for m in retry)
    assert "output token limit" in retry[-1]["content"]


def test_only_an_unreachable_server_is_a_call_error(tmp_path: Path) -> None:
    settings = LLMSettings.resolve(
        env={}, model="m", base_url="http://127.0.0.1:9/v1", retries=1
    )
    reasoner = LLMReasoner.from_settings(settings=settings)
    reasoner.backoff_seconds = 0.0
    with pytest.raises(LLMCallError) as info:
        reasoner.choose(drink_request(), [], [])
    assert info.value.attempts == 2 and "Connection" in str(info.value)
