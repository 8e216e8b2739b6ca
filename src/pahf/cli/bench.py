"""``pahf bench``: says where the benchmarks are (they are not part of the installed package).

The benchmarks exercise the whole package and need a checkout (and its figures in
bench/README.md), so they run from the repository: ``python -m bench ...``.
"""

from __future__ import annotations

import argparse
from typing import Any

from pahf.cli import CliError

MOVED = (
    "the benchmarks are not part of the installed package: from a clone of the repository, "
    "run 'python -m bench throughput|nodes|memory|llm|full|all' at its root (bench/README.md)"
)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "bench", help="where the performance benchmarks are (python -m bench, in the repository)"
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=moved)


def moved(args: argparse.Namespace) -> int:
    raise CliError(MOVED)
