"""The pahf command line: the demo shows learning; bad input fails clearly, losing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pahf.cli import main


def test_demo_shows_questions_corrections_and_revision(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["demo", "--store", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert out.count("agent asks") == 3  # one per new situation, none once learned
    assert "preference changes here" in out and "revised" in out
    assert "6/7 actions correct" in out
    assert "superseded" in out
    # the store it wrote is usable by the memory commands
    assert main(["memory", "list", "--store", str(tmp_path / "store"), "--user", "alex"]) == 0
    assert "superseded" in capsys.readouterr().out


def _run_store(tmp_path: Path) -> Path:
    store = tmp_path / "s"
    req = tmp_path / "req.json"
    req.write_text(
        json.dumps(
            {
                "user_id": "ana",
                "task": "bring me a drink",
                "context": "Morning",
                "candidates": [
                    {"id": "tea", "text": "green tea"},
                    {"id": "coffee", "text": "black coffee"},
                ],
            }
        )
    )
    assert (
        main(
            [
                "run",
                "--request",
                str(req),
                "--store",
                str(store),
                "--new-store",
                "--answer",
                "In the morning I want green tea.",
                "--accept",
            ]
        )
        == 0
    )
    return store


def test_run_export_import_forget_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _run_store(tmp_path)
    assert '"candidate_id": "tea"' in capsys.readouterr().out
    out_file = tmp_path / "ana.json"
    assert (
        main(["memory", "export", "--store", str(store), "--user", "ana", "--out", str(out_file)])
        == 0
    )
    exported = json.loads(out_file.read_text())
    assert [m["text"] for m in exported["memories"]] == ["In the morning I want green tea."]
    other = tmp_path / "other"
    other.mkdir()
    # import into a brand-new store directory works (import may create it)
    assert (
        main(["memory", "import", "--store", str(other), "--user", "ana", "--file", str(out_file)])
        == 0
    )
    assert main(["memory", "export", "--store", str(other), "--user", "ana"]) == 0
    assert json.loads(capsys.readouterr().out)["memories"] == exported["memories"]
    assert main(["memory", "users", "--store", str(store)]) == 0
    assert "ana\t1" in capsys.readouterr().out
    assert main(["memory", "forget", "--store", str(store), "--user", "ana", "--yes"]) == 0
    assert main(["memory", "list", "--store", str(store), "--user", "ana"]) == 2


def test_clear_errors_and_nothing_lost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _run_store(tmp_path)
    capsys.readouterr()
    assert main(["memory", "list", "--store", str(tmp_path / "nope"), "--user", "ana"]) == 2
    assert "no pahf memory store" in capsys.readouterr().err
    assert main(["memory", "list", "--store", str(store), "--user", "zed"]) == 2
    assert "no memories stored for user 'zed'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["run", "--request", str(bad), "--store", str(store), "--accept"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"user_id": "ana", "task": "t", "candidates": []}))
    assert main(["run", "--request", str(bad), "--store", str(store), "--accept"]) == 2
    assert "candidates" in capsys.readouterr().err
    assert main(["run", "--request", str(tmp_path / "missing.json"), "--store", str(store)]) == 2
    assert "does not exist" in capsys.readouterr().err
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({"user_id": "ana", "task": "t", "candidates": [{"id": "a", "text": "a"}]})
    )
    typo = tmp_path / "stroe"
    assert main(["run", "--request", str(good), "--store", str(typo), "--accept"]) == 2
    assert "no pahf memory store at" in capsys.readouterr().err
    assert not typo.exists()  # a mistyped store is not created empty
    assert (
        main(["memory", "forget", "--store", str(store), "--user", "ana"]) == 2
    )  # no --yes, no tty
    assert main(["demo", "--method", "bogus"]) == 2
    assert "unknown method" in capsys.readouterr().err
    # after all the failures, ana's memory is intact
    assert main(["memory", "export", "--store", str(store), "--user", "ana"]) == 0
    assert "green tea" in capsys.readouterr().out


def test_a_model_that_fails_is_one_line_and_exit_1_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pahf.cli import demo
    from pahf.reasoners.llm import LLMCallError

    def unreachable(args: object) -> int:
        raise LLMCallError(
            "choose", "act", "the model call failed: ConnectError: refused", attempts=1
        )

    monkeypatch.setattr(demo, "run_demo", unreachable)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "pahf demo: error: act: LLM decision 'choose' failed after 1 attempt(s): "
        "the model call failed: ConnectError: refused\n"
    )


def test_a_dead_worker_process_ends_eval_in_one_line_with_how_to_resume(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from pahf.cli import eval as eval_cli
    from pahf.eval.workers import WORKER_DIED, WorkerProcessError

    def dies(*args: object, **kwargs: object) -> object:
        raise WorkerProcessError(WORKER_DIED)

    monkeypatch.setattr(eval_cli, "run_evaluation", dies)
    out = tmp_path / "run"
    assert main(["eval", "--domain", "embodied", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"pahf eval: error: {WORKER_DIED}" in " ".join(err.split())
    assert f"finished episodes are kept: rerun with --out {out} to resume" in err
