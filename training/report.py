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
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from training.outcomes import OUTCOME_COLUMNS

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
        if "abstained" in values:
            rows.append([f"{name} (abstains)", *(["–"] * (len(columns) + 1))])
            continue
        rows.append([name, *(values.get(column) for column in columns), values.get("coverage")])
    return _table(["model", *columns, "coverage"], rows)


def _selection_table(evaluation: Mapping[str, Any]) -> str:
    """Which components abstained and why; the hybrid against the best single component (test term);
    what the validation split chose to serve."""
    abstained = evaluation.get("abstained") or {}
    rows: list[list[Any]] = [[name, reason] for name, reason in abstained.items()]
    parts = [_table(["component", "abstains because"], rows) if rows else "<p>No component abstained.</p>"]
    comparison = evaluation.get("comparison") or {}
    if comparison:
        parts.append(
            _table(
                [
                    "metric",
                    "hybrid",
                    "best single",
                    "its value",
                    "hybrid / best",
                    "difference",
                    "± s.e.",
                    "winner",
                ],
                [
                    [
                        metric,
                        c.get("hybrid"),
                        c.get("best_single"),
                        c.get("best_value"),
                        c.get("ratio"),
                        c.get("difference"),
                        c.get("standard_error"),
                        c.get("winner"),
                    ]
                    for metric, c in comparison.items()
                ],
            )
        )
    selection = evaluation.get("selection") or {}
    if selection:
        parts.append(
            "<p>"
            + html.escape(
                f"Validation ({selection.get('n_students')} held-out students, {selection.get('metric')}): "
                f"blend {_fmt(selection.get('blend'))}, best single {selection.get('best_single')} "
                f"{_fmt((selection.get('singles') or {}).get(selection.get('best_single')))}; served "
                f"{selection.get('winner')} (shrink {selection.get('shrink')}) at "
                f"{_fmt(selection.get('served'))}. "
                f"{selection.get('note') or ''}"
            )
            + "</p>"
        )
    return "".join(parts)


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
    if models:
        axes.legend(fontsize="small")
    else:
        reason = evaluation.get("skipped") or "no model was evaluated"
        axes.text(0.5, 0.5, str(reason), ha="center", va="center", wrap=True, transform=axes.transAxes)
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


# ---------------------------------------------------------------------------------------------
# Equity: exposure across tracks per entry route, gaps with intervals, the fit-versus-risk trade-off
# ---------------------------------------------------------------------------------------------

EQUITY_TRACKS = ("academic", "vocational", "project")
GAP_METRICS = ("ndcg@10", "recall@10", "predicted_fail_rate")
EquityHistory = Sequence[tuple[str, Mapping[str, Any]]]
"""Earlier versions' evaluations, oldest first: (version, evaluation dictionary)."""


def _plot_route_exposure(evaluation: Mapping[str, Any], path: Path) -> None:
    """Share of the hybrid's list slots per track for each entry route, beside the route's targets."""
    exposure = ((evaluation.get("equity") or {}).get("exposure") or {}).get("hybrid") or {}
    routes = exposure.get("routes") or {}
    figure, axes = plt.subplots(1, max(len(routes), 1), figsize=(3.2 * max(len(routes), 1), 3.4), sharey=True)
    axes_list = list(axes) if len(routes) > 1 else [axes]
    for ax, (route, entry) in zip(axes_list, routes.items(), strict=False):
        bars = (
            ("slots shown", entry.get("slot_share") or {}),
            ("credits shown", entry.get("credit_share") or {}),
            ("credit target", entry.get("target_share") or {}),
            ("other routes' slots", entry.get("other_routes_slot_share") or {}),
        )
        for index, (label, shares) in enumerate(bars):
            offsets = [i + (index - 1.5) * 0.2 for i in range(len(EQUITY_TRACKS))]
            ax.bar(offsets, [shares.get(t, 0.0) for t in EQUITY_TRACKS], 0.2, label=label)
        small = " (too small)" if entry.get("too_small") else ""
        ax.set_title(f"{route}, n={entry.get('n')}{small}", fontsize="small")
        ax.set_xticks(range(len(EQUITY_TRACKS)), EQUITY_TRACKS, fontsize="small")
    axes_list[0].set_ylabel("share")
    axes_list[0].legend(fontsize="x-small")
    figure.suptitle("Exposure per track by entry route (hybrid) against targets")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _route_gap(evaluation: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    gaps = ((evaluation.get("equity") or {}).get("gaps") or {}).get("entry_route") or {}
    result: Mapping[str, Any] | None = (gaps.get(metric) or {}).get("gap")
    return result


def _plot_gap_history(
    evaluation: Mapping[str, Any], history: EquityHistory, path: Path, version: str
) -> None:
    """The largest relative gap between entry routes per metric, with its 95% interval, over versions."""
    series = [*history, (version, evaluation)]
    figure, axes = plt.subplots(figsize=(7, 3.6))
    for offset, metric in zip((-0.15, 0.0, 0.15), GAP_METRICS, strict=True):
        xs, ys, low, high = [], [], [], []
        for index, (_name, entry) in enumerate(series):
            gap = _route_gap(entry, metric)
            if not gap:
                continue
            interval = gap.get("ci95") or [gap["relative"], gap["relative"]]
            xs.append(index + offset)
            ys.append(gap["relative"])
            low.append(max(gap["relative"] - interval[0], 0.0))
            high.append(max(interval[1] - gap["relative"], 0.0))
        if xs:
            axes.errorbar(xs, ys, yerr=[low, high], fmt="o", capsize=3, label=metric)
    axes.set_xticks(range(len(series)), [name[-12:] for name, _ in series], rotation=20, fontsize="x-small")
    axes.set_ylabel("largest relative gap (95% interval)")
    axes.set_title("Gaps between entry routes over versions")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def equity_plots(
    evaluation: Mapping[str, Any], history: EquityHistory, folder: Path, version: str
) -> list[tuple[str, str]]:
    """Draw the equity plots into ``folder`` (none without an ``equity`` section); (file, title) pairs."""
    if not evaluation.get("equity"):
        return []
    _plot_route_exposure(evaluation, folder / "route_exposure.png")
    _plot_gap_history(evaluation, history, folder / "route_gaps.png", version)
    return [
        ("route_exposure.png", "Exposure per track by entry route against targets"),
        ("route_gaps.png", "Gaps between entry routes with 95% intervals over versions"),
    ]


def _shares_text(shares: Mapping[str, float] | None) -> str:
    if not shares:
        return "–"
    return " / ".join(f"{shares.get(t, 0.0):.2f}" for t in EQUITY_TRACKS)


def equity_section(evaluation: Mapping[str, Any]) -> str:
    """HTML: exposure per route, the cross-route difference per model, gaps with intervals, the risk
    trade-off and the risk model's calibration per bin."""
    equity = evaluation.get("equity") or {}
    if not equity:
        return "<p>No equity audit in this evaluation.</p>"
    parts = [
        f"<p>Groups under {equity.get('min_group_size')} students are reported as too small and not "
        "compared. Shares are academic / vocational / project.</p>"
    ]
    hybrid = (equity.get("exposure") or {}).get("hybrid") or {}
    rows = [
        [
            route,
            entry.get("n"),
            "yes" if entry.get("too_small") else "no",
            _shares_text(entry.get("slot_share")),
            _shares_text(entry.get("credit_share")),
            _shares_text(entry.get("target_share")),
            _shares_text(entry.get("other_routes_slot_share")),
            entry.get("distance_to_target"),
            entry.get("reaches_every_track"),
        ]
        for route, entry in (hybrid.get("routes") or {}).items()
    ]
    parts.append("<h3>Exposure per entry route (hybrid)</h3>")
    parts.append(
        _table(
            [
                "route",
                "n",
                "too small",
                "slots",
                "credits",
                "target",
                "other routes' slots",
                "distance to target",
                "reaches every track",
            ],
            rows,
        )
    )
    difference_rows = []
    for name, exposure in (equity.get("exposure") or {}).items():
        difference = exposure.get("difference") or {}
        difference_rows.append(
            [name, difference.get("value"), " vs ".join(difference.get("routes") or []) or "–"]
        )
    parts.append("<h3>Largest difference between routes' track mixes (total variation)</h3>")
    parts.append(_table(["lists of", "difference", "routes"], difference_rows))
    gap_rows = []
    for attribute, metrics in (equity.get("gaps") or {}).items():
        for metric, entry in metrics.items():
            gap = entry.get("gap") or {}
            interval = gap.get("ci95")
            groups = ", ".join(
                f"{name} {values['mean']:.4f} (n={values['n']})"
                for name, values in entry.get("groups", {}).items()
            )
            gap_rows.append(
                [
                    attribute,
                    metric,
                    groups,
                    gap.get("relative"),
                    f"{interval[0]:.4f}–{interval[1]:.4f}" if interval else "–",
                    f"{gap['high']} vs {gap['low']}" if gap else "–",
                    ", ".join(entry.get("too_small") or []) or "–",
                ]
            )
    parts.append("<h3>Gaps between groups (hybrid)</h3>")
    parts.append(
        _table(
            [
                "attribute",
                "metric",
                "groups (mean, n)",
                "largest relative gap",
                "95% interval",
                "between",
                "too small",
            ],
            gap_rows,
        )
    )
    models = evaluation.get("models") or {}
    risk_rows = [
        [name, values.get("ndcg@10"), values.get("predicted_fail_rate"), values.get("high_risk_share")]
        for name, values in models.items()
        if values
    ]
    parts.append(
        f"<h3>Fit against risk</h3><p>Risk penalty in the final score: {_fmt(equity.get('risk_penalty'))} "
        "blend logits per unit of predicted fail probability.</p>"
    )
    parts.append(
        _table(["lists of", "NDCG@10", "predicted fail rate", "share of high-risk modules"], risk_rows)
    )
    calibration = evaluation.get("calibration") or {}
    bins = [
        [
            f"{b.get('bin_lower', 0.0):.1f}–{b.get('bin_upper', 0.0):.1f}",
            b.get("n"),
            b.get("mean_predicted"),
            b.get("observed_rate"),
        ]
        for b in calibration.get("bins") or []
        if "bin_lower" in b
    ]
    parts.append(
        f"<h3>Risk calibration on the test term</h3><p>ECE {_fmt(calibration.get('ece'))}, "
        f"Brier {_fmt(calibration.get('brier'))} over {_fmt(calibration.get('n'))} closed enrolments.</p>"
    )
    parts.append(_table(["predicted fail probability", "n", "mean predicted", "observed fail rate"], bins))
    return "".join(parts)


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


def _rate(part: Any, whole: Any) -> float | None:
    return float(part) / float(whole) if whole else None


def _outcomes_section(outcomes: Mapping[str, Any] | None) -> str:
    """Tables of :func:`training.outcomes.batch_outcomes`: the trend per version, reviews per flag
    kind, and the suggestion outcomes per entry route."""
    versions = (outcomes or {}).get("versions") or []
    if not versions:
        return "<p>No earlier batch has a closed target term yet: outcomes follow once one has.</p>"
    columns = list(OUTCOME_COLUMNS)

    def rows_of(entries: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[list[Any]]:
        return [
            [
                *(entry.get(k) for k in keys),
                *(entry.get(c) for c in columns),
                _rate(entry.get("accepted"), entry.get("suggestions")),
                _rate(entry.get("taken"), entry.get("suggestions")),
            ]
            for entry in entries
        ]

    header = [*columns, "accepted share", "taken share"]
    reviews = (outcomes or {}).get("reviews") or []
    review_table = (
        _table(
            ["version", "flag kind", "reviewed", "approve", "reject", "replace"],
            [
                [
                    r["model_version"],
                    r["flag_kind"],
                    r["reviewed"],
                    r["approve_rate"],
                    r["reject_rate"],
                    r["replace_rate"],
                ]
                for r in reviews
            ],
        )
        if reviews
        else "<p>No reviews of those batches.</p>"
    )
    return (
        "<h3>Suggestions and what happened, per version (oldest first)</h3>"
        + _table(
            ["version", "batch", "target term", *header],
            rows_of(versions, ["model_version", "batch_id", "target_term"]),
        )
        + "<p>pass rate and mean grade: suggested modules taken with an outcome; predicted: the model's mean "
        "predicted pass probability and expected grade for them; ece: expected calibration error of the "
        "fail probability over five bins.</p>"
        + "<h3>Advisors' decisions per flag kind</h3>"
        + review_table
        + "<h3>By entry route</h3>"
        + _table(
            ["version", "target term", "entry route", *header],
            rows_of((outcomes or {}).get("routes") or [], ["model_version", "target_term", "entry_route"]),
        )
    )


def _plot_outcomes(outcomes: Mapping[str, Any] | None, path: Path) -> None:
    versions = (outcomes or {}).get("versions") or []
    figure, axes = plt.subplots(figsize=(7, 3.5))
    labels = [str(v["model_version"]) for v in versions] or ["(none yet)"]
    positions = list(range(len(labels)))
    series = (
        ("observed pass rate", [v.get("pass_rate") for v in versions]),
        ("predicted pass rate", [v.get("predicted_pass_rate") for v in versions]),
        ("accepted share", [_rate(v.get("accepted"), v.get("suggestions")) for v in versions]),
        ("taken share", [_rate(v.get("taken"), v.get("suggestions")) for v in versions]),
    )
    for label, values in series:
        if versions:
            axes.plot(positions, [np.nan if x is None else x for x in values], marker="o", label=label)
    axes.set_xticks(positions, labels, rotation=20, fontsize="small")
    axes.set_ylim(0, 1)
    axes.set_title("Outcomes of earlier batches")
    if versions:
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_report(
    reports_dir: Path,
    version: str,
    evaluation: Mapping[str, Any],
    gate_reason: str,
    timings: Mapping[str, float],
    extra: Mapping[str, Any] | None = None,
    history: EquityHistory = (),
    outcomes: Mapping[str, Any] | None = None,
) -> Path:
    """Write the HTML report and its plots; return the path of ``report.html``.

    ``history``: earlier versions' evaluations (oldest first) for the gaps-over-versions plot.
    ``outcomes``: :func:`training.outcomes.batch_outcomes` of the earlier batches (None: not measured).

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
        for filename, title in equity_plots(evaluation, history, staging, version):
            figures.append(
                f'<figure><img src="{filename}" alt="{title}"><figcaption>{title}</figcaption></figure>'
            )
        _plot_outcomes(outcomes, staging / "outcomes.png")
        figures.append(
            '<figure><img src="outcomes.png" alt="Outcomes"><figcaption>Outcomes</figcaption></figure>'
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
<h2>Components: abstentions and the best single</h2>
{_selection_table(evaluation)}
<h2>Cross-track exposure</h2>
{_table(["route", "share of lists leaving the usual track"], list(exposure.items()))}
<h2>Outcomes</h2>
{_outcomes_section(outcomes)}
<h2>Groups</h2>
{_groups_section(evaluation)}
<h2>Equity</h2>
{equity_section(evaluation)}
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
