"""The evaluation harness: protocol order, no ground truth in the graph, frozen test phases,
resume after a stop or a crash, worker-count invariance, noise, LLM accounting, CLI errors."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from pahf.cli import main
from pahf.decisions import Action, Assessment, Turn
from pahf.eval import play as play_module
from pahf.eval.episodes import Benchmark, Episode
from pahf.eval.methods import context_for_method
from pahf.eval.metrics import summarize, without_timing
from pahf.eval.noise import IRRELEVANT_REMARKS, NoisyFeedback
from pahf.eval.report import render_markdown
from pahf.eval.results import EpisodeRecord, sorted_records
from pahf.eval.runner import (
    EvalServices,
    EvalSettings,
    FrozenMemoryError,
    RunConfigMismatch,
    SimulatedUserError,
    play_episode,
    replay_order,
    replay_request_id,
    run_evaluation,
    select_users,
)
from pahf.eval.simulators import ParityUser, RuleBasedUser
from pahf.eval.usage import new_tracker, read_usage
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.human import HumanDesk
from pahf.memory.base import PreferenceMemory
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.memory.schema import AppliedMemoryOp, MemoryOp, NewMemory, RetrievedMemory
from pahf.reasoners.llm import LLMCallError, LLMDecisionError, LLMOutputError
from pahf.reasoners.offline import OfflineReasoner
from pahf.request import Request
from tests.unit.eval_fixtures import tiny_benchmark

ALL = ["no-memory", "pre-only", "post-only", "pahf"]


def settings(methods: Sequence[str] = ALL, iterations: int = 2, **extra: Any) -> EvalSettings:
    return EvalSettings(
        domains=["embodied"],
        methods=list(methods),
        iterations=iterations,
        embedding="hashing",
        **extra,
    )


def comparable(records: Sequence[EpisodeRecord]) -> list[dict[str, Any]]:
    """Records minus wall time, in canonical order."""
    return [r.model_dump(exclude={"seconds"}) for r in sorted_records(records)]


def _services(simulator: Any = None, *, persistent: bool = True) -> EvalServices:
    """Offline reasoner over the lexical embedder; stores on disk (resume) or in memory (fast)."""

    def open_memory(path: Path) -> PreferenceMemory:
        if persistent:
            return ChromaPreferenceMemory(path, embedding_function=HashingEmbeddingFunction())
        return ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())

    return EvalServices(
        open_memory=open_memory,
        make_reasoner=lambda memory: OfflineReasoner(memory.encoder),
        # The default settings' user (worker processes build theirs from the settings).
        simulator=simulator or ParityUser(),
    )


def in_memory() -> EvalServices:
    return _services(persistent=False)


# --------------------------------------------------------------------------- protocol


def test_replay_order_is_p1_k_times_then_p2_then_p3_k_times_then_p4() -> None:
    steps = replay_order(tiny_benchmark(), "alex", iterations=3)
    plan = [(s.phase, s.iteration) for s in steps]
    assert plan == [(1, i) for i in (1, 2, 3) for _ in range(6)] + [(2, 1)] * 3 + [
        (3, i) for i in (1, 2, 3) for _ in range(6)
    ] + [(4, 1)] * 3
    assert [s.seq for s in steps] == list(range(len(steps)))
    assert {s.episode.user for s in steps} == {"alex"}
    first_pass = [s.episode.index for s in steps[:6]]
    assert first_pass == sorted(first_pass)


def test_protocol_runs_every_method_and_freezes_memory_in_test_phases(tmp_path: Path) -> None:
    out = run_evaluation(
        {"embodied": tiny_benchmark()}, settings(), tmp_path / "run", services=in_memory()
    )
    assert out.complete and out.skipped == 0
    assert out.played == len(out.records) == 4 * 2 * (6 * 2 + 3 + 6 * 2 + 3)
    by_method: dict[str, list[EpisodeRecord]] = {}
    for rec in out.records:
        by_method.setdefault(rec.method, []).append(rec)
    for method, records in by_method.items():
        for rec in records:
            if rec.phase in (2, 4):
                assert rec.question is None and not rec.feedback_requested
                assert rec.memory_ops == []
        asked = any(r.question for r in records)
        corrected = any(r.feedback for r in records)
        assert asked == (method in ("pre-only", "pahf")), method
        assert corrected == (method in ("post-only", "pahf")), method
        if method == "no-memory":
            assert all(r.memory_total == 0 and not r.memory_ops for r in records)
    # memory sizes in a test phase equal the size at the end of the learning phase before it
    rows = {(r.method, r.phase): r for r in summarize(out.records)}
    for method in ALL:
        assert rows[(method, 2)].memory_total == rows[(method, 1)].memory_total
        assert rows[(method, 4)].memory_total == rows[(method, 3)].memory_total
    assert (tmp_path / "run" / "episodes.jsonl").exists()


@pytest.mark.parametrize("how", ["reported op", "silent store write"])
def test_a_memory_write_in_a_test_phase_stops_the_run(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores: list[PreferenceMemory] = []
    services = in_memory()
    open_memory = services.open_memory

    def opened(path: Path) -> PreferenceMemory:
        stores.append(open_memory(path))
        return stores[-1]

    services.open_memory = opened
    real = play_module.play_episode

    def leaky(*args: Any, **kwargs: Any) -> EpisodeRecord:
        rec = real(*args, **kwargs)
        if kwargs["phase"] != 2:
            return rec
        if how == "reported op":
            op = AppliedMemoryOp(kind="add", memory_id="m-test", text="x")
            return rec.model_copy(update={"memory_ops": [op]})
        stores[0].add(rec.user, NewMemory(text="I secretly like tea."))
        return rec

    monkeypatch.setattr(play_module, "play_episode", leaky)
    with pytest.raises(FrozenMemoryError, match=r"test-phase episode .* changed the memory"):
        run_evaluation(
            {"embodied": tiny_benchmark()}, settings(["pahf"], 1), tmp_path / "r", services=services
        )


# --------------------------------------------------------------------------- ground truth


def _history(graph: Any, thread_id: str) -> list[Any]:
    """Checkpoints of a thread, oldest first."""
    return list(reversed(list(graph.get_state_history({"configurable": {"thread_id": thread_id}}))))


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _dump(values: dict[str, Any]) -> Any:
    return json.loads(
        json.dumps(
            {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in values.items()},
            default=lambda o: o.model_dump() if hasattr(o, "model_dump") else str(o),
        )
    )


def _play_and_trace(episode: Episode, method: str) -> tuple[EpisodeRecord, list[Any]]:
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    graph = build_graph(OfflineReasoner(memory.encoder), memory, memory_checkpointer())
    record = play_episode(
        graph,
        context_for_method(method, user_id=episode.user),
        episode,
        RuleBasedUser(),
        method=method,
        phase=1,
        iteration=1,
        seq=0,
        keep_checkpoints=True,
        human_turns="interrupt",  # a checkpoint at each human turn shows what the agent held
    )
    return record, _history(graph, f"embodied/{method}/{record.request_id}")


def _before_first_human_turn(history: list[Any]) -> list[Any]:
    prefix = []
    for snap in history:
        prefix.append(_dump(snap.values))
        if any(task.interrupts for task in snap.tasks):
            break
    return prefix


@pytest.mark.parametrize("method", ["pahf", "post-only"])
def test_no_ground_truth_reaches_the_graph(method: str) -> None:
    """The agent's state before any human turn is the same whatever the ground truth says;
    ground-truth fields never appear; the statement appears only after the user said it."""
    bench = tiny_benchmark(users=("alex",))
    original = bench.episodes[1][0]
    other = original.model_copy(
        update={
            "truth": original.truth.model_copy(
                update={
                    "correct_ids": ["c3"],
                    "acceptable_ids": ["c2", "c3"],
                    "refused": {"c0": ["ice"]},
                    "drifted": True,
                    "statement": "When I'm dehydrated I want a can of cola, nothing else.",
                }
            )
        }
    )
    record_a, history_a = _play_and_trace(original, method)
    _, history_b = _play_and_trace(other, method)
    before_a, before_b = _before_first_human_turn(history_a), _before_first_human_turn(history_b)
    assert before_a == before_b  # nothing the agent holds depends on the truth
    assert history_a[-1].values["request"].task == original.request.task
    truth_fields = {"truth", "correct_ids", "acceptable_ids", "refused", "drifted", "statement"}
    for snap in history_a + history_b:
        assert not truth_fields & _keys(_dump(snap.values))
    statement = original.truth.statement
    for values in before_a:
        assert statement not in json.dumps(values)
    said = (record_a.answer or "") + (record_a.feedback or "")
    if statement in said:  # after the user spoke, the words may be in state (that is learning)
        assert statement in json.dumps(_dump(history_a[-1].values))


# --------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_stop_midway_then_rerun_gives_the_same_results(tmp_path: Path) -> None:
    bench = {"embodied": tiny_benchmark()}
    methods = settings(["no-memory", "pahf"])
    full = run_evaluation(bench, methods, tmp_path / "full", services=in_memory())
    part = tmp_path / "part"
    first = run_evaluation(bench, methods, part, workers=2, max_episodes=37)
    assert not first.complete and 37 <= first.played < len(full.records)
    second = run_evaluation(bench, methods, part, workers=2)
    assert second.complete
    assert (part / "memory" / "embodied-pahf" / "chroma.sqlite3").exists()  # survives a crash
    assert second.skipped == len(first.records)
    assert second.played == len(full.records) - len(first.records)
    assert comparable(second.records) == comparable(full.records)
    assert without_timing(summarize(second.records)) == without_timing(summarize(full.records))
    # a third run has nothing left to do and changes nothing
    third = run_evaluation(bench, methods, part)
    assert third.played == 0 and comparable(third.records) == comparable(full.records)


class CrashingUser(ParityUser):
    """Dies while giving feedback in the n-th episode in which it had answered a question:
    the answer is already in memory, the episode is not in the log."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.answered: set[str] = set()
        self.count = 0

    def answer(self, episode: Episode, question: str) -> str:
        self.answered.add(episode.request.request_id)
        return super().answer(episode, question)

    def feedback(self, episode: Episode, action: Action) -> str | None:
        if episode.request.request_id in self.answered:
            self.count += 1
            if self.count == self.crash_at:
                raise KeyboardInterrupt("simulated crash")
        return super().feedback(episode, action)


def test_crash_inside_an_episode_is_rolled_back_and_replayed(tmp_path: Path) -> None:
    bench = {"embodied": tiny_benchmark(users=("alex",))}
    full = run_evaluation(bench, settings(["pahf"]), tmp_path / "full", services=in_memory())
    run_dir = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(bench, settings(["pahf"]), run_dir, services=_services(CrashingUser(3)))
    logged = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    store = ChromaPreferenceMemory(
        run_dir / "memory" / "embodied-pahf", embedding_function=HashingEmbeddingFunction()
    )
    # the half-played episode did write memory: more than the last logged episode reports
    assert store.count("alex") > logged[-1]["memory_total"]
    del store
    resumed = run_evaluation(bench, settings(["pahf"]), run_dir)
    assert resumed.recovered == []  # the episode had not finished: it is played again
    assert resumed.played == len(full.records) - len(logged)
    assert comparable(resumed.records) == comparable(full.records)
    # the run directory's store holds the final memory, not the half-played episode's writes
    archive = ChromaPreferenceMemory(
        run_dir / "memory" / "embodied-pahf", embedding_function=HashingEmbeddingFunction()
    )
    last = max(full.records, key=lambda r: r.seq)
    assert archive.count("alex") == last.memory_total


def test_an_episode_that_died_before_its_log_line_is_recovered_not_replayed(
    tmp_path: Path,
) -> None:
    """The process dies after an episode saved its memory snapshot but before its log line:
    the episode did finish, so the resume logs it from the snapshot and goes on after it."""
    bench = {"embodied": tiny_benchmark(users=("alex",))}
    run_dir = tmp_path / "r"
    full = run_evaluation(bench, settings(["pahf"]), run_dir)
    lines = (run_dir / "episodes.jsonl").read_text().splitlines()
    records = [EpisodeRecord.model_validate_json(line) for line in lines]
    last_change = max(i for i, r in enumerate(records) if r.memory_ops)
    (run_dir / "episodes.jsonl").write_text("".join(f"{line}\n" for line in lines[:last_change]))
    resumed = run_evaluation(bench, settings(["pahf"]), run_dir)
    assert resumed.recovered == [records[last_change].key()]
    assert resumed.played == len(lines) - last_change - 1
    assert comparable(resumed.records) == comparable(full.records)


def test_a_deleted_log_starts_over_from_empty_memory(tmp_path: Path) -> None:
    """The log is the source of truth: memory kept without it is not reused."""
    bench = {"embodied": tiny_benchmark(users=("alex",))}
    first = run_evaluation(bench, settings(["pahf"], 1), tmp_path / "r")
    (tmp_path / "r" / "episodes.jsonl").unlink()
    again = run_evaluation(bench, settings(["pahf"], 1), tmp_path / "r")
    assert again.played == len(first.records)
    assert comparable(again.records) == comparable(first.records)


def test_rerun_with_other_settings_is_refused(tmp_path: Path) -> None:
    bench = {"embodied": tiny_benchmark(users=("alex",))}
    run_evaluation(bench, settings(["no-memory"], 1), tmp_path / "r")
    with pytest.raises(RunConfigMismatch, match="iterations: 1 -> 2"):
        run_evaluation(bench, settings(["no-memory"], 2), tmp_path / "r")
    other_data = {"embodied": tiny_benchmark(users=("bea",))}
    with pytest.raises(RunConfigMismatch, match="benchmarks"):
        run_evaluation(other_data, settings(["no-memory"], 1), tmp_path / "r")


@pytest.mark.slow
def test_inline_human_turns_give_the_records_of_interrupts(tmp_path: Path) -> None:
    """The harness plays human turns in-process (one graph run per episode); a deployment sees
    interrupts and resumes. Every method, with noisy feedback so corrections of every kind
    happen: the records must be identical, or the evaluation would not describe deployments."""
    bench = {"embodied": tiny_benchmark()}
    noisy = settings(list(ALL), feedback_noise=0.3)
    inline = run_evaluation(bench, noisy, tmp_path / "inline", services=in_memory())
    interrupts = run_evaluation(
        bench, noisy, tmp_path / "interrupt", services=in_memory(), human_turns="interrupt"
    )
    assert any(r.asked for r in inline.records) and any(r.corrected for r in inline.records)
    assert comparable(inline.records) == comparable(interrupts.records)


@pytest.mark.slow
def test_results_do_not_depend_on_the_worker_count(tmp_path: Path) -> None:
    bench = {"embodied": tiny_benchmark()}
    noisy = settings(["post-only", "pahf"], feedback_noise=0.3)
    one = run_evaluation(bench, noisy, tmp_path / "w1", workers=1, services=in_memory())
    three = run_evaluation(bench, noisy, tmp_path / "w3", workers=3, services=in_memory())
    assert any(r.feedback in IRRELEVANT_REMARKS for r in one.records)  # the noise is there
    assert comparable(one.records) == comparable(three.records)
    assert without_timing(summarize(one.records)) == without_timing(summarize(three.records))


# --------------------------------------------------------------------------- noise


def test_feedback_noise_is_seeded_per_run_and_says_wrong_or_irrelevant_things() -> None:
    bench = tiny_benchmark(users=("alex",))
    episode = bench.episodes[1][0]
    right = Action(candidate_id=episode.truth.correct_ids[0], candidate_text="x")
    wrong = Action(candidate_id="c3", candidate_text="y")
    pool = {("alex", 1): ["I like tea.", episode.truth.statement]}
    always = NoisyFeedback(RuleBasedUser(), 1.0, seed=7, statements=pool)
    false_correction = always.for_run("r1").feedback(episode, right)
    assert false_correction == "That's not what I wanted. I like tea."
    assert always.for_run("r1").feedback(episode, wrong) in IRRELEVANT_REMARKS
    assert always.for_run("r1").answer(episode, "?") == episode.truth.statement
    never = NoisyFeedback(RuleBasedUser(), 0.0, seed=7, statements=pool)
    assert never.for_run("r1").feedback(episode, right) is None
    some = NoisyFeedback(RuleBasedUser(), 0.5, seed=7, statements=pool)
    draws = [some.for_run(f"r{i}").noisy for i in range(200)]
    assert draws == [some.for_run(f"r{i}").noisy for i in range(200)]  # seeded
    assert 60 < sum(draws) < 140
    other_seed = NoisyFeedback(RuleBasedUser(), 0.5, seed=8, statements=pool)
    assert draws != [other_seed.for_run(f"r{i}").noisy for i in range(200)]
    with pytest.raises(ValueError, match="between 0 and 1"):
        NoisyFeedback(RuleBasedUser(), 1.5, seed=0, statements=pool)


# --------------------------------------------------------------------------- LLM accounting


class ChatBackedReasoner:
    """The offline reasoner's decisions, plus one chat-model call per decision (as an LLM
    reasoner would make), to check that the harness counts calls made inside the graph."""

    def __init__(self, memory: PreferenceMemory) -> None:
        self.inner = OfflineReasoner(memory.encoder)
        reply = AIMessage(
            content="ok", usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13}
        )
        self.chat = GenericFakeChatModel(messages=iter([reply] * 10_000))

    def assess(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Assessment:
        self.chat.invoke("assess")
        # An LLM reasoner that proposes no action: act then makes its own call (the offline
        # reasoner's clear assessments carry one, which act would take without a call).
        return self.inner.assess(request, memories, clarifications).model_copy(
            update={"proposed": None}
        )

    def choose(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Action:
        self.chat.invoke("choose")
        return self.inner.choose(request, memories, clarifications)

    def learn(
        self, request: Request, turn: Turn, memories: Sequence[RetrievedMemory]
    ) -> list[MemoryOp]:
        return self.inner.learn(request, turn, memories)


def test_llm_calls_and_tokens_inside_the_graph_are_counted_per_episode(tmp_path: Path) -> None:
    services = in_memory()
    services.make_reasoner = ChatBackedReasoner
    bench = {"embodied": tiny_benchmark(users=("alex",))}
    out = run_evaluation(bench, settings(["post-only", "pahf"], 1), tmp_path / "r", services=services)
    for rec in out.records:
        # pahf learning: assess, then choose (after an answer the budget is used, so no second
        # assessment); post-only and test phases: choose only
        assessed = rec.method == "pahf" and rec.phase in (1, 3)
        expected = 1 + (1 if assessed else 0)
        assert rec.llm_calls == expected, rec.episode_id
        assert (rec.input_tokens, rec.output_tokens, rec.tokens) == (10 * expected, 3 * expected, 13 * expected)
    offline = run_evaluation(bench, settings(["pahf"], 1), tmp_path / "offline", services=in_memory())
    assert all(r.llm_calls == 0 and r.tokens == 0 for r in offline.records)


def test_the_episode_tracker_reads_usage_from_messages_or_llm_output() -> None:
    tracker = new_tracker()
    message = AIMessage(content="x", usage_metadata={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7})
    tracker.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=uuid4())
    tracker.on_llm_end(
        LLMResult(
            generations=[[ChatGeneration(message=AIMessage(content="y"))]],
            llm_output={"token_usage": {"prompt_tokens": 11, "completion_tokens": 4}},
        ),
        run_id=uuid4(),
    )
    assert read_usage(tracker) == (2, 16, 6)


# --------------------------------------------------------------------------- failed decisions


class FailingChoice:
    """The offline reasoner, except that choosing fails for the named requests as the LLM
    reasoner's does once its retries are spent (``error``: the model's output or its call)."""

    def __init__(
        self,
        memory: PreferenceMemory,
        fail_on: Collection[str],
        error: type[LLMDecisionError] = LLMOutputError,
    ) -> None:
        self.inner = OfflineReasoner(memory.encoder)
        self.fail_on = set(fail_on)
        self.error = error

    def assess(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Assessment:
        return self.inner.assess(request, memories, clarifications)

    def choose(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Action:
        if request.request_id in self.fail_on:
            raise self.error("choose", "act", "the reply named no candidate", attempts=2)
        return self.inner.choose(request, memories, clarifications)

    def learn(
        self, request: Request, turn: Turn, memories: Sequence[RetrievedMemory]
    ) -> list[MemoryOp]:
        return self.inner.learn(request, turn, memories)


class FailingLearning(FailingChoice):
    """Chooses as the offline reasoner does; learning from a correction fails for every
    request (an LLM reasoner whose model cannot phrase the revision)."""

    def choose(
        self, request: Request, memories: Sequence[RetrievedMemory], clarifications: Sequence[Turn]
    ) -> Action:
        return self.inner.choose(request, memories, clarifications)

    def learn(
        self, request: Request, turn: Turn, memories: Sequence[RetrievedMemory]
    ) -> list[MemoryOp]:
        if turn.kind == "correction":
            raise LLMOutputError("learn", "ingest_feedback", "the reply named no memory", attempts=2)
        return self.inner.learn(request, turn, memories)


def failing(fail_on: Collection[str], error: type[LLMDecisionError] = LLMOutputError) -> EvalServices:
    services = in_memory()
    services.make_reasoner = lambda memory: FailingChoice(memory, fail_on, error)
    return services


def first_request_id(bench: Benchmark, user: str = "alex") -> str:
    """The request id of the user's first episode run (phase 1, iteration 1): under pahf it
    asks (memory is empty), so its answer is stored before the action is chosen."""
    first = replay_order(bench, user, 2)[0]
    return replay_request_id(first.episode, first.phase, first.iteration)


def test_a_decision_the_model_cannot_make_fails_that_episode_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    bench = {"embodied": tiny_benchmark(users=("alex",))}
    doomed = first_request_id(bench["embodied"])
    out = run_evaluation(bench, settings(["pahf"]), tmp_path / "r", services=failing({doomed}))
    clean = run_evaluation(bench, settings(["pahf"]), tmp_path / "clean", services=in_memory())
    assert len(out.records) == len(clean.records)  # every other episode was played
    [failed] = [r for r in out.records if r.error is not None]
    assert failed.request_id == doomed
    assert failed.action is None and not failed.correct
    assert failed.error.startswith("act: LLM decision 'choose' failed after 2 attempt(s)")
    # It asked first, and the answer it stored before the action failed is in the memory sizes.
    assert failed.question is not None and failed.memory_ops == []
    assert failed.memory_total == 1
    rows, clean_rows = summarize(out.records), summarize(clean.records)
    assert [(r.phase, r.failed) for r in rows] == [(1, 1), (2, 0), (3, 0), (4, 0)]
    assert all(r.failed == 0 for r in clean_rows)
    report = render_markdown(rows, out.settings)
    assert "decision of the agent failed" in report and f"| 1 of {rows[0].episodes} |" in report
    assert "decision of the agent failed" not in render_markdown(clean_rows, clean.settings)


def test_a_failure_while_learning_from_feedback_keeps_the_action_the_user_judged(
    tmp_path: Path,
) -> None:
    """The agent acted and was corrected, then could not learn from it: the episode is scored
    on its action (the failure was not in acting) and says why it learned nothing."""
    bench = {"embodied": tiny_benchmark(users=("alex",))}
    services = in_memory()
    services.make_reasoner = lambda memory: FailingLearning(memory, ())
    out = run_evaluation(bench, settings(["post-only"]), tmp_path / "r", services=services)
    failed = [r for r in out.records if r.error is not None]
    assert failed, "post-only corrects wrong actions, so some learning must have been tried"
    for rec in failed:
        assert rec.error.startswith("ingest_feedback: LLM decision 'learn' failed")
        assert rec.action is not None and rec.feedback is not None  # acted, was corrected
        assert rec.correct is (rec.action.candidate_id in rec.correct_ids)
    assert all(r.memory_total == 0 for r in out.records)  # nothing was ever learned


def test_a_run_stopped_after_a_failed_episode_resumes_with_what_that_episode_stored(
    tmp_path: Path,
) -> None:
    """The failed episode reported no memory ops but did store its answer: the snapshot taken
    after it must hold that, or the resumed run would go on from an emptier memory."""
    bench = {"embodied": tiny_benchmark(users=("alex",))}
    doomed = {first_request_id(bench["embodied"])}
    full = run_evaluation(bench, settings(["pahf"]), tmp_path / "full", services=failing(doomed))
    run_dir = tmp_path / "stopped"
    part = run_evaluation(
        bench, settings(["pahf"]), run_dir, services=failing(doomed), max_episodes=1
    )
    assert [r.error is not None for r in part.records] == [True]
    resumed = run_evaluation(bench, settings(["pahf"]), run_dir, services=failing(doomed))
    assert comparable(resumed.records) == comparable(full.records)


def test_a_model_that_cannot_be_reached_stops_the_run_and_a_rerun_finishes_it(
    tmp_path: Path,
) -> None:
    bench = {"embodied": tiny_benchmark(users=("alex",))}
    doomed = {first_request_id(bench["embodied"])}
    run_dir = tmp_path / "r"
    with pytest.raises(LLMCallError, match="act: LLM decision 'choose' failed"):
        run_evaluation(bench, settings(["pahf"]), run_dir, services=failing(doomed, LLMCallError))
    assert not (run_dir / "episodes.jsonl").exists() or not (
        run_dir / "episodes.jsonl"
    ).read_text().strip()
    resumed = run_evaluation(bench, settings(["pahf"]), run_dir, services=in_memory())
    clean = run_evaluation(bench, settings(["pahf"]), tmp_path / "clean", services=in_memory())
    assert comparable(resumed.records) == comparable(clean.records)


class SpeechlessUser(RuleBasedUser):
    """An LLM-played user whose every reply stays unusable."""

    def answer(self, episode: Episode, question: str) -> str:
        raise LLMOutputError("answer", "simulated user", "the reply was empty", attempts=2)

    def feedback(self, episode: Episode, action: Action) -> str | None:
        raise LLMOutputError("feedback", "simulated user", "the reply was empty", attempts=2)


@pytest.mark.parametrize("human_turns", ["inline", "interrupt"])
def test_a_simulated_user_that_cannot_reply_stops_the_run_and_is_not_the_agents_failure(
    human_turns: str,
) -> None:
    episode = tiny_benchmark(users=("alex",)).episodes[1][0]
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    desk = HumanDesk()
    graph = build_graph(OfflineReasoner(memory.encoder), memory, memory_checkpointer(), human=(
        desk if human_turns == "inline" else None))  # fmt: skip
    with pytest.raises(
        SimulatedUserError,
        match=rf"episode {episode.episode_id}: the simulated user failed: simulated user: "
        "LLM decision 'answer' failed",
    ):
        play_episode(
            graph,
            context_for_method("pahf", user_id=episode.user),
            episode,
            SpeechlessUser(),
            method="pahf",
            phase=1,
            iteration=1,
            seq=0,
            human_turns=human_turns,  # type: ignore[arg-type]
            desk=desk,
        )


# --------------------------------------------------------------------------- users and CLI


def test_select_users_filters_and_limits() -> None:
    bench = tiny_benchmark()
    assert select_users(bench, ["bea"]).users() == ["bea"]
    assert select_users(bench, None, 1).users() == ["alex"]
    with pytest.raises(LookupError, match=r"unknown user 'zoe'.*alex, bea"):
        select_users(bench, ["zoe"])


def test_select_users_keeps_only_the_chosen_users_personas() -> None:
    personas = {1: {"alex": "You are Alex.", "bea": "You are Bea."}, 3: {"bea": "Bea, later."}}
    bench = tiny_benchmark().model_copy(update={"personas": personas})
    assert select_users(bench, ["bea"]).personas == {1: {"bea": "You are Bea."}, 3: {"bea": "Bea, later."}}
    assert select_users(bench, ["alex"]).personas == {1: {"alex": "You are Alex."}, 3: {}}


def test_a_benchmark_without_personas_keeps_its_digest_so_its_runs_still_resume() -> None:
    """Run directories record each benchmark's digest and refuse to resume on a change; the
    personas field must not change the digest of benchmarks that have none (all generated
    ones), while personas, where there are any, count."""
    import hashlib

    from pahf.eval.runner import benchmark_info

    bench = tiny_benchmark()
    assert bench.personas == {}
    without_the_field = bench.model_dump_json(exclude={"personas"})
    assert benchmark_info(bench).sha256 == hashlib.sha256(without_the_field.encode()).hexdigest()
    with_personas = bench.model_copy(update={"personas": {1: {"alex": "You are Alex."}}})
    assert benchmark_info(with_personas).sha256 != benchmark_info(bench).sha256


def test_broken_benchmarks_are_refused_before_anything_runs(tmp_path: Path) -> None:
    bench = tiny_benchmark(users=("alex",))
    no_phase4 = Benchmark(
        domain="embodied", source="x", episodes={p: e for p, e in bench.episodes.items() if p != 4}
    )
    with pytest.raises(ValueError, match=r"no episodes in phase\(s\) \[4\]"):
        run_evaluation({"embodied": no_phase4}, settings(), tmp_path / "a")
    twice = bench.model_copy(
        update={"episodes": {**bench.episodes, 2: bench.episodes[2] + bench.episodes[2][:1]}}
    )
    with pytest.raises(ValueError, match="repeats in phase 2"):
        run_evaluation({"embodied": twice}, settings(), tmp_path / "b")
    assert not (tmp_path / "a" / "episodes.jsonl").exists()


def test_cli_unknown_method_is_exit_2_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--method", "pahf,magic"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'magic'" in err and "no-memory" in err


def test_cli_unknown_domain_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--domain", "kitchen"]) == 2
    assert "unknown domain 'kitchen'" in capsys.readouterr().err


def test_cli_missing_data_directory_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert main(["eval", "--data", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"data directory {missing} does not exist" in err
    assert not (tmp_path / "out").exists()


def test_cli_reads_the_data_directory_from_pahf_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAHF_DATA", str(tmp_path / "from-env"))
    assert main(["eval", "--out", str(tmp_path / "out")]) == 2
    assert "from-env does not exist" in capsys.readouterr().err


def test_cli_malformed_data_names_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shopping = tmp_path / "data" / "shopping"
    shopping.mkdir(parents=True)
    (shopping / "phase1.json").write_text(json.dumps([{"product": "kettle"}]))
    code = main(["eval", "--data", str(tmp_path), "--domain", "shopping", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "pahf eval: error:" in err and "shopping" in err and ".json" in err


def test_cli_unknown_user_is_exit_2(
    mini_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["eval", "--data", str(mini_data), "--domain", "embodied", "--user", "Zed",
         "--out", str(tmp_path / "o")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown user 'Zed'" in err and "Quill" in err


def test_cli_bad_numbers_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--iterations", "0"]) == 2
    assert "--iterations must be at least 1" in capsys.readouterr().err
    assert main(["eval", "--feedback-noise", "2"]) == 2
    assert "--feedback-noise must be between 0 and 1" in capsys.readouterr().err
    assert main(["eval", "--reasoner", "magic"]) == 2
    assert "unknown reasoner 'magic'" in capsys.readouterr().err
