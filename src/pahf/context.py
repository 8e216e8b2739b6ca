"""Per-run settings (the graph's LangGraph context schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pahf.request import validate_user_id


class RunContext(BaseModel):
    """Per-run configuration (LangGraph context schema): one deployed graph serves every user.

    ``reasoner``, ``model`` and ``memory_location`` are the caller's to choose in-process
    (``build_graph``); on a served graph the deployment owns them (see
    :mod:`pahf.graphs.services`). The switches express the paper's baselines: ``no-memory``
    (use_memory off, both channels off), ``pre-only`` (post_action off), ``post-only``
    (pre_action off), ``pahf`` (all on).
    """

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    use_memory: bool = True
    pre_action: bool = True
    post_action: bool = True
    question_budget: int = Field(default=1, ge=0, le=10)
    top_k: int = Field(default=32, ge=1, le=100)
    reasoner: Literal["offline", "llm"] | None = Field(
        default=None, description="offline or llm; unset: offline, or the deployment's choice"
    )
    model: str | None = Field(
        default=None,
        description="LLM model; on a served graph only a model the operator allowed",
    )
    memory_location: str | None = Field(
        default=None,
        description=(
            "in-process: a directory of an embedded Chroma store, or http(s)://host:port of a "
            "server; on a served graph only the name of a store the operator allowed"
        ),
    )

    @field_validator("user_id")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        return None if value is None else validate_user_id(value)
