"""Helpers shared by CLI subcommands: opening stores safely, reading request JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.request import Request


def open_existing_store(location: str) -> ChromaPreferenceMemory:
    """Open a store that must already exist: a typo must not silently create an empty one."""
    return ChromaPreferenceMemory.open_existing(location)


def read_request(path: str, user: str | None = None) -> Request:
    """Load a request from a JSON file, with errors that name the file and the field."""
    try:
        raw: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"request file {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"request file {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"request file {path} must hold a JSON object")
    if isinstance(raw.get("request"), dict):
        raw = raw["request"]
    if user is not None:
        raw = {**raw, "user_id": user}
    try:
        return Request.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"request file {path}: {exc}") from exc
