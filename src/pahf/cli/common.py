"""Helpers shared by CLI subcommands: opening stores safely, reading request JSON, the LLM
flags.

They turn what a user got wrong into :class:`CliError` (one line, exit status 2) right where
the input is read, so any other exception further down is reported as the bug it is.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pahf.cli import CliError
from pahf.context import RunContext
from pahf.memory.chroma import ChromaPreferenceMemory
from pahf.request import Request


def open_existing_store(location: str) -> ChromaPreferenceMemory:
    """Open a store that must already exist: a typo must not silently create an empty one."""
    return ChromaPreferenceMemory.open_existing(location)


def read_json(path: str, what: str) -> Any:
    """The JSON in the file at ``path``, or a CliError naming the file and what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {what} {path}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{what} {path} is not valid JSON: {exc}") from exc


def validation_message(exc: ValidationError) -> str:
    """Pydantic's multi-line report as one line: the first few fields and what is wrong."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return f"invalid {exc.title}: " + "; ".join(parts)


def read_request(path: str, user: str | None = None) -> Request:
    """Load a request from a JSON file, with errors that name the file and the field."""
    raw = read_json(path, "request file")
    if not isinstance(raw, dict):
        raise CliError(f"request file {path} must hold a JSON object")
    if isinstance(raw.get("request"), dict):
        raw = raw["request"]
    if user is not None:
        raw = {**raw, "user_id": user}
    try:
        return Request.model_validate(raw)
    except ValidationError as exc:
        raise CliError(f"request file {path}: {validation_message(exc)}") from exc


def method_context(method: str) -> RunContext:
    """The run context of ``--method``: one of the paper's four methods."""
    from pahf.eval.methods import METHODS, context_for_method

    if method not in METHODS:
        raise CliError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return context_for_method(method)


# --------------------------------------------------------------------------- LLM settings

#: The LLM flags every subcommand that can run a model takes: (flag, settings field, type, help).
LLM_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--llm-base-url", "base_url", str, "OpenAI-compatible endpoint (e.g. a local llama.cpp, "
     "vLLM or Ollama /v1); $PAHF_LLM_BASE_URL or $OPENAI_BASE_URL"),
    ("--llm-timeout", "timeout", float, "seconds one model call may take before that decision "
     "fails (default 120; $PAHF_LLM_TIMEOUT)"),
    ("--llm-max-tokens", "max_tokens", int, "output tokens per call, which stops a looping "
     "model (default 256; $PAHF_LLM_MAX_TOKENS)"),
    ("--llm-temperature", "temperature", float, "sampling temperature (default 0; "
     "$PAHF_LLM_TEMPERATURE)"),
    ("--llm-retries", "retries", int, "retries of a call that could not reach the model "
     "(connection, 429, 5xx; each counted as a call; default 2; $PAHF_LLM_RETRIES)"),
)


def add_llm_flags(parser: Any) -> None:
    for flag, _, kind, text in LLM_FLAGS:
        parser.add_argument(flag, type=kind, default=None, metavar="X", help=text)


@contextlib.contextmanager
def llm_environment(args: Any) -> Iterator[None]:
    """The LLM flags given on the command line as the ``PAHF_*`` variables the settings read,
    for the length of the command (worker processes inherit them), checked first so a bad
    value fails before anything runs."""
    from pahf.reasoners.settings import ENV, LLMSettings

    given = {
        field: getattr(args, flag[2:].replace("-", "_"))
        for flag, field, _, _ in LLM_FLAGS
        if getattr(args, flag[2:].replace("-", "_"), None) is not None
    }
    if getattr(args, "model", None):
        given["model"] = args.model
    updates = {ENV[field]: str(value) for field, value in given.items()}
    env = {**os.environ, **updates}
    if getattr(args, "reasoner", None) == "llm" or getattr(args, "simulator", None) == "llm":
        LLMSettings.resolve(env=env)  # raises LLMConfigError (a ValueError) naming the value
    saved = {name: os.environ.get(name) for name in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
