"""The ``pahf`` command line: one module per subcommand, each with ``register(subparsers)``.

Errors a user can cause (bad paths, unknown users, malformed JSON or data) are printed as one
clear line on stderr with exit status 2; nothing stored is touched by a failing command. A model
that cannot be reached or keeps answering unusably is one line too, with exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from pahf.reasoners.llm import LLMDecisionError

#: Subcommand modules under pahf.cli, in help order.
COMMANDS = ["demo", "run", "memory", "chat", "eval", "bench"]


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pahf",
        description="Personalized agents that learn from human feedback (PAHF) on LangGraph.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"pahf.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
        return int(result or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except LLMDecisionError as exc:  # the model's side failed, not the command line
        print(f"pahf {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (CliError, ValueError, LookupError, OSError, json.JSONDecodeError) as exc:
        message = str(exc)
        if isinstance(exc, ValidationError):
            message = _validation_message(exc)
        elif isinstance(exc, KeyError) and exc.args:
            message = str(exc.args[0])
        print(f"pahf {args.command}: error: {message}", file=sys.stderr)
        return 2


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return f"invalid {exc.title}: " + "; ".join(parts)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
