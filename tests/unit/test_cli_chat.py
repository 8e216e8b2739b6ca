"""``pahf chat``: the request line format and the interactive loop, driven through input()."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_openai import ChatOpenAI

from pahf.cli import CliError
from pahf.cli import chat as chat_cli
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.reasoners import llm as llm_module


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pahf")
    sub = parser.add_subparsers(dest="command", required=True)
    chat_cli.register(sub)
    return parser.parse_args(["chat", *argv])


def feed(monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> list[str]:
    """Make input() return ``lines`` then raise EOFError; returns the prompts shown."""
    prompts: list[str] = []
    source: Iterator[str] = iter(lines)

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        try:
            return next(source)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    return prompts


def test_request_line_format() -> None:
    req = chat_cli.parse_request_line("Dehydrated :: bring me a drink | iced water | A=cola", "u")
    assert (req.context, req.task, req.user_id) == ("Dehydrated", "bring me a drink", "u")
    assert [(c.id, c.text) for c in req.candidates] == [("1", "iced water"), ("A", "cola")]
    plain = chat_cli.parse_request_line("pick a mug | red mug | blue mug", "u")
    assert plain.context == "" and len(plain.candidates) == 2
    for bad in ("no options here", "task | | x", "| a | b"):
        with pytest.raises(ValueError, match="TASK \\| OPTION"):
            chat_cli.parse_request_line(bad, "u")
    with pytest.raises(ValueError, match="candidate ids must be unique"):
        chat_cli.parse_request_line("t | A=x | A=y", "u")


def test_request_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "req.json"
    path.write_text(
        json.dumps({"task": "buy a kettle", "candidates": [{"id": "A", "text": "steel"}]})
    )
    req = chat_cli.parse_request_line(str(path), "bea")
    assert req.user_id == "bea" and req.candidates[0].id == "A"
    with pytest.raises(ValueError, match="no request file"):
        chat_cli.parse_request_line(str(tmp_path / "missing.json"), "bea")
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="one JSON object"):
        chat_cli.parse_request_line(str(path), "bea")


def test_offline_chat_asks_learns_and_remembers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = tmp_path / "memory"
    prompts = feed(
        monkeypatch,
        [
            "/help",
            "this line is not a request",
            "Dehydrated :: bring me a drink | A=ice-cold water | B=hot black coffee",
            "",  # an empty answer is refused, the question is asked again
            "When I'm dehydrated I want ice-cold water, not hot drinks.",
            "",  # accept the action
            "/memories",
            "/quit",
        ],
    )
    args = parse(["--user", "alex", "--store", str(store)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "TASK | OPTION" in out  # help, and the error for the bad line
    assert "agent asks:" in out
    assert "(an answer is needed" in out
    assert "agent chose: ice-cold water" in out
    assert "agent learned: When I'm dehydrated I want ice-cold water, not hot drinks." in out
    assert "What I know about you:" in out
    assert prompts.count("your answer> ") == 2
    # The memory outlives the session.
    reopened = ChromaPreferenceMemory(store)
    assert [r.text for r in reopened.get_all("alex")] == [
        "When I'm dehydrated I want ice-cold water, not hot drinks."
    ]


def test_chat_asks_at_another_time_of_day_and_doubts_a_bare_no(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    drink = "Could you bring me a drink? | hot coffee | warm milk"
    feed(
        monkeypatch,
        [
            f"It's 7 AM. {drink}", "In the morning, I prefer hot coffee.", "Perfect, thanks!",
            f"It's 8 PM. {drink}", "In the evening, I prefer warm milk.", "",
            f"It's 9 PM. {drink}", "Not that one.",
            "/quit",
        ],
    )
    args = parse(["--user", "cy", "--store", str(tmp_path / "m")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    # Asked at 7 AM (nothing known) and at 8 PM (only a morning preference known).
    assert out.count("agent asks:") == 2
    assert "agent chose: warm milk" in out
    assert "agent is no longer sure of: In the evening, I prefer warm milk." in out
    reopened = ChromaPreferenceMemory(tmp_path / "m")
    # Neither the praise (an acceptance) nor the bare "no" is stored as a preference.
    assert len(reopened.get_all("cy")) == 2


def test_chat_ends_cleanly_on_end_of_input_mid_question(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    feed(monkeypatch, ["Morning :: a drink | tea | coffee"])
    args = parse(["--user", "bea", "--store", str(tmp_path / "m")])
    assert args.func(args) == 0
    assert "agent asks:" in capsys.readouterr().out


def test_chat_argument_errors(tmp_path: Path) -> None:
    args = parse(["--user", "bea", "--store", str(tmp_path), "--model", "gpt-4o"])
    with pytest.raises(CliError, match="--reasoner llm"):
        chat_cli.build_session(args)
    args = parse(["--user", " ", "--store", str(tmp_path)])
    with pytest.raises(CliError, match="--user: user id must not be empty"):
        chat_cli.build_session(args)


def _scripted_chat_openai(contents: list[dict[str, Any]], seen: list[dict[str, Any]]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        content = json.dumps(contents.pop(0))
        return httpx.Response(
            200,
            json={
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
        )

    def factory(**kwargs: Any) -> ChatOpenAI:
        settings = kwargs.get("settings")
        return ChatOpenAI(
            model=(settings.model if settings else kwargs.get("model")) or "default-model",
            api_key="k",
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
            max_retries=0,
        )

    return factory


def test_llm_chat_correction_path_and_llm_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: list[dict[str, Any]] = []
    contents = [
        # request 1: clear (1 call), then a correction (learn: 1 call)
        {"reason": "r", "ambiguous": False, "question": "", "candidate_id": "2"},
        {"wants": "green tea", "refuses": "coffee", "revises_memory_id": None},
        # request 2: the model names an option that does not exist, twice
        {"reason": "r", "ambiguous": False, "question": "", "candidate_id": "9"},
        {"reason": "r", "ambiguous": False, "question": "", "candidate_id": "9"},
    ]
    monkeypatch.setattr(
        llm_module, "chat_model_from_settings", _scripted_chat_openai(contents, seen)
    )
    feed(
        monkeypatch,
        [
            "Morning :: a drink please | orange juice | coffee",
            "No coffee in the morning, I want green tea.",
            # (coffee is refused now, so two options are left for the model to choose from)
            "Morning :: a drink please | orange juice | coffee | green tea",
            "/quit",
        ],
    )
    args = parse(
        ["--user", "bea", "--store", str(tmp_path / "m"), "--reasoner", "llm", "--model", "m1"]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "agent chose: coffee" in out
    assert "agent learned: No coffee in the morning, I want green tea." in out
    assert "error: ambiguity_detect: LLM decision 'assess' failed after 2 attempt(s)" in out
    assert "(nothing was stored for this request)" in out
    assert [b["model"] for b in seen] == ["m1"] * 4
    assert ChromaPreferenceMemory(tmp_path / "m").count("bea") == 1
