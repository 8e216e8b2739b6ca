"""`pahf eval --noise-sweep` puts a noisy-feedback table, from real sub-runs, in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pahf.cli import main

ARGS = [
    "eval", "--domain", "shopping", "--method", "pahf", "--users", "1",
    "--episodes-per-phase", "4", "--iterations", "1", "--quiet",
]


@pytest.mark.slow
def test_noise_sweep_table_matches_each_levels_own_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main([*ARGS, "--noise-sweep", "0,0.5", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "## Noisy feedback" in report
    noisy = json.loads((out / "noise-0.5" / "summary.json").read_text())["rows"]
    clean = json.loads((out / "summary.json").read_text())["rows"]
    for level, rows in (("0", clean), ("0.5", noisy)):
        by_phase = {r["phase"]: r["success_rate"] for r in rows}
        line = f"| pahf | {level} | " + " | ".join(f"{by_phase[p]:.3f}" for p in (1, 2, 3, 4)) + " |"
        assert line in report
    assert not (out / "noise-0").exists()  # the main run is level 0: not played twice
    assert "success rate by feedback noise" in capsys.readouterr().out


def test_bad_noise_levels_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ARGS, "--noise-sweep", "0,abc", "--out", str(tmp_path / "a")]) == 2
    assert "--noise-sweep" in capsys.readouterr().err
    assert main([*ARGS, "--noise-sweep", "1.5", "--out", str(tmp_path / "b")]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
