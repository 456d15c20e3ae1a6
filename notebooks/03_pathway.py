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
# # 03 · One student, from start to finish
#
# One active student's record; their competency profile against the occupation they aim at; the
# modules the hybrid recommends for next term, with the reasons it gives; a multi-term pathway; and
# the what-if: the same student aiming at another occupation, with what changes and why.
#
# The model is fitted the way the nightly job fits the one it serves: components on the records as
# of T-1, the blend on what students took in T (the newest closed term), components refitted as of
# T. Set `PATHWAYS_NOTEBOOK_STUDENT` (a student id) and `PATHWAYS_NOTEBOOK_OCCUPATION` (an
# occupation id) to follow someone else or try another occupation.
#
# **Data.** As in `01_records.py`: `PATHWAYS_DATABASE_URL` when it holds an institution, else (when
# it is unset) the demo's database `var/pathways.db`, else the generated *small* institution (seed 7) in `var/notebooks/` (`PATHWAYS_NOTEBOOK_SIZE=tiny` for a
# quicker one). Figures also go to `var/figures` (or `PATHWAYS_FIGURES_DIR`).

# %%
import logging
import os
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from threadpoolctl import threadpool_limits

from features.build import build_feature_set, build_term_context
from pathways.notebook_data import notebook_database
from recommender.hybrid import HybridRecommender
from records.frames import load_frames, load_term_state, newest_closed_term, next_term
from training.pipeline import MODEL_OPTIONS, OPENMP_THREADS

AS_SCRIPT = "__file__" in globals()  # run as `python notebooks/03_pathway.py`: draw off-screen
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
N_PLAN_TERMS = 4
TRACKS = ("academic", "vocational", "project")
TRACK_COLORS = {"academic": "#4C72B0", "vocational": "#DD8452", "project": "#55A868"}
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "axes.axisbelow": True})


def save(fig, name):
    """Write the figure to FIGURES_DIR/03_<name>.png (and close it when run as a script)."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES_DIR / f"03_{name}.png", dpi=110, bbox_inches="tight")
    if AS_SCRIPT:
        plt.close(fig)


# %% [markdown]
# ## The records and the model

# %%
started = time.perf_counter()
data = notebook_database(ROOT, SIZE, SEED, DATA_DIR)
for note in data.notes:
    print(note)
engine, source = data.engine, data.source

cutoff = newest_closed_term(engine)
frames = load_frames(engine, cutoff)
terms_with_enrollments = np.unique(frames.enrollments["term_ordinal"].to_numpy())
previous_term = frames.terms.set_index("ordinal")["code"][int(terms_with_enrollments[-2])]
with threadpool_limits(OPENMP_THREADS, user_api="openmp"):
    model = HybridRecommender(**MODEL_OPTIONS).fit(
        build_feature_set(frames.as_of(previous_term)), build_feature_set(frames)
    )
competency_names = dict(zip(frames.competencies["id"], frames.competencies["name"], strict=True))
occupation_titles = dict(zip(frames.occupations["id"], frames.occupations["title"], strict=True))
model.set_labels(competencies=competency_names, occupations=occupation_titles)
fs = model.fs_
print(f"records of {source} as of {cutoff}; model fitted in {time.perf_counter() - started:.1f}s")

# %% [markdown]
# ## The student
#
# Unless `PATHWAYS_NOTEBOOK_STUDENT` names one: the first active student (by id) in a program, with
# a target occupation of their own, at least three terms behind them and under two thirds of the
# credits they need to graduate, so that there is a pathway left to plan.

# %%
info = fs.student_info
credits_needed = fs.program_info["credits_to_graduate"].to_numpy()[np.maximum(info["program_row"], 0)]
candidates = np.flatnonzero(
    (info["status"].to_numpy() == "active")
    & (fs.goal_source == "goals")
    & (info["program_row"].to_numpy() >= 0)
    & (info["n_terms"].to_numpy() >= 3)
    & (info["credits_passed"].to_numpy() < 2 / 3 * credits_needed)
)
student_id = os.environ.get("PATHWAYS_NOTEBOOK_STUDENT") or (
    fs.students.id(int(candidates[0])) if len(candidates) else fs.students.id(int(np.argmax(info["n_terms"])))
)
if student_id not in fs.students:
    raise SystemExit(
        f"PATHWAYS_NOTEBOOK_STUDENT={student_id!r} is not a student of the records as of {cutoff}"
    )
row = fs.students.row(student_id)
student = frames.students.set_index("id").loc[student_id]
# A student without a program gets an all-missing program row (no targets, no credits to graduate).
program = frames.programs.set_index("id").reindex([student["program_id"]]).iloc[0]
goals = frames.goals[frames.goals["student_id"].astype(object) == student_id].sort_values(
    "weight", ascending=False
)
modules = frames.modules.set_index("id")
term_codes = frames.terms.set_index("ordinal")["code"]
print(
    f"{student_id}: {program['name']} ({student['program_id']}), entered {student['entry_term']} by the "
    f"{student['entry_route']} route, {info['n_terms'].iat[row]} terms, "
    f"{info['credits_passed'].iat[row]:g} of {program['credits_to_graduate']:g} credits, "
    f"mean grade {info['mean_grade'].iat[row]:.1f}"
)
print(
    "aims at:",
    ", ".join(
        f"{occupation_titles[o]} ({w:.0%})"
        for o, w in zip(goals["occupation_id"], goals["weight"], strict=True)
    )
    or "(no occupation named)",
)

record = frames.enrollments[frames.enrollments["student_id"].astype(object) == student_id].copy()
record_module_ids = record["module_id"].astype(object)
record = pd.DataFrame(
    {
        "term": record["term_ordinal"].map(term_codes).to_numpy(),
        "term_ordinal": record["term_ordinal"].to_numpy(),
        "module": record_module_ids.to_numpy(),
        "code": record_module_ids.map(modules["code"]).to_numpy(),
        "title": record_module_ids.map(modules["title"]).to_numpy(),
        "track": record_module_ids.map(modules["track"].astype(object)).to_numpy(),
        "credits": record_module_ids.map(modules["credits"]).astype(float).to_numpy(),
        "status": record["status"].astype(object).to_numpy(),
        "grade": record["grade"].to_numpy(),
    }
)
display(record.drop(columns="term_ordinal").set_index(["term", "module"]))

# %%
fig, (ax_grades, ax_credits) = plt.subplots(1, 2, figsize=(14, 4.8))
term_order = sorted(record["term_ordinal"].unique())
position = {ordinal: i for i, ordinal in enumerate(term_order)}
for offset, track in zip((-0.2, 0.0, 0.2), TRACKS, strict=True):
    part = record[(record["track"] == track) & record["grade"].notna()]
    x = part["term_ordinal"].map(position).to_numpy(float) + offset
    passed = (part["status"] != "failed").to_numpy()
    ax_grades.scatter(x[passed], part["grade"][passed], color=TRACK_COLORS[track], label=track)
    ax_grades.scatter(x[~passed], part["grade"][~passed], color=TRACK_COLORS[track], marker="x", s=60)
ax_grades.scatter([], [], color="grey", marker="x", label="failed")
ax_grades.axhline(60, color="black", linestyle="--", linewidth=1, label="pass mark")
ax_grades.set_xticks(range(len(term_order)), [term_codes[o] for o in term_order], rotation=45, ha="right")
ax_grades.set_xlabel("term")
ax_grades.set_ylabel("grade")
ax_grades.set_title(f"{student_id}'s grades, by module track")
ax_grades.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))

passed_credits = record[record["status"] == "completed"].pivot_table(
    index="term_ordinal", columns="track", values="credits", aggfunc="sum", fill_value=0.0
)
passed_credits = passed_credits.reindex(index=term_order, columns=list(TRACKS), fill_value=0.0).cumsum()
target_shares = program[["target_academic", "target_vocational", "target_project"]].to_numpy(float)
for track, share in zip(TRACKS, target_shares, strict=True):
    ax_credits.plot(
        range(len(term_order)),
        passed_credits[track],
        marker="o",
        color=TRACK_COLORS[track],
        label=f"{track} (target {share:.0%} of {program['credits_to_graduate']:g})",
    )
    ax_credits.axhline(share * program["credits_to_graduate"], color=TRACK_COLORS[track], linestyle=":")
ax_credits.set_xticks(range(len(term_order)), [term_codes[o] for o in term_order], rotation=45, ha="right")
ax_credits.set_xlabel("term")
ax_credits.plot([], [], color="grey", linestyle=":", label="dotted: the track's target at graduation")
ax_credits.set_ylabel("credits passed, cumulative")
ax_credits.set_title("Credits per track against the program's targets")
ax_credits.legend(fontsize=8, loc="upper left")
fig.tight_layout()
save(fig, "record")

# %% [markdown]
# ## Competency profile against the target occupation
#
# The student's mastery of each competency (from the modules they passed, their grades and levels)
# next to what their main target occupation demands (importance × level, weighted by how much the
# labour market asks for the occupation). The gap is what the competency-gap component and the
# planner try to close.

# %%
own_targets = fs.student_goals[row]
if len(goals):
    main_goal = goals["occupation_id"].iat[0]
elif own_targets.nnz:  # no goal of their own: the program's aligned occupations stand in
    main_goal = fs.occupations.id(int(own_targets.indices[np.argmax(own_targets.data)]))
    print(f"{student_id} names no occupation; their program's {occupation_titles[main_goal]} stands in")
else:  # no goal and no aligned occupation: the occupation in most demand stands in
    main_goal = fs.occupations.id(int(np.argmax(fs.occupation_weight)))
    print(f"{student_id} has no target occupation; {occupation_titles[main_goal]} (most in demand) stands in")
goal_row = fs.occupations.row(main_goal)


def profile_against(occupation_row, top=15):
    """The occupation's most demanded competencies: demand, the student's mastery, the gap."""
    demand = fs.occupation_demand[occupation_row]
    order = np.argsort(-demand, kind="stable")[:top]
    order = order[demand[order] > 0]
    return pd.DataFrame(
        {
            "competency": [
                competency_names.get(fs.competencies.id(int(c)), fs.competencies.id(int(c))) for c in order
            ],
            "demand": demand[order],
            "mastery": fs.student_profile[row, order],
        }
    ).assign(gap=lambda t: np.clip(t["demand"] - t["mastery"], 0.0, None))


def draw_profile(ax, table, title):
    y = np.arange(len(table))[::-1]
    ax.barh(y + 0.2, table["demand"], height=0.4, color="#BBBBBB", label="the occupation demands")
    ax.barh(y - 0.2, table["mastery"], height=0.4, color="#4C72B0", label=f"{student_id} has shown")
    ax.set_yticks(y, table["competency"])
    ax.set_xlabel("level (mastery 0-1; demand = importance × level × labour-market weight)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)


goal_profile = profile_against(goal_row)
display(goal_profile.round(3).set_index("competency"))
fig, ax = plt.subplots(figsize=(9, 0.35 * len(goal_profile) + 1.5))
draw_profile(ax, goal_profile, f"{student_id} against {occupation_titles[main_goal]} ({main_goal})")
save(fig, "competency_profile")

# %% [markdown]
# ## Next term's recommendations, with explanations
#
# The term after the newest closed one, its offerings and seats as the records hold them. The score
# is the blend: intercept plus one contribution per component (the figure shows the contributions of
# each recommended module). The order is the re-ranked one: the top candidates are re-ordered
# toward the program's track targets and a spread of competencies, so scores need not fall
# monotonically. Every module listed is eligible: offered, prerequisites met, not taken.

# %%
target_term = next_term(engine, cutoff)
context = build_term_context(fs, load_term_state(engine, target_term))
lists = model.recommend(np.array([row]), context, k=10)
explanations = model.explain(lists, context)[0]
recommendations = pd.DataFrame(
    [
        {
            "rank": rank,
            "module": e.module_id,
            "code": modules.at[e.module_id, "code"],
            "title": modules.at[e.module_id, "title"],
            "track": e.track,
            "credits": modules.at[e.module_id, "credits"],
            "score": e.score,
            "expected grade": e.expected_grade,
            "fail probability": e.fail_probability,
            "risk": e.risk_level,
        }
        for rank, e in enumerate(explanations, start=1)
    ]
).set_index("rank")
print(f"recommendations for {student_id} in {target_term}")
display(recommendations.round(3))
for rank, e in enumerate(explanations, start=1):
    print(f"{rank}. {modules.at[e.module_id, 'code']} {modules.at[e.module_id, 'title']}")
    for reason in e.reasons:
        print("   -", reason)

contributions = pd.DataFrame(
    lists.contributions[0, : len(explanations)],
    columns=lists.component_names,
    index=[
        f"{modules.at[e.module_id, 'code']} {textwrap.shorten(str(modules.at[e.module_id, 'title']), 48)}"
        for e in explanations
    ],
)
colors = dict(zip(lists.component_names, plt.get_cmap("tab20").colors, strict=False))
fig, ax = plt.subplots(figsize=(11, 0.45 * len(contributions) + 1.8))
y = np.arange(len(contributions))[::-1]
positive, negative = np.zeros(len(y)), np.zeros(len(y))
for name in contributions.columns:
    values = contributions[name].to_numpy()
    left = np.where(values >= 0, positive, negative)
    ax.barh(y, values, left=left, color=colors[name], label=name)
    positive += np.clip(values, 0, None)
    negative += np.clip(values, None, 0)
ax.scatter(
    recommendations["score"].to_numpy() - lists.intercept,
    y,
    color="black",
    zorder=3,
    s=18,
    label="score − intercept",
)
ax.axvline(0, color="black", linewidth=0.8)
ax.set_yticks(y, contributions.index)
ax.set_xlabel("contribution to the blend score (log-odds)")
ax.set_title(f"Why these modules for {student_id} in {target_term}: each component's contribution")
ax.legend(fontsize=8, loc="lower right")
save(fig, "recommendations")

# %% [markdown]
# ## The multi-term pathway
#
# The planner fills each of the next terms greedily with eligible modules up to the student's credit
# cap, weighing the blend score, the share of the competency gap a module closes and the track
# credits the program still needs; a planned module counts as passed from the next term on, so it
# can open the way to others. Terms the records do not list yet reuse the last listed term's
# offerings (as the service does).

# %%
future_terms = [target_term]
while len(future_terms) < N_PLAN_TERMS and future_terms[-1] is not None:
    future_terms.append(next_term(engine, future_terms[-1]))
contexts = [context] + [
    build_term_context(fs, load_term_state(engine, code)) for code in future_terms[1:] if code is not None
]
while len(contexts) < N_PLAN_TERMS:
    contexts.append(replace(contexts[-1], target_term=None))
pathway = model.plan(row, contexts)


def plan_table(plan):
    return pd.DataFrame(
        [
            {
                "term": planned.term or f"later term {i + 1}",
                "code": modules.at[module, "code"],
                "title": modules.at[module, "title"],
                "track": modules.at[module, "track"],
                "credits": modules.at[module, "credits"],
                "expected grade": grade,
                "fail probability": fail,
            }
            for i, planned in enumerate(plan.terms)
            for module, grade, fail in zip(
                planned.module_ids, planned.expected_grades, planned.fail_probabilities, strict=True
            )
        ]
    )


display(plan_table(pathway).round(3).set_index(["term", "code"]))
print(
    f"credits planned {pathway.credits_planned:g}; reaches graduation: {pathway.reaches_graduation}; "
    f"closes {pathway.competency_coverage or 0:.0%} of the target competency gap"
)
if pathway.skipped_risky:
    print("left out for a high fail risk:", ", ".join(pathway.skipped_risky))


def draw_plan(ax, plan, title):
    for i, planned in enumerate(plan.terms):
        bottom = 0.0
        for module in planned.module_ids:
            credits = float(modules.at[module, "credits"])
            track = str(modules.at[module, "track"])
            ax.bar(i, credits, bottom=bottom, color=TRACK_COLORS.get(track, "#999999"), edgecolor="white")
            ax.text(
                i,
                bottom + credits / 2,
                modules.at[module, "code"],
                ha="center",
                va="center",
                fontsize=7,
                color="white",
            )
            bottom += credits
    ax.set_xticks(range(len(plan.terms)), [t.term or f"later {i + 1}" for i, t in enumerate(plan.terms)])
    ax.set_xlabel("term")
    ax.set_ylabel("credits planned")
    ax.set_title(title)
    handles = [Patch(color=TRACK_COLORS[track], label=track) for track in TRACKS]
    ax.legend(handles=handles, title="track", fontsize=8, loc="upper right", ncol=3)
    ax.set_ylim(0, 1.3 * max([t.credits for t in plan.terms] + [1.0]))


fig, (ax_plan, ax_mix) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
draw_plan(ax_plan, pathway, f"{student_id}'s pathway over the next {len(pathway.terms)} terms")
now = fs.track_credits[row] / max(float(fs.track_credits[row].sum()), 1e-9)
x = np.arange(len(TRACKS))
ax_mix.bar(x - 0.27, 100 * now, 0.27, color="#BBBBBB", label="credits so far")
ax_mix.bar(x, [100 * pathway.track_share[t] for t in TRACKS], 0.27, color="#4C72B0", label="after the plan")
ax_mix.bar(
    x + 0.27, [100 * pathway.track_targets[t] for t in TRACKS], 0.27, color="#55A868", label="program target"
)
ax_mix.set_xticks(x, TRACKS)
ax_mix.set_xlabel("track")
ax_mix.set_ylabel("share of credits (%)")
ax_mix.set_title("Credit mix: now, after the plan, and the target")
ax_mix.legend(fontsize=8)
fig.tight_layout()
save(fig, "pathway")

# %% [markdown]
# ## What if they aimed at another occupation?
#
# Unless `PATHWAYS_NOTEBOOK_OCCUPATION` names one: among the occupations the student's program is
# aligned with (else all occupations) and that they do not aim at yet, the one least like their
# current target, so the change shows. The competency-gap component and the planner then measure the
# gap against that occupation instead; everything else stays the same.

# %%
own_target = fs.student_target[row]
aligned = frames.program_occupations.loc[
    frames.program_occupations["program_id"] == student["program_id"], "occupation_id"
]
pool = [o for o in aligned if o not in set(goals["occupation_id"]) and o in fs.occupations]
if not pool:
    pool = [o for o in fs.occupations.ids if o not in set(goals["occupation_id"])]
similarity = {
    o: float(fs.occupation_demand[fs.occupations.row(o)] @ own_target)
    / max(
        float(np.linalg.norm(fs.occupation_demand[fs.occupations.row(o)]) * np.linalg.norm(own_target)), 1e-9
    )
    for o in pool
}
what_if = os.environ.get("PATHWAYS_NOTEBOOK_OCCUPATION") or min(similarity, key=lambda o: (similarity[o], o))
print(
    f"what if {student_id} aimed at {occupation_titles[what_if]} ({what_if})",
    f"instead of {occupation_titles[main_goal]}?",
)

what_if_lists = model.recommend(np.array([row]), context, k=10, occupation=what_if)
what_if_explanations = model.explain(what_if_lists, context, occupation=what_if)[0]
own_rank = {e.module_id: rank for rank, e in enumerate(explanations, start=1)}
new_rank = {e.module_id: rank for rank, e in enumerate(what_if_explanations, start=1)}
gap_column = list(lists.component_names).index("competency_gap")
comparison = pd.DataFrame(
    [
        {
            "module": module,
            "code": modules.at[module, "code"],
            "title": modules.at[module, "title"],
            "own rank": own_rank.get(module),
            "what-if rank": new_rank.get(module),
        }
        for module in dict.fromkeys([*own_rank, *new_rank])
    ]
).set_index("module")
display(comparison)

added = [m for m in new_rank if m not in own_rank]
removed = [m for m in own_rank if m not in new_rank]
print("new on the list, and why:")
for e in what_if_explanations:
    if e.module_id in added:
        print(
            f"  + {modules.at[e.module_id, 'code']} {modules.at[e.module_id, 'title']}:",
            " ".join(e.reasons[:2]),
        )
print(
    "gone from the list:",
    ", ".join(f"{modules.at[m, 'code']} {modules.at[m, 'title']}" for m in removed) or "none",
)
gap_shift = {
    e.module_id: e.contributions["competency_gap"]
    - lists.contributions[0, own_rank[e.module_id] - 1, gap_column]
    for e in what_if_explanations
    if e.module_id in own_rank
}
if gap_shift:
    print(
        "competency-gap contribution change for modules on both lists:",
        ", ".join(f"{modules.at[m, 'code']} {v:+.2f}" for m, v in gap_shift.items()),
    )

what_if_pathway = model.plan(row, contexts, occupation=what_if)
changes = what_if_pathway.changes or {}
print(
    "pathway changes: adds",
    ", ".join(modules.at[m, "code"] for m in changes.get("added", [])) or "nothing",
    "| drops",
    ", ".join(modules.at[m, "code"] for m in changes.get("removed", [])) or "nothing",
)
before, after = changes.get("coverage_before"), changes.get("coverage_after")
if before is not None and after is not None:
    print(
        f"share of the {occupation_titles[what_if]} gap closed:",
        f"own plan {before:.0%}, what-if plan {after:.0%}",
    )

# %%
fig = plt.figure(figsize=(18, 6.5), layout="constrained")
grid = fig.add_gridspec(1, 3, width_ratios=[1.1, 1.3, 1.3])
ax_slope, ax_profile, ax_plan = (fig.add_subplot(grid[0, i]) for i in range(3))
for _, ranks in comparison.iterrows():
    start = ranks["own rank"] if pd.notna(ranks["own rank"]) else 11.5
    end = ranks["what-if rank"] if pd.notna(ranks["what-if rank"]) else 11.5
    color = (
        "#C44E52"
        if pd.isna(ranks["own rank"])
        else ("#999999" if pd.isna(ranks["what-if rank"]) else "#4C72B0")
    )
    ax_slope.plot([0, 1], [start, end], marker="o", color=color)
    if pd.notna(ranks["own rank"]):
        ax_slope.text(-0.04, start, ranks["code"], ha="right", va="center", fontsize=7)
    if pd.notna(ranks["what-if rank"]):
        ax_slope.text(1.04, end, ranks["code"], ha="left", va="center", fontsize=7)
ax_slope.set_xlim(-0.4, 1.4)
ax_slope.set_ylim(12, 0.3)
ax_slope.set_xticks([0, 1], ["own target", "what-if"])
ax_slope.set_yticks([*range(1, 11), 11.5], [*map(str, range(1, 11)), "not listed"])
ax_slope.set_ylabel("rank in the top 10")
ax_slope.set_title("How the list changes\n(red: new, grey: dropped)")
draw_profile(
    ax_profile,
    profile_against(fs.occupations.row(what_if), top=12),
    f"{student_id} against {textwrap.shorten(occupation_titles[what_if], 52)}",
)
coverage_text = (
    f"\ncloses {after:.0%} of this occupation's gap (own plan: {before:.0%})"
    if before is not None and after is not None
    else ""
)
draw_plan(ax_plan, what_if_pathway, f"The what-if pathway{coverage_text}")
fig.suptitle(f"What if {student_id} aimed at {occupation_titles[what_if]}?")
save(fig, "what_if")

# %%
print(f"notebook ran in {time.perf_counter() - started:.1f}s; figures in {FIGURES_DIR}")
