"""Reasoners: the PAHF decisions (assess, choose, learn), offline or through an LLM."""

from pahf.reasoners.base import Reasoner
from pahf.reasoners.offline import OfflineReasoner, OfflineReasonerConfig
from pahf.reasoners.phrases import Phrase, parse_preferences

__all__ = ["OfflineReasoner", "OfflineReasonerConfig", "Phrase", "Reasoner", "parse_preferences"]
