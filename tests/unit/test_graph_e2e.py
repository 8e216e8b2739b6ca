"""The compiled graph end to end: ask when unsure, stop asking once learned, recover from drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command

from pahf.context import RunContext
from pahf.eval.methods import context_for_method
from pahf.graphs import NODE_NAMES, build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.reasoners.offline import OfflineReasoner

REPO_ROOT = Path(__file__).resolve().parents[2]


class Session:
    """Drives one user's requests through the graph the way an app would."""

    def __init__(self, memory: ChromaPreferenceMemory, context: RunContext | None = None) -> None:
        self.memory = memory
        self.graph = build_graph(OfflineReasoner(memory.encoder), memory, memory_checkpointer())
        self.context = context or RunContext()
        self.turn = 0

    def request(
        self,
        user: str,
        task: str,
        context: str,
        options: list[str],
        answer: str,
        want: str,
        correction: str,
    ) -> dict[str, Any]:
        """Run one request; answer any question with ``answer``; correct unless ``want`` chosen."""
        self.turn += 1
        cfg: dict[str, Any] = {"configurable": {"thread_id": f"{user}-{self.turn}"}}
        req = {
            "user_id": user,
            "task": task,
            "context": context,
            "candidates": [{"id": o, "text": o} for o in options],
        }
        out = self.graph.invoke({"request": req}, cfg, context=self.context)
        trace: dict[str, Any] = {"asked": False, "corrected": False}
        while "__interrupt__" in out:
            payload = out["__interrupt__"][0].value
            if payload["type"] == "question":
                trace["asked"] = True
                out = self.graph.invoke(Command(resume=answer), cfg, context=self.context)
            else:
                ok = payload["action"]["candidate_id"] == want
                trace["corrected"] = not ok
                out = self.graph.invoke(
                    Command(resume="" if ok else correction), cfg, context=self.context
                )
        trace["action"] = out["action"].candidate_id
        trace["ops"] = [op.kind for op in out["memory_ops"]]
        return trace


ICE = "When I'm dehydrated, I want ice-cold water with lots of ice, not room-temperature water."
COCONUT = "When I'm dehydrated I now want coconut water, not iced water."
COFFEE = "My favourite drink is black coffee."


def test_pahf_loop_learns_stops_asking_and_recovers_from_drift(
    minilm_memory: ChromaPreferenceMemory,
) -> None:
    s = Session(minilm_memory)
    # (a) empty memory + ambiguous request -> it asks, and acts on the answer
    t = s.request(
        "alex",
        "Could you bring me something to drink?",
        "Dehydrated",
        ["black coffee", "ice-cold water", "room-temperature water"],
        ICE,
        "ice-cold water",
        ICE,
    )
    assert (
        t["asked"]
        and t["action"] == "ice-cold water"
        and not t["corrected"]
        # the answer stored; accepting the action it led to in the same request is no
        # confirmation (established takes a later request)
        and t["ops"] == ["add"]
    )
    t = s.request(
        "alex",
        "Bring me my usual drink",
        "General preference",
        ["green juice", "black coffee", "herbal tea"],
        COFFEE,
        "black coffee",
        COFFEE,
    )
    assert t["asked"] and t["action"] == "black coffee"
    # (b) learned: same situations in other words -> no question, right action
    t = s.request(
        "alex",
        "I'm parched, grab me a drink",
        "Dehydrated",
        ["espresso", "chilled water with ice", "lukewarm tap water"],
        ICE,
        "chilled water with ice",
        ICE,
    )
    assert not t["asked"] and t["action"] == "chilled water with ice" and not t["corrected"]
    t = s.request(
        "alex",
        "Get me the usual, please",
        "General preference",
        ["orange juice", "a cup of dark roast coffee", "chamomile tea"],
        COFFEE,
        "a cup of dark roast coffee",
        COFFEE,
    )
    assert not t["asked"] and not t["corrected"]
    # (c) preference changes: acted on the old one, corrected once, then acts on the new one
    t = s.request(
        "alex",
        "I'm dehydrated, bring me something to drink",
        "Dehydrated",
        ["a glass of iced water", "coconut water", "hot cocoa"],
        COCONUT,
        "coconut water",
        COCONUT,
    )
    assert not t["asked"] and t["corrected"] and t["ops"] == ["supersede"]
    t = s.request(
        "alex",
        "Thirsty again, could you get me a drink?",
        "Dehydrated",
        ["ice-cold water", "fresh coconut water", "espresso"],
        COCONUT,
        "fresh coconut water",
        COCONUT,
    )
    assert not t["asked"] and not t["corrected"] and t["action"] == "fresh coconut water"
    records = minilm_memory.get_all("alex")
    old = [r for r in records if r.text == ICE]
    assert len(old) == 1 and old[0].status == "superseded" and old[0].superseded_by
    new = minilm_memory.get("alex", old[0].superseded_by)
    assert new.status == "active" and new.supersedes == old[0].id
    # confirmed once (established, the ceiling), then revised by the drift
    assert [h.event for h in old[0].history] == ["created", "reinforced", "superseded"]


def test_pre_only_cannot_notice_drift_and_post_only_pays_for_new_ambiguity(
    minilm_memory: ChromaPreferenceMemory,
) -> None:
    pre = Session(minilm_memory, context_for_method("pre-only"))
    opts = ["black coffee", "ice-cold water", "coconut water"]
    t = pre.request("p", "Bring me a drink", "Dehydrated", opts, ICE, "ice-cold water", ICE)
    assert t["asked"] and t["action"] == "ice-cold water"
    t = pre.request("p", "Bring me a drink", "Dehydrated", opts, COCONUT, "coconut water", COCONUT)
    assert not t["asked"] and t["action"] == "ice-cold water" and not t["corrected"]  # never told
    post = Session(minilm_memory, context_for_method("post-only"))
    t = post.request(
        "q",
        "Bring me a drink",
        "Dehydrated",
        ["black coffee", "room-temperature water", "ice-cold water"],
        ICE,
        "ice-cold water",
        ICE,
    )
    assert not t["asked"]
    assert t["corrected"] == (t["action"] != "ice-cold water")


def test_two_users_never_see_each_other(minilm_memory: ChromaPreferenceMemory) -> None:
    s = Session(minilm_memory)
    opts = ["black coffee", "herbal tea", "green juice"]
    s.request(
        "ann",
        "Bring me my drink",
        "General preference",
        opts,
        "I always want herbal tea.",
        "herbal tea",
        "",
    )
    t = s.request(
        "ben",
        "Bring me my drink",
        "General preference",
        opts,
        "Black coffee for me.",
        "black coffee",
        "",
    )
    assert t["asked"]  # ann's memory does not answer for ben
    assert [r.text for r in minilm_memory.get_all("ann")] == ["I always want herbal tea."]
    assert [r.text for r in minilm_memory.get_all("ben")] == ["Black coffee for me."]


def test_no_memory_never_asks_nor_stores(minilm_memory: ChromaPreferenceMemory) -> None:
    s = Session(minilm_memory, context_for_method("no-memory"))
    t = s.request("nm", "Bring me a drink", "Dehydrated", ["tea", "water"], ICE, "water", ICE)
    assert not t["asked"] and not t["corrected"] and t["ops"] == []
    assert minilm_memory.users() == []


def test_graph_topology_is_the_five_nodes() -> None:
    mem = ChromaPreferenceMemory.in_memory()
    g = build_graph(OfflineReasoner(mem.encoder), mem)
    nodes = set(g.get_graph().nodes) - {"__start__", "__end__"}
    assert nodes == set(NODE_NAMES)


def test_bad_request_input_ends_the_run_with_a_message_naming_the_field(
    minilm_memory: ChromaPreferenceMemory,
) -> None:
    """A malformed request does not fail the run (which bricked the thread): it ends with an
    AI message naming what is wrong, nothing runs, nothing is stored."""
    s = Session(minilm_memory)
    cfg: dict[str, Any] = {"configurable": {"thread_id": "bad"}}
    out = s.graph.invoke({"request": {"user_id": "x", "task": "t", "candidates": []}}, cfg)
    assert "candidates" in out["messages"][-1].content and out.get("action") is None
    out = s.graph.invoke(
        {"request": {"user_id": "", "task": "t", "candidates": [{"id": "a", "text": "a"}]}}, cfg
    )
    assert "user id" in out["messages"][-1].content and out.get("action") is None
    assert minilm_memory.users() == []


def test_langgraph_json_names_a_loadable_graph(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    spec_text = json.loads((REPO_ROOT / "langgraph.json").read_text())
    path, _, attr = spec_text["graphs"]["pahf"].partition(":")
    monkeypatch.setenv("PAHF_MEMORY", str(tmp_path / "mem"))
    spec = importlib.util.spec_from_file_location("lg_graph_module", REPO_ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    graph = getattr(module, attr)
    assert set(graph.get_graph().nodes) - {"__start__", "__end__"} == set(NODE_NAMES)
    assert graph.checkpointer is None  # the server brings its own


def test_an_in_process_human_channel_plays_the_whole_request_in_one_run(
    minilm_memory: ChromaPreferenceMemory,
) -> None:
    """A HumanService given at build time answers the turns instead of interrupts: no
    checkpointer, one invoke, the same learning; a malformed reply is asked again with the
    error, as an interrupt would be."""
    seen: list[dict[str, Any]] = []

    def human(payload: dict[str, Any]) -> Any:
        seen.append(payload)
        if payload["type"] == "question":
            return "In the morning I want green tea, never coffee."
        return ["not", "a", "reply"] if len(seen) == 2 else ""  # malformed once, then accept

    graph = build_graph(  # no checkpointer
        OfflineReasoner(minilm_memory.encoder), minilm_memory, human=human
    )

    req = {
        "user_id": "ana",
        "task": "make me a drink",
        "context": "Morning",
        "candidates": [{"id": "tea", "text": "green tea"}, {"id": "coffee", "text": "black coffee"}],
    }
    out = graph.invoke({"request": req}, context=RunContext())
    assert "__interrupt__" not in out
    assert [p["type"] for p in seen] == ["question", "feedback", "feedback"]
    assert "error" in seen[2] and "error" not in seen[1]
    assert out["action"].candidate_id == "tea" and out["feedback"].accepted
    assert [op.kind for op in out["memory_ops"]] == ["add"]  # its own accept is no confirmation
    assert [r.text for r in minilm_memory.get_all("ana")] == [
        "In the morning I want green tea, never coffee."
    ]


def test_a_request_without_an_id_keeps_the_one_it_is_given_through_every_turn(
    minilm_memory: ChromaPreferenceMemory,
) -> None:
    """The id is generated once, when the request enters the graph: the question, the feedback
    prompt, the output and the memories stored from both turns all carry that same id, also
    across the interrupts (checkpoint, resume) in between."""
    graph = build_graph(OfflineReasoner(minilm_memory.encoder), minilm_memory, memory_checkpointer())
    cfg: dict[str, Any] = {"configurable": {"thread_id": "no-id"}}
    req = {
        "user_id": "sam",
        "task": "Could you bring me something to drink?",
        "context": "Dehydrated",
        "candidates": [{"id": o, "text": o} for o in ("water", "coffee", "juice")],
    }
    out = graph.invoke({"request": req}, cfg, context=RunContext())
    seen = []
    for kind, reply in (("question", ICE), ("feedback", "I wanted juice, not that.")):
        payload = out["__interrupt__"][0].value
        assert payload["type"] == kind
        seen.append(payload["request_id"])
        out = graph.invoke(Command(resume=reply), cfg, context=RunContext())
    assert "__interrupt__" not in out
    request_id = out["request"].request_id
    assert request_id and seen == [request_id, request_id]
    stored = minilm_memory.get_all("sam", include_superseded=True)
    assert stored and {r.request_id for r in stored} == {request_id}
