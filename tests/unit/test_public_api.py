"""The top level: an application imports what it needs from ``pahf``, and ``import pahf``
alone stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pahf


def test_every_public_name_resolves_to_its_defining_object() -> None:
    import importlib

    assert set(pahf.__all__) == {"__version__", *pahf._EXPORTS}
    for name in pahf.__all__:
        if name == "__version__":
            continue
        value = getattr(pahf, name)
        assert value is getattr(importlib.import_module(pahf._EXPORTS[name]), name)
        assert name in dir(pahf)


def test_the_readme_names_import_from_the_top_level() -> None:
    from pahf import (  # noqa: F401
        ChromaPreferenceMemory,
        LLMReasoner,
        OfflineReasoner,
        Request,
        RunContext,
        build_graph,
        memory_checkpointer,
    )


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        pahf.build_grpah  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "build_grpah" in str(exc)
    else:
        raise AssertionError("a misspelt name must not resolve")


def test_import_pahf_loads_no_framework() -> None:
    code = (
        "import sys, pahf\n"
        "heavy = [m for m in ('langgraph', 'chromadb', 'langchain_core', 'onnxruntime', "
        "'pahf.graphs', 'pahf.memory') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.slow
def test_the_readmes_first_python_snippet_runs(tmp_path: Path) -> None:
    """The snippet a new user copies first: top-level imports, a question, then feedback."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert snippet.splitlines()[1].startswith("from pahf import ")
    check = (
        "\nassert out['action'].candidate_id == 'water', out['action']\n"
        "assert [op.kind for op in out['memory_ops']] == ['add'], out['memory_ops']  # the answer; accepting in the same request does not reinforce it\n"
        "print('ok')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", snippet + check], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("ok")
