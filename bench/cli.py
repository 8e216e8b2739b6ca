"""``python -m bench``: the performance benchmarks, each printing a table of figures.

Run from a clone of the repository (the benchmarks are not part of the installed package):
``python -m bench throughput|nodes|memory|llm|full|all [--size tiny|default|published]``.
Figures depend on the machine and its load; the report ends with both. ``--json`` saves the
reports, ``--profile`` writes cProfile statistics and prints the hot spots.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.common import Size
from pahf.eval.methods import METHODS, Method


class BenchOptionError(Exception):
    """A bad option value: one line on stderr, exit status 2 (as argparse does)."""


BENCHMARKS = ("throughput", "nodes", "memory", "llm", "full")
#: Size each benchmark runs at when --size is not given.
DEFAULT_SIZES: dict[str, Size] = {
    "throughput": "default",
    "nodes": "default",
    "memory": "default",
    "llm": "default",
    "full": "published",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Run a benchmark and print its figures. throughput: episodes/s through the harness "
            "(1 and 2 workers) and the graph alone; nodes: p50/p95 per graph node; "
            "memory: add/search latency and footprint with 100-10k users; llm: LLM calls and "
            "tokens per path vs the reference PAHF agent; full: the whole evaluation at the "
            "published size. Figures are not assertions: they depend on this machine's load."
        ),
    )
    parser.add_argument("benchmark", choices=[*BENCHMARKS, "all"], help="which benchmark")
    parser.add_argument(
        "--size",
        choices=("tiny", "default", "published"),
        default=None,
        help="workload size (default: 'published' for full, 'default' for the others; "
        "'tiny' runs in seconds)",
    )
    parser.add_argument("--json", default=None, help="also write the reports to this JSON file")
    parser.add_argument(
        "--profile", default=None, help="write cProfile stats here and print the hot spots"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="full: users played concurrently (2)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="throughput: rounds the graph-only figure is the mean of (3)",
    )
    parser.add_argument(
        "--method",
        default="all",
        help="throughput/full: all (default) or a comma list of " + ", ".join(METHODS),
    )
    parser.add_argument(
        "--embedding",
        choices=("minilm", "hashing"),
        default="minilm",
        help="embedding model for the episode benchmarks (minilm: the default model)",
    )
    parser.add_argument(
        "--users",
        default=None,
        help="memory: comma list of embedded-store user counts (e.g. 100,1000,10000)",
    )
    parser.add_argument(
        "--server-users",
        default=None,
        help="memory: comma list of Chroma-server user counts; 0 skips the server",
    )
    parser.add_argument(
        "--per-user", type=int, default=None, help="memory: memories per user (100)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_bench(args)
    except BenchOptionError as exc:
        print(f"python -m bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _methods(value: str) -> list[Method]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names or "all" in names:
        return list(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise BenchOptionError(
            f"unknown method {unknown[0]!r}; choose all or some of {', '.join(METHODS)}"
        )
    return [m for m in METHODS if m in names]


def _counts(value: str | None, option: str) -> list[int] | None:
    if value is None:
        return None
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise BenchOptionError(f"{option} must be a comma list of integers, got {value!r}") from exc
    if any(c < 0 for c in counts):
        raise BenchOptionError(f"{option} must not be negative, got {value!r}")
    return [c for c in counts if c > 0]


def _runner(name: str, size: Size, args: argparse.Namespace) -> Callable[[], Any]:
    """A no-argument callable running benchmark ``name`` with the CLI's options."""
    embedding = args.embedding
    methods = _methods(args.method)
    rounds = args.rounds
    if rounds < 1:
        raise BenchOptionError(f"--rounds must be at least 1, got {rounds}")
    if name == "throughput":
        from bench import throughput

        return lambda: throughput.run(size, methods, embedding, rounds)
    if name == "nodes":
        from bench import nodes

        return lambda: nodes.run(size, embedding)
    if name == "llm":
        from bench import llm_cost

        return lambda: llm_cost.run(size, embedding)
    if name == "full":
        from bench import full_run

        if args.workers < 1:
            raise BenchOptionError(f"--workers must be at least 1, got {args.workers}")
        return lambda: full_run.run(size, args.workers, methods, embedding)
    from bench import memory_scale

    plan = memory_scale.PLANS[size]
    per_user = args.per_user
    if per_user is not None and per_user < 1:
        raise BenchOptionError(f"--per-user must be at least 1, got {per_user}")

    def scales(
        counts: list[int] | None, planned: tuple[memory_scale.Scale, ...]
    ) -> list[memory_scale.Scale]:
        if counts is None:
            return [
                memory_scale.Scale(s.users, per_user or s.per_user) for s in planned
            ]
        default_per_user = planned[0].per_user if planned else 100
        return [memory_scale.Scale(c, per_user or default_per_user) for c in sorted(counts)]

    embedded = scales(_counts(args.users, "--users"), plan.embedded)
    server = scales(_counts(args.server_users, "--server-users"), plan.server)
    return lambda: memory_scale.run(size, embedded=embedded, server=server)


def _print_hot_spots(profile: cProfile.Profile, console: Console, limit: int = 25) -> None:
    buffer = io.StringIO()
    stats = pstats.Stats(profile, stream=buffer)
    stats.sort_stats("tottime").print_stats(limit)
    console.print(buffer.getvalue())


def run_bench(args: argparse.Namespace) -> int:
    from bench.common import BenchReport, print_report, write_json

    names = list(BENCHMARKS) if args.benchmark == "all" else [args.benchmark]
    console = Console() if sys.stdout.isatty() else Console(width=200)
    reports: list[BenchReport] = []
    runners = {name: _runner(name, args.size or DEFAULT_SIZES[name], args) for name in names}
    for name, run in runners.items():
        size = args.size or DEFAULT_SIZES[name]
        console.print(f"[bold]python -m bench {name}[/bold] (size {size}) ...")
        if args.profile:
            profile = cProfile.Profile()
            report = profile.runcall(run)
            target = Path(args.profile)
            if len(names) > 1:
                target = target.with_name(f"{target.stem}-{name}{target.suffix or '.prof'}")
            profile.dump_stats(str(target))
            print_report(report, console)
            console.print(f"profile: {target} (hot spots by own time):")
            _print_hot_spots(profile, console)
        else:
            report = run()
            print_report(report, console)
        reports.append(report)
        if args.json:
            write_json(reports, Path(args.json))
    if args.json:
        console.print(f"reports: {args.json}")
    return 0
