"""The graph ``langgraph.json`` serves (LangGraph server, Studio): ``graph``.

Its own module, built at import from the server's environment
(:meth:`~pahf.graphs.services.DeploymentSettings.from_env`): a malformed setting fails the
server that reads it, with the variable named, and never an in-process ``import pahf.graphs``.
"""

from __future__ import annotations

from pahf.graphs.pahf_graph import build_served_graph

graph = build_served_graph()
