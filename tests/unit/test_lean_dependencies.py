"""The library is lean: only the command line and the evaluation's plots need rich and
matplotlib (the ``cli`` / ``eval`` extras), and without them the command says what to install.

Each check runs in a fresh interpreter where those packages are blocked (``sys.modules[name] =
None`` makes any import of them fail), as on a machine that installed plain ``pahf``.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

EXTRAS_ONLY = ("rich", "matplotlib")

BLOCK = f"import sys\nfor _name in {EXTRAS_ONLY!r}:\n    sys.modules[_name] = None\n"


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_every_library_module_imports_without_the_extras(tmp_path: Path) -> None:
    code = (
        "import importlib, pkgutil, pahf\n"
        "names = [m.name for m in pkgutil.walk_packages(pahf.__path__, 'pahf.')\n"
        "         if not m.name.startswith('pahf.cli')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "assert 'pahf.graphs' in names and 'pahf.eval.runner' in names, names\n"
        "print(len(names))\n"
    )
    run = _run(code, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert int(run.stdout.strip()) > 30


@pytest.mark.slow
def test_a_request_runs_through_the_graph_without_the_extras(tmp_path: Path) -> None:
    code = (
        "from langgraph.types import Command\n"
        "from pahf import ChromaPreferenceMemory, OfflineReasoner, RunContext, build_graph\n"
        "from pahf import memory_checkpointer\n"
        "from pahf.memory import HashingEmbeddingFunction\n"
        "memory = ChromaPreferenceMemory(None, embedding_function=HashingEmbeddingFunction())\n"
        "graph = build_graph(OfflineReasoner(memory.encoder), memory, memory_checkpointer())\n"
        "config = {'configurable': {'thread_id': 't'}}\n"
        "request = {'user_id': 'ana', 'task': 'a drink?', 'context': 'Morning',\n"
        "           'candidates': [{'id': 'tea', 'text': 'green tea'},\n"
        "                          {'id': 'coffee', 'text': 'black coffee'}]}\n"
        "out = graph.invoke({'request': request}, config, context=RunContext())\n"
        "while '__interrupt__' in out:\n"
        "    out = graph.invoke(Command(resume='In the morning I want green tea.'), config)\n"
        "print(out['action'].candidate_id)\n"
    )
    run = _run(code, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "tea"


@pytest.mark.slow
def test_the_command_without_the_cli_extra_says_what_to_install(tmp_path: Path) -> None:
    run = _run("from pahf.cli import main\nraise SystemExit(main(['demo']))\n", tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "pahf: the pahf command needs the 'rich' package, which is not installed: "
        "pip install 'pahf[cli]'"
    )


@pytest.mark.slow
def test_eval_without_matplotlib_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys\nsys.modules.pop('rich')\n"  # the cli extra is there, the eval one is not
        "from pahf.cli import main\nraise SystemExit(main(['eval', '--quiet']))\n"
    )
    run = _run(code, tmp_path)
    assert run.returncode == 1
    assert "pip install 'pahf[eval]'" in run.stderr and "matplotlib" in run.stderr
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_the_declared_dependencies_leave_the_extras_out() -> None:
    project = tomllib.loads(
        (Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    )["project"]
    core = " ".join(project["dependencies"])
    for name in EXTRAS_ONLY:
        assert name not in core
    extras = project["optional-dependencies"]
    assert any(d.startswith("rich") for d in extras["cli"])
    assert {d.split(">")[0] for d in extras["eval"]} >= set(EXTRAS_ONLY)
