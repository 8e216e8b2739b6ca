"""A PAHF conversation as a chat UI holds it: messages in and out, human-in-the-loop interrupts,
progress events, and no input that can leave a thread unusable."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.types import Command

from pahf.chat_request import ChatRequestError, parse_plain_request
from pahf.context import RunContext
from pahf.decisions import Action
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.human import (
    DECISIONS_SCHEMA,
    HumanDesk,
    parse_clarification,
    parse_feedback,
)
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.nodes.conversation import CHAT_USER
from pahf.reasoners.offline import OfflineReasoner

DRINK = "Bring me a drink | situation: dehydrated after a run | options: hot coffee; ice water"
ANSWER = "When I am dehydrated I want ice water, never hot coffee."


class Chat:
    """One store and one graph; each test gets fresh threads."""

    def __init__(self) -> None:
        self.store = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
        self.graph = build_graph(
            OfflineReasoner(self.store.encoder), self.store, memory_checkpointer()
        )
        self._ids = itertools.count()

    def thread(self) -> dict[str, Any]:
        return {"configurable": {"thread_id": f"chat-{next(self._ids)}"}}

    def say(self, text: str, cfg: dict[str, Any], **ctx: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.graph.invoke(
            {"messages": [{"role": "user", "content": text}]}, cfg, context=RunContext(**ctx)
        )
        return out

    def resume(self, value: Any, cfg: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.graph.invoke(Command(resume=value), cfg)
        return out


@pytest.fixture
def chat() -> Iterator[Chat]:
    c = Chat()
    yield c
    for user in c.store.users():
        c.store.forget(user)


def pending(out: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = out["__interrupt__"][0].value
    return value


def last_ai(out: dict[str, Any]) -> str:
    message = out["messages"][-1]
    assert isinstance(message, AIMessage)
    return str(message.content)


# --------------------------------------------------------------------------- the plain form


def test_the_plain_form_reads_task_situation_options_and_user() -> None:
    req = parse_plain_request(DRINK)
    assert (req.task, req.context) == ("Bring me a drink", "dehydrated after a run")
    assert [(c.id, c.text) for c in req.candidates] == [
        ("hot-coffee", "hot coffee"),
        ("ice-water", "ice water"),
    ]
    assert req.user_id is None
    lines = "task: pick a book\ncontext: long train ride\nchoices:\n- a thick novel\n- a novel\nuser: ann"
    req = parse_plain_request(lines)
    assert (req.task, req.context, req.user_id) == ("pick a book", "long train ride", "ann")
    assert [c.id for c in req.candidates] == ["a-thick-novel", "a-novel"]
    assert [
        c.text for c in parse_plain_request("tea? options: green tea, black tea").candidates
    ] == [
        "green tea",
        "black tea",
    ]


@pytest.mark.parametrize(
    ("text", "named"),
    [("hello", "options"), ("", "empty"), ("options: a; b", "task"), ("x | options: ;", "empty"),
     ("do it | options: a | user: \t", "user")],
)  # fmt: skip
def test_a_message_that_is_not_a_request_says_how_to_write_one(text: str, named: str) -> None:
    with pytest.raises(ChatRequestError, match=named) as info:
        parse_plain_request(text)
    assert "options:" in str(info.value) or "user" in str(info.value)


# --------------------------------------------------------------------------- resume forms


def test_both_turns_accept_the_human_in_the_loop_decisions_and_the_old_forms() -> None:
    reject = {"decisions": [{"type": "reject", "message": "ice water"}]}
    edit = {
        "decisions": [{"type": "edit", "edited_action": {"name": "x", "args": {"answer": "tea"}}}]
    }
    assert parse_clarification(reject).answer == "ice water"
    assert parse_clarification(edit).answer == "tea"
    assert parse_clarification([{"type": "response", "args": "juice"}]).answer == "juice"
    assert parse_clarification("milk").answer == "milk"
    assert parse_clarification({"answer": "soda"}).answer == "soda"
    for bad, named in [
        ({"decisions": [{"type": "approve"}]}, "cannot be approved"),
        ({"decisions": [{"type": "reject"}]}, "empty"),
        ({"decisions": []}, "exactly one"),
        ({"decisions": [{"type": "accept"}]}, "cannot be approved"),
        ([{"type": "ignore"}], "ignore"),
        (None, "NoneType"),
    ]:
        with pytest.raises(ValueError, match=named):
            parse_clarification(bad)

    shown = Action(candidate_id="coffee", candidate_text="hot coffee")
    assert parse_feedback({"decisions": [{"type": "approve"}]}, shown).accepted
    assert parse_feedback([{"type": "accept", "args": None}], shown).accepted
    assert parse_feedback(reject, shown).correction == "ice water"
    other = {"decisions": [{"type": "edit", "edited_action": {"name": "review_action",
                                                              "args": {"candidate_id": "water"}}}]}  # fmt: skip
    assert parse_feedback(other, shown).correction == "I want water, not hot coffee."
    assert parse_feedback("", shown).accepted and parse_feedback("no, tea").correction == "no, tea"
    for bad, named in [
        (None, "null"),
        ({"decisions": [{"type": "reject", "message": " "}]}, "message"),
        ({"decisions": [{"type": "edit", "edited_action": {"args": {}}}]}, "candidate_id"),
        ({"decisions": [{"type": "maybe"}]}, "maybe"),
    ]:
        with pytest.raises(ValueError, match=named):
            parse_feedback(bad, shown)


# --------------------------------------------------------------------------- the conversation


def test_a_chat_conversation_asks_acts_learns_and_answers_the_next_request_from_memory(
    chat: Chat,
) -> None:
    cfg = chat.thread()
    out = chat.say(DRINK, cfg)
    question = pending(out)
    # The interrupt in LangChain's human-in-the-loop shape, its Agent Inbox twin, pahf's fields.
    assert [a["name"] for a in question["action_requests"]] == ["answer_question"]
    assert question["review_configs"][0]["allowed_decisions"] == ["edit", "reject"]
    assert question["config"]["allow_respond"] and not question["config"]["allow_accept"]
    assert question["type"] == "question" and question["user_id"] == CHAT_USER
    assert out["__interrupt__"][0].response_schema == DECISIONS_SCHEMA
    # The conversation so far: the person's message, then the agent's question.
    assert [m.type for m in out["messages"]] == ["human", "ai"]
    assert last_ai(out) == question["question"]

    out = chat.resume({"decisions": [{"type": "reject", "message": ANSWER}]}, cfg)
    feedback = pending(out)
    assert feedback["type"] == "feedback" and feedback["action"]["candidate_id"] == "ice-water"
    assert feedback["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]
    assert [m.type for m in out["messages"]] == ["human", "ai", "human", "ai"]
    assert out["messages"][2].content == ANSWER and "ice water" in last_ai(out)

    out = chat.resume({"decisions": [{"type": "approve"}]}, cfg)
    assert "__interrupt__" not in out
    summary = last_ai(out)
    assert "Done: Bring me a drink -> **ice water**" in summary
    assert f'remembered: "{ANSWER}"' in summary
    assert [r.text for r in chat.store.get_all(CHAT_USER)] == [ANSWER]

    # A second request on the same thread is answered from memory: no question.
    out = chat.say(DRINK.replace("Bring me", "Get me"), cfg)
    assert pending(out)["type"] == "feedback"
    assert pending(out)["action"]["candidate_id"] == "ice-water"
    out = chat.resume({"decisions": [{"type": "reject", "message": "Hot coffee today."}]}, cfg)
    assert "you corrected me" in last_ai(out)
    assert out["messages"][-2].content == "Hot coffee today."


def test_a_message_naming_its_user_and_the_context_user(chat: Chat) -> None:
    cfg = chat.thread()
    out = chat.say(DRINK + " | user: zoe", cfg)
    assert pending(out)["user_id"] == "zoe"
    out = chat.say(DRINK, chat.thread(), user_id="yan")
    assert pending(out)["user_id"] == "yan"
    out = chat.say(DRINK + " | user: zoe", chat.thread(), user_id="yan")
    assert "disagree" in last_ai(out) and "__interrupt__" not in out


@pytest.mark.parametrize(
    ("inp", "said"),
    [
        ({}, "no new request"),
        ({"messages": [{"role": "user", "content": "hello there"}]}, "could not read a request"),
        ({"request": {"task": "t", "candidates": []}}, "candidates"),
        ({"request": "bring tea"}, "request"),
        ({"request": {"task": "t", "candidates": [{"id": "a", "text": "a"}]}}, "no user id"),
    ],
)
def test_no_input_bricks_a_thread(chat: Chat, inp: dict[str, Any], said: str) -> None:
    """Every bad input ends its run with an AI message saying what is wrong; the thread's state
    and history stay readable and the next valid input runs; nothing is stored."""
    cfg = chat.thread()
    first = chat.say(DRINK, cfg)  # a thread with a finished request on it
    chat.resume("ice water", cfg)
    chat.resume("", cfg)
    before = [r.model_dump() for r in chat.store.get_all(CHAT_USER)]
    for _ in range(2):  # the same bad input twice: each time a message, never an error
        out = chat.graph.invoke(inp, cfg, context=RunContext())
        assert said in last_ai(out) and "__interrupt__" not in out
        assert chat.graph.get_state(cfg).next == ()
    assert len(list(chat.graph.get_state_history(cfg))) > 3
    assert [r.model_dump() for r in chat.store.get_all(CHAT_USER)] == before
    out = chat.say(DRINK, cfg)
    assert pending(out)["type"] == "feedback"  # learned from the first request
    assert pending(first)["type"] == "question"


def test_a_null_resume_leaves_the_question_pending(chat: Chat) -> None:
    """LangGraph itself fails ``Command(resume=None)`` before any node runs (an UnboundLocalError
    in its loop); the thread is untouched and the question still waits for an answer."""
    cfg = chat.thread()
    chat.say(DRINK, cfg)
    with pytest.raises(Exception):  # noqa: B017 - LangGraph's own error, whatever its type
        chat.resume(None, cfg)
    assert chat.graph.get_state(cfg).next == ("ask_user",)
    assert pending(chat.resume(ANSWER, cfg))["type"] == "feedback"


def test_malformed_replies_are_asked_again_naming_the_problem(chat: Chat) -> None:
    cfg = chat.thread()
    chat.say(DRINK, cfg)
    out = chat.resume({"decisions": [{"type": "approve"}]}, cfg)
    assert "cannot be approved" in pending(out)["error"]
    assert "could not be used" in pending(out)["action_requests"][0]["description"]
    out = chat.resume(ANSWER, cfg)
    out = chat.resume({"decisions": [{"type": "reject"}]}, cfg)
    assert pending(out)["type"] == "feedback" and "message" in pending(out)["error"]
    out = chat.resume([{"type": "accept", "args": None}], cfg)
    assert "Done:" in last_ai(out)


# --------------------------------------------------------------------------- progress events


def test_progress_events_stream_as_custom_events(chat: Chat) -> None:
    cfg = chat.thread()
    inp = {"messages": [{"role": "user", "content": DRINK}]}
    events = [e["pahf"] for e in chat.graph.stream(inp, cfg, stream_mode="custom")]
    assert events == ["searching memory", "asking"]
    events = [
        e["pahf"] for e in chat.graph.stream(Command(resume=ANSWER), cfg, stream_mode="custom")
    ]
    assert events == ["asking", "learned", "searching memory", "asking"]


# --------------------------------------------------------------------------- the human service


def test_a_human_desk_hands_each_turn_to_its_request() -> None:
    store = ChromaPreferenceMemory.in_memory(HashingEmbeddingFunction())
    desk = HumanDesk()
    graph = build_graph(OfflineReasoner(store.encoder), store, human=desk)
    req = parse_plain_request(DRINK, "kim").model_dump()
    with pytest.raises(LookupError, match="no human attends"):
        graph.invoke({"request": req}, context=RunContext())
    seen: list[str] = []

    def kim(payload: dict[str, Any]) -> Any:
        seen.append(payload["type"])
        return ANSWER if payload["type"] == "question" else {"decisions": [{"type": "approve"}]}

    with desk.attending(req["request_id"], kim):
        with (
            pytest.raises(ValueError, match="already attended"),
            desk.attending(req["request_id"], kim),
        ):
            pass
        out = graph.invoke({"request": req}, context=RunContext())
    assert seen == ["question", "feedback"] and out["feedback"].accepted
    assert isinstance(out["messages"][0], AIMessage) and isinstance(
        out["messages"][1], HumanMessage
    )
    store.forget("kim")


# --------------------------------------------------------------------------- serving guards


def test_security_refusals_still_raise_and_leave_a_chat_thread_usable(
    chat: Chat, tmp_path: Any
) -> None:
    """The no-brick path reports what a person can fix; a refusal for security (another user
    on this thread, a client-chosen store on a served graph) is raised instead, writes nothing,
    and the owner's next message runs as usual."""
    from pahf.graphs.pahf_graph import build_state_graph
    from pahf.graphs.services import ClientChoiceError, ContextServices, DeploymentSettings
    from pahf.nodes.services import UserNotAllowedError

    cfg = chat.thread()
    chat.say(DRINK, cfg)
    chat.resume("ice water", cfg)
    chat.resume("", cfg)
    stored = [r.model_dump() for r in chat.store.get_all(CHAT_USER)]
    with pytest.raises(UserNotAllowedError, match="another user"):
        chat.say(DRINK + " | user: zoe", cfg)  # zoe's request on my thread
    with pytest.raises(UserNotAllowedError, match="another user"):
        chat.say(DRINK, cfg, user_id="zoe")
    assert chat.store.users() == [CHAT_USER]
    assert [r.model_dump() for r in chat.store.get_all(CHAT_USER)] == stored
    assert chat.graph.get_state(cfg).values["user_id"] == CHAT_USER
    out = chat.say(DRINK, cfg)
    assert pending(out)["type"] == "feedback"  # mine, answered from memory

    settings = DeploymentSettings(memory_location=str(tmp_path / "mem"))
    services = ContextServices(settings=settings)
    served = build_state_graph(services, admit=services.admit).compile(
        checkpointer=memory_checkpointer()
    )
    cfg = {"configurable": {"thread_id": "served-1"}}
    message = {"messages": [{"role": "user", "content": "hello there"}]}
    with pytest.raises(ClientChoiceError, match="memory_location"):
        served.invoke(message, cfg, context=RunContext(memory_location=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()
    out = served.invoke(message, cfg, context=RunContext())  # a fixable problem: a message
    assert "could not read a request" in last_ai(out) and "__interrupt__" not in out
    out = served.invoke({"messages": [{"role": "user", "content": DRINK}]}, cfg)
    assert pending(out)["type"] == "question"
