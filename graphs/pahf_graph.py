"""The PAHF loop as a LangGraph state machine, read top to bottom:

    START -> retrieve_memory -> ambiguity_detect   (retrieve_memory -> END: no usable input)
    ambiguity_detect --(ambiguous, a question allowed)--> ask_user -> retrieve_memory (again)
    ambiguity_detect --(clear, or no question allowed)--> act
    act --(feedback on)--> ingest_feedback -> END;   act --(feedback off)--> END

The branching nodes route the run themselves (they return ``Command(goto=...)``, decided
by the ``route_after_*`` functions beside them, typed with ``Literal``); ``destinations`` tells
LangGraph (and Studio's drawing) where each may go. A conditional edge would do the same with
an extra traced runnable per branch that re-reads and re-validates the whole state.

``build_graph`` is for applications and evaluation (you pass the reasoner, memory and a
checkpointer; a run's context may pick any store, reasoner and model); ``graphs/served.py``
holds what ``langgraph.json`` serves (``build_served_graph``): compiled without a
checkpointer (the server brings its own), with storage and models owned by the deployment
(:class:`~pahf.graphs.services.DeploymentSettings`) and the user taken from the caller the
server authenticated (``graphs/auth.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from pahf.context import RunContext
from pahf.graphs.checkpointers import allow_pahf_types
from pahf.graphs.services import ContextServices, DeploymentSettings
from pahf.human import HumanService
from pahf.memory.base import PreferenceMemory
from pahf.nodes import (
    AfterAction,
    AfterAssessment,
    make_act,
    make_ambiguity_detect,
    make_ask_user,
    make_ingest_feedback,
    make_retrieve_memory,
)
from pahf.nodes.retrieve_memory import AfterRetrieval
from pahf.nodes.services import (
    NodeFn,
    ServicesProvider,
    UserNotAllowedError,
    resolve_user,
    run_context,
)
from pahf.reasoners.base import Reasoner
from pahf.request import Request
from pahf.state import PahfInput, PahfOutput, PahfState

NODE_NAMES = ("retrieve_memory", "ambiguity_detect", "ask_user", "act", "ingest_feedback")
#: Admission check of a run's context (raises to refuse the run); see ``build_state_graph``.
Admit = Callable[[RunContext], None]


def _admit_all(ctx: RunContext) -> None:
    """In-process callers own the process: every context is theirs to choose."""


def _entry(node: NodeFn, admit: Admit, *, starts: bool = False) -> NodeFn:
    """Guard a node a run can start or resume at: the context is admitted (a served graph
    refuses client-chosen stores and models), and on a thread that already has a user the
    run's user must be that user, before the node reads a resume value or stores anything."""

    def entry(state: PahfState, runtime: Any) -> dict[str, Any] | Command[Any]:
        ctx = run_context(runtime)
        admit(ctx)  # a security refusal: raised, before anything is read or written
        if state.user_id:
            request = state.request if isinstance(state.request, Request) else None
            try:
                resolve_user(request.user_id if request else None, ctx, state.user_id)
            except UserNotAllowedError:
                raise
            except ValueError:
                # Not a security matter (no user id, ids that disagree): the entry node reads
                # the new input and ends the run with a message saying so; a resume is refused
                # and its turn stays pending for a resume with a usable context.
                if not starts:
                    raise
        return node(state, runtime=runtime)

    entry.__name__ = getattr(node, "__name__", "entry")
    return entry


def build_state_graph(
    services: ServicesProvider,
    human: HumanService | None = None,
    admit: Admit = _admit_all,
    *,
    json_writes: bool = True,
) -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled graph (for embedding as a subgraph with your own compile options).

    ``admit`` sees each run's context at the nodes a run can start or resume at
    (retrieve_memory, ask_user, ingest_feedback) and raises to refuse it. ``human`` attends
    the human turns in-process (see :func:`build_graph`); without it they interrupt the run.
    ``json_writes=False``: nodes hand their updates over as typed values instead of JSON, for
    a graph no saver keeps (see :func:`pahf.nodes.services.writes_for`).
    """
    writes = {"json_writes": json_writes}
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        PahfState, context_schema=RunContext, input_schema=PahfInput, output_schema=PahfOutput
    )
    builder.add_node(
        "retrieve_memory",
        _entry(make_retrieve_memory(services, **writes), admit, starts=True),
        destinations=get_args(AfterRetrieval),
    )
    builder.add_node(
        "ambiguity_detect",
        make_ambiguity_detect(services, **writes),
        destinations=get_args(AfterAssessment),
    )
    builder.add_node("ask_user", _entry(make_ask_user(services, human, **writes), admit))
    builder.add_node("act", make_act(services, **writes), destinations=get_args(AfterAction))
    builder.add_node(
        "ingest_feedback", _entry(make_ingest_feedback(services, human, **writes), admit)
    )
    builder.add_edge(START, "retrieve_memory")
    # ambiguity_detect -> ask_user | act, and act -> ingest_feedback | END: the nodes' Commands
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
    json_writes: bool = True,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the PAHF graph.

    ``memory`` defaults to the store named by the run context (``memory_location``) or
    ``$PAHF_MEMORY`` / ``./.pahf/memory``; ``reasoner`` defaults to the offline reference
    reasoner over that store's embedder. Human turns are interrupts, so a checkpointer is
    needed to resume them (any LangGraph saver: in-memory, SQLite, Postgres), unless ``human``
    answers them in-process (a :class:`~pahf.human.HumanService`, e.g. the evaluation's
    simulated users through a :class:`~pahf.human.HumanDesk`): then a request is one run.
    ``json_writes=False`` (no checkpointer; the evaluation's graph): nodes hand their updates
    over typed, not as JSON (:func:`pahf.nodes.services.writes_for`); run inside a
    checkpointed graph, such a graph's writes would be kept as they are, so don't.
    """
    if checkpointer is not None and not json_writes:
        raise ValueError(
            "json_writes=False is for a graph without a checkpointer: a saver keeps the "
            "nodes' writes, which must then be JSON"
        )
    services = ContextServices(reasoner=reasoner, memory=memory)
    if checkpointer is not None:
        checkpointer = allow_pahf_types(checkpointer)
    return build_state_graph(services, human, json_writes=json_writes).compile(
        checkpointer=checkpointer, name=name
    )


def build_served_graph(
    settings: DeploymentSettings | None = None, *, name: str = "pahf"
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The graph for a server whose clients are not trusted with the process.

    Storage, reasoner and model come from ``settings`` (default: the environment, see
    :meth:`DeploymentSettings.from_env`); a client's context may only name an allowlisted
    store or model, anything else is refused before the run reads or stores anything. The
    user is the caller the server authenticated, where it authenticates.
    """
    settings = settings if settings is not None else DeploymentSettings.from_env()
    services = ContextServices(settings=settings)
    return build_state_graph(services, admit=services.admit).compile(name=name)
