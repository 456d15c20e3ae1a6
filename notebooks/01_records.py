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
# # 01 · The institution at a glance
#
# What the records of one institution hold, before any model sees them: who studies what and how
# they came in, how credits spread over the academic, vocational and project tracks term after
# term, how grades fall, and how well the module catalog builds the competencies that employers
# ask for.
#
# **Data.** `PATHWAYS_DATABASE_URL` when it already holds an institution (a term with closed
# enrollments); when it is unset, the demo's database (`var/pathways.db`, left by `make demo`);
# otherwise the synthetic *small* institution (seed 7) is generated once into `var/notebooks/` and reused (`PATHWAYS_NOTEBOOK_SIZE=tiny` for a quicker one,
# `PATHWAYS_NOTEBOOK_DATA_DIR` to put it elsewhere). Figures are also written to `var/figures`
# (or `PATHWAYS_FIGURES_DIR`). Everything below uses the package's public functions; the notebook
# only counts and draws.

# %%
import logging
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pathways.notebook_data import notebook_database
from records.frames import load_frames, newest_closed_term

AS_SCRIPT = "__file__" in globals()  # run as `python notebooks/01_records.py`: draw off-screen
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
    """Write the figure to FIGURES_DIR/01_<name>.png (and close it when run as a script)."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES_DIR / f"01_{name}.png", dpi=110, bbox_inches="tight")
    if AS_SCRIPT:
        plt.close(fig)


# %% [markdown]
# ## The records

# %%
started = time.perf_counter()
data = notebook_database(ROOT, SIZE, SEED, DATA_DIR)
for note in data.notes:
    print(note)
engine, source = data.engine, data.source

cutoff = newest_closed_term(engine)
frames = load_frames(engine, cutoff)
print(f"records of {source} as of {cutoff}, the newest closed term ({time.perf_counter() - started:.1f}s)")
for note in frames.notes:
    print("note:", note)
display(
    pd.Series(
        {
            name: len(getattr(frames, name))
            for name in (
                "terms",
                "programs",
                "modules",
                "competencies",
                "occupations",
                "students",
                "enrollments",
                "goals",
                "module_competencies",
                "occupation_competencies",
                "demand",
            )
        },
        name="rows",
    ).to_frame()
)

# %% [markdown]
# ## Students per program and entry route
#
# Entry routes: `general` (from academic secondary school), `vocational` (from vocational
# education) and `transfer` (from another institution). A program whose intake leans vocational
# needs its academic modules to welcome students who did not come the academic way.

# %%
students = frames.students.copy()
program_names = frames.programs.set_index("id")["name"]
students["program"] = students["program_id"].astype(object).map(program_names).fillna("(no program)")
students["entry_route"] = students["entry_route"].astype(object).fillna("unknown")
by_program = pd.crosstab(students["program"], students["entry_route"])
by_program = by_program.loc[by_program.sum(axis=1).sort_values().index]
display(by_program.iloc[::-1].assign(total=by_program.sum(axis=1)))

fig, ax = plt.subplots(figsize=(9, 0.45 * len(by_program) + 1.5))
left = np.zeros(len(by_program))
route_colors = {"general": "#4C72B0", "vocational": "#DD8452", "transfer": "#8172B3", "unknown": "#999999"}
for route in by_program.columns:
    counts = by_program[route].to_numpy()
    ax.barh(by_program.index, counts, left=left, label=route, color=route_colors.get(route))
    left += counts
for y, total in enumerate(left):
    ax.text(total, y, f" {int(total)}", va="center", fontsize=8)
ax.set_xlabel("students (all who entered up to the cutoff)")
ax.set_ylabel("program")
ax.set_title(f"Students per program and entry route (as of {cutoff})")
ax.legend(title="entry route", loc="lower right")
save(fig, "students_per_program")

# %% [markdown]
# ## Credits per track over the terms
#
# Credits of passed modules in each term, by the module's track, and the share of each track.
# An integrated institution shows all three tracks growing together rather than one of them
# taking over.

# %%
modules = frames.modules.set_index("id")
enrollments = frames.enrollments
module_ids = enrollments["module_id"].astype(object)
passed = enrollments.assign(
    track=module_ids.map(modules["track"].astype(object)).fillna("unknown").to_numpy(),
    credits=module_ids.map(modules["credits"]).astype(float).to_numpy(),
)
passed = passed[passed["status"].astype(object) == "completed"]
term_codes = frames.terms.set_index("ordinal")["code"]
credits_per_term = passed.pivot_table(
    index="term_ordinal", columns="track", values="credits", aggfunc="sum", fill_value=0.0
).sort_index()
credits_per_term.index = credits_per_term.index.map(term_codes)
credits_per_term = credits_per_term[
    [t for t in TRACK_COLORS if t in credits_per_term.columns]
    + [t for t in credits_per_term.columns if t not in TRACK_COLORS]
]
shares = credits_per_term.div(credits_per_term.sum(axis=1), axis=0)

fig, (ax_credits, ax_share) = plt.subplots(1, 2, figsize=(14, 4.5))
bottom = np.zeros(len(credits_per_term))
positions = np.arange(len(credits_per_term))
for track in credits_per_term.columns:
    values = credits_per_term[track].to_numpy()
    ax_credits.bar(positions, values, bottom=bottom, label=track, color=TRACK_COLORS.get(track, "#999999"))
    bottom += values
    ax_share.plot(
        positions,
        100 * shares[track].to_numpy(),
        marker="o",
        label=track,
        color=TRACK_COLORS.get(track, "#999999"),
    )
for ax in (ax_credits, ax_share):
    ax.set_xticks(positions, credits_per_term.index, rotation=60, ha="right")
    ax.set_xlabel("term")
    ax.legend(title="track")
ax_credits.set_ylabel("credits passed")
ax_credits.set_title("Credits passed per term, by track")
ax_share.set_ylabel("share of the term's credits (%)")
ax_share.set_ylim(0, 100)
ax_share.set_title("Share of each track in the term's credits")
fig.tight_layout()
save(fig, "credits_per_track")

# %% [markdown]
# ## Grade distributions
#
# Grades (0-100) of completed and failed enrollments; a pass is 60 unless a module says otherwise.
# Withdrawals have no grade.

# %%
graded = enrollments[enrollments["grade"].notna()].copy()
graded["track"] = graded["module_id"].astype(object).map(modules["track"].astype(object)).fillna("unknown")
graded["entry_route"] = (
    graded["student_id"].astype(object).map(students.set_index("id")["entry_route"]).fillna("unknown")
)
summary = graded.groupby("track")["grade"].describe()[["count", "mean", "25%", "50%", "75%"]]
summary["fail rate"] = graded.groupby("track")["status"].apply(
    lambda s: (s.astype(object) == "failed").mean()
)
display(summary.round(2))

fig, (ax_hist, ax_box) = plt.subplots(1, 2, figsize=(14, 4.5))
if graded.empty:
    for ax in (ax_hist, ax_box):
        ax.text(0.5, 0.5, "no grades recorded", ha="center", va="center", transform=ax.transAxes)
else:
    bins = np.arange(-0.5, 102, 3)  # grades are whole numbers: three per bin, none split
    tracks = [t for t in TRACK_COLORS if t in set(graded["track"])] + sorted(
        set(graded["track"]) - set(TRACK_COLORS)
    )
    for track in tracks:
        grades = graded.loc[graded["track"] == track, "grade"]
        ax_hist.hist(
            grades,
            bins=bins,
            histtype="step",
            linewidth=1.8,
            density=True,
            label=f"{track} (n={len(grades):,})",
            color=TRACK_COLORS.get(track, "#999999"),
        )
    ax_hist.axvline(60, color="black", linestyle="--", linewidth=1, label="pass mark (60)")
    ax_hist.set_xlim(max(0.0, float(graded["grade"].min()) - 5), 101)
    routes = sorted(graded["entry_route"].unique())
    ax_box.boxplot([graded.loc[graded["entry_route"] == r, "grade"] for r in routes], showfliers=False)
    ax_box.set_xticks(
        range(1, len(routes) + 1), [f"{r}\n(n={(graded['entry_route'] == r).sum():,})" for r in routes]
    )
    ax_box.axhline(60, color="black", linestyle="--", linewidth=1)
ax_hist.set_xlabel("grade")
ax_hist.set_ylabel("density")
ax_hist.set_title("Grade distribution by module track")
ax_hist.legend(loc="upper left", fontsize=8)
ax_box.set_xlabel("entry route")
ax_box.set_ylabel("grade")
ax_box.set_title("Grades by entry route (box: quartiles; whiskers: 1.5 IQR)")
fig.tight_layout()
save(fig, "grade_distributions")

# %% [markdown]
# ## The catalog's competency coverage against occupation demand
#
# Each row of the heatmap is an occupation (most job postings first), each column a competency
# domain; a cell is the share of the occupation's demand (competency importance) that falls in the
# domain. The bars on top show how much of the catalog builds each domain (module credits ×
# competency weight), so a bright column over a short bar is demand the catalog hardly serves. The
# bars on the right give, per occupation, the share of its demanded competencies (by importance)
# that at least one module builds.

# %%
competency_domain = frames.competencies.set_index("id")["domain"].astype(object)
demand_rows = frames.occupation_competencies.assign(
    domain=frames.occupation_competencies["competency_id"].map(competency_domain).fillna("unknown")
)
supply_rows = frames.module_competencies.assign(
    domain=frames.module_competencies["competency_id"].map(competency_domain).fillna("unknown"),
    credit_weight=frames.module_competencies["weight"].astype(float)
    * frames.module_competencies["module_id"].map(modules["credits"]).astype(float).fillna(0.0),
)
latest_period = frames.demand["period"].max() if not frames.demand.empty else None
postings = (
    frames.demand[frames.demand["period"] == latest_period].groupby("occupation_id")["postings"].sum()
    if latest_period is not None
    else pd.Series(dtype=float)
)
titles = frames.occupations.set_index("id")["title"]

if demand_rows.empty:
    print("no occupation competency requirements: nothing to compare the catalog with")
else:
    demand_share = demand_rows.pivot_table(
        index="occupation_id", columns="domain", values="importance", aggfunc="sum", fill_value=0.0
    )
    demand_share = demand_share.div(demand_share.sum(axis=1), axis=0)
    order = postings.reindex(demand_share.index).fillna(0.0).sort_values(ascending=False).index
    demand_share = demand_share.loc[order]
    supply = supply_rows.groupby("domain")["credit_weight"].sum().reindex(demand_share.columns).fillna(0.0)
    built = set(frames.module_competencies["competency_id"])
    covered = (
        demand_rows.assign(
            built=demand_rows["competency_id"].isin(built) * demand_rows["importance"].astype(float)
        )
        .groupby("occupation_id")[["built", "importance"]]
        .sum()
    )
    coverage = (covered["built"] / covered["importance"]).reindex(order)

    n_occupations, n_domains = demand_share.shape
    fig = plt.figure(figsize=(15, 0.28 * n_occupations + 4))
    grid = fig.add_gridspec(
        2,
        3,
        height_ratios=[1, 0.28 * n_occupations],
        width_ratios=[n_domains, 3, 0.4],
        hspace=0.04,
        wspace=0.05,
    )
    ax_supply = fig.add_subplot(grid[0, 0])
    ax_heat = fig.add_subplot(grid[1, 0], sharex=ax_supply)
    ax_cover = fig.add_subplot(grid[1, 1], sharey=ax_heat)
    ax_bar = fig.add_subplot(grid[1, 2])
    image = ax_heat.imshow(
        100 * demand_share.to_numpy(),
        aspect="auto",
        cmap="viridis",
        extent=(-0.5, n_domains - 0.5, n_occupations - 0.5, -0.5),
    )
    ax_heat.set_yticks(
        range(n_occupations),
        [f"{titles.get(o, o)} ({int(postings.get(o, 0)):,})" for o in demand_share.index],
        fontsize=8,
    )
    ax_heat.set_xticks(range(n_domains), demand_share.columns, rotation=60, ha="right", fontsize=8)
    ax_heat.set_xlabel("competency domain")
    ax_heat.set_ylabel(f"occupation (job postings in {latest_period})")
    ax_heat.grid(False)
    ax_supply.bar(range(n_domains), supply.to_numpy(), color="#555555")
    ax_supply.set_ylabel("catalog\ncredits × weight", fontsize=8)
    ax_supply.tick_params(labelbottom=False)
    ax_supply.set_title("Occupation demand by competency domain, against what the catalog builds")
    ax_cover.barh(range(n_occupations), 100 * coverage.to_numpy(), color="#55A868")
    ax_cover.set_xlim(0, 100)
    ax_cover.set_xlabel("demand the\ncatalog builds (%)", fontsize=8)
    ax_cover.tick_params(labelleft=False)
    fig.colorbar(image, cax=ax_bar, label="share of the occupation's demand in the domain (%)")
    save(fig, "competency_coverage")

    uncovered = demand_rows[~demand_rows["competency_id"].isin(built)]
    if uncovered.empty:
        print("every competency an occupation demands is built by at least one module")
    else:
        names = frames.competencies.set_index("id")["name"]
        gaps = (
            uncovered.groupby("competency_id")["importance"]
            .agg(["count", "mean"])
            .sort_values("count", ascending=False)
        )
        gaps.index = gaps.index.map(lambda c: f"{names.get(c, c)} ({c})")
        gaps.columns = ["occupations demanding it", "mean importance"]
        print("competencies that occupations demand and no module builds:")
        display(gaps.head(15).round(2))

# %% [markdown]
# ## What the records leave out
#
# The notes `load_frames` attaches (empty when nothing is missing), and how many students have no
# recorded goal (their program's aligned occupations stand in for one when the models read them).

# %%
with_goals = frames.goals["student_id"].astype(object).nunique()
print(f"{with_goals:,} of {len(frames.students):,} students have named a target occupation")
print("notes:", list(frames.notes) or "none")
print(f"notebook ran in {time.perf_counter() - started:.1f}s; figures in {FIGURES_DIR}")
