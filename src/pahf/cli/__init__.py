"""The ``pahf`` command line: one module per subcommand, each with ``register(subparsers)``.

Bad input (a bad path, an unknown user, malformed JSON or data: any :class:`InputError`) is one
clear line on stderr with exit status 2; nothing stored is touched by a failing command. A
model that cannot be reached or keeps answering unusably is one line with exit status 1.
Anything else is a bug and is reported as one: a line naming the exception and pointing to
``--debug``, which prints the traceback, exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence

from pahf.errors import InputError
from pahf.memory.base import InvalidRecordsError, NoSuchStoreError, StoreError, UnknownUserError
from pahf.memory.store_lock import StoreBusyError
from pahf.reasoners.llm import LLMDecisionError

#: Subcommand modules under pahf.cli, in help order.
COMMANDS = ["demo", "run", "memory", "chat", "eval", "bench"]


class CliError(InputError):
    """Bad input found by the command line itself: printed without a traceback, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pahf",
        description="Personalized agents that learn from human feedback (PAHF) on LangGraph.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"pahf.cli.{name}").register(sub)
    _add_debug_flag(parser, top=True)
    return parser


def _add_debug_flag(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--debug`` anywhere: before the command (``pahf --debug eval``) or after it."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,  # a subcommand's flag must not reset it
        help="print the traceback of an unexpected error",
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_debug_flag(child)


def missing_extra(modules: Sequence[str], extra: str, what: str) -> str | None:
    """The install hint when one of ``modules`` is missing, else None.

    The command line and the evaluation's plots are extras (``pahf[cli]``, ``pahf[eval]``) so
    the library stays lean; without them the command says what to install instead of failing
    on an import.
    """
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return (
                f"{what} needs the {module!r} package, which is not installed: "
                f"pip install 'pahf[{extra}]'"
            )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    hint = missing_extra(["rich"], "cli", "the pahf command")
    if hint:
        print(f"pahf: {hint}", file=sys.stderr)
        return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(args.debug)
    try:
        result = args.func(args)
        return int(result or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except LLMDecisionError as exc:  # the model's side failed, not the command line
        _report(args.command, f"error: {exc}", debug)
        return 1
    except (InputError, NoSuchStoreError, InvalidRecordsError, UnknownUserError) as exc:
        _report(args.command, f"error: {_one_line(exc)}", debug)
        return 2
    except (StoreError, StoreBusyError) as exc:  # the store cannot serve: damaged, busy, down
        _report(args.command, f"error: {_one_line(exc)}", debug)
        return 1
    except Exception as exc:  # a bug: say what failed, keep the traceback one flag away
        if debug:
            traceback.print_exc()
        what = f"{type(exc).__name__}: {_one_line(exc)}" if str(exc) else type(exc).__name__
        print(
            f"pahf {args.command}: unexpected error (a bug, not your input): {what} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def _report(command: str, message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(f"pahf {command}: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
