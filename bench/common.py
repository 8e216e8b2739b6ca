"""What every benchmark shares: sizes, timing statistics, the machine, tables and their output.

A benchmark returns a :class:`BenchReport` (pydantic, so ``--json`` can save it and the README
figures can be regenerated from a file), and the CLI prints it with rich. Figures are wall-clock
times of the code under test; the report always carries the machine and its load average at
the start and end of the run, because a busy machine inflates every latency.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

Size = Literal["tiny", "default", "published"]
SIZES: tuple[Size, ...] = ("tiny", "default", "published")

Cell = str | int | float | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- statistics


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (evaluation workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class LatencyStats(_Model):
    """Summary of a set of durations, in milliseconds."""

    n: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencyStats:
        ms = [s * 1000.0 for s in seconds]
        if not ms:
            return cls(n=0, mean_ms=math.nan, p50_ms=math.nan, p95_ms=math.nan, max_ms=math.nan)
        return cls(
            n=len(ms),
            mean_ms=statistics.fmean(ms),
            p50_ms=percentile(ms, 50),
            p95_ms=percentile(ms, 95),
            max_ms=max(ms),
        )


class Stopwatch:
    """Collects durations of repeated operations: ``with watch: ...`` or ``watch.add(seconds)``."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._started = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.samples.append(time.perf_counter() - self._started)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def stats(self) -> LatencyStats:
        return LatencyStats.of(self.samples)


# --------------------------------------------------------------------------- the machine


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_ram_gb() -> float:
    """Physical memory in GiB (from /proc/meminfo, else sysconf)."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        return math.nan


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process in MiB (``/proc/<pid>/status``); this process by default.

    Falls back to the peak RSS from ``getrusage`` for this process where /proc is missing.
    """
    status = Path(f"/proc/{pid or 'self'}/status")
    try:
        for line in status.read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return math.nan


def dir_size_mb(path: Path) -> float:
    """Bytes on disk under ``path`` (allocated blocks, so sparse files count as stored), MiB."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            total += getattr(st, "st_blocks", 0) * 512 or st.st_size
    return total / 1024 / 1024


class MachineInfo(_Model):
    """Where and when figures were measured."""

    cpus: int
    cpu_model: str
    ram_gb: float
    python: str
    platform: str
    started_at: str
    load_at_start: str
    load_at_end: str = ""

    @classmethod
    def now(cls) -> MachineInfo:
        return cls(
            cpus=os.cpu_count() or 1,
            cpu_model=cpu_model(),
            ram_gb=round(total_ram_gb(), 1),
            python=platform.python_version(),
            platform=f"{platform.system()} {platform.release()}",
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            load_at_start=load_average(),
        )

    def describe(self) -> str:
        return (
            f"{self.cpus} CPUs ({self.cpu_model}), {self.ram_gb:.1f} GiB RAM, Python "
            f"{self.python}, {self.platform}; load average (1/5/15 min) at start "
            f"{self.load_at_start}, at end {self.load_at_end or 'n/a'}"
        )


# --------------------------------------------------------------------------- reports


class BenchTable(_Model):
    """One printed table: a title, column names and rows of cells."""

    title: str
    columns: list[str]
    rows: list[list[Cell]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def add(self, *cells: Cell) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(
                f"table {self.title!r}: row has {len(cells)} cells for {len(self.columns)} columns"
            )
        self.rows.append(list(cells))


class BenchReport(_Model):
    """What one benchmark measured: its tables, free-form notes, raw figures and the machine."""

    benchmark: str
    size: str
    machine: MachineInfo
    wall_seconds: float = 0.0
    tables: list[BenchTable] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    figures: dict[str, float] = Field(
        default_factory=dict, description="headline numbers by name, for README and comparisons"
    )


@contextmanager
def reporting(benchmark: str, size: str) -> Iterator[BenchReport]:
    """Open a report, time the block, stamp the end load average."""
    report = BenchReport(benchmark=benchmark, size=size, machine=MachineInfo.now())
    started = time.perf_counter()
    try:
        yield report
    finally:
        report.wall_seconds = round(time.perf_counter() - started, 2)
        report.machine.load_at_end = load_average()


def fmt(value: Cell, digits: int = 2) -> str:
    """A cell as text: floats rounded, NaN and None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def print_report(report: BenchReport, console: Console | None = None) -> None:
    """Print every table of a report, then its notes and the machine."""
    console = console or Console()
    for table in report.tables:
        out = Table(title=table.title, title_justify="left")
        for index, name in enumerate(table.columns):
            out.add_column(name, justify="left" if index == 0 else "right")
        for row in table.rows:
            out.add_row(*(fmt(cell) for cell in row))
        console.print(out)
        for note in table.notes:
            console.print(f"  [dim]{note}[/dim]")
    for note in report.notes:
        console.print(f"- {note}")
    console.print(
        f"[dim]{report.benchmark} ({report.size}) took {report.wall_seconds:.1f} s on "
        f"{report.machine.describe()}[/dim]"
    )


def write_json(reports: Sequence[BenchReport], path: Path) -> None:
    """Save reports as one JSON list (the README's figures are regenerated from such files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "[\n" + ",\n".join(r.model_dump_json(indent=2) for r in reports) + "\n]\n"
    path.write_text(payload, encoding="utf-8")
