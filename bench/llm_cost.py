"""Benchmark 4: LLM calls and tokens per episode on each path, next to the reference agent.

The LLM reasoner runs inside the real graph, with a **recording fake chat model** instead of
a provider: it answers each structured decision the way a competent model would on the path
being measured (clear: confident and right; ask: "ambiguous" with a question; correction:
confident but wrong, so the user corrects it), and reports token usage counted on the exact
messages and tool schema it was sent, so the ``UsageTracker`` the harness uses sees provider-
style usage. Tokens are counted with MiniLM's WordPiece vocabulary (bundled, offline): a proxy
for a GPT tokenizer on English text, not the exact figure a provider would bill.

Episodes come from the generated benchmark (learning phase, method pahf), played in order for
each user so memory grows as it would: for each episode the three paths are replayed (ask
first, so the clear and correction paths find the answer in memory).

Reference counts are the facebookresearch/PAHF agent's own calls, counted from its published
code (see issue 6). "Like for like" excludes the simulated human and the ground-truth judge and
includes the agent's post-action check that the reference runs after every learning episode,
even when the action was accepted.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tracers.context import register_configure_hook
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from bench.common import BenchReport, BenchTable, Size, reporting
from bench.throughput import Embedding, new_store
from bench.workload import WORKLOADS, build_benchmarks
from pahf.eval.episodes import Episode
from pahf.eval.runner import play_episode, replay_contexts
from pahf.eval.simulators import RuleBasedUser
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.human import HumanDesk
from pahf.reasoners.accounting import UsageTracker
from pahf.reasoners.llm import LLMReasoner

Path_ = Literal["clear", "ask", "correction", "test"]
PATHS: tuple[Path_, ...] = ("clear", "ask", "correction", "test")
#: Order the paths are replayed per episode: asking first stores the preference the clear and
#: correction paths then retrieve.
PLAY_ORDER: tuple[Path_, ...] = ("ask", "clear", "correction", "test")

#: Episodes per user and users per domain replayed on each path, by size.
EPISODES: dict[Size, tuple[int, int]] = {"tiny": (1, 1), "default": (6, 2), "published": (10, 4)}


@dataclass(frozen=True)
class ReferenceCount:
    """Calls of the reference agent on one path: its own, and as the issue counts them."""

    agent_min: int
    agent_max: int
    issue_min: int
    issue_max: int

    def agent(self) -> str:
        return str(self.agent_min) if self.agent_min == self.agent_max else (
            f"{self.agent_min}-{self.agent_max}"
        )

    def issue(self) -> str:
        return str(self.issue_min) if self.issue_min == self.issue_max else (
            f"{self.issue_min}-{self.issue_max}"
        )


#: facebookresearch/PAHF, counted from its published code (issue 6 and the project's notes).
#: embodied agent: option generation, memory summary, act (+ the post-action "is there
#: personal information?" check in learning phases, then up to summary, "is it an update?",
#: recall of the old preference, merge); asking adds question, Q&A summary, re-act. The issue's
#: counts add the ground-truth judge (embodied) and the simulated human's calls, and leave out
#: the post-action check on accepted actions. shopping: memory summary and act; its feedback
#: is rule-based (no simulator call); "new preference information?" runs on every learning
#: episode, then up to summary, product-type check, merge.
REFERENCE: dict[str, dict[Path_, ReferenceCount]] = {
    "embodied": {
        "clear": ReferenceCount(4, 4, 4, 4),
        "ask": ReferenceCount(7, 7, 8, 8),
        "correction": ReferenceCount(4, 8, 5, 10),
        "test": ReferenceCount(3, 3, 4, 4),
    },
    "shopping": {
        "clear": ReferenceCount(3, 3, 2, 2),
        "ask": ReferenceCount(6, 6, 6, 6),
        "correction": ReferenceCount(3, 6, 3, 6),
        "test": ReferenceCount(2, 2, 2, 2),
    },
}


# --------------------------------------------------------------------------- token counting


class WordPieceCounter:
    """Counts tokens with the bundled MiniLM WordPiece vocabulary (no truncation)."""

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        from pahf.memory.embeddings import minilm_tokenizer_json

        self._tokenizer = Tokenizer.from_str(minilm_tokenizer_json())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


# --------------------------------------------------------------------------- the fake model


@dataclass
class Plan:
    """How the fake model should answer for the episode being played."""

    path: Path_
    correct_id: str
    wrong_id: str
    statement: str


class RecordingChatModel(BaseChatModel):
    """A chat model that answers PAHF's structured decisions by plan and records every call.

    Implements ``bind_tools`` so LangChain's default ``with_structured_output`` (tool calling)
    works; reports ``usage_metadata`` counted on the prompt (messages + tool schema) and the
    reply, so usage trackers see what a provider would report.
    """

    plan: Plan | None = None
    calls: list[dict[str, Any]] = Field(default_factory=list)
    counter: Any = None

    @property
    def _llm_type(self) -> str:
        return "pahf-bench-recording-fake"

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _decide(self, schema: str, said: str = "") -> dict[str, Any]:
        plan = self.plan
        if plan is None:
            raise RuntimeError("RecordingChatModel: no plan set for this episode")
        if schema == "AssessDecision":
            if plan.path == "ask":
                return {
                    "reason": "No stored preference covers this situation.",
                    "ambiguous": True,
                    "question": "What would you like in this situation, and what not?",
                    "candidate_id": None,
                }
            chosen = plan.wrong_id if plan.path == "correction" else plan.correct_id
            return {
                "reason": "The stored preference M1 settles this request.",
                "ambiguous": False,
                "question": "",
                "candidate_id": chosen,
            }
        if schema == "ChooseDecision":
            chosen = plan.wrong_id if plan.path == "correction" else plan.correct_id
            return {"rationale": "It matches the user's stated preference.", "candidate_id": chosen}
        if schema == "LearnDecision":
            # The phrase must be words of the person's message, which the prompt quotes.
            return {"wants": said, "refuses": "", "revises_memory_id": None}
        raise RuntimeError(f"RecordingChatModel: unexpected schema {schema!r}")

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = kwargs.get("tools") or []
        if not tools:
            raise RuntimeError("RecordingChatModel only answers structured (tool) calls")
        schema = str(tools[0]["function"]["name"])
        last = str(messages[-1].content)
        said = next(
            (
                line.split(": ", 1)[1]
                for line in last.splitlines()
                if line.startswith(("They answered: ", "The person corrected you: "))
            ),
            "",
        )
        args = self._decide(schema, said)
        prompt = "\n".join(str(m.content) for m in messages) + json.dumps(tools)
        reply = json.dumps(args)
        inp = self.counter.count(prompt) if self.counter else len(prompt) // 4
        out = self.counter.count(reply) if self.counter else len(reply) // 4
        self.calls.append({"schema": schema, "input_tokens": inp, "output_tokens": out})
        message = AIMessage(
            content="",
            tool_calls=[{"name": schema, "args": args, "id": f"call-{len(self.calls)}"}],
            usage_metadata={"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


_TRACKER: ContextVar[UsageTracker | None] = ContextVar("pahf_bench_usage", default=None)
register_configure_hook(_TRACKER, inheritable=True)


# --------------------------------------------------------------------------- the benchmark


@dataclass
class PathUsage:
    calls: list[int]
    input_tokens: list[int]
    output_tokens: list[int]
    by_node: dict[str, int]
    correct: int = 0

    def mean(self, values: list[int]) -> float:
        return sum(values) / len(values) if values else float("nan")


def _wrong(episode: Episode) -> str | None:
    for cand in episode.request.candidates:
        if cand.id not in episode.truth.correct_ids:
            return cand.id
    return None


def measure(
    size: Size = "default", embedding: Embedding = "minilm"
) -> dict[str, dict[Path_, PathUsage]]:
    per_user, users = EPISODES[size]
    benchmarks = build_benchmarks(WORKLOADS["default" if size != "tiny" else "tiny"])
    counter = WordPieceCounter()
    out: dict[str, dict[Path_, PathUsage]] = {}
    simulated = RuleBasedUser()
    for domain, bench in benchmarks.items():
        usage = {p: PathUsage([], [], [], defaultdict(int)) for p in PATHS}
        store = new_store(embedding)
        model = RecordingChatModel(counter=counter, calls=[])
        reasoner = LLMReasoner(model)
        desk = HumanDesk()
        graph = build_graph(reasoner, store, memory_checkpointer(), human=desk)
        for user in bench.users()[:users]:
            episodes = sorted(
                (e for e in bench.episodes[1] if e.user == user), key=lambda e: e.index
            )[:per_user]
            learn_ctx, test_ctx = replay_contexts("pahf", user, reasoner="llm")
            for episode in episodes:
                wrong = _wrong(episode)
                for iteration, path in enumerate(PLAY_ORDER, 1):
                    if path == "correction" and wrong is None:
                        continue
                    model.plan = Plan(
                        path=path,
                        correct_id=episode.truth.correct_ids[0],
                        wrong_id=wrong or episode.truth.correct_ids[0],
                        statement=episode.truth.statement,
                    )
                    tracker = UsageTracker()
                    token = _TRACKER.set(tracker)
                    try:
                        record = play_episode(
                            graph,
                            test_ctx if path == "test" else learn_ctx,
                            episode,
                            simulated,
                            method="pahf",
                            phase=1,
                            iteration=iteration,
                            seq=0,
                            desk=desk,
                        )
                    finally:
                        _TRACKER.reset(token)
                    snap = tracker.snapshot()
                    u = usage[path]
                    u.calls.append(snap.total.calls)
                    u.input_tokens.append(snap.total.input_tokens)
                    u.output_tokens.append(snap.total.output_tokens)
                    u.correct += int(record.correct)
                    for node, node_usage in snap.by_node.items():
                        u.by_node[node] += node_usage.calls
        out[domain] = usage
    return out


PATH_LABELS: dict[Path_, str] = {
    "clear": "clear request, action accepted",
    "ask": "ask, then act (accepted)",
    "correction": "wrong action, corrected",
    "test": "test phase (no human turns)",
}


def run(size: Size = "default", embedding: Embedding = "minilm") -> BenchReport:
    with reporting("llm", size) as report:
        usage = measure(size, embedding)
        table = BenchTable(
            title="LLM calls and tokens per episode: pahf LLM reasoner (recording fake model) "
            "vs the reference PAHF agent",
            columns=[
                "domain", "path", "episodes", "pahf calls", "pahf input tok", "pahf output tok",
                "pahf calls by node", "reference agent calls", "reference (issue's count)",
                "fewer calls",
            ],
        )
        for domain, paths in usage.items():
            for path in PATHS:
                u = paths[path]
                if not u.calls:
                    continue
                ref = REFERENCE[domain][path]
                calls = u.mean(u.calls)
                nodes = ", ".join(
                    f"{n} {c / len(u.calls):g}" for n, c in sorted(u.by_node.items())
                )
                table.add(
                    domain, PATH_LABELS[path], len(u.calls), calls, u.mean(u.input_tokens),
                    u.mean(u.output_tokens), nodes or "-", ref.agent(), ref.issue(),
                    "yes" if calls < ref.agent_min else "NO",
                )
                report.figures[f"{domain}_{path}_calls"] = calls
                report.figures[f"{domain}_{path}_input_tokens"] = u.mean(u.input_tokens)
                report.figures[f"{domain}_{path}_output_tokens"] = u.mean(u.output_tokens)
        table.notes.append(
            "tokens: WordPiece (MiniLM vocabulary) counts of the exact messages + tool schema "
            "sent, a proxy for a GPT tokenizer; reference token counts are not measured (its "
            "prompts are not run here)"
        )
        table.notes.append(
            "reference agent calls exclude the simulated human and the ground-truth judge and "
            "include its post-action check, which runs after every learning episode"
        )
        report.tables.append(table)
    return report
