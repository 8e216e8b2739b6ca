"""retrieve_memory: fetch this user's preferences relevant to the request (PAHF step 2's input).

Also the entry node, so it starts each new request from a clean slate on a reused thread, and
resolves which user the run is for before anything is asked or stored. It always hands over to
``ambiguity_detect`` (a plain edge): whether a question may follow is decided there, once.
"""

from __future__ import annotations

from typing import Any

from pahf.nodes.services import NodeFn, ServicesProvider, resolve_user, run_context
from pahf.state import PahfState


def make_retrieve_memory(services: ServicesProvider) -> NodeFn:
    def retrieve_memory(state: PahfState, runtime: Any) -> dict[str, Any]:
        ctx = run_context(runtime)
        user = resolve_user(state, ctx)
        update: dict[str, Any] = {"user_id": user, "after_question": False}
        # Every new input starts afresh, even one reusing the previous request's id; only the
        # loop back from ask_user continues the same request.
        if not state.after_question or state.active_request_id != state.request.request_id:
            update.update(
                active_request_id=state.request.request_id,
                assessment=None,
                questions_asked=0,
                clarifications=[],
                action=None,
                feedback=None,
                memory_ops=[],
            )
        if ctx.use_memory:
            memory = services(ctx).memory
            update["memories"] = memory.search(user, state.request.situation(), k=ctx.top_k)
        else:
            update["memories"] = []
        return update

    return retrieve_memory
