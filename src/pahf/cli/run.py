"""``pahf run``: one request from a JSON file through the graph, asking on the terminal.

Scriptable with ``--answer`` / ``--feedback`` / ``--accept``; otherwise the question and the
feedback prompt are read from standard input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from pahf.cli import CliError
from pahf.cli.common import method_context, read_request
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.reasoners.offline import OfflineReasoner


def register(sub: Any) -> None:
    parser = sub.add_parser("run", help="run one request (JSON file) through the PAHF graph")
    parser.add_argument("--request", required=True, help="JSON file with task/context/candidates")
    parser.add_argument("--store", required=True, help="memory store directory or Chroma URL")
    parser.add_argument(
        "--new-store",
        action="store_true",
        help="create the store if it does not exist (otherwise a missing store is an error)",
    )
    parser.add_argument("--user", help="user id (overrides the file's user_id)")
    parser.add_argument("--method", default="pahf", help="pahf, pre-only, post-only, no-memory")
    parser.add_argument("--answer", help="answer to give if the agent asks a question")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--feedback", help="correction to give after the action")
    group.add_argument("--accept", action="store_true", help="accept the action")
    parser.set_defaults(func=run_request)


def _ask(prompt: str, preset: str | None) -> str:
    if preset is not None:
        return preset
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise CliError(f"no input for: {prompt.strip()} (pass --answer/--feedback/--accept)")
        return line.strip()
    return input(prompt)


def run_request(args: argparse.Namespace) -> int:
    request = read_request(args.request, user=args.user)
    context = method_context(args.method)
    store = (
        ChromaPreferenceMemory(args.store)
        if args.new_store
        else ChromaPreferenceMemory.open_existing(args.store)
    )
    graph = build_graph(OfflineReasoner(store.encoder), store, memory_checkpointer())
    config: RunnableConfig = {"configurable": {"thread_id": request.request_id}}
    result = graph.invoke({"request": request}, config, context=context)
    while "__interrupt__" in result:
        pending = result["__interrupt__"][0]
        payload = pending.value
        if payload["type"] == "question":
            print(f"agent asks: {payload['question']}")
            reply = _ask("your answer> ", args.answer)
        else:
            print(f"agent chose: {payload['action']['candidate_text']}")
            preset = "" if args.accept else args.feedback
            reply = _ask("correction (empty to accept)> ", preset)
        # Keyed by the interrupt's id: a reply sent twice cannot answer the next prompt.
        result = graph.invoke(Command(resume={pending.id: reply}), config, context=context)
    action = result["action"]
    print(
        json.dumps(
            {
                "action": action.model_dump(),
                "memory_ops": [op.model_dump() for op in result.get("memory_ops", [])],
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return 0
