"""The LLM path over real HTTP: ChatOpenAI against an OpenAI-protocol server on 127.0.0.1.

The server (``openai_stub_server.py``) runs as its own process, started and stopped by the
``stub`` fixture, and answers from a script each test loads: structured output as JSON content
(json_schema) or as tool calls (function calling), HTTP errors, malformed JSON, slow replies.
It reports the token usage it sent, which the accounting must reproduce exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_openai import ChatOpenAI
from langgraph.types import Command

from pahf.cli import build_parser, main
from pahf.cli import chat as chat_cli
from pahf.cli.eval import load_benchmarks
from pahf.context import RunContext
from pahf.decisions import Action
from pahf.eval.episodes import Episode, GroundTruth
from pahf.eval.llm_user import LLMSimulatedUser
from pahf.eval.methods import context_for_method
from pahf.eval.runner import replay_order
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.reasoners.accounting import UsageTracker
from pahf.reasoners.llm import LLMCallError, LLMOutputError, LLMOverrunError, LLMReasoner
from pahf.request import Candidate, Request

pytestmark = pytest.mark.integration

SERVER_SCRIPT = Path(__file__).resolve().with_name("openai_stub_server.py")
READY_TIMEOUT = 30.0


class Stub:
    """Client side of the stub server: load a script, read what it saw."""

    def __init__(self, port: int) -> None:
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root}/v1"
        self.http = httpx.Client(timeout=10)

    def script(self, *replies: dict[str, Any]) -> None:
        self.http.post(f"{self.root}/_script", json={"replies": list(replies)}).raise_for_status()

    def log(self) -> dict[str, Any]:
        response = self.http.get(f"{self.root}/_log")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def chat(self, **kwargs: Any) -> ChatOpenAI:
        settings: dict[str, Any] = {
            "model": "stub-model",
            "api_key": "test-key",
            "base_url": self.base_url,
            "temperature": 0,
            "timeout": 10,
            "max_retries": 0,
        }
        settings.update(kwargs)
        return ChatOpenAI(**settings)


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stub]:
    log_path = tmp_path_factory.mktemp("openai-stub") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    first_line: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(READY_TIMEOUT)
    try:
        if not first_line or not first_line[0].startswith("PORT "):
            pytest.fail(f"stub server did not start: {log_path.read_text(errors='replace')}")
        server = Stub(int(first_line[0].split()[1]))
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if server.http.get(f"{server.root}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("stub server never became ready")
            time.sleep(0.05)
        yield server
        server.http.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def drink_request() -> Request:
    return Request(
        request_id=uuid.uuid4().hex,
        domain="embodied",
        task="Could you bring me something to drink?",
        context="Dehydrated",
        candidates=[
            Candidate(id="A", text="ice-cold water"),
            Candidate(id="B", text="black coffee"),
            Candidate(id="C", text="orange juice"),
        ],
    )


def assess(ambiguous: bool, candidate: str | None = None, question: str = "") -> dict[str, Any]:
    return {"reason": "r", "ambiguous": ambiguous, "question": question, "candidate_id": candidate}


def choose(candidate: str) -> dict[str, Any]:
    return {"rationale": "r", "candidate_id": candidate}


def learn(wants: str = "", refuses: str = "", revises: str | None = None) -> dict[str, Any]:
    return {"wants": wants, "refuses": refuses, "revises_memory_id": revises}


def run_episode(
    graph: Any, request: Request, replies: list[str], ctx: RunContext, tracker: UsageTracker
) -> dict[str, Any]:
    config: dict[str, Any] = {"configurable": {"thread_id": uuid.uuid4().hex}, "callbacks": [tracker]}
    result = graph.invoke({"request": request.model_dump(mode="json")}, config, context=ctx)
    pending = list(replies)
    while result.get("__interrupt__"):
        result = graph.invoke(Command(resume=pending.pop(0)), config, context=ctx)
    assert not pending
    out: dict[str, Any] = result
    return out


def reported(stub: Stub) -> tuple[int, int]:
    usage = stub.log()["usage"]
    return sum(u["prompt_tokens"] for u in usage), sum(u["completion_tokens"] for u in usage)


# --------------------------------------------------------------------------- full episodes


def test_a_reply_without_delay_comes_back_at_once(stub: Stub) -> None:
    """The stub adds no latency of its own: the concurrency benchmark injects a fixed delay
    and counts anything beyond it as the harness's. (Written as two sends, a reply waited
    ~40 ms for the client's delayed ACK before the handler disabled Nagle's algorithm.)"""
    stub.http.post(f"{stub.root}/_script", json={"auto": {"delay": 0}}).raise_for_status()
    body = {
        "model": "stub-model",
        "messages": [{"role": "user", "content": "hello"}],
    }
    times = []
    for _ in range(15):
        started = time.perf_counter()
        stub.http.post(f"{stub.base_url}/chat/completions", json=body).raise_for_status()
        times.append(time.perf_counter() - started)
    assert sorted(times)[len(times) // 2] < 0.02, times


def test_full_episodes_through_the_compiled_graph(stub: Stub) -> None:
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    graph = build_graph(LLMReasoner(stub.chat()), memory, memory_checkpointer())
    ctx = RunContext(user_id="alex", reasoner="llm")

    # Ask path: 3 calls.
    stub.script(
        {"content": assess(True, question="What do you drink when dehydrated?"), "usage": [211, 37]},
        {"content": learn("ice-cold water"), "usage": [250, 41]},
        {"content": choose("A"), "usage": [301, 12]},
    )
    tracker = UsageTracker()
    out = run_episode(graph, drink_request(), ["Ice-cold water, lots of ice.", ""], ctx, tracker)
    assert out["action"].candidate_id == "A"
    log = stub.log()
    assert [r["response_format"]["json_schema"]["name"] for r in log["requests"]] == [
        "AssessDecision",
        "LearnDecision",
        "ChooseDecision",
    ]
    assert all(r["response_format"]["json_schema"]["strict"] for r in log["requests"])
    snap = tracker.snapshot()
    assert snap.total.calls == 3
    assert (snap.total.input_tokens, snap.total.output_tokens) == reported(stub) == (762, 90)
    assert {n: (u.calls, u.input_tokens) for n, u in snap.by_node.items()} == {
        "ambiguity_detect": (1, 211),
        "ask_user": (1, 250),
        "act": (1, 301),
    }

    # Clear path: 1 call.
    stub.script({"content": assess(False, "A"), "usage": [180, 22]})
    tracker = UsageTracker()
    out = run_episode(graph, drink_request(), [""], ctx, tracker)
    assert out["action"].candidate_id == "A"
    assert tracker.snapshot().total.calls == 1
    assert (tracker.snapshot().total.input_tokens, tracker.snapshot().total.output_tokens) == (
        reported(stub)
    )

    # Correction path: 2 calls; the stored preference is superseded.
    stub.script(
        {"content": assess(False, "A"), "usage": [180, 22]},
        {"content": learn("orange juice", "ice-cold water", "M1")},
    )
    tracker = UsageTracker()
    said = "No ice-cold water, orange juice these days."
    out = run_episode(graph, drink_request(), [said], ctx, tracker)
    assert tracker.snapshot().total.calls == 2
    assert (tracker.snapshot().total.input_tokens, tracker.snapshot().total.output_tokens) == (
        reported(stub)
    )
    active = memory.get_all("alex", include_superseded=False)
    assert [r.text for r in active] == [said]
    assert stub.log()["pending"] == 0


def test_graph_resolves_the_llm_reasoner_from_the_run_context(
    stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployed-graph path: RunContext(reasoner="llm", model=...) + OPENAI_BASE_URL."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PAHF_LLM_CACHE", raising=False)
    monkeypatch.delenv("PAHF_STRUCTURED_OUTPUT", raising=False)
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    graph = build_graph(None, memory, memory_checkpointer())
    stub.script({"content": choose("C")})
    ctx = context_for_method("no-memory", user_id="u", reasoner="llm", model="served-model")
    out = run_episode(graph, drink_request(), [], ctx, UsageTracker())
    assert out["action"].candidate_id == "C"
    [request] = stub.log()["requests"]
    assert request["model"] == "served-model"


def test_function_calling_mode_uses_tool_calls(stub: Stub) -> None:
    reasoner = LLMReasoner(stub.chat(), method="function_calling")
    stub.script({"content": choose("B")})
    assert reasoner.choose(drink_request(), [], []).candidate_id == "B"
    [request] = stub.log()["requests"]
    assert request["tools"][0]["function"]["name"] == "ChooseDecision"
    assert "response_format" not in request


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_http_error_then_success_is_retried(stub: Stub, status: int) -> None:
    tracker = UsageTracker()
    reasoner = LLMReasoner(stub.chat(max_retries=2, callbacks=[tracker]))
    stub.script(
        {"status": status, "headers": {"retry-after-ms": "10"}},
        {"content": choose("C"), "usage": [77, 7]},
    )
    assert reasoner.choose(drink_request(), [], []).candidate_id == "C"
    assert len(stub.log()["requests"]) == 2
    snap = tracker.snapshot().total
    assert (snap.calls, snap.failed_calls, snap.input_tokens, snap.output_tokens) == (1, 0, 77, 7)


def test_persistent_server_errors_end_in_a_clear_error(stub: Stub) -> None:
    reasoner = LLMReasoner(stub.chat(max_retries=2))
    fail = {"status": 500, "headers": {"retry-after-ms": "10"}}
    stub.script(fail, fail, fail)
    with pytest.raises(LLMCallError) as info:
        reasoner.choose(drink_request(), [], [])
    assert str(info.value).startswith("act: LLM decision 'choose' failed")
    assert "Error code: 500" in str(info.value)
    assert len(stub.log()["requests"]) == 3  # 1 + max_retries


def test_malformed_json_is_retried_then_used(stub: Stub) -> None:
    tracker = UsageTracker()
    reasoner = LLMReasoner(stub.chat(callbacks=[tracker]))
    stub.script({"raw": "Sure! The answer is A."}, {"content": choose("A")})
    assert reasoner.choose(drink_request(), [], []).candidate_id == "A"
    second = stub.log()["requests"][1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "Sure! The answer is A."}
    assert "not valid ChooseDecision JSON" in second[-1]["content"]
    assert tracker.snapshot().total.calls == 2


def test_malformed_json_twice_fails_the_episode_naming_the_node(stub: Stub) -> None:
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    graph = build_graph(LLMReasoner(stub.chat()), memory, memory_checkpointer())
    stub.script({"raw": "{\"reason\": "}, {"content": {"ambiguous": "maybe"}})
    with pytest.raises(LLMOutputError) as info:
        run_episode(graph, drink_request(), [], RunContext(user_id="u"), UsageTracker())
    assert info.value.node == "ambiguity_detect" and info.value.attempts == 2
    assert "AssessDecision" in str(info.value)
    assert memory.count("u") == 0


def test_slow_reply_past_the_timeout_is_a_clear_error(stub: Stub) -> None:
    """A call that overruns the timeout fails that decision (an output error: the episode
    fails, the run goes on), without a retry that would overrun again."""
    tracker = UsageTracker()
    reasoner = LLMReasoner(
        stub.chat(timeout=0.5, max_retries=0, callbacks=[tracker]), transport_retries=2
    )
    stub.script({"content": choose("A"), "delay": 3}, {"content": choose("C")})
    with pytest.raises(LLMOverrunError) as info:
        reasoner.choose(drink_request(), [], [])
    assert "did not answer in time: OpenAITimeoutError: Request timed out." in str(info.value)
    assert isinstance(info.value, LLMOutputError) and stub.log()["pending"] == 1
    assert info.value.node == "act"
    assert tracker.snapshot().total.failed_calls == 1
    # The server is still usable afterwards.
    stub.script({"content": choose("B")})
    assert LLMReasoner(stub.chat()).choose(drink_request(), [], []).candidate_id == "B"


# --------------------------------------------------------------------------- simulated user, chat


def test_llm_simulated_user_over_http(stub: Stub) -> None:
    user = LLMSimulatedUser(stub.chat(), {"alex": "You are simulating Alex."})
    episode = Episode(
        episode_id="e",
        domain="embodied",
        phase=1,
        user="alex",
        index=0,
        request=drink_request(),
        truth=GroundTruth(correct_ids=["A"], statement="Ice-cold water when dehydrated."),
    )
    stub.script({"raw": "Ice-cold water, please, with plenty of ice."})
    assert user.answer(episode, "What would you like?") == "Ice-cold water, please, with plenty of ice."
    assert user.feedback(episode, Action(candidate_id="A", candidate_text="ice-cold water")) is None
    stub.script({"raw": "Not coffee! I need ice-cold water."})
    correction = user.feedback(episode, Action(candidate_id="B", candidate_text="black coffee"))
    assert correction == "Not coffee! I need ice-cold water."
    [request] = stub.log()["requests"]
    assert "response_format" not in request
    assert request["messages"][0]["content"].startswith("You are simulating Alex.")


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"], ids=["in this process", "worker processes"])
def test_eval_with_the_llm_simulated_user_plays_each_phases_published_persona(
    stub: Stub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    mini_data: Path,
    workers: str,
) -> None:
    """``pahf eval --simulator llm`` on the published data: every correction the simulated
    person makes is asked of the model under that user's persona prompt for the phase, the
    original one before the persona shift and the evolved one after it (as in the paper)."""
    from collections import Counter

    from pahf.eval.published import load_published

    stub.script(*[{"raw": "That is not what I asked for; I want something else."}] * 400)
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PAHF_LLM_CACHE", raising=False)
    out = tmp_path / "run"
    code = main([
        "eval", "--data", str(mini_data), "--domain", "embodied", "--user", "Quill,Rowan",
        "--method", "post-only", "--iterations", "1", "--simulator", "llm",
        "--model", "local-model", "--workers", workers, "--quiet", "--out", str(out),
    ])
    assert code == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    corrected = Counter((r["user"], r["phase"]) for r in records if r["feedback"])
    assert {phase for _, phase in corrected} == {1, 3}
    personas = load_published(mini_data, "embodied").personas
    systems = [r["messages"][0]["content"] for r in stub.log()["requests"]]
    assert len(systems) == sum(corrected.values())
    for user in ("Quill", "Rowan"):
        for phase in (1, 3):
            assert corrected[user, phase] > 0
            played = sum(s.startswith(personas[phase][user]) for s in systems)
            assert played == corrected[user, phase], (user, phase)


def test_chat_cli_with_the_llm_reasoner(
    stub: Stub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PAHF_LLM_CACHE", raising=False)
    monkeypatch.delenv("PAHF_STRUCTURED_OUTPUT", raising=False)
    lines = iter(
        [
            "Dehydrated :: bring me a drink | A=ice-cold water | B=black coffee",
            "Ice-cold water, always, when I'm dehydrated.",
            "",
        ]
    )

    def fake_input(prompt: str = "") -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    stub.script(
        {"content": assess(True, question="Hot or cold drinks when dehydrated?")},
        {"content": learn("ice-cold water")},
        {"content": choose("A")},
    )
    import argparse

    parser = argparse.ArgumentParser(prog="pahf")
    chat_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["chat", "--user", "alex", "--store", str(tmp_path / "m"), "--reasoner", "llm",
         "--model", "local-model"]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "agent asks: Hot or cold drinks when dehydrated?" in out
    assert "agent chose: ice-cold water" in out
    assert "agent learned: Ice-cold water, always, when I'm dehydrated." in out
    assert [r["model"] for r in stub.log()["requests"]] == ["local-model"] * 3


def _eval_argv(out: Path, *extra: str, users: int = 1) -> list[str]:
    """``pahf eval`` on the first ``users`` of the generated embodied benchmark, no-memory (one
    decision, ``choose``, per episode), with the LLM reasoner."""
    return [
        "eval", "--domain", "embodied", "--method", "no-memory", "--users", str(users),
        "--iterations", "1", "--reasoner", "llm", "--model", "local-model", "--quiet",
        "--out", str(out), *extra,
    ]


def _eval_with_the_llm_reasoner(
    stub: Stub, monkeypatch: pytest.MonkeyPatch, out: Path, *extra: str, users: int = 1
) -> int:
    """Run :func:`_eval_argv`'s command with the LLM reasoner talking to the stub."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PAHF_LLM_CACHE", raising=False)
    monkeypatch.delenv("PAHF_STRUCTURED_OUTPUT", raising=False)
    return main(_eval_argv(out, *extra, users=users))


@pytest.mark.slow
def test_eval_on_worker_processes_stops_cleanly_when_the_model_refuses(
    stub: Stub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A 401 in a worker process reaches the command as the LLM error it is (it used to fail to
    unpickle in the parent), in one line, with how to resume; nothing is logged as played."""
    stub.script(*[{"status": 401}] * 20)
    # Two users, two workers: each user's share runs in a process of its own.
    code = _eval_with_the_llm_reasoner(
        stub, monkeypatch, tmp_path / "run", "--workers", "2", users=2
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "pahf eval: error: act: LLM decision 'choose' failed after 1 attempt(s)" in err
    assert "Error code: 401" in err and f"rerun with --out {tmp_path / 'run'}" in err
    assert "Traceback" not in err
    log = tmp_path / "run" / "episodes.jsonl"
    assert not log.exists() or not log.read_text().strip()


def test_eval_counts_episodes_whose_decision_stayed_malformed_and_goes_on(
    stub: Stub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Two unusable replies fail one episode (scored wrong, reason logged); the next replies are
    good, so the run finishes and says how many episodes failed."""
    argv = _eval_argv(tmp_path / "run", "--max-episodes", "3")
    bench = load_benchmarks(build_parser().parse_args(argv), ["embodied"])["embodied"]
    steps = replay_order(bench, bench.users()[0], 1)[:3]  # the episodes the run will play
    malformed = {"raw": "I would pick the first one."}
    stub.script(
        malformed,
        malformed,
        *[{"content": choose(step.episode.request.candidates[0].id)} for step in steps[1:]],
    )
    code = _eval_with_the_llm_reasoner(stub, monkeypatch, tmp_path / "run", "--max-episodes", "3")
    out = capsys.readouterr().out
    assert code == 0
    lines = (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    assert [r["error"] is not None for r in records] == [True, False, False]
    assert records[0]["action"] is None and records[0]["correct"] is False
    assert "ChooseDecision" in records[0]["error"] and records[0]["llm_calls"] == 2
    assert "1 episodes failed" in out
    assert "decision of the agent failed" in (tmp_path / "run" / "report.md").read_text()
