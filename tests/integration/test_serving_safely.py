"""A served pahf graph that strangers cannot abuse: a real ``langgraph dev`` server with two
bearer tokens, driven by two real SDK clients (and one without a token).

Neither client reads, lists, resumes or changes the other's threads, runs, crons, store items
or memories by any route tried here; hostile ``memory_location`` / ``model`` values are refused
and a socket the test listens on (the server's LLM endpoint, and the URL the values name) sees
no connection; many distinct values do not grow the server's open file descriptors.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from langgraph_sdk.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)

from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.schema import NewMemory

from .conftest import LangGraphServer, start_langgraph
from .test_langgraph_server import ANSWER, CORRECTION, GRAPH_ID, drink_request, interrupt_type, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALICE_TOKEN = "alice-" + "a1" * 12
BOB_TOKEN = "bob-" + "b2" * 12
ALLOWED_STORE = "team"
#: Rounds of the descriptor test, 4 runs each (distinct refused locations, URLs, models; the
#: allowed store and the default alternating).
ROUNDS = 25


@dataclass
class Secured:
    server: LangGraphServer
    alice: SyncLangGraphClient
    bob: SyncLangGraphClient
    anonymous: SyncLangGraphClient
    trap: socket.socket  # listens; nothing may ever connect
    trap_url: str
    planted: Path  # a store on the server's disk holding a record for bob
    scratch: Path


def client(url: str, token: str | None) -> SyncLangGraphClient:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return get_sync_client(url=url, headers=headers)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    scratch = tmp_path_factory.mktemp("serving")
    trap = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    trap.bind(("127.0.0.1", 0))
    trap.listen(16)
    trap.setblocking(False)
    trap_url = f"http://127.0.0.1:{trap.getsockname()[1]}"
    planted = scratch / "planted"
    ChromaPreferenceMemory(str(planted)).add("bob", NewMemory(text="PLANTED secret", topic="x"))
    server = start_langgraph(
        scratch / "langgraph",
        env={
            "PAHF_API_TOKENS": f"{ALICE_TOKEN}:alice,{BOB_TOKEN}:bob",
            "PAHF_STORES": f"{ALLOWED_STORE}={scratch / 'team-store'}",
            # the server's own LLM endpoint and key: a client-chosen model would be sent here
            "OPENAI_BASE_URL": f"{trap_url}/v1",
            "OPENAI_API_KEY": "sk-server-own-key",
        },
    )
    try:
        yield Secured(
            server=server,
            alice=client(server.url, ALICE_TOKEN),
            bob=client(server.url, BOB_TOKEN),
            anonymous=client(server.url, None),
            trap=trap,
            trap_url=trap_url,
            planted=planted,
            scratch=scratch,
        )
    finally:
        server.stop()
        trap.close()


def assert_no_connection(trap: socket.socket) -> None:
    try:
        conn, peer = trap.accept()
    except BlockingIOError:
        return
    conn.close()
    pytest.fail(f"the server connected to the test's socket from {peer}")


def refused(
    call: Callable[[], Any],
    error: type[Exception] | tuple[type[Exception], ...] = Exception,
    match: str | None = None,
) -> str:
    with pytest.raises(error, match=match) as caught:
        call()
    return str(caught.value)


def not_found(call: Callable[[], Any]) -> None:
    """``call`` fails with 404, as for a thing that does not exist (the SDK raises its own
    NotFoundError on most routes, httpx's status error on runs.wait)."""
    with pytest.raises(Exception) as caught:
        call()
    response = getattr(caught.value, "response", None)
    status = getattr(response, "status_code", None)
    assert isinstance(caught.value, NotFoundError) or status == 404, repr(caught.value)


def server_fds(server: LangGraphServer) -> int:
    """Open descriptors of every process in the server's process group."""
    assert server.server.process is not None
    group = server.server.process.pid
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pgid = int(stat.rsplit(")", 1)[1].split()[2])
            if pgid == group:
                total += len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, ValueError, IndexError):
            continue
    return total


def test_requests_without_a_valid_token_are_refused(secured: Secured) -> None:
    for call in (
        lambda: secured.anonymous.threads.create(),
        lambda: secured.anonymous.threads.search(),
        lambda: secured.anonymous.assistants.search(),
        lambda: secured.anonymous.store.search_items(("alice",)),
        lambda: client(secured.server.url, "not-a-token-at-all-xxxxx").threads.search(),
        lambda: client(secured.server.url, ALICE_TOKEN + "x").threads.create(),
    ):
        refused(call, AuthenticationError)
    # Studio's own scheme is not a way around the tokens
    studio = get_sync_client(url=secured.server.url, headers={"x-auth-scheme": "langsmith"})
    refused(lambda: studio.threads.search(), AuthenticationError)
    log = secured.server.server.log.read_text(errors="replace")
    assert "UNAUTHENTICATED" not in log


def test_two_users_cannot_reach_each_others_threads_runs_crons_store_or_memories(
    secured: Secured,
) -> None:
    alice, bob = secured.alice, secured.bob

    # alice: a question, her answer; the feedback prompt is pending. No user id anywhere: the
    # server knows who she is.
    thread = alice.threads.create(metadata={"owner": "bob"})["thread_id"]  # owner is not hers to set
    out = run(alice, thread, input={"request": drink_request("a1")})
    assert interrupt_type(out) == "question" and out["user_id"] == "alice"
    out = run(alice, thread, command={"resume": ANSWER})
    assert interrupt_type(out) == "feedback"
    [alice_run] = [r for r in alice.runs.list(thread) if r["status"] == "success"][:1]
    cron = alice.crons.create(GRAPH_ID, schedule="0 0 1 1 *", input={"request": drink_request("c")})

    # bob, by thread id: every thread and run route says "not found"
    for call in (
        lambda: bob.threads.get(thread),
        lambda: bob.threads.get_state(thread),
        lambda: bob.threads.get_history(thread),
        lambda: bob.threads.update(thread, metadata={"owner": "bob"}),
        lambda: bob.threads.update_state(thread, {"user_id": "bob"}),
        lambda: bob.threads.delete(thread),
        lambda: bob.runs.list(thread),
        lambda: bob.runs.get(thread, alice_run["run_id"]),
        lambda: bob.runs.wait(thread, GRAPH_ID, command={"resume": CORRECTION}),
        lambda: bob.runs.create(thread, GRAPH_ID, input={"request": drink_request("b0")}),
        lambda: bob.crons.create_for_thread(thread, GRAPH_ID, schedule="* * * * *"),
        lambda: bob.crons.delete(cron["cron_id"]),
    ):
        not_found(call)
    refused(lambda: bob.threads.copy(thread), (NotFoundError, ConflictError))  # no copy made
    # ...nor does searching find them
    assert thread not in {t["thread_id"] for t in bob.threads.search(limit=1000)}
    assert bob.threads.search(metadata={"owner": "alice"}) == []
    assert cron["cron_id"] not in {c["cron_id"] for c in bob.crons.search()}

    # bob naming alice, by every channel a run has: refused before anything is read or stored
    mine = bob.threads.create()["thread_id"]
    for kwargs in (
        {"input": {"request": drink_request("b1")}, "context": {"user_id": "alice"}},
        {"input": {"request": drink_request("b2", "alice")}},
        {"input": {"request": drink_request("b3")}, "config": {"configurable": {"user_id": "alice"}}},
    ):
        refused(lambda kw=kwargs: run(bob, mine, **kw), match="not the authenticated caller")
    # a forged identity in the context is overwritten by the server's
    out = run(bob, bob.threads.create()["thread_id"], input={"request": drink_request("b4")},
              context={"langgraph_auth_user": {"identity": "alice"}, "pre_action": False})  # fmt: skip
    assert out["user_id"] == "bob" and out["memories"] == []  # alice's preference stays hers
    run(bob, out_thread := bob.threads.create()["thread_id"],
        input={"request": drink_request("b5")}, context={"pre_action": False})  # fmt: skip
    assert bob.threads.get(out_thread)["metadata"]["owner"] == "bob"

    # assistants (a context every run of them would carry) are the deployment's
    refused(lambda: bob.assistants.create(GRAPH_ID, context={"user_id": "alice"}),
            PermissionDeniedError)  # fmt: skip
    assistant = bob.assistants.search(graph_id=GRAPH_ID)[0]
    refused(lambda: bob.assistants.update(assistant["assistant_id"], context={"user_id": "alice"}),
            PermissionDeniedError)  # fmt: skip

    # the store API: only namespaces that start with one's own id
    alice.store.put_item(("alice", "notes"), "k", {"secret": "alice's"})
    for call in (
        lambda: bob.store.get_item(("alice", "notes"), "k"),
        lambda: bob.store.put_item(("alice", "notes"), "k", {"secret": "bob's"}),
        lambda: bob.store.delete_item(("alice", "notes"), "k"),
        lambda: bob.store.search_items(("alice",)),
        lambda: bob.store.list_namespaces(prefix=["alice"]),
    ):
        refused(call, PermissionDeniedError)
    assert bob.store.search_items(())["items"] == []
    assert bob.store.list_namespaces()["namespaces"] == []
    assert alice.store.get_item(("alice", "notes"), "k")["value"] == {"secret": "alice's"}  # type: ignore[index]

    # alice finishes her conversation, untouched by all of the above, and her memory works
    out = run(alice, thread, command={"resume": CORRECTION})
    assert [op["kind"] for op in out["memory_ops"]] == ["add", "supersede"]
    assert alice.threads.get(thread)["metadata"]["owner"] == "alice"
    out = run(alice, thread, input={"request": drink_request("a2")})
    assert interrupt_type(out) == "feedback" and out["clarifications"] == []
    assert CORRECTION in [m["record"]["text"] for m in out["memories"]]
    assert {m["record"]["user_id"] for m in out["memories"]} == {"alice"}
    assert {t["thread_id"] for t in alice.threads.search(limit=1000)} == {thread}
    for seen in bob.threads.search(limit=1000):  # bob's threads only, no copy of alice's
        assert seen["metadata"]["owner"] == "bob"
        assert "a1" not in str(seen.get("values"))
    assert [c["cron_id"] for c in alice.crons.search()] == [cron["cron_id"]]
    alice.crons.delete(cron["cron_id"])


HOSTILE_LOCATIONS = (
    "/etc",
    "../../../../tmp/pahf-evil",
    "~/pahf-evil",
    "file:///etc",
    "chroma:8000",
    "http://127.0.0.1:1",
)


def test_hostile_locations_and_models_are_refused_and_nothing_is_touched(secured: Secured) -> None:
    bob = secured.bob
    workdir = secured.server.workdir
    values: list[dict[str, Any]] = [
        {"memory_location": where}
        for where in (*HOSTILE_LOCATIONS, str(secured.planted), secured.trap_url,
                      secured.trap_url.replace("http", "https"), str(secured.scratch / "abs"))
    ]  # fmt: skip
    values += [{"reasoner": "llm"}, {"reasoner": "llm", "model": "gpt-4o"},
               {"model": secured.trap_url}, {"model": "gpt-4o"}]  # fmt: skip
    for context in values:
        thread = bob.threads.create()["thread_id"]
        field = next(iter(context))
        message = refused(
            lambda c=context, t=thread: run(bob, t, input={"request": drink_request("h")}, context=c),
            match=field,
        )
        assert "PLANTED" not in message
        # the same through the old configurable route
        refused(lambda c=context: run(bob, bob.threads.create()["thread_id"],
                                      input={"request": drink_request("h")},
                                      config={"configurable": c}), match=field)  # fmt: skip
    assert_no_connection(secured.trap)
    assert not (secured.scratch / "abs").exists()
    assert not (workdir / "chroma:8000").exists() and not (workdir / "file:").exists()
    assert not Path("/tmp/pahf-evil").exists()
    assert not Path("~/pahf-evil").expanduser().exists()
    assert not (Path("/etc") / "chroma.sqlite3").exists()
    # the one store the operator named is allowed, by its name
    out = run(bob, bob.threads.create()["thread_id"], input={"request": drink_request("ok")},
              context={"memory_location": ALLOWED_STORE, "pre_action": False})  # fmt: skip
    assert interrupt_type(out) == "feedback" and out["memories"] == []
    assert (secured.scratch / "team-store" / "chroma.sqlite3").exists()


def test_many_distinct_values_do_not_grow_the_servers_descriptors(secured: Secured) -> None:
    bob = secured.bob
    quiet = {"pre_action": False, "post_action": False}

    def one(context: dict[str, Any]) -> None:
        thread = bob.threads.create()["thread_id"]
        try:
            run(bob, thread, input={"request": drink_request(uuid.uuid4().hex)},
                context={**quiet, **context})  # fmt: skip
        except Exception as exc:  # refused values: the run fails, the server goes on
            assert any(field in str(exc) for field in ("memory_location", "model", "reasoner"))

    for warm in ({}, {"memory_location": ALLOWED_STORE}):
        one(warm)
    before = server_fds(secured.server)
    contexts: list[dict[str, Any]] = []
    for i in range(ROUNDS):
        contexts += [
            {"memory_location": str(secured.scratch / f"loc-{i}")},
            {"memory_location": f"http://127.0.0.1:{1024 + i}"},
            {"model": f"model-{i}"},
            {"memory_location": ALLOWED_STORE if i % 2 else None},
        ]
    with ThreadPoolExecutor(max_workers=4) as pool:  # four clients at once
        list(pool.map(one, contexts))
    after = server_fds(secured.server)
    print(f"server descriptors: {before} before, {after} after {len(contexts)} runs")
    assert after <= before + 8, (before, after)
    assert not any((secured.scratch / f"loc-{i}").exists() for i in range(ROUNDS))
    assert_no_connection(secured.trap)
