"""One step of a PAHF conversation in a fresh process (run by test_persistence.py).

Each invocation is a separate "worker" or a restarted app: it opens the checkpointer and the
memory store named on the command line, starts or resumes one thread, prints what happened as
one JSON line, and exits. Nothing carries over between invocations except what the
checkpointer and the store persisted.

    python episode_worker.py --checkpointer URL --memory LOC --thread T start REQUEST_JSON
    python episode_worker.py --checkpointer URL --memory LOC --thread T resume TEXT
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from langgraph.types import Command

from pahf.context import RunContext
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import open_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.embeddings import HashingEmbeddingFunction
from pahf.reasoners.offline import OfflineReasoner


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpointer", required=True)
    parser.add_argument("--memory", required=True, help="store directory or Chroma server URL")
    parser.add_argument("--thread", required=True)
    parser.add_argument("step", choices=["start", "resume"])
    parser.add_argument("value", help="request JSON (start) or resume text (resume)")
    args = parser.parse_args(argv)

    store = ChromaPreferenceMemory(args.memory, embedding_function=HashingEmbeddingFunction())
    with open_checkpointer(args.checkpointer) as saver:
        graph = build_graph(OfflineReasoner(store.encoder), store, saver)
        config: Any = {"configurable": {"thread_id": args.thread}}
        payload: Any = (
            {"request": json.loads(args.value)}
            if args.step == "start"
            else Command(resume=args.value)
        )
        out = graph.invoke(payload, config, context=RunContext())
    interrupts = out.get("__interrupt__") or []
    report = {
        "pid": os.getpid(),
        "interrupt": interrupts[0].value if interrupts else None,
        "action": out["action"].model_dump() if out.get("action") else None,
        "memory_ops": [op.model_dump() for op in out.get("memory_ops", [])],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
