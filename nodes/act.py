"""act: choose one of the request's candidates, grounded in memory and any answer just given."""

from __future__ import annotations

from typing import Any, Literal

from pahf.nodes.services import NodeFn, ServicesProvider, run_context
from pahf.state import PahfState


def make_act(services: ServicesProvider) -> NodeFn:
    def act(state: PahfState, runtime: Any) -> dict[str, Any]:
        ctx = run_context(runtime)
        action = services(ctx).reasoner.choose(state.request, state.memories, state.clarifications)
        ids = {c.id for c in state.request.candidates}
        if action.candidate_id not in ids:
            raise ValueError(
                f"act: reasoner chose {action.candidate_id!r}, "
                f"not one of the candidates {sorted(ids)}"
            )
        return {"action": action}

    return act


def route_after_action(state: PahfState, runtime: Any) -> Literal["ingest_feedback", "__end__"]:
    """Post-action feedback only when that channel is on for this run."""
    return "ingest_feedback" if run_context(runtime).post_action else "__end__"
