"""Small hand-made FeatureSets with known right answers for the recommender's unit tests.

``feature_set_from_tables`` computes every FeatureSet field from a handful of plain Python rows with
simple, obviously-right rules (no dependency on the features package's builders), so a test can say what
the answer must be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from features.featureset import TRACKS, FeatureSet
from features.idindex import IdIndex
from recommender.base import TermContext

PASS = 60.0


@dataclass
class ModuleRow:
    id: str
    track: str | None
    credits: float = 10.0
    level: float = 1.0
    tags: dict[str, float] = field(default_factory=dict)


@dataclass
class World:
    """The tables a FeatureSet is made from."""

    modules: list[ModuleRow]
    competencies: list[str]
    occupations: dict[str, dict[str, float]]  # occupation -> competency -> demand
    programs: dict[str, tuple[float, float, float]]  # program -> track targets
    program_occupations: dict[str, list[str]]
    students: dict[str, str | None]  # student -> program
    # (student, module, term ordinal, status, grade)
    enrollments: list[tuple[str, str, int, str, float | None]]
    prerequisites: list[tuple[str, int, str, float | None]] = field(default_factory=list)
    goals: dict[str, list[str]] = field(default_factory=dict)
    required: dict[str, list[str]] = field(default_factory=dict)
    max_credits: float = 30.0


def _csr(
    rows: Sequence[int], cols: Sequence[int], values: Sequence[float], shape: tuple[int, int]
) -> sp.csr_matrix:
    matrix = sp.coo_matrix(
        (np.asarray(values, np.float32), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
        shape=shape,
    )
    return sp.csr_matrix(matrix, dtype=np.float32)


def feature_set_from_tables(world: World, cutoff: int | None = None) -> FeatureSet:
    """A FeatureSet as of term ordinal ``cutoff`` (None: every enrollment)."""
    enrollments = [e for e in world.enrollments if cutoff is None or e[2] <= cutoff]
    students = IdIndex(world.students)
    modules = IdIndex(m.id for m in world.modules)
    competencies = IdIndex(world.competencies)
    occupations = IdIndex(world.occupations)
    programs = IdIndex(world.programs)
    n_s, n_m, n_c, n_o, n_p = len(students), len(modules), len(competencies), len(occupations), len(programs)
    track_row = np.array([TRACKS.index(m.track) if m.track else -1 for m in world.modules], np.int64)
    credits = np.array([m.credits for m in world.modules], np.float64)

    history = pd.DataFrame(
        {
            "student_row": np.array([students.row(e[0]) for e in enrollments], np.int32),
            "module_row": np.array([modules.row(e[1]) for e in enrollments], np.int32),
            "term_ordinal": np.array([e[2] for e in enrollments], np.int32),
            "status": pd.Categorical(
                [e[3] for e in enrollments], categories=["completed", "failed", "withdrawn", "in_progress"]
            ),
            "grade": np.array([np.nan if e[4] is None else e[4] for e in enrollments], np.float32),
        }
    )
    history["passed"] = (history["status"] == "completed").to_numpy() & ~(history["grade"] < PASS).to_numpy()
    s, m = history["student_row"].to_numpy(), history["module_row"].to_numpy()
    grade = history["grade"].to_numpy(np.float64)
    passed_mask = history["passed"].to_numpy()
    status = history["status"].astype(str).to_numpy()

    confidence = np.where(passed_mask, 1 + (np.nan_to_num(grade, nan=PASS) - PASS) / (100 - PASS), 0.2)
    interactions = _csr(s, m, confidence, (n_s, n_m))
    best: dict[tuple[int, int], float] = {}
    for si, mi, g, ok in zip(s, m, grade, passed_mask, strict=True):
        if ok:
            best[(si, mi)] = max(best.get((si, mi), 0.0), PASS if np.isnan(g) else g)
    passed = _csr([k[0] for k in best], [k[1] for k in best], list(best.values()), (n_s, n_m))
    attempted = _csr(s, m, np.ones(len(s)), (n_s, n_m))
    attempted.data[:] = 1.0
    in_prog = status == "in_progress"
    in_progress = _csr(s[in_prog], m[in_prog], np.ones(int(in_prog.sum())), (n_s, n_m))

    # Recent: the student's newest term weight 1, the one before 0.5.
    terms_of: dict[int, list[int]] = {}
    for si, t in zip(s, history["term_ordinal"].to_numpy(), strict=True):
        terms_of.setdefault(int(si), [])
        if t not in terms_of[int(si)]:
            terms_of[int(si)].append(int(t))
    rank: dict[tuple[int, int], int] = {}
    for si, ts in terms_of.items():
        for r, t in enumerate(sorted(ts)):
            rank[(si, t)] = r
    recent_rows, recent_cols, recent_vals = [], [], []
    for si, mi, t in zip(s, m, history["term_ordinal"].to_numpy(), strict=True):
        distance = len(terms_of[int(si)]) - 1 - rank[(int(si), int(t))]
        if distance <= 1:
            recent_rows.append(si)
            recent_cols.append(mi)
            recent_vals.append(1.0 if distance == 0 else 0.5)
    recent = _csr(recent_rows, recent_cols, recent_vals, (n_s, n_m))

    # Transitions: [a, b] += 1 / distance for b taken d terms (of the student) after a.
    trans: dict[tuple[int, int], float] = {}
    by_student = history.groupby("student_row")
    for _, frame in by_student:
        rows = list(frame.itertuples())
        for a in rows:
            for b in rows:
                ra = rank[(a.student_row, a.term_ordinal)]
                rb = rank[(b.student_row, b.term_ordinal)]
                if rb > ra:
                    key = (a.module_row, b.module_row)
                    trans[key] = trans.get(key, 0.0) + 0.5 ** (rb - ra - 1)
    transitions = _csr([k[0] for k in trans], [k[1] for k in trans], list(trans.values()), (n_m, n_m))

    tags_rows, tags_cols, tags_vals = [], [], []
    for mi, module in enumerate(world.modules):
        for comp, weight in module.tags.items():
            tags_rows.append(mi)
            tags_cols.append(competencies.row(comp))
            tags_vals.append(weight)
    module_competency = _csr(tags_rows, tags_cols, tags_vals, (n_m, n_c))
    profile = np.clip((passed * np.float32(0.01)) @ module_competency.toarray(), 0, 1).astype(np.float32)
    demand = np.zeros((n_o, n_c), np.float32)
    for oi, (_, needs) in enumerate(world.occupations.items()):
        for comp, value in needs.items():
            demand[oi, competencies.row(comp)] = value
    goal_rows, goal_cols, goal_vals, source = [], [], [], []
    program_of = [world.students[sid] for sid in students.ids]
    for si, sid in enumerate(students.ids):
        own = world.goals.get(sid, [])
        aligned = world.program_occupations.get(program_of[si] or "", [])
        chosen = own or aligned
        source.append("goals" if own else ("program" if aligned else "none"))
        for occ in chosen:
            goal_rows.append(si)
            goal_cols.append(occupations.row(occ))
            goal_vals.append(1.0 / len(chosen))
    goals = _csr(goal_rows, goal_cols, goal_vals, (n_s, n_o))
    target = np.asarray(goals @ demand, np.float32)
    gap = np.clip(target - profile, 0, None).astype(np.float32)

    program_row = np.array([programs.row(p) if p else -1 for p in program_of], np.int64)
    n_stages = 4
    popularity = np.zeros((n_p + 1, n_stages, n_m), np.float32)
    stage_students = np.zeros((n_p + 1, n_stages), np.float32)
    for si, ts in terms_of.items():
        p = program_row[si] if program_row[si] >= 0 else n_p
        for t in ts:
            stage_students[p, min(rank[(si, t)], n_stages - 1)] += 1
    seen: set[tuple[int, int, int]] = set()
    for si, mi, t in zip(s, m, history["term_ordinal"].to_numpy(), strict=True):
        p = program_row[si] if program_row[si] >= 0 else n_p
        key = (int(si), min(rank[(int(si), int(t))], n_stages - 1), int(mi))
        if key not in seen:
            seen.add(key)
            popularity[p, key[1], mi] += 1
    popularity /= np.maximum(stage_students, 1)[:, :, None]
    global_pop = np.bincount(m, minlength=n_m).astype(np.float32) / max(len(m), 1)

    track_credits = np.zeros((n_s, 3), np.float32)
    for si, mi in best:
        if track_row[mi] >= 0:
            track_credits[si, track_row[mi]] += credits[mi]
    targets_by_program = np.array([world.programs[p] for p in programs.ids], np.float32).reshape(n_p, 3)
    track_targets = np.zeros((n_s, 3), np.float32)
    track_targets[program_row >= 0] = targets_by_program[program_row[program_row >= 0]]
    deficit = np.clip(track_targets * track_credits.sum(axis=1, keepdims=True) - track_credits, 0, None)

    prerequisites = pd.DataFrame(
        {
            "module_row": np.array([modules.row(p[0]) for p in world.prerequisites], np.int32),
            "group_no": np.array([p[1] for p in world.prerequisites], np.int32),
            "requires_row": np.array([modules.row(p[2]) for p in world.prerequisites], np.int32),
            "min_grade": np.array(
                [np.nan if p[3] is None else p[3] for p in world.prerequisites], np.float32
            ),
        }
    )
    req_rows, req_cols = [], []
    for program, required in world.required.items():
        for module_id in required:
            req_rows.append(programs.row(program))
            req_cols.append(modules.row(module_id))
    program_required = _csr(req_rows, req_cols, np.ones(len(req_rows)), (n_p, n_m))

    all_terms = sorted({e[2] for e in enrollments})
    last = np.full(n_s, -1, np.int64)
    n_terms = np.zeros(n_s, np.int64)
    for si, ts in terms_of.items():
        last[si] = max(ts)
        n_terms[si] = len(ts)
    graded = history.dropna(subset=["grade"])
    mean_grade = graded.groupby("student_row")["grade"].mean().reindex(range(n_s)).to_numpy(np.float64)
    failed_count = np.bincount(s[status == "failed"], minlength=n_s)
    attempts = np.bincount(m, minlength=n_m).astype(np.float64)
    module_fails = np.bincount(m[status == "failed"], minlength=n_m)
    module_mean = graded.groupby("module_row")["grade"].mean().reindex(range(n_m)).to_numpy(np.float64)
    return FeatureSet(
        cutoff_term=f"T{all_terms[-1]}" if all_terms else None,
        cutoff_ordinal=all_terms[-1] if all_terms else None,
        terms=pd.DataFrame({"code": [f"T{t}" for t in all_terms], "ordinal": np.array(all_terms, np.int64)}),
        students=students,
        modules=modules,
        competencies=competencies,
        occupations=occupations,
        programs=programs,
        student_info=pd.DataFrame(
            {
                "program_row": program_row,
                "entry_route": ["general"] * n_s,
                "advisor_id": [None] * n_s,
                "status": ["active"] * n_s,
                "max_credits": np.full(n_s, world.max_credits),
                "entry_ordinal": np.full(n_s, -1, np.int64),
                "last_ordinal": last,
                "n_terms": n_terms,
                "stage": n_terms,
                "mean_grade": mean_grade,
                "n_failed": failed_count.astype(np.int64),
                "credits_passed": track_credits.sum(axis=1).astype(np.float64),
            }
        ),
        module_info=pd.DataFrame(
            {
                "code": modules.to_list(),
                "title": [f"Module {mid}" for mid in modules.ids],
                "department": ["D"] * n_m,
                "track": [mod.track for mod in world.modules],
                "track_row": track_row,
                "level": np.array([mod.level for mod in world.modules], np.float64),
                "credits": credits,
                "capacity": np.full(n_m, np.nan),
                "pass_grade": np.full(n_m, PASS),
                "difficulty": PASS - module_mean,
                "fail_rate": np.where(attempts > 0, module_fails / np.maximum(attempts, 1), np.nan),
            }
        ),
        program_info=pd.DataFrame(
            {
                "name": programs.to_list(),
                "credits_to_graduate": np.full(n_p, 180.0),
                "target_academic": targets_by_program[:, 0].astype(np.float64),
                "target_vocational": targets_by_program[:, 1].astype(np.float64),
                "target_project": targets_by_program[:, 2].astype(np.float64),
            }
        ),
        history=history,
        interactions=interactions,
        passed=passed,
        attempted=attempted,
        in_progress=in_progress,
        recent=recent,
        module_competency=module_competency,
        student_profile=profile,
        occupation_demand=demand,
        occupation_weight=np.ones(n_o, np.float32),
        student_goals=goals,
        goal_source=np.array(source, dtype=object),
        student_target=target,
        competency_gap=gap,
        transitions=transitions,
        popularity=popularity,
        global_popularity=global_pop,
        track_credits=track_credits,
        track_targets=track_targets,
        track_deficit=deficit.astype(np.float32),
        prerequisites=prerequisites,
        program_required=program_required,
        missing=[],
    )


def small_world() -> World:
    """A program with a strong regular order, goals, prerequisites, a hard module and a project track.

    Modules: A0 → A1 (A1 needs A0), A2, V0, V1 (needs V0 or A2 at grade 70), P0 (project), H0 (hard, most
    fail), X0 (never offered in tests that use ``closed_x0``). Cohort 1 (s00-s19) took A0+V0, then A1+V1,
    then P0 (+H0); cohort 2 (s20-s29) one term later; cohort 3 (s30-s34) took A0+V0 in the last term.
    """
    modules = [
        ModuleRow("A0", "academic", tags={"C0": 0.8}),
        ModuleRow("A1", "academic", level=2, tags={"C0": 0.5, "C1": 0.6}),
        ModuleRow("A2", "academic", level=2, tags={"C1": 0.7}),
        ModuleRow("V0", "vocational", tags={"C2": 0.8}),
        ModuleRow("V1", "vocational", level=2, tags={"C2": 0.4, "C3": 0.7}),
        ModuleRow("P0", "project", level=2, tags={"C3": 0.5, "C4": 0.6}),
        ModuleRow("H0", "academic", credits=5, level=3, tags={"C4": 0.9}),
        ModuleRow("X0", "academic", tags={"C0": 0.3}),
    ]
    students: dict[str, str | None] = {f"s{i:02d}": "P" for i in range(36)}
    students["s36"] = None
    enrollments: list[tuple[str, str, int, str, float | None]] = []
    for i in range(35):
        sid = f"s{i:02d}"
        ability = 62 + (i * 7) % 30  # 62..91
        if i < 20:
            start = 1
        elif i < 30:
            start = 2
        else:
            start = 3
        plan = [["A0", "V0"], ["A1", "V1"], ["P0", "H0"] if i % 2 == 0 else ["P0"]]
        for offset, term_modules in enumerate(plan):
            term = start + offset
            if term > 3:
                break
            for module in term_modules:
                if module == "H0":
                    grade = ability - 25.0
                    enrollments.append((sid, module, term, "completed" if grade >= PASS else "failed", grade))
                else:
                    enrollments.append((sid, module, term, "completed", float(ability)))
    enrollments.append(("s36", "A0", 3, "completed", 75.0))
    return World(
        modules=modules,
        competencies=["C0", "C1", "C2", "C3", "C4"],
        occupations={"O0": {"C3": 0.9, "C4": 0.8}, "O1": {"C0": 0.9, "C1": 0.9}},
        programs={"P": (0.5, 0.3, 0.2)},
        program_occupations={"P": ["O1"]},
        students=students,
        enrollments=enrollments,
        prerequisites=[("A1", 0, "A0", None), ("V1", 0, "V0", None), ("V1", 0, "A2", 70.0)],
        goals={"s30": ["O0"], "s35": ["O0"]},
        required={"P": ["A0", "A1"]},
    )


def closed_x0(fs: FeatureSet, target_term: str | None = "T4") -> TermContext:
    """Every module offered except X0, unlimited seats."""
    context = TermContext.open_everything(fs, target_term)
    context.offered[fs.modules.row("X0")] = False
    return context


@pytest.fixture
def world() -> World:
    return small_world()


@pytest.fixture
def small_fs(world: World) -> FeatureSet:
    return feature_set_from_tables(world)


@pytest.fixture
def past_fs(world: World) -> FeatureSet:
    return feature_set_from_tables(world, cutoff=2)
