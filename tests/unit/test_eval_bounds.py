"""Evaluation inputs that used to exhaust the machine are bounded or linear."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pahf.cli import main
from pahf.eval.datafiles import string_list
from pahf.eval.errors import DataError


def test_iterations_are_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    """--iterations 1000000000 built its schedule in memory: 3.4 GB after 60 s, no output."""
    assert main(["eval", "--iterations", "1000000000"]) == 2
    assert "--iterations must be at most 100" in capsys.readouterr().err


def test_a_long_option_list_is_checked_in_linear_time(tmp_path: Path) -> None:
    """The duplicate check called list.count per item: a 100k-option list hung the loader."""
    options = [f"option {i}" for i in range(100_000)]
    start = time.perf_counter()
    assert string_list(tmp_path / "f.json", "row 0", {"options": options}, "options") == options
    assert time.perf_counter() - start < 2.0
    with pytest.raises(DataError, match="duplicate entries"):
        string_list(tmp_path / "f.json", "row 0", {"options": [*options, "option 7"]}, "options")
