"""A real model on a slice of published-layout data: per domain, method and phase, success,
failed decisions, LLM calls, tokens and seconds per episode (the figures of docs/llm.md).

A slice is the first ``--items`` situations of every phase for the first ``--users`` users:
phases stay aligned (item i is the same situation in all four), so phase 2 tests what phase 1
taught. It is played by the evaluation harness itself (resumable: rerun with the same
``--out``), with ``--reasoner offline`` for the reference figures on the same slice::

    python -m bench.llm_real --data ../shared/pahf-dev-data --items 4 \\
        --reasoner llm --model qwen2.5-coder-1.5b-instruct --out runs/llm-1.5b
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pahf.eval.concurrent import run_concurrently
from pahf.eval.episodes import DOMAINS, Benchmark
from pahf.eval.metrics import summarize
from pahf.eval.published import load_published
from pahf.eval.runner import EvalSettings, select_users


def sliced(bench: Benchmark, users: int, items: int) -> Benchmark:
    """The first ``users`` users, each with the ``items`` lowest-index episodes per phase."""
    bench = select_users(bench, None, users)
    episodes = {}
    for phase, eps in bench.episodes.items():
        keep = []
        for user in bench.users():
            mine = sorted((e for e in eps if e.user == user), key=lambda e: e.index)
            keep.extend(mine[:items])
        episodes[phase] = keep
    return bench.model_copy(update={"episodes": episodes})


def table(records_path: Path) -> str:
    from pahf.eval.results import EpisodeLog

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a folder holding PAHF's data/ layout")
    parser.add_argument("--domain", default="both", choices=(*DOMAINS, "both"))
    parser.add_argument("--method", default="pahf,no-memory")
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--items", type=int, default=4, help="situations per phase and user")
    parser.add_argument("--reasoner", default="llm", choices=("llm", "offline"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    domains = list(DOMAINS) if args.domain == "both" else [args.domain]
    benchmarks = {
        d: sliced(load_published(Path(args.data), d), args.users, args.items) for d in domains
    }
    settings = EvalSettings(
        domains=domains,
        methods=[m.strip() for m in args.method.split(",") if m.strip()],
        iterations=1,
        reasoner=args.reasoner,
        model=args.model or os.environ.get("PAHF_MODEL"),
    )
    out = Path(args.out)
    outcome = run_concurrently(benchmarks, settings, out, concurrency=args.concurrency)
    print(table(out / "episodes.jsonl"))
    print(f"complete: {outcome.complete}; played {outcome.played}, wall {outcome.wall_seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
