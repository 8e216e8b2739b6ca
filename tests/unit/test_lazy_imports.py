"""The offline evaluation path does not import what only LLM mode needs.

Every evaluation worker process imports the harness anew, and the OpenAI SDK is a slow import
(bench/README.md, section 5).
"""

from __future__ import annotations

import subprocess
import sys


def test_the_harness_and_cli_import_without_the_openai_sdk() -> None:
    code = (
        "import sys, pahf.eval.runner, pahf.cli.eval; "
        "print(sorted(m for m in sys.modules if m == 'openai' or m.startswith('openai.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
