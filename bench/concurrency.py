"""LLM-mode evaluation bounded by the model: wall time of ``--concurrency N`` against the ideal
``calls x latency / N``, with a model server that takes a fixed time per call.

The server is the OpenAI-protocol stub of the test suite (``tests/integration/
openai_stub_server.py``) in its auto mode: every call waits ``--latency`` seconds, then answers
from the request alone. Everything else is the real harness: the graph, the LLM reasoner over
ChatOpenAI and HTTP, the in-memory Chroma store with the default embedder, the episode log.
Each N plays about ``max(--min-users, N)`` generated users per domain (at most the generator's
40), both domains, of one method, ``--episodes`` episodes per phase each, with the total a
multiple of N so every thread plays the same number of users (otherwise some threads play one
user more after the others finished, and the ideal cannot be reached by construction). The ideal
counts the calls the run really made. Each level runs ``--rounds`` times. The stub's own CPU per
call is printed beside the harness's (it shares the machine, so it must stay small), and the
load average before each row (the harness's wall time depends on the CPU it gets).

With memory (``--method pahf``) a run ends by archiving every user's final memory to Chroma on
disk, about 0.1 s per user whatever N is (Chroma holds the GIL through each write, so it cannot
overlap the play without stalling it): the table gives the play (until the last episode is
logged) and the archive apart, and the ideal is compared with both.

    python -m bench.concurrency --latency 0.5 --levels 1,8,32,64 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pahf.eval.concurrent import run_concurrently, shared_services
from pahf.eval.episodes import Benchmark, Domain
from pahf.eval.generator import generate
from pahf.eval.generator_vocab import USERS
from pahf.eval.runner import EvalSettings

DEFAULT_STUB = Path("tests/integration/openai_stub_server.py")


def start_stub(script: Path, latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the stub server did not start: {line!r}")
    root = f"http://127.0.0.1:{int(line.split()[1])}"
    request = urllib.request.Request(
        f"{root}/_script",
        data=json.dumps({"auto": {"delay": latency}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()
    return process, f"{root}/v1"


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of another process (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class _LastEpisode:
    """Progress hook that notes when the last episode was logged (the end of the play)."""

    def __init__(self) -> None:
        self.at = time.perf_counter()

    def start(self, total: int, completed: int) -> None:
        pass

    def advance(self) -> None:
        self.at = time.perf_counter()


def measure(
    level: int,
    users: int,
    episodes: int,
    latency: float,
    method: str,
    out: Path,
    stub_pid: int | None = None,
) -> dict[str, float]:
    domains: tuple[Domain, ...] = ("embodied", "shopping")
    benchmarks: dict[str, Benchmark] = {
        d: generate(d, users=users, episodes_per_phase=episodes, seed=7) for d in domains
    }
    settings = EvalSettings(
        domains=list(domains), methods=[method], iterations=1, reasoner="llm",
        model="stub-model",
    )
    # The embedder and the reasoner are loaded once per process, before the clock starts:
    # what is timed is the run, whose cost per call is the question.
    services = shared_services(settings, benchmarks)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    stub_cpu = process_cpu_seconds(stub_pid) if stub_pid is not None else None
    last = _LastEpisode()
    started, cpu = time.perf_counter(), time.process_time()
    outcome = run_concurrently(
        benchmarks, settings, out, concurrency=level, services=services, progress=last
    )
    ended = time.perf_counter()
    wall, play = ended - started, last.at - started
    cpu = time.process_time() - cpu
    stub_after = process_cpu_seconds(stub_pid) if stub_pid is not None else None
    calls = sum(r.llm_calls for r in outcome.records)
    ideal = max(calls * latency / level, 1e-9)
    return {
        "N": level,
        "users": users * len(domains),
        "episodes": len(outcome.records),
        "calls": calls,
        "wall_s": round(wall, 2),
        "play_s": round(play, 2),
        "archive_s": round(wall - play, 2),
        "ideal_s": round(ideal, 2),
        "over_ideal": round(wall / ideal - 1, 3),
        "play_over_ideal": round(play / ideal - 1, 3),
        "cpu_ms_per_call": round(cpu / max(calls, 1) * 1000, 1),
        "stub_ms_per_call": (
            round((stub_after - stub_cpu) / max(calls, 1) * 1000, 2)
            if stub_cpu is not None and stub_after is not None
            else float("nan")
        ),
        "load": round(load, 1),
    }


def users_per_domain(level: int, min_users: int, domains: int = 2) -> int:
    """Users per domain for ``level`` threads: at least ``min_users`` and ``level`` (at most
    the generator's 40), trimmed so all domains' users split evenly over the threads."""
    users = min(len(USERS), max(min_users, level))
    while users > 1 and users * domains > level and (users * domains) % level:
        users -= 1
    return users


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per model call")
    parser.add_argument("--levels", default="1,8,32,64", help="concurrency levels N")
    parser.add_argument("--min-users", type=int, default=8, help="users per domain, at least")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per phase and user")
    parser.add_argument("--method", default="no-memory")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each level")
    parser.add_argument("--stub", type=Path, default=DEFAULT_STUB)
    args = parser.parse_args(argv)
    if not args.stub.is_file():
        parser.error(f"no stub server at {args.stub}: run from the repository root or pass --stub")
    process, base_url = start_stub(args.stub, args.latency)
    os.environ["OPENAI_BASE_URL"] = base_url
    os.environ.pop("OPENAI_API_KEY", None)
    os.environ.pop("PAHF_LLM_CACHE", None)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print(
        "| N | round | load | users | episodes | calls | ideal s (calls x latency / N) | play s "
        "| play over ideal | archive s | wall s | wall over ideal | harness CPU ms per call "
        "| stub CPU ms per call |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for level in [int(v) for v in args.levels.split(",") if v.strip()]:
                users = users_per_domain(level, args.min_users)
                for round_ in range(1, args.rounds + 1):
                    row = measure(
                        level, users, args.episodes, args.latency, args.method,
                        Path(tmp) / f"n{level}-{round_}", process.pid,
                    )
                    print(
                        f"| {row['N']} | {round_} | {row['load']} | {row['users']} | "
                        f"{row['episodes']} | {row['calls']} | {row['ideal_s']} | "
                        f"{row['play_s']} | {row['play_over_ideal']:+.1%} | "
                        f"{row['archive_s']} | {row['wall_s']} | {row['over_ideal']:+.1%} | "
                        f"{row['cpu_ms_per_call']} | {row['stub_ms_per_call']} |",
                        flush=True,
                    )
    finally:
        process.terminate()
        process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
