"""``pahf chat``: a person talks to the agent in the terminal.

Each line is one request, either a path to a request JSON file or the one-line form::

    [CONTEXT ::] TASK | OPTION | OPTION [| OPTION ...]

Options get ids 1, 2, 3, ... unless written ``ID=text`` (an id of letters, digits, ``_.-``).
The agent may ask one question before acting (type your answer), then shows what it chose
(press Enter to accept, or type a correction). What it learns is stored in the user's memory at
``--store``. Commands: ``/memories``, ``/help``, ``/quit`` (or end of input).
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
from pathlib import Path
from typing import Any

from langgraph.types import Command

from pahf.cli import CliError
from pahf.cli.common import add_llm_flags, llm_environment
from pahf.context import RunContext
from pahf.request import Candidate, Request, validate_user_id

HELP = """\
Type a request, one per line:
  [CONTEXT ::] TASK | OPTION | OPTION ...     e.g.  thirsty :: bring me a drink | water | cola
  a path to a request JSON file               (fields: task, context, candidates, ...)
Options are numbered 1, 2, ... unless written ID=text (e.g. A=red mug).
Commands: /memories (what I know about you), /help, /quit"""

_OPTION_ID = re.compile(r"^([A-Za-z0-9_.-]{1,20})\s*=\s*(\S.*)$")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="talk to the agent in the terminal (it asks, acts, and learns from you)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--user", required=True, help="your user id (whose memory is used)")
    parser.add_argument(
        "--store",
        default=None,
        help="memory store: a directory or http(s)://host:port of a Chroma server "
        "(default: $PAHF_MEMORY or ./.pahf/memory)",
    )
    parser.add_argument(
        "--reasoner",
        choices=("offline", "llm"),
        default="offline",
        help="offline (deterministic, no LLM; default) or llm (OpenAI-compatible endpoint "
        "from OPENAI_BASE_URL / OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="LLM model (with --reasoner llm): a name served over the OpenAI protocol, or "
        "provider:model for any LangChain provider; $PAHF_MODEL",
    )
    add_llm_flags(parser)
    parser.set_defaults(func=run)


def parse_request_line(line: str, user_id: str) -> Request:
    """A request from one typed line (see the module docstring) or a JSON file path."""
    text = line.strip()
    path = Path(text).expanduser()
    if "|" not in text and (text.endswith(".json") or path.is_file()):
        if not path.is_file():
            raise ValueError(f"no request file {text!r}")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{text}: a request file must hold one JSON object")
        data.setdefault("user_id", user_id)
        return Request.model_validate(data)
    parts = [p.strip() for p in text.split("|")]
    if len(parts) < 2 or not all(parts):
        raise ValueError(
            "write a request as 'TASK | OPTION | OPTION' (empty parts are not allowed); "
            "/help shows the format"
        )
    head, options = parts[0], parts[1:]
    context, _, task = head.rpartition("::")
    candidates = []
    for index, option in enumerate(options, start=1):
        match = _OPTION_ID.match(option)
        if match:
            candidates.append(Candidate(id=match.group(1), text=match.group(2).strip()))
        else:
            candidates.append(Candidate(id=str(index), text=option))
    return Request(
        user_id=user_id, task=task.strip(), context=context.strip(), candidates=candidates
    )


class ChatSession:
    """One person's terminal conversation with a compiled PAHF graph."""

    def __init__(self, graph: Any, memory: Any, context: RunContext) -> None:
        self.graph = graph
        self.memory = memory
        self.context = context

    @property
    def user(self) -> str:
        assert self.context.user_id is not None
        return self.context.user_id

    def show_memories(self) -> None:
        records = [r for r in self._records() if r.status == "active"]
        if not records:
            print("I have no preferences stored for you yet.")
            return
        print("What I know about you:")
        for rec in records:
            where = f" ({rec.topic})" if rec.topic else ""
            print(f"  - {rec.text}{where}")

    def _records(self) -> list[Any]:
        try:
            return list(self.memory.get_all(self.user, include_superseded=False))
        except LookupError:
            return []

    def handle(self, request: Request) -> bool:
        """Run one request to the end; False when the person ended input mid-request."""
        config: dict[str, Any] = {"configurable": {"thread_id": f"chat-{uuid.uuid4().hex}"}}
        result = self.graph.invoke(
            {"request": request.model_dump(mode="json")}, config, context=self.context
        )
        while result.get("__interrupt__"):
            payload = result["__interrupt__"][0].value
            reply = self._ask_person(payload)
            if reply is None:
                return False
            result = self.graph.invoke(Command(resume=reply), config, context=self.context)
        self._report(result)
        return True

    @staticmethod
    def _ask_person(payload: dict[str, Any]) -> str | None:
        if payload.get("type") == "question":
            print(f"agent asks: {payload['question']}")
            while True:
                try:
                    answer = input("your answer> ").strip()
                except EOFError:
                    return None
                if answer:
                    return answer
                print("(an answer is needed; type what you prefer)")
        action = payload.get("action") or {}
        print(f"agent chose: {action.get('candidate_text', '?')}")
        if action.get("rationale"):
            print(f"  because: {action['rationale']}")
        try:
            return input("feedback (Enter accepts, or type a correction)> ").strip()
        except EOFError:
            return None

    @staticmethod
    def _report(result: dict[str, Any]) -> None:
        feedback = result.get("feedback")
        if feedback is not None and getattr(feedback, "accepted", False):
            print("agent: noted, thanks.")
        for op in result.get("memory_ops") or []:
            if op.kind in ("add", "supersede"):
                verb = "learned" if op.kind == "add" else "updated"
                print(f"agent {verb}: {op.text}")
            elif op.kind == "reinforce":
                print(f"agent confirmed: {op.text}")
            elif op.kind == "challenge":
                print(f"agent is no longer sure of: {op.text}")

    def loop(self) -> int:
        print(f"pahf chat for user {self.user!r}. /help for the format, /quit to leave.")
        while True:
            try:
                line = input("request> ").strip()
            except EOFError:
                print()
                return 0
            if not line:
                continue
            if line in ("/quit", "/exit", "/q"):
                return 0
            if line == "/help":
                print(HELP)
                continue
            if line == "/memories":
                self.show_memories()
                continue
            try:
                request = parse_request_line(line, self.user)
            except (ValueError, OSError) as exc:  # includes pydantic and JSON errors
                print(f"error: {_one_line(exc)}")
                continue
            try:
                finished = self.handle(request)
            except Exception as exc:
                # An LLM failure or bad resume leaves memory as it was: say so, keep chatting.
                print(f"error: {_one_line(exc)} (nothing was stored for this request)")
                continue
            if not finished:
                print()
                return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500] or type(exc).__name__


def build_session(args: argparse.Namespace) -> ChatSession:
    """The graph, memory and run context for ``args`` (separate so tests can inspect it)."""
    from pahf.graphs import build_graph, default_memory_location
    from pahf.graphs.checkpointers import memory_checkpointer
    from pahf.memory.chroma import ChromaPreferenceMemory
    from pahf.reasoners.base import Reasoner

    try:
        user = validate_user_id(args.user)
    except ValueError as exc:
        raise CliError(f"--user: {exc}") from exc
    if args.model and args.reasoner != "llm":
        raise CliError("--model applies to the LLM reasoner: add --reasoner llm")
    location = args.store or default_memory_location()
    memory = ChromaPreferenceMemory(location)
    reasoner: Reasoner
    if args.reasoner == "llm":
        from pahf.reasoners.llm import LLMReasoner

        with llm_environment(args):
            reasoner = LLMReasoner.from_settings(model=args.model)
    else:
        from pahf.reasoners.offline import OfflineReasoner

        reasoner = OfflineReasoner(memory.encoder)
    graph = build_graph(reasoner, memory, memory_checkpointer())
    context = RunContext(
        user_id=user, reasoner=args.reasoner, model=args.model, memory_location=str(location)
    )
    return ChatSession(graph, memory, context)


def run(args: argparse.Namespace) -> int:
    return build_session(args).loop()
