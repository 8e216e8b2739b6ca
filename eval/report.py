"""Write what a run measured: ``summary.json``, ``report.md``, PNG plots, a terminal table.

Everything here is a function of the summary rows (and the run settings), so a resumed run
that ends with the same episode log writes the same files; only the "Time" section of the
report, which is about this machine, differs between equivalent runs.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pahf.eval.episodes import LEARNING_PHASES, PHASES
from pahf.eval.metrics import PhaseSummary
from pahf.eval.runner import EvalSettings

SUCCESS_PLOT = "success_by_phase.png"
ACPE_PLOT = "acpe_by_iteration.png"
#: The heading of the report section that legitimately differs between equivalent runs.
TIME_HEADING = "## Time"

#: Phase-4 success (%) the paper reports with a GPT-4o agent and GPT-4o simulated user, by domain
#: and method (None: no figure found). Taken from secondary summaries of arXiv 2602.16173: the
#: paper's own table could not be retrieved offline here.
PAPER_PHASE4: dict[str, dict[str, float | None]] = {
    "embodied": {"no-memory": 32.3, "pre-only": None, "post-only": 67.9, "pahf": 70.5},
    "shopping": {"no-memory": 27.0, "pre-only": None, "post-only": None, "pahf": 70.3},
}
PAPER_SOURCE = (
    "GPT-4o agent and simulated user; figures taken from secondary summaries of the paper "
    "(arXiv 2602.16173), as its own table could not be retrieved here"
)


@dataclass(frozen=True)
class ReportFiles:
    summary: Path
    report: Path
    plots: list[Path]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _iterations(n: int) -> str:
    return f"{n} iteration" if n == 1 else f"{n} iterations"


def _learning_iterations(rows: Sequence[PhaseSummary], domain: str, phase: int) -> list[int]:
    """The iterations a learning phase of ``domain`` was played with, in order."""
    return sorted(
        {
            it.iteration
            for r in rows
            if r.domain == domain and r.phase == phase
            for it in r.iteration_detail
        }
    )


def _row(rows: Sequence[PhaseSummary], domain: str, method: str, phase: int) -> PhaseSummary | None:
    for row in rows:
        if (row.domain, row.method, row.phase) == (domain, method, phase):
            return row
    return None


def _ordered(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def success_table(rows: Sequence[PhaseSummary], domain: str) -> tuple[list[str], list[list[str]]]:
    """Methods x phases: success rate per phase, ACPE of the learning phases."""
    header = ["method"]
    for phase in PHASES:
        header.append(f"P{phase} success")
        if phase in LEARNING_PHASES:
            header.append(f"P{phase} ACPE")
    body = []
    for method in _ordered([r.method for r in rows if r.domain == domain]):
        cells = [method]
        for phase in PHASES:
            row = _row(rows, domain, method, phase)
            cells.append(_fmt(row.success_rate if row else None))
            if phase in LEARNING_PHASES:
                cells.append(_fmt(row.acpe if row else None))
        body.append(cells)
    return header, body


def settings_section(settings: EvalSettings) -> list[str]:
    """Whether the run is in the paper's setting, and what differs if not."""
    gaps = settings.parity_gaps()
    out = ["## Setting", ""]
    if not gaps:
        out.append(
            "**Paper parity**: the simulated user answers only the question asked, from its "
            f"persona and situation, never from the answer key (`{settings.simulator}`); the "
            "agent sees the task, the scene or options and the item, not the embodied "
            "situation label; at most one question per request."
        )
    else:
        out.append("**Not paper parity**: " + "; ".join(gaps) + ".")
    out.append("")
    return out


def comparison_section(
    rows: Sequence[PhaseSummary], settings: EvalSettings, domain: str
) -> list[str]:
    """Phase-4 success beside the paper's, with the chance rate of the domain."""
    info = settings.benchmarks.get(domain)
    chance = info.chance_rate if info is not None else None
    paper = PAPER_PHASE4.get(domain, {})
    out = [
        "Phase 4 (test after the preference shift) beside the paper, success %"
        + (f"; chance (mean 1/candidates) {100 * chance:.1f}%" if chance is not None else "")
        + ":",
        "",
    ]
    constant = info.constant if info is not None else {}
    if constant and max(share for _answer, share in constant.values()) >= 0.5:
        # One answer right in most items: an agent that always gives it scores that much
        # without learning anything, which chance alone does not show.
        out[0:0] = [
            "Always answering "
            + ", ".join(
                f"P{phase} `{answer}`: {100 * share:.1f}%"
                for phase, (answer, share) in sorted(constant.items())
            )
            + " (the answer right most often in each phase: what giving it every time scores "
            "without learning anything).",
            "",
        ]
    body = []
    for method in _ordered([r.method for r in rows if r.domain == domain]):
        row = _row(rows, domain, method, 4)
        figure = paper.get(method)
        body.append(
            [
                method,
                _fmt(100 * row.success_rate, 1) if row else "–",
                _fmt(figure, 1) if figure is not None else "–",
            ]
        )
    out += _table(["method", "this run", "paper (GPT-4o)"], body)
    out.append("")
    out.append(f"Paper: {PAPER_SOURCE}.")
    out.append("")
    return out


def left_out_section(settings: EvalSettings, domain: str) -> list[str]:
    """The rows of the data the run left out because they contradict their own scene."""
    info = settings.benchmarks.get(domain)
    if info is None or not info.left_out:
        return []
    out = [
        f"Rows left out: {len(info.left_out)} (they contradict their own scene; listed in "
        "`summary.json`):",
        "",
    ]
    out += [f"- `{r.row_id}` ({r.file} item {r.item}): {r.reason}" for r in info.left_out]
    out.append("")
    return out


def summary_document(rows: Sequence[PhaseSummary], settings: EvalSettings) -> dict[str, Any]:
    """What ``summary.json`` holds: the setting, per domain the chance rate and the rows left
    out, and one row per domain x method x phase."""
    return {
        "paper_parity": not settings.parity_gaps(),
        "setting": {
            "simulator": settings.simulator,
            "show_context": settings.show_context,
            "question_budget": settings.question_budget,
            "reasoner": settings.reasoner,
            "iterations": settings.iterations,
            "feedback_noise": settings.feedback_noise,
        },
        "domains": {
            domain: {
                "source": info.source,
                "chance_rate": info.chance_rate,
                "constant_answer": {
                    str(phase): {"answer": answer, "success_rate": share}
                    for phase, (answer, share) in sorted(info.constant.items())
                },
                "left_out_count": len(info.left_out),
                "left_out": [r.model_dump(mode="json") for r in info.left_out],
            }
            for domain, info in settings.benchmarks.items()
        },
        "rows": [r.model_dump(mode="json") for r in rows],
    }


def noise_section(noise: Mapping[float, Sequence[PhaseSummary]]) -> list[str]:
    """Success per phase at each feedback-noise level (``pahf eval --noise-sweep``)."""
    out = ["## Noisy feedback", ""]
    out.append(
        "Success rate when post-action feedback is wrong or irrelevant with probability p "
        "(each level is a full run of the same protocol, in `noise-<p>/`):"
    )
    out.append("")
    levels = sorted(noise)
    all_rows = [r for rows in noise.values() for r in rows]
    for domain in _ordered([r.domain for r in all_rows]):
        out.append(f"{domain}:")
        out.append("")
        body = []
        for method in _ordered([r.method for r in all_rows if r.domain == domain]):
            for level in levels:
                cells = [method, f"{level:g}"]
                for phase in PHASES:
                    row = _row(noise[level], domain, method, phase)
                    cells.append(_fmt(row.success_rate) if row else "–")
                body.append(cells)
        out += _table(["method", "p", *(f"P{p}" for p in PHASES)], body)
        out.append("")
    return out


def failures_section(rows: Sequence[PhaseSummary], domain: str) -> list[str]:
    """Episodes in which an LLM decision of the agent failed, by method and phase; nothing when
    none did."""
    failing = [r for r in rows if r.domain == domain and r.failed]
    if not failing:
        return []
    out = [
        "Episodes in which an LLM decision of the agent failed (its output stayed unusable "
        "after retries; without an action the episode is scored wrong; the reason is each "
        "record's `error` in episodes.jsonl):",
        "",
    ]
    body = []
    for method in _ordered([r.method for r in failing]):
        cells = [method]
        for phase in PHASES:
            row = _row(rows, domain, method, phase)
            cells.append(f"{row.failed} of {row.episodes}" if row else "–")
        body.append(cells)
    out += _table(["method", *(f"P{p}" for p in PHASES)], body)
    out.append("")
    return out


def render_markdown(
    rows: Sequence[PhaseSummary],
    settings: EvalSettings,
    noise: Mapping[float, Sequence[PhaseSummary]] | None = None,
) -> str:
    """The report: per domain, methods x phases tables; the noise sweep if one was run; then
    the plots; then timing."""
    out = ["# PAHF evaluation", ""]
    out.append(
        f"Protocol: phase 1 learning x {_iterations(settings.iterations)}, phase 2 test, phase 3 "
        f"learning x {_iterations(settings.iterations)} (after the preference shift), phase 4 "
        "test; memory "
        "carries across phases and is frozen in test phases."
    )
    out.append(
        f"Reasoner `{settings.reasoner}`{f' ({settings.model})' if settings.model else ''}, "
        f"simulated user `{settings.simulator}`, feedback noise {settings.feedback_noise}, "
        f"seed {settings.seed}, embeddings `{settings.embedding}`, question budget "
        f"{settings.question_budget}, situation label "
        f"{'shown' if settings.show_context else 'hidden'}."
    )
    out.append("")
    out += settings_section(settings)
    for domain in _ordered([r.domain for r in rows]):
        info = settings.benchmarks.get(domain)
        out.append(f"## {domain}")
        out.append("")
        if info is not None:
            counts = ", ".join(f"P{p}: {n}" for p, n in sorted(info.episodes.items()))
            out.append(
                f"Benchmark: {info.source} ({len(info.users)} users; episodes per phase {counts})."
            )
            out.append("")
            out += left_out_section(settings, domain)
        out.append("Success rate (ACPE in learning phases; lower ACPE is better):")
        out.append("")
        header, body = success_table(rows, domain)
        out += _table(header, body)
        out.append("")
        out += comparison_section(rows, settings, domain)
        out += failures_section(rows, domain)
        out.append("Questions / corrections per episode:")
        out.append("")
        methods = _ordered([r.method for r in rows if r.domain == domain])
        body = []
        for method in methods:
            cells = [method]
            for phase in PHASES:
                row = _row(rows, domain, method, phase)
                cells.append(
                    f"{_fmt(row.questions_per_episode, 2)} / {_fmt(row.corrections_per_episode, 2)}"
                    if row
                    else "–"
                )
            body.append(cells)
        out += _table(["method", *(f"P{p}" for p in PHASES)], body)
        out.append("")
        out.append("Memory at phase end (active / total, all users) and LLM cost per episode:")
        out.append("")
        body = []
        for method in methods:
            cells = [method]
            phase_rows = [_row(rows, domain, method, p) for p in PHASES]
            for row in phase_rows:
                cells.append(f"{row.memory_active} / {row.memory_total}" if row else "–")
            present = [r for r in phase_rows if r is not None]
            episodes = sum(r.episodes for r in present)
            calls = sum(r.llm_calls_per_episode * r.episodes for r in present)
            tokens = sum(r.tokens_per_episode * r.episodes for r in present)
            cells.append(_fmt(calls / episodes if episodes else 0.0, 2))
            cells.append(_fmt(tokens / episodes if episodes else 0.0, 0))
            body.append(cells)
        out += _table(
            ["method", *(f"P{p} memory" for p in PHASES), "LLM calls/ep", "tokens/ep"], body
        )
        out.append("")
        out.append("ACPE by learning iteration:")
        out.append("")
        header = ["method"]
        columns: list[tuple[int, int]] = []
        for phase in LEARNING_PHASES:
            for iteration in _learning_iterations(rows, domain, phase):
                header.append(f"P{phase}.{iteration}")
                columns.append((phase, iteration))
        body = []
        for method in methods:
            cells = [method]
            for phase, iteration in columns:
                row = _row(rows, domain, method, phase)
                its = row.iteration_detail if row else []
                detail = [i for i in its if i.iteration == iteration]
                cells.append(_fmt(detail[0].acpe if detail else None))
            body.append(cells)
        out += _table(header, body)
        out.append("")
    if noise:
        out += noise_section(noise)
    out.append("## Plots")
    out.append("")
    out.append(f"- `{SUCCESS_PLOT}`: success rate by phase, one bar per method.")
    out.append(f"- `{ACPE_PLOT}`: ACPE by learning iteration (phases 1 and 3).")
    out.append("")
    out.append(TIME_HEADING)
    out.append("")
    out.append("Seconds spent in episodes (summed over users; runs overlap with several workers):")
    out.append("")
    body = []
    for domain in _ordered([r.domain for r in rows]):
        for method in _ordered([r.method for r in rows if r.domain == domain]):
            phase_rows = [_row(rows, domain, method, p) for p in PHASES]
            cells = [domain, method]
            cells += [_fmt(r.seconds, 1) if r else "–" for r in phase_rows]
            body.append(cells)
    out += _table(["domain", "method", *(f"P{p}" for p in PHASES)], body)
    out.append("")
    return "\n".join(out)


def _legend_below(fig: Any, ax: Any) -> None:
    """One legend for the figure, under the panels, so it never covers data."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(len(labels), 1), frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))


@functools.cache
def prepare_plots() -> None:
    """Import the plotting library now (about a second of CPU): an evaluation does it while
    its worker processes play, instead of alone after them. Cheap once done."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot


def write_plots(rows: Sequence[PhaseSummary], out_dir: Path) -> list[Path]:
    """Success by phase per method, ACPE by iteration; one panel per domain."""
    prepare_plots()
    import matplotlib.pyplot as plt

    domains = _ordered([r.domain for r in rows])
    if not domains:
        return []
    paths = []
    fig, axes = plt.subplots(1, len(domains), figsize=(6 * len(domains), 4), squeeze=False)
    for ax, domain in zip(axes[0], domains, strict=True):
        methods = _ordered([r.method for r in rows if r.domain == domain])
        width = 0.8 / max(len(methods), 1)
        for m_index, method in enumerate(methods):
            xs, ys = [], []
            for p_index, phase in enumerate(PHASES):
                row = _row(rows, domain, method, phase)
                if row is not None:
                    xs.append(p_index + (m_index - (len(methods) - 1) / 2) * width)
                    ys.append(row.success_rate)
            ax.bar(xs, ys, width=width, label=method)
        ax.set_xticks(range(len(PHASES)))
        ax.set_xticklabels(
            [f"P{p} ({'learn' if p in LEARNING_PHASES else 'test'})" for p in PHASES]
        )
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("success rate")
        ax.set_title(domain)
    _legend_below(fig, axes[0][0])
    path = out_dir / SUCCESS_PLOT
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)

    fig, axes = plt.subplots(1, len(domains), figsize=(6 * len(domains), 4), squeeze=False)
    for ax, domain in zip(axes[0], domains, strict=True):
        # One x position per learning iteration, phase 3 after a gap: P1.1 P1.2 P1.3 _ P3.1 ...
        positions: dict[tuple[int, int], int] = {}
        labels: list[str] = []
        for phase in LEARNING_PHASES:
            iterations = _learning_iterations(rows, domain, phase)
            if labels and iterations:
                labels.append("")
            for iteration in iterations:
                positions[(phase, iteration)] = len(labels)
                labels.append(f"P{phase}.{iteration}")
        methods = _ordered([r.method for r in rows if r.domain == domain])
        for m_index, method in enumerate(methods):
            for p_index, phase in enumerate(LEARNING_PHASES):
                row = _row(rows, domain, method, phase)
                if row is None:
                    continue
                its = [i for i in row.iteration_detail if i.acpe is not None]
                # A small shift per method keeps equal values from hiding each other.
                shift = (m_index - (len(methods) - 1) / 2) * 0.04
                ax.plot(
                    [positions[(phase, i.iteration)] + shift for i in its],
                    [i.acpe for i in its],
                    marker="o",
                    color=f"C{m_index}",
                    label=method if p_index == 0 else None,
                )
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("ACPE (lower is better)")
        ax.set_title(domain)
    _legend_below(fig, axes[0][0])
    path = out_dir / ACPE_PLOT
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


def write_outputs(
    rows: Sequence[PhaseSummary],
    settings: EvalSettings,
    out_dir: Path,
    *,
    plots: bool = True,
    noise: Mapping[float, Sequence[PhaseSummary]] | None = None,
) -> ReportFiles:
    """``summary.json`` (:func:`summary_document`), ``report.md`` and the plots in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = out_dir / "summary.json"
    summary.write_text(
        json.dumps(summary_document(rows, settings), indent=2) + "\n", encoding="utf-8"
    )
    report = out_dir / "report.md"
    report.write_text(render_markdown(rows, settings, noise), encoding="utf-8")
    return ReportFiles(summary, report, write_plots(rows, out_dir) if plots else [])


def without_time_section(markdown: str) -> str:
    """The report minus its machine-dependent timing section (for comparing runs)."""
    return markdown.split(TIME_HEADING, 1)[0]
