"""A person holds a PAHF conversation in Agent Chat UI, in a real browser.

The suite starts ``langgraph dev`` on 127.0.0.1, serves Agent Chat UI (the vite template of npm's
``create-agent-chat-app``, installed and built from the npm registry on first use and cached under
``~/.cache/pahf-chatui``, never in the checkout, by ``examples/agent_chat_ui.sh``, the script the
README gives people), and drives Debian's ``chromium`` with npm's
``playwright-core`` (which never downloads a browser) through ``tests/browser/agent_chat_ui.mjs``:
a request typed in the chat box, the question answered in the interrupt widget, the action
rejected with a correction, a second request answered from memory and accepted. Screenshots go
to the test's tmp dir. Skips, saying why, only where chromium or npm cannot be had.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.nodes.conversation import CHAT_USER

from .conftest import REPO_ROOT, ServerProcess, free_port, start_langgraph

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.browser]

UI_SCRIPT = REPO_ROOT / "examples" / "agent_chat_ui.sh"
DRIVER_PACKAGE = "playwright-core@1.57.0"
DRIVER = REPO_ROOT / "tests" / "browser" / "agent_chat_ui.mjs"
CACHE = Path(os.environ.get("PAHF_CHATUI_CACHE", Path.home() / ".cache" / "pahf-chatui"))
ANSWER = "When I am dehydrated I want ice water, never hot coffee."
CORRECTION = "No: after a run I want hot coffee now, not ice water."


def _chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    return found


NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET")


def _npm_or_skip() -> str:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed (apt-get install nodejs npm; .ci/run does)")
    return npm


def _failed(what: str, done: subprocess.CompletedProcess[str]) -> None:
    detail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
    if any(e in done.stderr for e in NETWORK_ERRORS):
        pytest.skip(f"the npm registry cannot be reached ({what}): {detail}")
    pytest.fail(f"{what} failed: {detail}")


def agent_chat_ui() -> Path:
    """Agent Chat UI built for serving, by the script the README gives (cached)."""
    _npm_or_skip()
    done = subprocess.run(
        ["bash", str(UI_SCRIPT), "build"], env={**os.environ, "PAHF_CHATUI_CACHE": str(CACHE)},
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        _failed(f"{UI_SCRIPT.name} build", done)
    return CACHE / "app"


def driver_modules() -> Path:
    """``node_modules`` holding playwright-core (no browser: it drives the system's)."""
    driver = CACHE / "driver"
    modules = driver / "node_modules"
    if (modules / "playwright-core" / "package.json").exists():
        return modules
    driver.mkdir(parents=True, exist_ok=True)
    (driver / "package.json").write_text('{"name": "pahf-chat-driver", "private": true}\n')
    done = subprocess.run(
        [_npm_or_skip(), "install", DRIVER_PACKAGE, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=driver, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        _failed(f"npm install {DRIVER_PACKAGE}", done)
    return modules


def test_a_person_holds_the_pahf_loop_in_agent_chat_ui(tmp_path: Path) -> None:
    chromium = _chromium()
    app = agent_chat_ui()
    modules = driver_modules()
    node = shutil.which("node")
    assert node is not None  # npm brings it
    shots = tmp_path / "screenshots"
    shots.mkdir()

    server = start_langgraph(tmp_path / "langgraph")
    port = free_port()
    ui = ServerProcess(
        name="vite preview",
        command=[
            str(app / "node_modules" / ".bin" / "vite"),
            "preview",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--strictPort",
        ],
        log=tmp_path / "vite.log",
        cwd=app,
    )
    try:
        ui.start()
        ui.wait_http(f"http://127.0.0.1:{port}/")
        done = subprocess.run(
            [node, str(DRIVER), f"http://127.0.0.1:{port}", server.url, str(shots)],
            env={**os.environ, "NODE_PATH": str(modules), "CHROMIUM": chromium},
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        ui.stop()
        server.stop()
    taken = sorted(p.name for p in shots.glob("*.png"))
    assert done.returncode == 0, f"{done.stderr}\nscreenshots: {taken} in {shots}"
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["steps"] == ["opened", "question", "action", "learned", "from-memory", "done"]
    assert taken == [f"{i:02d}-{s}.png" for i, s in enumerate(seen["steps"], 1)]
    assert seen["first_action"] and seen["first_summary"]
    assert seen["questions_asked"] == 1  # the second request was answered from memory
    assert seen["second_action"] == 1 and seen["page_errors"] == []

    # What the person said is what the server's graph stored: the answer, then the correction
    # superseding it.
    store = ChromaPreferenceMemory(str(server.memory_dir))
    records = {r.text: r for r in store.get_all(CHAT_USER)}
    assert records[ANSWER].status == "superseded"
    assert records[CORRECTION].status == "active"
    assert records[CORRECTION].supersedes == records[ANSWER].id
