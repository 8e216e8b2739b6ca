"""pahf-mini: the tests' own tiny benchmark, laid out as the published PAHF data is read.

The invented files live under ``tests/fixtures/mini`` with names of their own; this module
copies them into the directory layout and file names the published-data loader expects (a
``data/`` folder holding ``embodied/`` and ``shopping/``), in a temporary directory outside the
checkout. Run it as a script to get the layout somewhere to try ``pahf eval --data`` on:
``python tests/unit/pahf_mini.py DEST``.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "mini"

#: Our file -> where the published layout keeps that kind of file.
LAYOUT = {
    "embodied-personas-before.py": "embodied/personas/original_persona.py",
    "embodied-personas-after.py": "embodied/personas/evolved_persona.py",
    "embodied-before-learning.json": "embodied/scenarios/original_scenarios_A.json",
    "embodied-before-test.json": "embodied/scenarios/original_scenarios_B.json",
    "embodied-after-learning.json": "embodied/scenarios/evolved_scenarios_A.json",
    "embodied-after-test.json": "embodied/scenarios/evolved_scenarios_B.json",
    "shopping-before-learning.json": "shopping/phase1.json",
    "shopping-before-test.json": "shopping/phase2.json",
    "shopping-after-learning.json": "shopping/phase3.json",
    "shopping-after-test.json": "shopping/phase4.json",
    "shopping-tastes-before.json": "shopping/persona_info.json",
    "shopping-tastes-after.json": "shopping/updated_persona_info.json",
    "shopping-prompts-before.json": "shopping/original_persona.json",
    "shopping-prompts-after.json": "shopping/updated_persona.json",
}


def build(dest: Path) -> Path:
    """Write the benchmark into ``dest/pahf-mini/data/...``; returns ``dest/pahf-mini``."""
    root = dest / "pahf-mini"
    for ours, theirs in LAYOUT.items():
        target = root / "data" / theirs
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE / ours, target)
    return root


@cache
def pahf_mini() -> Path:
    """The benchmark laid out once per test process, removed when the process ends."""
    tmp = Path(tempfile.mkdtemp(prefix="pahf-mini-"))
    atexit.register(shutil.rmtree, tmp, True)
    return build(tmp)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/unit/pahf_mini.py DEST")
    print(build(Path(sys.argv[1])))
