"""Rich output for the training commands (``pathways train|evaluate|models list``): progress and tables.

Only the command line calls these; they print to the console they are given and hold no logic of
the job itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from records.settings import Settings
from training.pipeline import STEPS, RunResult, run_nightly
from training.registry import VersionSummary
from training.report import metric_columns
from training.scoring import left_out_note


def train_with_progress(settings: Settings, console: Console, **options: Any) -> RunResult:
    """Run the nightly job with a rich progress bar over its steps (``options`` go to run_nightly)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("starting", total=len(STEPS))

        def report(step: str, event: str) -> None:
            if event == "start":
                progress.update(task, description=step)
            else:
                progress.update(task, completed=STEPS.index(step) + 1)

        result = run_nightly(settings, progress=report, **options)
        progress.update(task, description="done", completed=len(STEPS))
    return result


def print_run(result: RunResult, console: Console) -> None:
    status = "[green]promoted[/green]" if result.promoted else "[yellow]not promoted[/yellow]"
    console.print(f"model {result.version}: {status} — {result.gate_reason}", highlight=False)
    target = (
        result.target_term or f"the one after {result.cutoff_term} (not in the records: every module offered)"
    )
    console.print(
        f"data cutoff {result.cutoff_term}, target term {target}; "
        f"{result.n_students} students scored{left_out_note(result.n_not_recent, result.within_terms)}, "
        f"{result.n_recommendations} recommendations, "
        f"{result.n_flags} flags; {result.duration_s:.1f}s",
        highlight=False,
    )
    timings = Table(title="step timings (s)")
    for step in result.timings:
        timings.add_column(step, justify="right")
    timings.add_row(*(f"{seconds:.2f}" for seconds in result.timings.values()))
    console.print(timings)
    console.print(f"report: {result.report_path}", markup=False, highlight=False)


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def print_evaluation(evaluation: dict[str, Any], console: Console) -> None:
    """The metric table (every model and baseline at k = 5, 10), then group gaps and notes."""
    console.print(
        f"test term {evaluation.get('test_term')} (fitted as of {evaluation.get('fit_cutoff_term')}), "
        f"{evaluation.get('n_students')} students, "
        f"eligibility violations {evaluation.get('eligibility_violations')}",
        highlight=False,
    )
    columns = [*metric_columns(evaluation.get("k", [5, 10])), "coverage"]
    table = Table(title="evaluation")
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in (evaluation.get("models") or {}).items():
        if values is None:
            table.add_row(name, *(["–"] * len(columns)))
        elif "abstained" in values:
            table.add_row(f"{name} (abstains)", *(["–"] * len(columns)))
        else:
            table.add_row(name, *(_number(values.get(column)) for column in columns))
    console.print(table)
    for name, reason in (evaluation.get("abstained") or {}).items():
        console.print(f"abstains: {name}: {reason}", markup=False, highlight=False)
    for metric, c in (evaluation.get("comparison") or {}).items():
        ratio = c.get("ratio")
        difference, error = c.get("difference"), c.get("standard_error")
        by = "" if difference is None or error is None else f", {difference:+.4f} ± {error:.4f} per student"
        console.print(
            f"{metric}: hybrid {_number(c.get('hybrid'))} vs best single {c.get('best_single')} "
            f"{_number(c.get('best_value'))} ({'–' if ratio is None else f'{ratio:.3f}x'}{by}); "
            f"winner {c.get('winner')}",
            markup=False,
            highlight=False,
        )
    selection = evaluation.get("selection") or {}
    if selection:
        newcomers = (
            " with enrolments (newcomers: the blend, unshrunk)" if selection.get("newcomers_blend") else ""
        )
        console.print(
            f"served: {selection.get('winner')} (shrink {selection.get('shrink')} toward "
            f"{selection.get('best_single')}"
            f"{' and ' + selection['partner'] if selection.get('partner') else ''}), chosen on "
            f"{selection.get('n_students')} held-out "
            f"validation students{newcomers}",
            markup=False,
            highlight=False,
        )
    gaps = Table(title="largest gap between groups (hybrid)")
    for column in ("grouping", "metric", "gap", "high", "low"):
        gaps.add_column(column)
    for grouping, breakdown in (evaluation.get("groups") or {}).items():
        for metric, gap in (breakdown.get("largest_gap") or {}).items():
            if gap:
                gaps.add_row(grouping, metric, _number(gap["gap"]), gap["high"], gap["low"])
    console.print(gaps)
    print_equity(evaluation, console)
    calibration = evaluation.get("calibration") or {}
    console.print(
        f"risk calibration: Brier {_number(calibration.get('brier'))}, ECE {_number(calibration.get('ece'))} "
        f"over {calibration.get('n', 0)} enrolments",
        highlight=False,
    )
    for note in evaluation.get("notes", []):
        console.print(f"note: {note}", markup=False, highlight=False)


def print_equity(evaluation: dict[str, Any], console: Console) -> None:
    """Per model: the route figures the equity gate watches and the risk of the lists."""
    columns = ("route_exposure_difference", "route_ndcg_gap", "predicted_fail_rate", "high_risk_share")
    penalty = _number((evaluation.get("equity") or {}).get("risk_penalty"))
    table = Table(title=f"equity and risk (risk penalty {penalty})")
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in (evaluation.get("models") or {}).items():
        if values:
            table.add_row(name, *(_number(values.get(column)) for column in columns))
    console.print(table)


def print_versions(versions: Sequence[VersionSummary], console: Console) -> None:
    table = Table(title="model versions")
    for column in ("version", "created", "status", "cutoff", "ndcg@10", "recall@10", "promoted", "abstains"):
        table.add_column(
            column,
            justify="right" if column in ("ndcg@10", "recall@10") else "left",
            no_wrap=column in ("version", "created"),
        )
    for version in versions:
        table.add_row(
            version.version,
            f"{version.created_at:%Y-%m-%d %H:%M}",
            version.status,
            version.cutoff_term or "–",
            _number(version.ndcg_at_10),
            _number(version.recall_at_10),
            "*" if version.promoted else "",
            "; ".join(f"{name}: {reason}" for name, reason in version.abstained.items()) or "–",
        )
    console.print(table)
    # The gate's reasons are sentences: printed in full below the table rather than cut to a column.
    for version in versions:
        if version.gate_reason:
            console.print(f"{version.version} gate: {version.gate_reason}", markup=False, highlight=False)
