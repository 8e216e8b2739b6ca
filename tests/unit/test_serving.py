"""Serving safely, in-process: deployment-owned settings, strict locations, bounded caches,
threads bound to one user, the authenticated caller as the run's user, the token auth."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command
from langgraph_sdk import Auth

from pahf.context import RunContext
from pahf.graphs import build_graph
from pahf.graphs.auth import authenticate, parse_tokens
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.graphs.pahf_graph import build_served_graph
from pahf.graphs.services import (
    ClientChoiceError,
    ContextServices,
    DeploymentSettings,
    LRUCache,
)
from pahf.memory.chroma import ChromaPreferenceMemory, StoreLocationError, parse_location
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.nodes.services import UserNotAllowedError
from pahf.reasoners.offline import OfflineReasoner

REQUEST: dict[str, Any] = {
    "task": "get me a drink",
    "context": "dehydrated after a run",
    "candidates": [{"id": "coffee", "text": "hot coffee"}, {"id": "water", "text": "ice water"}],
}


def stores_with_open_files(under: Path) -> set[str]:
    """The store directories directly under ``under`` on whose files this process holds
    descriptors (the rest of the session's, sockets and pipes of servers started by other
    tests, come and go on their own; how many files one open store holds varies with Chroma's
    lazily opened index and log files, so the stores are counted, not the descriptors)."""
    stores = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile, or the listing's own
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{under}{os.sep}"):
                stores.add(Path(target).relative_to(under).parts[0])
    return stores


def stores_settled_to(under: Path, expected: set[str], within: float = 2.0) -> set[str]:
    """The stores with open files once they equal ``expected`` or ``within`` seconds pass.
    Chroma's Rust core releases a closed client's files on its own thread a few milliseconds
    after ``close()`` returns, so a reading taken at once may still show them."""
    deadline = time.monotonic() + within
    while (stores := stores_with_open_files(under)) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return stores


# --------------------------------------------------------------------------- locations


@pytest.mark.parametrize(
    "bad",
    ["file:///etc", "chroma:8000", "ftp://h:21", "http://", "http://h:99999",
     "http://user:pw@h:8000", "http://h:8000/api?x=1", "", "  ", "a\x00b", "s3://bucket"],
)  # fmt: skip
def test_locations_other_than_a_directory_or_http_url_are_refused(bad: str) -> None:
    with pytest.raises(StoreLocationError):
        parse_location(bad)


def test_locations_are_parsed_to_a_server_or_a_directory(tmp_path: Path) -> None:
    assert parse_location("http://chroma:8000") == ("chroma", 8000, False)
    assert parse_location("https://chroma.internal") == ("chroma.internal", 443, True)
    assert parse_location(str(tmp_path / "m")) == tmp_path / "m"
    assert parse_location("relative/dir") == Path("relative/dir")


def test_a_url_like_location_never_becomes_a_folder(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreLocationError):
        ChromaPreferenceMemory("chroma:8000")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- deployment


def test_settings_come_from_the_environment_and_bad_ones_fail_naming_the_variable(
    tmp_path: Path,
) -> None:
    env = {"PAHF_MEMORY": str(tmp_path), "PAHF_REASONER": "llm", "PAHF_MODEL": "m1",
           "PAHF_STORES": "shared=http://chroma:8000, archive=/srv/a", "PAHF_MODELS": "m1,m2"}  # fmt: skip
    settings = DeploymentSettings.from_env(env)
    assert settings.memory_location == str(tmp_path) and settings.reasoner == "llm"
    assert dict(settings.stores) == {"shared": "http://chroma:8000", "archive": "/srv/a"}
    assert settings.models == {"m1", "m2"}
    assert settings.max_open_stores >= 3  # every allowed store fits: none is ever evicted
    for name, value in [("PAHF_REASONER", "gpt"), ("PAHF_STORES", "noequals"),
                        ("PAHF_STORES", "x=file:///etc"), ("PAHF_MODELS", "bad name"),
                        ("PAHF_MAX_OPEN_STORES", "0"), ("PAHF_MEMORY", "chroma:8000")]:  # fmt: skip
        with pytest.raises(ValueError, match=name):
            DeploymentSettings.from_env({name: value})


@pytest.mark.parametrize(
    ("context", "field"),
    [({"memory_location": "/etc"}, "memory_location"),
     ({"memory_location": "../../x"}, "memory_location"),
     ({"memory_location": "http://127.0.0.1:1"}, "memory_location"),
     ({"reasoner": "llm"}, "reasoner"),
     ({"model": "gpt-4o"}, "model")],
)  # fmt: skip
def test_a_served_graph_refuses_client_chosen_storage_and_models(
    tmp_path: Path, context: dict[str, Any], field: str
) -> None:
    graph = build_served_graph(DeploymentSettings(memory_location=str(tmp_path / "mem")))
    with pytest.raises(ClientChoiceError, match=field):
        graph.invoke({"request": {**REQUEST, "user_id": "alice"}}, context=context)
    assert not (tmp_path / "mem").exists()  # refused before anything was opened


def test_a_served_graph_accepts_only_allowlisted_names(tmp_path: Path) -> None:
    settings = DeploymentSettings(
        memory_location=str(tmp_path / "default"), stores={"team": str(tmp_path / "team")}
    )
    services = ContextServices(settings=settings)
    ctx = RunContext(memory_location="team", reasoner="offline")
    services.admit(ctx)
    assert services.memory_for(ctx).location == str((tmp_path / "team").resolve())
    assert services.memory_for(RunContext()).location == str((tmp_path / "default").resolve())
    with pytest.raises(ClientChoiceError, match="team"):
        services.admit(RunContext(memory_location=str(tmp_path / "team")))
    services.close()


def test_in_process_callers_keep_full_control(tmp_path: Path) -> None:
    services = ContextServices()
    ctx = RunContext(memory_location=str(tmp_path / "mine"), reasoner="offline")
    services.admit(ctx)  # no deployment: nothing is refused
    assert services.memory_for(ctx).location == str((tmp_path / "mine").resolve())
    services.close()


# --------------------------------------------------------------------------- bounded caches


class Closable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_lru_cache_closes_what_it_drops() -> None:
    cache: LRUCache[int, Closable] = LRUCache(2)
    opened = [cache.get(i, Closable) for i in range(5)]
    assert len(cache) == 2 and cache.keys() == [3, 4]
    assert [c.closed for c in opened] == [True, True, True, False, False]
    assert cache.get(3, Closable) is opened[3]  # a hit; 3 becomes the most recent
    cache.get(5, Closable)
    assert opened[4].closed and not opened[3].closed


def test_many_distinct_locations_do_not_grow_open_descriptors(tmp_path: Path) -> None:
    """In-process callers may name any number of stores: at most ``max_open_stores`` stay open."""
    services = ContextServices(max_open_stores=2, max_reasoners=2)

    def use(i: int) -> None:
        ctx = RunContext(memory_location=str(tmp_path / f"s{i}"))
        services(ctx).memory.search("alice", "drink", k=1)

    for i in range(3):
        use(i)
    assert stores_settled_to(tmp_path, {"s1", "s2"}) == {"s1", "s2"}  # s0 closed as s2 opened
    for i in range(3, 40):
        use(i)
    assert len(services.stores) == 2 and len(services.reasoners) <= 2
    assert stores_settled_to(tmp_path, {"s38", "s39"}) == {"s38", "s39"}
    services.close()
    assert stores_settled_to(tmp_path, set()) == set()


# --------------------------------------------------------------------------- users


@pytest.fixture
def graph_and_memory() -> tuple[Any, ChromaPreferenceMemory]:
    memory = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    graph = build_graph(OfflineReasoner(memory.encoder), memory, memory_checkpointer())
    return graph, memory


def test_a_thread_cannot_be_resumed_or_reused_under_another_user(
    graph_and_memory: tuple[Any, ChromaPreferenceMemory],
) -> None:
    graph, memory = graph_and_memory
    cfg: Any = {"configurable": {"thread_id": "t-alice"}}
    ctx = RunContext(user_id="alice", question_budget=1)
    out = graph.invoke({"request": REQUEST}, cfg, context=ctx)
    assert out["__interrupt__"][0].value["type"] == "question"

    with pytest.raises(UserNotAllowedError, match="another user"):
        graph.invoke(Command(resume="ice water please"), cfg, context=RunContext(user_id="bob"))
    with pytest.raises(UserNotAllowedError, match="another user"):
        graph.invoke({"request": REQUEST}, cfg, context=RunContext(user_id="bob"))
    assert memory.users() == []  # nothing stored for anyone

    # the thread is still alice's and still usable
    out = graph.invoke({"request": REQUEST}, cfg, context=ctx)
    out = graph.invoke(Command(resume="ice water please"), cfg, context=ctx)
    assert out["__interrupt__"][0].value["type"] == "feedback"
    graph.invoke(Command(resume=""), cfg, context=ctx)
    assert memory.users() == ["alice"]


def test_the_authenticated_caller_is_the_user(
    graph_and_memory: tuple[Any, ChromaPreferenceMemory],
) -> None:
    graph, _ = graph_and_memory
    quiet = RunContext(pre_action=False, post_action=False)

    class ServerUser:  # what the server passes: an object with identity / is_authenticated
        identity = "bob"
        is_authenticated = True

    for n, user in enumerate(({"identity": "bob", "is_authenticated": True}, ServerUser())):
        cfg: Any = {"configurable": {"thread_id": f"t{n}", "langgraph_auth_user": user}}
        assert graph.invoke({"request": REQUEST}, cfg, context=quiet)["user_id"] == "bob"
    cfg = {"configurable": {"thread_id": "t2", "langgraph_auth_user": {"identity": "bob"}}}
    with pytest.raises(UserNotAllowedError, match="authenticated caller"):
        graph.invoke({"request": REQUEST}, cfg, context=RunContext(user_id="alice"))
    with pytest.raises(UserNotAllowedError, match="authenticated caller"):
        graph.invoke({"request": {**REQUEST, "user_id": "alice"}}, cfg, context=quiet)
    # an unauthenticated user (a server without tokens) binds nothing
    anonymous = {"identity": "anonymous", "is_authenticated": False}
    cfg = {"configurable": {"thread_id": "t3", "langgraph_auth_user": anonymous}}
    alice = RunContext(user_id="alice", pre_action=False, post_action=False)
    assert graph.invoke({"request": REQUEST}, cfg, context=alice)["user_id"] == "alice"


# --------------------------------------------------------------------------- token auth


def test_token_lists_are_parsed_strictly() -> None:
    assert parse_tokens("0123456789abcdef:alice, fedcba9876543210:bob ") == {
        "0123456789abcdef": "alice",
        "fedcba9876543210": "bob",
    }
    for bad, named in [("short:alice", "shorter"), ("0123456789abcdef", "<token>:<user>"),
                       ("0123456789abcdef:a,0123456789abcdef:b", "repeated"),
                       ("0123456789abcdef:\u202eeve", "format")]:  # fmt: skip
        with pytest.raises(ValueError, match=named):
            parse_tokens(bad)


def test_authenticate_maps_a_bearer_token_to_its_user(monkeypatch: Any) -> None:
    import pahf.graphs.auth as auth_module

    monkeypatch.setattr(auth_module, "TOKENS", {"0123456789abcdef": "alice"})
    user = asyncio.run(authenticate("Bearer 0123456789abcdef"))
    assert user["identity"] == "alice" and user["is_authenticated"]
    for header in (None, "", "Bearer", "Basic 0123456789abcdef", "Bearer 0123456789abcdeX"):
        with pytest.raises(Auth.exceptions.HTTPException) as refused:
            asyncio.run(authenticate(header))
        assert refused.value.status_code == 401
    monkeypatch.setattr(auth_module, "TOKENS", {})
    assert asyncio.run(authenticate(None))["is_authenticated"] is False


def test_rewriting_the_threads_user_does_not_redirect_its_writes(
    graph_and_memory: tuple[Any, ChromaPreferenceMemory],
) -> None:
    """An owner who edits her thread's state to name another user cannot then resume it
    to write into that user's memory."""
    graph, memory = graph_and_memory
    cfg: Any = {"configurable": {"thread_id": "t-edit", "langgraph_auth_user": {"identity": "alice"}}}
    out = graph.invoke({"request": REQUEST}, cfg, context=RunContext(question_budget=1))
    assert out["__interrupt__"][0].value["type"] == "question"
    graph.update_state(cfg, {"user_id": "bob"}, as_node="ask_user")  # next: retrieve_memory
    with pytest.raises(UserNotAllowedError, match="another user"):
        graph.invoke(None, cfg)
    assert memory.users() == []
