"""``pahf eval``: the four-phase PAHF evaluation, both benchmarks, all methods, one command.

Default: the built-in generated benchmarks (no download), both domains, all four methods, the
offline reasoner. ``--data PATH`` (or ``$PAHF_DATA``) runs on the published PAHF data layout.
Rerunning the same command with the same ``--out`` resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pahf.cli import CliError, missing_extra
from pahf.cli.common import add_llm_flags, llm_environment
from pahf.eval.concurrent import run_concurrently
from pahf.eval.episodes import DOMAINS, Benchmark, Domain
from pahf.eval.methods import METHODS, Method
from pahf.eval.metrics import PhaseSummary, summarize
from pahf.eval.report import prepare_plots, success_table, write_outputs
from pahf.eval.runner import (
    MAX_ITERATIONS,
    SIMULATORS,
    EvalOutcome,
    EvalSettings,
    SimulatedUserError,
    check_benchmark,
    run_evaluation,
    select_users,
)
from pahf.eval.workers import WorkerProcessError
from pahf.reasoners.llm import LLMCallError

DOMAIN_CHOICES = ("embodied", "shopping", "both")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "eval",
        help="run the four-phase PAHF evaluation (benchmarks x methods) and write a report",
        description=(
            "Replay benchmark episodes through the PAHF graph with a simulated user: phase 1 "
            "learning (K iterations), phase 2 test, phase 3 learning after the preference "
            "shift, phase 4 test. Writes episodes.jsonl, summary.json, report.md and plots "
            "to --out; rerun the same command with the same --out to resume."
        ),
    )
    add = parser.add_argument
    add("--domain", default="both", metavar="DOMAIN", help="embodied, shopping or both (default)")
    add(
        "--method",
        default="all",
        metavar="METHODS",
        help="all (default) or a comma list of: " + ", ".join(METHODS),
    )
    add(
        "--data",
        metavar="PATH",
        help="published PAHF data directory (holding data/ or embodied/, shopping/); "
        "default $PAHF_DATA, else the built-in generator",
    )
    add("--users", type=int, metavar="N", help="use only the first N users")
    add(
        "--user",
        action="append",
        metavar="NAME",
        help="only this user (repeat or comma list); an error if the data has no such user",
    )
    add("--iterations", type=int, default=3, metavar="K", help="learning iterations (3)")
    add(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        metavar="W",
        help="worker processes, each playing a share of the users; results do not depend on it",
    )
    add("--out", metavar="DIR", help="run directory (default runs/<timestamp>)")
    add("--seed", type=int, default=0, metavar="S", help="generator and feedback-noise seed")
    add(
        "--episodes-per-phase",
        type=int,
        metavar="E",
        help="generator: episodes per user and phase (the generator's default)",
    )
    add("--drift", type=float, metavar="F", help="generator: fraction of preferences that change")
    add("--ambiguity", type=float, metavar="F", help="generator: fraction of ambiguous episodes")
    add(
        "--feedback-noise",
        type=float,
        default=0.0,
        metavar="P",
        help="probability that post-action feedback is wrong or irrelevant (0)",
    )
    add(
        "--noise-sweep",
        metavar="P,P,...",
        help="also run at each of these feedback-noise levels (e.g. 0,0.1,0.2,0.3) and add a "
        "noisy-feedback table to the report",
    )
    add("--reasoner", default="offline", metavar="KIND", help="offline (default) or llm")
    add(
        "--model",
        metavar="NAME",
        help="chat model for --reasoner llm / --simulator llm: a name served over the OpenAI "
        "protocol, or provider:model for any LangChain provider ($PAHF_MODEL)",
    )
    add_llm_flags(parser)
    add(
        "--concurrency",
        type=int,
        default=1,
        metavar="N",
        help="play N users at once on threads of this process against one model server, with "
        "one shared embedder and store (for LLM runs; results as with 1; replaces --workers)",
    )
    add(
        "--simulator",
        default="parity",
        metavar="KIND",
        help="simulated user: parity (default: the paper's, answers only what is asked and "
        "never reads the answer key), rule-generous (an upper bound: answers with the whole "
        "preference, chosen with the answer key) or llm (an LLM playing the persona)",
    )
    add(
        "--show-context",
        action="store_true",
        help="ablation: show the agent the embodied situation label (e.g. 'Drowsy'), which the "
        "paper's agent never sees",
    )
    add(
        "--question-budget",
        type=int,
        default=1,
        metavar="Q",
        help="clarification questions per request (1, as in the paper; other values are "
        "reported as a setting of their own)",
    )
    add(
        "--max-episodes",
        type=int,
        metavar="M",
        help="stop after M new episodes (resume later with the same command)",
    )
    add("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_eval)


# --------------------------------------------------------------------------- arguments


def parse_domains(value: str) -> list[Domain]:
    if value == "both":
        return list(DOMAINS)
    if value in DOMAINS:
        return [value]
    raise CliError(f"unknown domain {value!r}; choose one of {', '.join(DOMAIN_CHOICES)}")


def parse_methods(value: str) -> list[Method]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise CliError("--method is empty; choose all or some of " + ", ".join(METHODS))
    if "all" in names:
        return list(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise CliError(
            f"unknown method {unknown[0]!r}; choose all or a comma list of {', '.join(METHODS)}"
        )
    return [m for m in METHODS if m in names]


def parse_noise_levels(value: str | None) -> list[float]:
    """``"0,0.1,0.2"`` -> [0.0, 0.1, 0.2]; a clear error for anything else."""
    if not value:
        return []
    try:
        return sorted({float(part) for part in value.split(",") if part.strip()})
    except ValueError as exc:
        raise CliError(f"--noise-sweep must be comma-separated numbers, got {value!r}") from exc


def parse_user_names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def _check_args(args: argparse.Namespace) -> None:
    if args.iterations < 1:
        raise CliError(f"--iterations must be at least 1, got {args.iterations}")
    if args.iterations > MAX_ITERATIONS:
        raise CliError(f"--iterations must be at most {MAX_ITERATIONS}, got {args.iterations}")
    if args.workers < 1:
        raise CliError(f"--workers must be at least 1, got {args.workers}")
    if args.concurrency < 1:
        raise CliError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.users is not None and args.users < 1:
        raise CliError(f"--users must be at least 1, got {args.users}")
    for level in parse_noise_levels(args.noise_sweep):
        if not 0.0 <= level <= 1.0:
            raise CliError(f"--noise-sweep levels must be between 0 and 1, got {level}")
    if not 0.0 <= args.feedback_noise <= 1.0:
        raise CliError(f"--feedback-noise must be between 0 and 1, got {args.feedback_noise}")
    if args.reasoner not in ("offline", "llm"):
        raise CliError(f"unknown reasoner {args.reasoner!r}; choose offline or llm")
    if args.simulator == "rule":
        raise CliError(
            "--simulator rule is now two users: parity (the default, as in the paper) or "
            "rule-generous (the earlier rule-based user, an upper bound)"
        )
    if args.simulator not in SIMULATORS:
        raise CliError(
            f"unknown simulator {args.simulator!r}; choose {', '.join(SIMULATORS)}"
        )
    if not 0 <= args.question_budget <= 10:
        raise CliError(f"--question-budget must be between 0 and 10, got {args.question_budget}")
    if args.max_episodes is not None and args.max_episodes < 1:
        raise CliError(f"--max-episodes must be at least 1, got {args.max_episodes}")


# --------------------------------------------------------------------------- benchmarks


def load_benchmarks(args: argparse.Namespace, domains: list[Domain]) -> dict[str, Benchmark]:
    """The benchmarks to play: published data if given, else the built-in generator."""
    data = args.data or os.environ.get("PAHF_DATA") or None
    names = parse_user_names(args.user)
    out: dict[str, Benchmark] = {}
    if data:
        generator_only = [
            flag
            for flag, value in (
                ("--episodes-per-phase", args.episodes_per_phase),
                ("--drift", args.drift),
                ("--ambiguity", args.ambiguity),
            )
            if value is not None
        ]
        if generator_only:
            raise CliError(
                f"{', '.join(generator_only)} only apply to the built-in generator, not --data"
            )
        path = Path(data).expanduser()
        if not path.exists():
            raise CliError(f"data directory {path} does not exist")
        if not path.is_dir():
            raise CliError(f"data path {path} is not a directory")
        from pahf.eval.published import load_published

        for domain in domains:
            out[domain] = _checked(load_published(path, domain), names, args.users)
        return out
    from pahf.eval.generator import generate

    options: dict[str, Any] = {"seed": args.seed}
    if args.users is not None:
        options["users"] = args.users
    if args.episodes_per_phase is not None:
        if args.episodes_per_phase < 1:
            raise CliError(
                f"--episodes-per-phase must be at least 1, got {args.episodes_per_phase}"
            )
        options["episodes_per_phase"] = args.episodes_per_phase
    if args.drift is not None:
        options["drift"] = args.drift
    if args.ambiguity is not None:
        options["ambiguity"] = args.ambiguity
    for domain in domains:
        try:
            generated = generate(domain, **options)
        except ValueError as exc:  # the generator's options are the command line's
            raise CliError(str(exc)) from exc
        out[domain] = _checked(generated, names)
    return out


def _checked(bench: Benchmark, names: list[str] | None, limit: int | None = None) -> Benchmark:
    """``bench`` cut to the users asked for, refused if the protocol cannot replay it."""
    try:
        chosen = select_users(bench, names, limit)
        check_benchmark(chosen)
    except (LookupError, ValueError) as exc:  # both only judge the data and the options
        raise CliError(str(exc)) from exc
    return chosen


def _writable_run_dir(out_dir: Path) -> None:
    """Create ``--out`` (or find it writable) before anything runs, or say why not."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create the run directory {out_dir}: {exc}") from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise CliError(f"the run directory {out_dir} is not writable")


# --------------------------------------------------------------------------- output


class _RichProgress:
    """The runner's progress sink as a rich bar on stderr."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]eval[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("episodes"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task: Any = None

    def __enter__(self) -> _RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, total: int, completed: int) -> None:
        self._task = self._progress.add_task("eval", total=total, completed=completed)

    def advance(self) -> None:
        if self._task is not None:
            self._progress.advance(self._task)


def _default_out() -> Path:
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


def _play(
    args: argparse.Namespace,
    benchmarks: dict[str, Benchmark],
    settings: EvalSettings,
    out_dir: Path,
    err: Console,
) -> tuple[EvalOutcome, list[PhaseSummary], dict[float, list[PhaseSummary]]]:
    """The run, then any noise-sweep runs beside it: (outcome, its summary, summaries by p)."""
    run: Callable[..., EvalOutcome] = (
        functools.partial(run_concurrently, concurrency=args.concurrency)
        if args.concurrency > 1
        else functools.partial(run_evaluation, workers=args.workers, meanwhile=prepare_plots)
    )
    if not args.quiet and sys.stderr.isatty():
        with _RichProgress(err) as bar:
            outcome = run(
                benchmarks,
                settings,
                out_dir,
                progress=bar,
                max_episodes=args.max_episodes,
            )
    else:
        outcome = run(benchmarks, settings, out_dir, max_episodes=args.max_episodes)
    rows = summarize(outcome.records)
    noise: dict[float, list[PhaseSummary]] = {}
    for level in parse_noise_levels(args.noise_sweep):
        if level == settings.feedback_noise:
            noise[level] = list(rows)
            continue
        err.print(f"noise sweep: feedback noise {level:g}")
        sub = run(
            benchmarks,
            settings.model_copy(update={"feedback_noise": level}),
            out_dir / f"noise-{level:g}",
        )
        noise[level] = list(summarize(sub.records))
        write_outputs(noise[level], sub.settings, out_dir / f"noise-{level:g}", plots=False)
    return outcome, rows, noise


def run_eval(args: argparse.Namespace) -> int:
    hint = missing_extra(["matplotlib"], "eval", "pahf eval (the report's plots)")
    if hint:
        print(f"pahf eval: {hint}", file=sys.stderr)
        return 1
    _check_args(args)
    domains = parse_domains(args.domain)
    methods = parse_methods(args.method)
    started = time.perf_counter()
    benchmarks = load_benchmarks(args, domains)
    settings = EvalSettings(
        domains=domains,
        methods=methods,
        iterations=args.iterations,
        seed=args.seed,
        feedback_noise=args.feedback_noise,
        reasoner=args.reasoner,
        model=args.model,
        simulator=args.simulator,
        show_context=args.show_context,
        question_budget=args.question_budget,
    )
    out_dir = Path(args.out) if args.out else _default_out()
    _writable_run_dir(out_dir)
    console = Console()
    err = Console(stderr=True)
    err.print(f"run directory: {out_dir} (rerun with --out {out_dir} to resume)", soft_wrap=True)
    try:
        with llm_environment(args):
            outcome, rows, noise = _play(args, benchmarks, settings, out_dir, err)
    except (LLMCallError, SimulatedUserError, WorkerProcessError) as exc:
        # The model (the agent's or the simulated user's) is unreachable or unusable, or a
        # worker process died: going on would only fail every episode. What finished is in the
        # run directory.
        err.print(f"pahf eval: error: {exc}", soft_wrap=True, markup=False, highlight=False)
        err.print(
            f"finished episodes are kept: rerun with --out {out_dir} to resume", soft_wrap=True
        )
        return 1
    files = write_outputs(rows, outcome.settings, out_dir, noise=noise or None)
    for domain in domains:
        header, body = success_table(rows, domain)
        table = Table(title=f"{domain}: success rate by phase (ACPE: lower is better)")
        for name in header:
            table.add_column(name, justify="left" if name == "method" else "right")
        for cells in body:
            table.add_row(*cells)
        console.print(table)
    if noise:
        table = Table(title="success rate by feedback noise p (pahf eval --noise-sweep)")
        for name in ("domain", "method", "p", *(f"P{ph}" for ph in (1, 2, 3, 4))):
            table.add_column(name)
        for level, level_rows in sorted(noise.items()):
            for row in level_rows:
                if row.phase == 1:
                    by_phase = {
                        r.phase: f"{r.success_rate:.3f}"
                        for r in level_rows
                        if r.domain == row.domain and r.method == row.method
                    }
                    table.add_row(
                        row.domain,
                        row.method,
                        f"{level:g}",
                        *(by_phase.get(ph, "-") for ph in (1, 2, 3, 4)),
                    )
        console.print(table)
    elapsed = time.perf_counter() - started
    if outcome.complete:
        lines = [
            f"{outcome.played} episodes played, {outcome.skipped} resumed from the log, "
            f"in {elapsed:.1f} s"
        ]
    else:
        lines = [
            f"[yellow]run incomplete[/yellow]: stopped after {outcome.played} new episodes "
            f"({len(outcome.records)} done); rerun the same command with --out {out_dir} to finish"
        ]
    gaps = outcome.settings.parity_gaps()
    lines.append(
        "setting: paper parity" if not gaps else "setting: NOT paper parity: " + "; ".join(gaps)
    )
    for name, info in outcome.settings.benchmarks.items():
        if info.left_out:
            lines.append(
                f"{name}: {len(info.left_out)} data rows left out (they contradict their own "
                "scene; listed in summary.json and the report)"
            )
    failed = sum(r.failed for r in rows)
    if failed:
        lines.append(
            f"[yellow]{failed} episodes failed[/yellow]: the agent's model answered unusably "
            "after retries (scored wrong without an action; the reason is each record's `error` "
            "in episodes.jsonl)"
        )
    lines += [
        f"report: {files.report}",
        f"summary: {files.summary}",
        f"episodes: {out_dir / 'episodes.jsonl'}",
    ]
    if files.plots:
        lines.append("plots: " + ", ".join(str(p) for p in files.plots))
    for line in lines:
        console.print(line, soft_wrap=True)  # paths stay whole, whatever the terminal width
    return 0
