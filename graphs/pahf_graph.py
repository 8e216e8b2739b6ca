"""The PAHF loop as a LangGraph state machine.

    START -> retrieve_memory --(a question could follow)--> ambiguity_detect
             retrieve_memory --(clarification off, or budget used)--> act
    ambiguity_detect --(ambiguous)--> ask_user -> retrieve_memory (again, with the answer)
    ambiguity_detect --(clear)--> act
    act --(feedback on)--> ingest_feedback -> END;   act --(feedback off)--> END

The three branching nodes route the run themselves (they return ``Command(goto=...)``, decided
by the ``route_after_*`` functions beside them); ``destinations`` tells LangGraph (and Studio's
drawing) where each may go. A conditional edge would do the same with an extra traced runnable
per branch that re-reads and re-validates the whole state: 18% of LangGraph's cost per run
(bench/README.md, section 1).

``build_graph`` is for applications and evaluation (you pass the reasoner, memory and a
checkpointer); the module-level ``graph`` is what ``langgraph.json`` serves: compiled without a
checkpointer (the server brings its own) and resolving memory/reasoner from the run context.
"""

from __future__ import annotations

from typing import Any, get_args

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from pahf.context import RunContext
from pahf.graphs.checkpointers import allow_pahf_types
from pahf.graphs.services import ContextServices
from pahf.human import HumanService
from pahf.memory.base import PreferenceMemory
from pahf.nodes import (
    AfterAction,
    AfterAssessment,
    AfterRetrieval,
    make_act,
    make_ambiguity_detect,
    make_ask_user,
    make_ingest_feedback,
    make_retrieve_memory,
)
from pahf.nodes.services import ServicesProvider
from pahf.reasoners.base import Reasoner
from pahf.state import PahfInput, PahfOutput, PahfState

NODE_NAMES = ("retrieve_memory", "ambiguity_detect", "ask_user", "act", "ingest_feedback")


def build_state_graph(
    services: ServicesProvider, human: HumanService | None = None
) -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled graph (for embedding as a subgraph with your own compile options)."""
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        PahfState, context_schema=RunContext, input_schema=PahfInput, output_schema=PahfOutput
    )
    builder.add_node(
        "retrieve_memory",
        make_retrieve_memory(services),
        destinations=get_args(AfterRetrieval),
    )
    builder.add_node(
        "ambiguity_detect",
        make_ambiguity_detect(services),
        destinations=get_args(AfterAssessment),
    )
    builder.add_node("ask_user", make_ask_user(services, human))
    builder.add_node("act", make_act(services), destinations=get_args(AfterAction))
    builder.add_node("ingest_feedback", make_ingest_feedback(services, human))
    builder.add_edge(START, "retrieve_memory")
    builder.add_edge("ask_user", "retrieve_memory")
    builder.add_edge("ingest_feedback", END)
    return builder


def build_graph(
    reasoner: Reasoner | None = None,
    memory: PreferenceMemory | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    *,
    human: HumanService | None = None,
    name: str = "pahf",
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the PAHF graph.

    ``memory`` defaults to the store named by the run context (``memory_location``) or
    ``$PAHF_MEMORY`` / ``./.pahf/memory``; ``reasoner`` defaults to the offline reference
    reasoner over that store's embedder. Human turns are interrupts, so a checkpointer is
    needed to resume them (any LangGraph saver: in-memory, SQLite, Postgres), unless ``human``
    answers them in-process (a :class:`~pahf.human.HumanService`, e.g. the evaluation's
    simulated users through a :class:`~pahf.human.HumanDesk`): then a request is one run.
    """
    services = ContextServices(reasoner=reasoner, memory=memory)
    if checkpointer is not None:
        checkpointer = allow_pahf_types(checkpointer)
    return build_state_graph(services, human).compile(checkpointer=checkpointer, name=name)


#: The graph ``langgraph.json`` points at (LangGraph server / Studio).
graph = build_graph()
