# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · The components and the hybrid on a time-ordered split
#
# The evaluation the nightly job runs (`training.evaluate`), opened up: the past predicts the next
# term. With T the newest closed term, the hybrid's components are fitted on the records as of T-2,
# its blend learns from what students took in T-1, the components are refitted as of T-1, and the
# top 10 for every student who enrolled in T is compared with the modules they really took in T.
# Each component alone (ranked by its own score, eligibility applied) is a baseline.
#
# Then: what each component contributes to the blended score, how well the risk model's fail
# probabilities are calibrated on T, and how the quality of the lists differs between groups of
# students (entry route and the fairness attributes in `student_attributes`).
#
# **Data.** As in `01_records.py`: `PATHWAYS_DATABASE_URL` when it holds an institution, else (when
# it is unset) the demo's database `var/pathways.db`, else the generated *small* institution (seed 7) in `var/notebooks/` (`PATHWAYS_NOTEBOOK_SIZE=tiny` for a
# quicker one). Figures also go to `var/figures` (or `PATHWAYS_FIGURES_DIR`).

# %%
import logging
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from pathways.notebook_data import notebook_database
from records.frames import load_frames, load_term_state, newest_closed_term
from training.evaluate import (
    KS,
    MAX_K,
    evaluate_candidate,
    fit_evaluation_model,
    group_labels,
    list_metrics,
    make_split,
    make_test_set,
    per_student_metrics,
    test_context,
)
from training.pipeline import MODEL_OPTIONS, OPENMP_THREADS, promoted_on_split

AS_SCRIPT = "__file__" in globals()  # run as `python notebooks/02_models.py`: draw off-screen
if AS_SCRIPT:
    plt.switch_backend("Agg")
try:
    from IPython.display import display
except ImportError:  # a plain script: tables as text

    def display(table):
        print(table.to_string() if hasattr(table, "to_string") else table, end="\n\n")


logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
ROOT = (  # the repository: var/ lives there
    Path(__file__).resolve().parent.parent
    if AS_SCRIPT
    else next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").is_file()), Path.cwd())
)
SIZE = os.environ.get("PATHWAYS_NOTEBOOK_SIZE", "small")
SEED = 7
FIGURES_DIR = Path(os.environ.get("PATHWAYS_FIGURES_DIR", ROOT / "var" / "figures"))
DATA_DIR = Path(os.environ.get("PATHWAYS_NOTEBOOK_DATA_DIR", ROOT / "var" / "notebooks"))
TRACK_COLORS = {"academic": "#4C72B0", "vocational": "#DD8452", "project": "#55A868"}
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "axes.axisbelow": True})


def save(fig, name):
    """Write the figure to FIGURES_DIR/02_<name>.png (and close it when run as a script)."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES_DIR / f"02_{name}.png", dpi=110, bbox_inches="tight")
    if AS_SCRIPT:
        plt.close(fig)


# %% [markdown]
# ## The records and the split

# %%
started = time.perf_counter()
data = notebook_database(ROOT, SIZE, SEED, DATA_DIR)
for note in data.notes:
    print(note)
engine, source = data.engine, data.source

frames = load_frames(engine, newest_closed_term(engine))
split = make_split(frames)
print(f"records of {source} as of {frames.cutoff_term}")
print(
    f"components fitted as of {split.past_term} (T-2); blend learned on {split.fit_cutoff_term} (T-1); "
    f"components refitted as of {split.fit_cutoff_term}; tested on {split.test_term} (T)"
)

# %% [markdown]
# ## Fit on the past, score the test term
#
# `fit_evaluation_model` is what `pathways evaluate` and the nightly job call. scikit-learn's OpenMP
# models are pinned to one thread, as the job does, because threads that compete for busy cores
# slow them down many times over.

# %%
fit_started = time.perf_counter()
with threadpool_limits(OPENMP_THREADS, user_api="openmp"):
    model = fit_evaluation_model(split, **{**MODEL_OPTIONS, "risk_metrics": True})
    promoted_metrics, promoted_note = promoted_on_split(engine, split)
    state = load_term_state(engine, split.test_term, cutoff_term=split.fit_cutoff_term)
    evaluation = evaluate_candidate(model, split, state, promoted_metrics)
print(f"fitted and evaluated in {time.perf_counter() - fit_started:.1f}s; {promoted_note}")
print(
    f"blend learned on {model.validation_['n_students']:,} students and {model.validation_['n_pairs']:,} "
    f"candidate pairs; collaborative variant chosen: {model.collaborative_algorithm_}"
)
for note in evaluation["notes"]:
    print("note:", note)

# %% [markdown]
# ## The metric table
#
# Every model ranks the same students on the same term's offerings. `hitrate@10`: some module of the
# top 10 was taken; `recall@10`: share of the modules taken that are in the top 10; `ndcg@10`: the
# same, rewarding the ones placed higher; `coverage`: share of the offered modules that appear in any
# list; `cross_track_exposure`: share of lists with a module outside the track the student's entry
# route usually leads to. The four baselines the job reports are joined by the three components it
# does not report on their own (risk, track balance, progress).

# %%
fs = model.fs_
test = make_test_set(fs, split.frames, split.test_ordinal)
context = test_context(fs, state)
models = {name: metrics for name, metrics in evaluation["models"].items() if metrics is not None}
for name in model.component_names:
    if name not in models:
        models[name], _ = list_metrics(
            model.rank_by(name, test.student_rows, context, k=MAX_K), test, fs, context
        )
columns = ["ndcg@10", "recall@10", "hitrate@10", "precision@10", "ndcg@5", "map@10", "coverage"]
columns += ["cross_track_exposure", "eligibility_violations", "n_students"]
metric_table = pd.DataFrame(models).T.reindex(columns=columns).sort_values("ndcg@10", ascending=False)
display(metric_table.round(3))

track_mix = pd.DataFrame(evaluation["track_mix"]).T[["academic", "vocational", "project"]]
track_mix.index = ["hybrid's top 10", f"taken in {split.test_term}"]

fig, (ax_metrics, ax_mix) = plt.subplots(1, 2, figsize=(15, 5), gridspec_kw={"width_ratios": [3, 1]})
shown = ["ndcg@10", "recall@10", "hitrate@10"]
order = metric_table.index.tolist()
width = 0.8 / len(shown)
positions = np.arange(len(order))
for i, metric in enumerate(shown):
    values = metric_table.loc[order, metric].to_numpy(dtype=float)
    bars = ax_metrics.bar(positions + (i - 1) * width, values, width, label=metric)
    ax_metrics.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
labels = [f"{name}\n(blend)" if name == "hybrid" else name for name in order]
ax_metrics.set_xticks(positions, labels, rotation=20, ha="right")
ax_metrics.set_ylim(0, 1.08)
ax_metrics.set_ylabel("metric on the test term (mean over students)")
ax_metrics.set_xlabel("model (single components ranked by their own score)")
ax_metrics.set_title(f"Top-10 quality on {split.test_term}: the hybrid against each component alone")
ax_metrics.legend(loc="upper right")
bottom = np.zeros(len(track_mix))
for track in track_mix.columns:
    values = 100 * track_mix[track].to_numpy(dtype=float)
    ax_mix.bar(track_mix.index, values, bottom=bottom, label=track, color=TRACK_COLORS[track])
    bottom += values
ax_mix.set_ylabel("share of modules (%)")
ax_mix.set_ylim(0, 100)
ax_mix.set_title("Track mix: recommended vs taken")
ax_mix.legend(title="track", loc="lower right", fontsize=8)
fig.tight_layout()
save(fig, "metrics")

# %% [markdown]
# ## What each component contributes to the blend
#
# The blend is additive: a module's score is the intercept plus one contribution per component, and
# each contribution is a learned function of that component's score (left: the functions, over the
# component's standardised score; flat lines are components the blend found no use for). The
# middle panel is each contribution's spread over the blend's training pairs (how much it moves a
# score), and the right panel the mean contribution at each rank of the hybrid's top 10 on the
# test term.

# %%
lists = model.recommend(test.student_rows, context, k=MAX_K)
names = list(lists.component_names)
blend = model.blend_
valid = lists.module_rows >= 0
per_rank = pd.DataFrame(
    [
        np.nanmean(np.where(valid[:, :, None], lists.contributions, np.nan)[:, rank, :], axis=0)
        for rank in range(lists.module_rows.shape[1])
    ],
    columns=names,
    index=pd.RangeIndex(1, lists.module_rows.shape[1] + 1, name="rank"),
)
spread = pd.Series(blend.weights_, index=names, name="spread over training pairs").sort_values()
summary = pd.DataFrame(
    {
        "spread over training pairs": spread,
        "mean contribution in top 10": per_rank.mean(),
        "mean |contribution| in top 10": pd.Series(
            np.abs(lists.contributions[valid]).mean(axis=0) if valid.any() else np.zeros(len(names)),
            index=names,
        ),
    }
).sort_values("spread over training pairs", ascending=False)
display(summary.round(3))

colors = dict(zip(names, plt.get_cmap("tab20").colors, strict=False))
fig, (ax_shape, ax_spread, ax_rank) = plt.subplots(1, 3, figsize=(17, 5))
for column, name in enumerate(names):
    # Over the scores the blend saw (its knots, for the additive blend), at most 3 SD either side.
    knots = getattr(blend, "knots_", None)
    low, high = (
        (float(knots[column].min()), float(knots[column].max())) if knots is not None else (-np.inf, np.inf)
    )
    mean, scale = blend.mean_[column], blend.scale_[column]
    z = np.linspace(max(-3.0, (low - mean) / scale), min(3.0, (high - mean) / scale), 101)
    if z[-1] <= z[0]:
        z = np.linspace(-3.0, 3.0, 101)
    raw = (mean + z * scale).astype(np.float32)
    ax_shape.plot(z, blend.contribution(column, raw), label=name, color=colors[name])
ax_shape.axhline(0, color="black", linewidth=0.8)
ax_shape.set_xlabel("component score (standard deviations from the mean candidate)")
ax_shape.set_ylabel("contribution to the blend score (log-odds)")
ax_shape.set_title("Learned contribution of each component (over its observed range)")
ax_shape.legend(fontsize=8)
ax_spread.barh(spread.index, spread.to_numpy(), color=[colors[n] for n in spread.index])
ax_spread.set_xlabel("standard deviation of the contribution (log-odds)")
ax_spread.set_ylabel("component")
ax_spread.set_title("How much each component moves a score")
for name in names:
    ax_rank.plot(per_rank.index, per_rank[name], marker="o", markersize=3, label=name, color=colors[name])
ax_rank.axhline(0, color="black", linewidth=0.8)
ax_rank.set_xticks(per_rank.index)
ax_rank.set_xlabel("rank in the hybrid's list")
ax_rank.set_ylabel("mean contribution (log-odds)")
ax_rank.set_title(f"Contributions down the top 10 ({split.test_term})")
ax_rank.legend(fontsize=8)
fig.tight_layout()
save(fig, "contributions")

# %% [markdown]
# ## The risk model's calibration
#
# For every module a test student really took and finished in T, the risk model's fail probability
# (fitted on the records as of T-1) against whether they failed. Points on the diagonal are well
# calibrated; the bars show how many enrollments fall in each bin.

# %%
calibration = evaluation["calibration"]
bins = pd.DataFrame(calibration["bins"])
print(
    {key: round(value, 3) for key, value in model.risk_metrics_.items()},
    "(risk model, held-out term as of T-1)",
)
fig, ax = plt.subplots(figsize=(7, 6))
if calibration["n"] == 0 or bins.empty:
    ax.text(0.5, 0.5, "no finished enrollments in the test term", ha="center", va="center")
else:
    filled = bins[bins["n"] > 0]
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    ax.plot(
        filled["mean_predicted"], filled["observed_rate"], marker="o", color="#C44E52", label="risk model"
    )
    for _, row in filled.iterrows():
        ax.annotate(
            f"{int(row['n'])}",
            (row["mean_predicted"], row["observed_rate"]),
            fontsize=7,
            textcoords="offset points",
            xytext=(4, -10),
        )
    counts = ax.twinx()
    counts.bar((bins["bin_lower"] + bins["bin_upper"]) / 2, bins["n"], width=0.09, alpha=0.2, color="#4C72B0")
    counts.set_ylabel("enrollments in the bin (bars)")
    counts.grid(False)
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_title(
        f"Fail-probability calibration on {split.test_term}\n"
        f"n = {calibration['n']:,}, Brier = {calibration['brier']:.3f}, ECE = {calibration['ece']:.3f}"
    )
ax.set_xlim(0, 1)
ax.set_ylim(0, 1)
ax.set_xlabel("predicted probability of failing")
ax.set_ylabel("observed fail rate")
ax.legend(loc="upper left")
save(fig, "calibration")

# %% [markdown]
# ## Gaps between student groups
#
# The hybrid's per-student metrics averaged within each group (the figure adds 95% intervals, so a
# gap smaller than the intervals is noise). Groups smaller than five students are shown but left out
# of the largest gap. A gap is not proof of unfairness (groups differ in what
# they take), but a large or growing one is where to look.

# %%
groups = evaluation["groups"]
rows = []
for grouping, result in groups.items():
    for value, metrics in result["groups"].items():
        rows.append({"grouping": grouping.removeprefix("attribute:"), "group": value, **metrics})
group_table = pd.DataFrame(rows).set_index(["grouping", "group"])
display(group_table.round(3))
largest = {
    grouping.removeprefix("attribute:"): {
        metric: (f"{gap['gap']:.3f} ({gap['high']} > {gap['low']})" if gap else "-")
        for metric, gap in result["largest_gap"].items()
    }
    for grouping, result in groups.items()
}
display(pd.DataFrame(largest).T)

# The same per-student metrics the breakdown averages, to draw 95% intervals around each group mean.
per_student = per_student_metrics(lists.module_rows, test.relevant, KS)
labels = group_labels(split.frames, test.student_ids)
shown = {"ndcg@10": "#4C72B0", "recall@10": "#DD8452"}
fig, axes = plt.subplots(1, len(labels), figsize=(5.5 * len(labels), 4.8), sharey=True, squeeze=False)
for ax, (grouping, values) in zip(axes[0], labels.items(), strict=True):
    grouped = per_student[list(shown)].groupby(values.fillna("unknown").to_numpy())
    means, errors, sizes = grouped.mean(), 1.96 * grouped.sem().fillna(0.0), grouped.size()
    positions = np.arange(len(means))
    for offset, (metric, color) in zip((-0.12, 0.12), shown.items(), strict=True):
        ax.errorbar(
            positions + offset,
            means[metric],
            yerr=errors[metric],
            fmt="o",
            capsize=4,
            color=color,
            label=f"{metric} (group mean, 95% interval)",
        )
        ax.axhline(
            per_student[metric].mean(),
            color=color,
            linestyle="--",
            linewidth=1,
            label=f"{metric}, all students",
        )
    ax.set_xticks(positions, [f"{value}\n(n={sizes[value]})" for value in means.index])
    ax.set_xlim(-0.6, len(means) - 0.4)
    ax.set_title(grouping.removeprefix("attribute:").replace("_", " "))
    ax.set_xlabel("group")
axes[0][0].set_ylabel("mean over the group's students")
handles, legend_labels = axes[0][0].get_legend_handles_labels()
fig.legend(handles, legend_labels, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.08))
fig.suptitle(f"The hybrid's list quality by student group on {split.test_term}")
fig.tight_layout()
save(fig, "group_gaps")

# %%
print(f"notebook ran in {time.perf_counter() - started:.1f}s; figures in {FIGURES_DIR}")
