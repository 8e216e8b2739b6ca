"""The five PAHF nodes, one per module; each is built from a services provider."""

from pahf.nodes.act import AfterAction, make_act, route_after_action
from pahf.nodes.ambiguity_detect import (
    AfterAssessment,
    make_ambiguity_detect,
    route_after_assessment,
)
from pahf.nodes.ask_user import make_ask_user
from pahf.nodes.ingest_feedback import make_ingest_feedback
from pahf.nodes.retrieve_memory import make_retrieve_memory
from pahf.nodes.services import Services, ServicesProvider, run_context

__all__ = [
    "AfterAction",
    "AfterAssessment",
    "Services",
    "ServicesProvider",
    "make_act",
    "make_ambiguity_detect",
    "make_ask_user",
    "make_ingest_feedback",
    "make_retrieve_memory",
    "route_after_action",
    "route_after_assessment",
    "run_context",
]
