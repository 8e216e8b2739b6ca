"""A real model on a slice of published-layout data: per domain, method and phase, success,
failed decisions, LLM calls, tokens and seconds per episode (the figures of docs/llm.md).

A slice is the first ``--items`` situations of every phase for ``--users`` users (the first
ones, or those after the first ``--skip-users``, to check a result on other users):
phases stay aligned (item i is the same situation in all four), so phase 2 tests what phase 1
taught. It is played by the evaluation harness itself under its defaults, which are the paper's
setting (the ``parity`` simulated user, the embodied situation label hidden, one question per
request); it is resumable (rerun with the same ``--out``). Play the same slice with
``--reasoner offline`` for the reference figures, then print both side by side::

    export PAHF_LLM_BASE_URL=http://127.0.0.1:18083/v1 PAHF_LLM_TIMEOUT=300
    python -m bench.llm_real --data ../shared/pahf-dev-data --users 2 --items 6 \\
        --reasoner llm --model qwen2.5-coder-1.5b-instruct --concurrency 2 --out runs/llm-1.5b
    python -m bench.llm_real --data ../shared/pahf-dev-data --users 2 --items 6 \\
        --reasoner offline --out runs/offline
    python -m bench.llm_real --report runs/llm-1.5b --offline runs/offline

``--report`` takes several runs (``LABEL=DIR``), e.g. one per prompt version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from pahf.eval.concurrent import run_concurrently
from pahf.eval.episodes import DOMAINS, Benchmark
from pahf.eval.metrics import summarize
from pahf.eval.published import load_published
from pahf.eval.results import EpisodeLog, EpisodeRecord
from pahf.eval.runner import EvalSettings, select_users

LEARNING = (1, 3)


def sliced(bench: Benchmark, users: int, items: int, skip: int = 0) -> Benchmark:
    """``users`` users after the first ``skip``, each with the ``items`` lowest-index episodes
    per phase."""
    if skip < 0:
        raise ValueError(f"--skip-users must be at least 0, got {skip}")
    chosen = bench.users()[skip : skip + users]
    if not chosen:
        raise ValueError(f"the {bench.domain} benchmark has no users after the first {skip}")
    bench = select_users(bench, chosen, users)
    episodes = {}
    for phase, eps in bench.episodes.items():
        keep = []
        for user in bench.users():
            mine = sorted((e for e in eps if e.user == user), key=lambda e: e.index)
            keep.extend(mine[:items])
        episodes[phase] = keep
    return bench.model_copy(update={"episodes": episodes})


def load(run_dir: Path) -> list[EpisodeRecord]:
    return list(EpisodeLog(run_dir / "episodes.jsonl").load().values())


def table(records_path: Path) -> str:
    """One row per domain, method and phase (the harness's own summary)."""
    records = list(EpisodeLog(records_path).load().values())
    lines = [
        "| domain | method | phase | episodes | success | failed decisions | calls/ep | "
        "tokens/ep | s/ep |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summarize(records):
        lines.append(
            f"| {row.domain} | {row.method} | {row.phase} | {row.episodes} | "
            f"{row.success_rate:.2f} | {row.failed} | {row.llm_calls_per_episode:.2f} | "
            f"{row.tokens_per_episode:.0f} | {row.seconds / max(row.episodes, 1):.1f} |"
        )
    return "\n".join(lines)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def wide_table(runs: dict[str, list[EpisodeRecord]]) -> str:
    """One row per domain, method and reasoner: success in each phase, then failures and the
    cost per episode split into learning (phases 1, 3) and test (2, 4) episodes."""
    lines = [
        "| domain | method | reasoner | P1 | P2 | P3 | P4 | failed episodes | failed / calls | "
        "calls/ep (learn / test) | tokens/ep (learn / test) | s/ep (learn / test) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str, str], list[EpisodeRecord]] = defaultdict(list)
    for label, records in runs.items():
        for r in records:
            groups[(r.domain, r.method, label)].append(r)
    order = {label: i for i, label in enumerate(runs)}
    for domain, method, label in sorted(groups, key=lambda k: (k[0], k[1], order[k[2]])):
        rs = groups[(domain, method, label)]
        by_phase = {p: [r for r in rs if r.phase == p] for p in (1, 2, 3, 4)}
        success = [
            f"{_mean([r.correct for r in by_phase[p]]):.2f}" if by_phase[p] else "-"
            for p in (1, 2, 3, 4)
        ]
        learn = [r for r in rs if r.phase in LEARNING]
        test = [r for r in rs if r.phase not in LEARNING]
        failed = sum(r.error is not None for r in rs)
        calls = sum(r.llm_calls for r in rs)

        def split(field: str, digits: int, learn: list[EpisodeRecord] = learn,
                  test: list[EpisodeRecord] = test) -> str:
            a = _mean([float(getattr(r, field)) for r in learn])
            b = _mean([float(getattr(r, field)) for r in test])
            return f"{a:.{digits}f} / {b:.{digits}f}"

        lines.append(
            f"| {domain} | {method} | {label} | {' | '.join(success)} | {failed} / {len(rs)} | "
            f"{failed} / {calls} | {split('llm_calls', 2)} | {split('tokens', 0)} | "
            f"{split('seconds', 1)} |"
        )
    return "\n".join(lines)


def settings_line(run_dir: Path) -> str:
    """The settings a run was played under, and whether they are the paper's."""
    config = json.loads((run_dir / "config.json").read_text())
    settings = EvalSettings.model_validate(config.get("settings", config))
    gaps = settings.parity_gaps()
    return (
        f"{run_dir}: reasoner {settings.reasoner}, model {settings.model}, simulator "
        f"{settings.simulator}, show_context {settings.show_context}, question budget "
        f"{settings.question_budget}, iterations {settings.iterations}; "
        + ("paper parity" if not gaps else "NOT paper parity: " + "; ".join(gaps))
    )


def report(llm_dirs: Sequence[str], offline_dir: Path | None) -> str:
    """``llm_dirs``: run directories, each ``DIR`` (labelled ``llm``) or ``LABEL=DIR``; runs
    with the same label are shown as one (e.g. one run per domain)."""
    runs: dict[str, list[EpisodeRecord]] = {}
    lines = []
    for spec in llm_dirs:
        label, _, path = spec.rpartition("=")
        runs.setdefault(label or "llm", []).extend(load(Path(path)))
        lines.append(settings_line(Path(path)))
    if offline_dir is not None:
        runs["offline"] = load(offline_dir)
        lines.append(settings_line(offline_dir))
    return "\n".join([*lines, "", wide_table(runs)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", help="a folder holding PAHF's data/ layout")
    parser.add_argument("--domain", default="both", choices=(*DOMAINS, "both"))
    parser.add_argument("--method", default="pahf,no-memory")
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--skip-users", type=int, default=0, help="leave out the first K users")
    parser.add_argument("--items", type=int, default=4, help="situations per phase and user")
    parser.add_argument("--reasoner", default="llm", choices=("llm", "offline"))
    parser.add_argument("--model", default=None)
    parser.add_argument(
        "--iterations", type=int, default=3, help="learning iterations per phase (the paper: 3)"
    )
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--out", help="run directory to play into (resumable)")
    parser.add_argument(
        "--report", nargs="+", metavar="[LABEL=]DIR", help="print these runs side by side"
    )
    parser.add_argument("--offline", help="with --report: the offline run on the same slice")
    args = parser.parse_args(argv)
    if args.report:
        print(report(args.report, Path(args.offline) if args.offline else None))
        return 0
    if not args.data or not args.out:
        parser.error("--data and --out are required to play a slice (or use --report)")
    domains = list(DOMAINS) if args.domain == "both" else [args.domain]
    benchmarks = {
        d: sliced(load_published(Path(args.data), d), args.users, args.items, args.skip_users)
        for d in domains
    }
    settings = EvalSettings(
        domains=domains,
        methods=[m.strip() for m in args.method.split(",") if m.strip()],
        iterations=args.iterations,
        reasoner=args.reasoner,
        model=args.model or os.environ.get("PAHF_MODEL"),
    )
    out = Path(args.out)
    outcome = run_concurrently(benchmarks, settings, out, concurrency=args.concurrency)
    print(settings_line(out))
    print(table(out / "episodes.jsonl"))
    print(f"complete: {outcome.complete}; played {outcome.played}, wall {outcome.wall_seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
