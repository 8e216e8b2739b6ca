"""pahf: agents that learn each user's preferences online from human feedback (PAHF).

The PAHF loop (pre-action clarification, memory-grounded action, post-action feedback) as a
LangGraph workflow with per-user Chroma memory. See ``pahf.graphs.build_graph``.
"""

__version__ = "0.1.0"
