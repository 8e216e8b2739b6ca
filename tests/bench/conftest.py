"""The benchmarks live in the repository's ``bench/``, not in the installed package: their
tests put the repository root on ``sys.path`` to import them, as ``python -m bench`` does when
run from the root. The root holds no ``pahf`` folder, so the installed package is still the
one under test."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
