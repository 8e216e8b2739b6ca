"""The CLI tells bad input (one line, exit 2) from a bug (a pointer to --debug, exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pahf.cli import main
from pahf.errors import InputError


def _raise_from_demo(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    from pahf.cli import demo

    def failing(args: object) -> int:
        raise exc

    monkeypatch.setattr(demo, "run_demo", failing)


@pytest.mark.parametrize(
    "bug",
    [ValueError("bad things"), KeyError("slot"), IndexError("list index out of range"),
     OSError("disk on fire"), TypeError("not callable")],
)
def test_an_unexpected_exception_is_a_bug_not_bad_input(
    bug: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _raise_from_demo(monkeypatch, bug)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1  # one line
    assert err.startswith("pahf demo: unexpected error")
    assert type(bug).__name__ in err and "rerun with --debug for the traceback" in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(
    where: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _raise_from_demo(monkeypatch, KeyError("slot"))
    argv = ["--debug", "demo"] if where == "before" else ["demo", "--debug"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: 'slot'" in err
    assert "in failing" in err  # the frame that raised


def test_debug_after_a_nested_command_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["memory", "users", "--store", str(tmp_path / "nope"), "--debug"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("check the path")


def test_an_input_error_from_the_library_is_exit_2_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pahf.eval.errors import DataError

    assert issubclass(DataError, InputError) and issubclass(DataError, ValueError)
    _raise_from_demo(monkeypatch, DataError("phase1.json", "empty string", field="item 3"))
    assert main(["demo"]) == 2
    assert capsys.readouterr().err == "pahf demo: error: phase1.json: item 3: empty string\n"


def test_library_input_errors_share_the_one_type() -> None:
    from pahf.eval.results import EpisodeLogError
    from pahf.eval.runner import RunConfigMismatch
    from pahf.graphs.checkpointers import CheckpointerURLError
    from pahf.memory.chroma import StoreLocationError
    from pahf.reasoners.llm import LLMConfigError

    for error in (EpisodeLogError, RunConfigMismatch, CheckpointerURLError, StoreLocationError,
                  LLMConfigError):
        assert issubclass(error, InputError), error


def test_bad_memory_files_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    bad = tmp_path / "memories.json"
    assert main(["memory", "import", "--store", store, "--user", "ana", "--file", str(bad)]) == 2
    assert f"memory file {bad} does not exist" in capsys.readouterr().err
    bad.write_text("{nope")
    assert main(["memory", "import", "--store", store, "--user", "ana", "--file", str(bad)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"user_id": "ana", "memories": [{"id": 3}]}))
    assert main(["memory", "import", "--store", store, "--user", "ana", "--file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pahf memory: error: {bad}: memory #0: invalid MemoryRecord") and err.count("\n") == 1


def test_an_unusable_run_directory_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main(["eval", "--domain", "embodied", "--users", "1", "--quiet",
                 "--out", str(blocker / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot create the run directory" in err and "Traceback" not in err


def test_an_unknown_generator_user_count_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--users", "999", "--quiet"]) == 2
    assert "users must be between 1 and" in capsys.readouterr().err
