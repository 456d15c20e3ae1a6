"""The run report: ``reports_dir/<version>/report.html`` with tables and PNG plots next to it.

Input is the evaluation dictionary (the same object ``pathways evaluate --json`` prints), the gate
decision and the per-step timings. Plots use matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import html
import logging
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
METRIC_ORDER = ("ndcg", "recall", "precision", "hitrate", "map")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "–"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metric_columns(ks: Sequence[int]) -> list[str]:
    return [f"{metric}@{k}" for k in ks for metric in METRIC_ORDER]


def _metric_table(evaluation: Mapping[str, Any]) -> str:
    ks = evaluation.get("k", [5, 10])
    columns = metric_columns(ks)
    rows = []
    for name, values in evaluation.get("models", {}).items():
        if values is None:
            rows.append([name, *(["–"] * (len(columns) + 1))])
            continue
        rows.append([name, *(values.get(column) for column in columns), values.get("coverage")])
    return _table(["model", *columns, "coverage"], rows)


def _plot_metric_comparison(evaluation: Mapping[str, Any], path: Path) -> None:
    models = {name: values for name, values in evaluation.get("models", {}).items() if values}
    metrics = ["ndcg@10", "recall@10", "precision@10", "hitrate@10", "map@10"]
    figure, axes = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(models), 1)
    for index, (name, values) in enumerate(models.items()):
        positions = [i + index * width for i in range(len(metrics))]
        axes.bar(positions, [values.get(m) or 0.0 for m in metrics], width=width, label=name)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(metrics))], metrics)
    axes.set_ylabel("value")
    axes.set_title("Hybrid and baselines on the test term")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _plot_track_mix(evaluation: Mapping[str, Any], path: Path) -> None:
    mix = evaluation.get("track_mix") or {}
    tracks = ["academic", "vocational", "project", "unknown"]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    series = [("targets", mix.get("targets") or {}), ("hybrid lists", mix.get("lists") or {})]
    for index, (label, shares) in enumerate(series):
        axes.bar(
            [i + index * 0.4 for i in range(len(tracks))],
            [shares.get(t, 0.0) for t in tracks],
            0.4,
            label=label,
        )
    axes.set_xticks([i + 0.2 for i in range(len(tracks))], tracks)
    axes.set_ylabel("share of modules")
    axes.set_title("Track mix: recommended vs taken")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _plot_calibration(evaluation: Mapping[str, Any], path: Path) -> None:
    calibration = evaluation.get("calibration") or {}
    bins = calibration.get("bins") or []
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    filled = [b for b in bins if b.get("n")]
    if filled:
        axes.plot(
            [b["mean_predicted"] for b in filled],
            [b["observed_rate"] for b in filled],
            marker="o",
            label="risk model",
        )
    axes.set_xlabel("predicted fail probability")
    axes.set_ylabel("observed fail rate")
    axes.set_title(f"Risk calibration (Brier {_fmt(calibration.get('brier'))})")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _plot_group_gaps(evaluation: Mapping[str, Any], path: Path) -> None:
    groups = evaluation.get("groups") or {}
    labels, gaps = [], []
    for attribute, breakdown in groups.items():
        gap = (breakdown.get("largest_gap") or {}).get("ndcg@10")
        labels.append(attribute)
        gaps.append(gap["gap"] if gap else 0.0)
    figure, axes = plt.subplots(figsize=(6, 0.5 + 0.5 * max(len(labels), 1)))
    axes.barh(labels or ["(no groups)"], gaps or [0.0])
    axes.set_xlabel("largest NDCG@10 gap between groups")
    axes.set_title("Group gaps")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


PLOTS = (
    ("metrics.png", "Metric comparison", _plot_metric_comparison),
    ("track_mix.png", "Track mix", _plot_track_mix),
    ("calibration.png", "Risk calibration", _plot_calibration),
    ("group_gaps.png", "Group gaps", _plot_group_gaps),
)


def _groups_section(evaluation: Mapping[str, Any]) -> str:
    parts = []
    for attribute, breakdown in (evaluation.get("groups") or {}).items():
        per_group = breakdown.get("groups") or {}
        metrics = [name for name in next(iter(per_group.values()), {}) if name != "n"]
        rows = [
            [value, entry.get("n"), *(entry.get(m) for m in metrics)] for value, entry in per_group.items()
        ]
        gaps = breakdown.get("largest_gap") or {}
        gap_text = "; ".join(
            f"{m}: {g['gap']:.4f} ({html.escape(g['high'])} vs {html.escape(g['low'])})"
            for m, g in gaps.items()
            if g
        )
        parts.append(
            f"<h3>{html.escape(attribute)}</h3>"
            + _table(["group", "n", *metrics], rows)
            + f"<p>Largest gaps: {gap_text or 'none (fewer than two comparable groups)'}</p>"
        )
    return "".join(parts) or "<p>No group data.</p>"


def write_report(
    reports_dir: Path,
    version: str,
    evaluation: Mapping[str, Any],
    gate_reason: str,
    timings: Mapping[str, float],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the HTML report and its plots; return the path of ``report.html``.

    Written into a temporary folder and renamed, so a report folder is complete or absent.
    """
    final = Path(reports_dir) / version
    staging = Path(reports_dir) / f".tmp-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        figures = []
        for filename, title, draw in PLOTS:
            draw(evaluation, staging / filename)
            figures.append(
                f'<figure><img src="{filename}" alt="{title}"><figcaption>{title}</figcaption></figure>'
            )
        timing_rows = [[step, seconds] for step, seconds in timings.items()]
        calibration = evaluation.get("calibration") or {}
        summary_rows: list[list[Any]] = [
            ["cutoff term", evaluation.get("cutoff_term")],
            ["test term", evaluation.get("test_term")],
            ["students evaluated", evaluation.get("n_students")],
            ["eligibility violations", evaluation.get("eligibility_violations")],
            ["gate", gate_reason],
            ["Brier score (risk)", calibration.get("brier")],
            *[[key, value] for key, value in (extra or {}).items()],
        ]
        exposure = evaluation.get("cross_track_exposure") or {}
        notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in evaluation.get("notes", []))
        document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pathways model {html.escape(version)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}
figure{{display:inline-block;margin:1em}}</style></head><body>
<h1>Model {html.escape(version)}</h1>
{_table(["", "value"], summary_rows)}
<h2>Metrics (k = 5, 10)</h2>
{_metric_table(evaluation)}
<h2>Cross-track exposure</h2>
{_table(["route", "share of lists leaving the usual track"], list(exposure.items()))}
<h2>Groups</h2>
{_groups_section(evaluation)}
<h2>Step timings (seconds)</h2>
{_table(["step", "seconds"], timing_rows)}
<h2>Plots</h2>
{"".join(figures)}
<h2>Notes</h2><ul>{notes or "<li>none</li>"}</ul>
</body></html>
"""
        (staging / REPORT_FILE).write_text(document, encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("report written to %s", final / REPORT_FILE)
    return final / REPORT_FILE
