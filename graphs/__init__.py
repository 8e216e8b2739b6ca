"""Graph assembly: the PAHF StateGraph and its factory."""

from pahf.graphs.pahf_graph import NODE_NAMES, build_graph, build_state_graph
from pahf.graphs.services import ContextServices, default_memory_location

__all__ = [
    "NODE_NAMES",
    "ContextServices",
    "build_graph",
    "build_state_graph",
    "default_memory_location",
]
