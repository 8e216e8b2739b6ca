"""``pahf demo``: watch the PAHF loop learn one user, then recover when they change their mind."""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from pahf.cli.common import method_context
from pahf.decisions import Action
from pahf.eval.demo_script import USER, demo_episodes
from pahf.eval.simulators import RuleBasedUser
from pahf.graphs import build_graph
from pahf.graphs.checkpointers import memory_checkpointer
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.memory.schema import AppliedMemoryOp, RetrievedMemory
from pahf.reasoners.offline import OfflineReasoner


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="one simulated user learned through the full PAHF loop")
    parser.add_argument("--store", help="memory store directory to keep (default: a temporary one)")
    parser.add_argument(
        "--method",
        default="pahf",
        help="pahf, pre-only, post-only or no-memory (see the difference)",
    )
    parser.set_defaults(func=run_demo)


def _memories_line(memories: list[RetrievedMemory]) -> str:
    if not memories:
        return "[dim](nothing stored yet)[/dim]"
    return "\n".join(f"  {m.score:.2f}  {m.record.text}" for m in memories[:3])


def _ops_line(ops: list[AppliedMemoryOp]) -> str:
    if not ops:
        return "[dim]no change[/dim]"
    lines = []
    for op in ops:
        if op.kind == "supersede":
            lines.append(f"  [yellow]revised[/yellow] {op.target_id} -> {op.memory_id}: {op.text}")
        else:
            lines.append(f"  [green]{op.kind}[/green] {op.memory_id}: {op.text}")
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    console = Console()
    context = method_context(args.method)
    with tempfile.TemporaryDirectory(prefix="pahf-demo-") as tmp:
        store = ChromaPreferenceMemory(args.store or tmp)
        graph = build_graph(OfflineReasoner(store.encoder), store, memory_checkpointer())
        user = RuleBasedUser()
        console.rule(f"[bold]PAHF demo[/bold] - user {USER!r}, method {args.method}")
        correct_total = 0
        episodes = demo_episodes()
        for episode in episodes:
            if (
                episode.index > 0
                and episode.truth.drifted
                and not episodes[episode.index - 1].truth.drifted
            ):
                console.rule("[bold magenta]Alex's preference changes here (the agent is not told)")
            config: RunnableConfig = {"configurable": {"thread_id": episode.episode_id}}
            result = graph.invoke({"request": episode.request}, config, context=context)
            snapshot = graph.get_state(config)
            memories = snapshot.values.get("memories", [])
            question = answer = feedback = None
            while "__interrupt__" in result:
                payload = result["__interrupt__"][0].value
                if payload["type"] == "question":
                    question = payload["question"]
                    answer = user.answer(episode, question)
                    result = graph.invoke(Command(resume=answer), config, context=context)
                else:
                    action = Action.model_validate(payload["action"])
                    feedback = user.feedback(episode, action)
                    result = graph.invoke(Command(resume=feedback or ""), config, context=context)
            action = result["action"]
            ok = action.candidate_id in episode.truth.correct_ids
            correct_total += ok
            body = [
                f"[bold]request[/bold]   {episode.request.task}"
                f"  [dim]({episode.request.context})[/dim]",
                "[bold]options[/bold]   " + " | ".join(c.text for c in episode.request.candidates),
                "[bold]memory used[/bold]\n" + _memories_line(memories),
            ]
            if question:
                body.append(f"[bold cyan]agent asks[/bold cyan] {question}")
                body.append(f"[bold cyan]user says[/bold cyan]  {answer}")
            else:
                body.append(
                    "[dim]no question: memory resolves it[/dim]"
                    if memories
                    else "[dim]no question asked[/dim]"
                )
            mark = "[green]correct[/green]" if ok else "[red]wrong[/red]"
            body.append(f"[bold]action[/bold]    {action.candidate_text}  -> {mark}")
            if feedback:
                body.append(f"[bold red]feedback[/bold red]  {feedback}")
            body.append("[bold]memory update[/bold]\n" + _ops_line(result.get("memory_ops", [])))
            console.print(
                Panel("\n".join(body), title=f"request {episode.index + 1}/{len(episodes)}")
            )
        table = Table(title=f"what the agent remembers about {USER}")
        for col in ("status", "text", "history"):
            table.add_column(col, overflow="fold")
        for record in store.get_all(USER) if USER in store.users() else []:
            table.add_row(record.status, record.text, ", ".join(h.event for h in record.history))
        console.print(table)
        console.print(
            f"[bold]{correct_total}/{len(episodes)} actions correct[/bold]; "
            "superseded preferences are kept with their history."
        )
    return 0
