"""The examples in examples/ run, and do what their docstrings say."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.types import Command

from pahf.context import RunContext
from pahf.memory.chroma import ChromaPreferenceMemory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (examples are scripts, not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"pahf_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic / TypedDict resolve annotations via the module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def subgraph_app() -> ModuleType:
    return load("subgraph_app")


@pytest.fixture(scope="module")
def tools_agent() -> ModuleType:
    return load("memory_tools_agent")


# --------------------------------------------------------------------------- subgraph app


def test_subgraph_app_learns_then_uses_the_preference(
    subgraph_app: ModuleType, hashing_memory: ChromaPreferenceMemory
) -> None:
    transcript = subgraph_app.main(hashing_memory)
    asked = [line for line in transcript if line.startswith("assistant asks:")]
    assert len(asked) == 1  # only the first errand needed a question
    replies = [line for line in transcript if line.startswith("assistant: Done")]
    assert replies == [
        "assistant: Done: ice water (noted: ice water please, never coffee when I am dehydrated)",
        "assistant: Done: ice water",
    ]
    [record] = hashing_memory.get_all("alice")
    assert record.text == "ice water please, never coffee when I am dehydrated"


def test_subgraph_interrupts_surface_and_resume_through_the_parent(
    subgraph_app: ModuleType, hashing_memory: ChromaPreferenceMemory
) -> None:
    app = subgraph_app.build_app(hashing_memory)
    config: Any = {"configurable": {"thread_id": "t1"}}
    ctx = RunContext(user_id="alice")
    errand = {"errand": "get me a drink", "situation": "dehydrated", "options": ["tea", "water"]}
    out = app.invoke(errand, config, context=ctx)
    assert out["__interrupt__"][0].value["type"] == "question"
    state = app.get_state(config, subgraphs=True)
    assert state.next == ("pahf",)  # the parent is paused inside its pahf node...
    inner = state.tasks[0].state
    assert inner is not None and inner.next == ("ask_user",)  # ...which is paused at ask_user
    out = app.invoke(Command(resume="water, never tea"), config, context=ctx)
    assert out["__interrupt__"][0].value["type"] == "feedback"
    out = app.invoke(Command(resume="I want tea today, even when dehydrated"), config, context=ctx)
    assert "__interrupt__" not in out
    assert [op.kind for op in out["memory_ops"]] == ["add", "supersede"]
    assert out["reply"].startswith("Done: water")
    assert app.get_state(config).next == ()


def test_subgraph_app_with_a_sqlite_checkpointer(
    subgraph_app: ModuleType, hashing_memory: ChromaPreferenceMemory, tmp_path: Path
) -> None:
    transcript = subgraph_app.main(hashing_memory, f"sqlite:///{tmp_path / 'app.db'}")
    assert transcript[-1] == "assistant: Done: ice water"
    assert (tmp_path / "app.db").stat().st_size > 0


# --------------------------------------------------------------------------- tools agent


def test_tools_agent_records_recalls_and_keeps_users_apart(
    tools_agent: ModuleType, hashing_memory: ChromaPreferenceMemory
) -> None:
    transcript = tools_agent.main(hashing_memory)
    assert transcript[1] == '  tools: ["record_preference"]'
    assert transcript[4] == '  tools: ["recall_preferences"]'
    assert transcript[5] == "  agent: Going by what you told me: I prefer ice water when I am dehydrated."
    assert transcript[8] == "  agent: I don't know your preference here yet. What would you like?"
    [record] = hashing_memory.get_all("alice")
    assert record.topic == "I am dehydrated"
    assert hashing_memory.users() == ["alice"]


def test_tools_agent_loop_passes_tool_results_back_to_the_model(
    tools_agent: ModuleType, hashing_memory: ChromaPreferenceMemory
) -> None:
    from pahf.memory.tools import make_memory_tools

    agent = tools_agent.build_agent(tools_agent.ScriptedToolModel(), make_memory_tools(hashing_memory))
    messages = tools_agent.chat(agent, "erin", "I never want onions on pizza.")
    kinds = [type(m) for m in messages]
    assert kinds == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert messages[2].status == "success"
    assert hashing_memory.get_all("erin")[0].text == "I never want onions on pizza."


def test_scripted_model_without_tools_just_answers(tools_agent: ModuleType) -> None:
    model = tools_agent.ScriptedToolModel()
    reply = model.invoke([HumanMessage("I prefer tea")])
    assert reply.tool_calls == [] and "no memory" in str(reply.content)


# --------------------------------------------------------------------------- as scripts


@pytest.mark.slow
@pytest.mark.parametrize("script", ["subgraph_app.py", "memory_tools_agent.py"])
def test_examples_run_as_scripts(script: str) -> None:
    """``python examples/<script>`` works offline with the default (MiniLM) store."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ice water" in done.stdout
