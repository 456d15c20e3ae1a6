"""Frames as of a cutoff read from a real database (SQLite and PostgreSQL), the leak test, TermState."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, delete, select

from features.build import build_feature_set, build_term_context
from records.bulk import bulk_insert
from records.db import session_scope
from records.frames import (
    Frames,
    frames_from_tables,
    load_frames,
    load_term_state,
    newest_closed_term,
    next_term,
)
from records.ingest import import_directory
from records.schema import (
    Advisor,
    Base,
    Competency,
    Demand,
    Enrollment,
    Feedback,
    Goal,
    ModelVersion,
    Module,
    ModuleCompetency,
    Occupation,
    OccupationCompetency,
    Offering,
    Prerequisite,
    Program,
    ProgramModule,
    ProgramOccupation,
    Recommendation,
    RecommendationBatch,
    Review,
    Student,
    StudentAttribute,
    Term,
    User,
)
from tests.integration.records.csv_set import write_csv_set
from tests.unit.features.compare import assert_feature_sets_equal
from tests.unit.features.tables import CUTOFF, small_tables

TABLES: dict[str, type[Base]] = {
    "terms": Term,
    "competencies": Competency,
    "occupations": Occupation,
    "occupation_competencies": OccupationCompetency,
    "demand": Demand,
    "modules": Module,
    "module_competencies": ModuleCompetency,
    "prerequisites": Prerequisite,
    "offerings": Offering,
    "programs": Program,
    "program_occupations": ProgramOccupation,
    "program_modules": ProgramModule,
    "advisors": Advisor,
    "students": Student,
    "student_attributes": StudentAttribute,
    "enrollments": Enrollment,
    "goals": Goal,
}


def write_tables(engine: Engine, tables: dict[str, pd.DataFrame]) -> None:
    """Insert hand-written tables (Frames names, database columns) with the real bulk writer."""
    with engine.begin() as connection:
        for name, orm in TABLES.items():
            if name in tables:
                bulk_insert(connection, orm, tables[name])


def delete_after(engine: Engine, term_code: str) -> None:
    """Delete every record of terms after ``term_code``: what the database held at its end."""
    with session_scope(engine) as session:
        ordinal = session.scalars(select(Term.ordinal).where(Term.code == term_code)).one()
        later = select(Term.code).where(Term.ordinal > ordinal)
        session.execute(delete(Enrollment).where(Enrollment.term_code.in_(later)))
        session.execute(delete(Offering).where(Offering.term_code.in_(later)))
        session.execute(delete(Goal).where(Goal.set_term.in_(later)))
        starts_on = session.scalars(select(Term.starts_on).where(Term.code == term_code)).one()
        session.execute(delete(Demand).where(Demand.period_start > starts_on))
        late_students = select(Student.id).where(Student.entry_term.in_(later))
        session.execute(delete(StudentAttribute).where(StudentAttribute.student_id.in_(late_students)))
        session.execute(delete(Student).where(Student.id.in_(late_students)))
        session.execute(delete(Term).where(Term.ordinal > ordinal))


@pytest.fixture
def small_engine(engine: Engine) -> Engine:
    write_tables(engine, small_tables())
    return engine


def assert_frames_equal(left: Frames, right: Frames) -> None:
    for field in dataclasses.fields(Frames):
        a, b = getattr(left, field.name), getattr(right, field.name)
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b, obj=f"Frames.{field.name}")
        else:
            assert a == b, field.name


def test_newest_closed_and_next_term(small_engine: Engine) -> None:
    assert newest_closed_term(small_engine) == "2025-1"
    assert next_term(small_engine, "2024-2") == "2025-1"
    assert next_term(small_engine, None) == "2025-2"
    assert next_term(small_engine, "2025-2") is None
    with pytest.raises(ValueError, match="unknown term"):
        next_term(small_engine, "1999-9")


def test_load_frames_cuts_off_at_the_newest_closed_term(small_engine: Engine) -> None:
    frames = load_frames(small_engine)
    assert frames.cutoff_term == CUTOFF and frames.cutoff_ordinal == 3
    assert frames.terms["code"].tolist() == ["2024-1", "2024-2", "2025-1"]
    # S4 enters in 2025-2, the target term: known at the cutoff, with no records yet.
    assert frames.students["id"].tolist() == ["S1", "S2", "S3", "S4"]
    assert load_frames(small_engine, entrants=False).students["id"].tolist() == ["S1", "S2", "S3"]
    assert len(frames.enrollments) == 8 and frames.enrollments["term_ordinal"].max() == 3
    assert frames.enrollments["status"].dtype == "category"
    assert frames.enrollments["student_id"].dtype == "category"
    assert frames.enrollments["grade"].dtype == np.float32
    assert frames.goals["occupation_id"].tolist() == ["O1"]  # S1's O2 goal is set in 2025-2
    assert frames.demand["period"].tolist() == ["2024", "2024"]  # the 2026 period starts later
    assert frames.offerings["term_code"].tolist() == ["2024-1", "2024-2", "2025-1"]
    assert frames.student_attributes["student_id"].astype(str).tolist() == ["S1", "S4"]


def test_load_frames_equals_the_same_tables_in_memory(small_engine: Engine) -> None:
    assert_frames_equal(load_frames(small_engine, CUTOFF), frames_from_tables(small_tables(), CUTOFF))


def test_as_of_equals_load_frames_of_the_earlier_term(small_engine: Engine) -> None:
    latest = load_frames(small_engine, "2025-2")
    assert len(latest.enrollments) == 11
    for term in ("2024-1", "2024-2", "2025-1"):
        assert_frames_equal(latest.as_of(term), load_frames(small_engine, term, entrants=False))
    with pytest.raises(ValueError, match="not among the terms"):
        load_frames(small_engine, "2024-1").as_of("2025-1")


def test_unknown_cutoff_is_a_clear_error(small_engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown cutoff term '2030-1'"):
        load_frames(small_engine, "2030-1")


def test_feature_set_does_not_leak_later_terms(small_engine: Engine) -> None:
    """The leak test: features as of T are identical with and without every record after T (without the
    next term's entrants, whom the served model knows from their entry alone)."""
    with_later = build_feature_set(load_frames(small_engine, "2024-2", entrants=False))
    delete_after(small_engine, "2024-2")
    without_later = build_feature_set(load_frames(small_engine, "2024-2", entrants=False))
    assert with_later.n_students == 2 and with_later.history["term_ordinal"].max() == 2
    assert_feature_sets_equal(with_later, without_later)


def test_empty_database_gives_empty_frames_and_features(engine: Engine) -> None:
    frames = load_frames(engine)
    assert frames.cutoff_term is None and frames.enrollments.empty and frames.students.empty
    fs = build_feature_set(frames)
    assert fs.n_students == 0 and fs.n_modules == 0
    assert fs.interactions.shape == (0, 0) and fs.student_profile.shape == (0, 0)
    assert "no enrollments: no interactions, transitions or profiles" in fs.missing


def _review_and_dismiss(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(ModelVersion(version="v1"))
        session.add(User(name="ada", role="advisor", advisor_id="A1"))
        session.flush()
        batch = RecommendationBatch(model_version="v1", k=3)
        session.add(batch)
        session.flush()
        recs = [
            Recommendation(batch_id=batch.id, student_id="S1", rank=r, module_id=m, score=1.0)
            for r, m in enumerate(["M2", "M3", "M1"], start=1)
        ]
        session.add_all(recs)
        session.flush()
        reviewer = session.scalars(select(User.id)).one()
        for rec, action in zip(recs, ["reject", "replace", "approve"], strict=True):
            session.add(
                Review(
                    recommendation_id=rec.id,
                    reviewer_id=reviewer,
                    student_id="S1",
                    module_id=rec.module_id,
                    action=action,
                    replacement_module_id="M5" if action == "replace" else None,
                    created_at=dt.datetime(2025, 8, 1, tzinfo=dt.UTC),
                )
            )
        session.add(Feedback(student_id="S2", module_id="M2", action="dismiss"))
        session.add(Feedback(student_id="S2", module_id="M4", action="accept"))


def test_term_state_offerings_seats_and_exclusions(small_engine: Engine) -> None:
    _review_and_dismiss(small_engine)
    state = load_term_state(small_engine, None)
    assert state.target_term == "2025-2"
    # M3 is offered only in 2024-1 and 2025-1, M4 in 2024-2 and 2025-2; the others have no offering rows.
    assert state.offered_module_ids == frozenset({"M1", "M2", "M4", "M5"})
    assert state.seats_taken.to_dict() == {"M1": 1, "M3": 1, "M5": 1}
    assert sorted(map(tuple, state.in_progress.to_numpy().tolist())) == [
        ("S1", "M3"),
        ("S2", "M5"),
        ("S4", "M1"),
    ]
    assert sorted(map(tuple, state.excluded.to_numpy().tolist())) == [
        ("S1", "M2"),
        ("S1", "M3"),
        ("S2", "M2"),
    ]
    assert load_term_state(small_engine, "2025-1").offered_module_ids == frozenset({"M1", "M2", "M3", "M5"})


def test_term_context_aligns_state_with_the_feature_set(small_engine: Engine) -> None:
    _review_and_dismiss(small_engine)
    fs = build_feature_set(load_frames(small_engine))
    context = build_term_context(fs, load_term_state(small_engine, None))
    assert context.target_term == "2025-2"
    assert context.offered.tolist() == [True, True, False, True, True]
    # M3 has capacity 2 and S1 is enrolled: 1 seat left; the others are unlimited.
    assert context.seats_left.dtype == np.float32
    assert context.seats_left.tolist() == [np.inf, np.inf, 1.0, np.inf, np.inf]
    assert context.excluded.shape == (4, 5) and context.excluded.dtype == np.float32
    excluded = {
        (fs.students.id(r), fs.modules.id(c)) for r, c in zip(*context.excluded.nonzero(), strict=True)
    }
    assert excluded == {("S1", "M2"), ("S1", "M3"), ("S2", "M2")}
    in_progress = {
        (fs.students.id(r), fs.modules.id(c))
        for r, c in zip(*context.extra_in_progress.nonzero(), strict=True)
    }
    # S4 enters in the target term, where it is already enrolled in M1.
    assert in_progress == {("S1", "M3"), ("S2", "M5"), ("S4", "M1")}


@pytest.fixture
def tiny_engine(engine: Engine) -> Engine:
    synthetic = pytest.importorskip("records.synthetic")
    ingest = pytest.importorskip("records.ingest")
    ingest.import_tables(engine, synthetic.generate("tiny", seed=7))
    return engine


def test_generated_institution_feature_set_does_not_leak_later_terms(tiny_engine: Engine) -> None:
    """The leak test on the generated institution: features as of a middle term T are identical whether
    or not the enrollments, goals, demand, offerings and students after T exist."""
    terms = load_frames(tiny_engine).terms["code"].tolist()
    middle = terms[len(terms) // 2]
    later = load_frames(tiny_engine, terms[-1])
    with_later = build_feature_set(load_frames(tiny_engine, middle, entrants=False))
    assert len(later.enrollments) > len(load_frames(tiny_engine, middle).enrollments) > 0
    assert len(later.demand) > len(load_frames(tiny_engine, middle).demand)
    delete_after(tiny_engine, middle)
    without_later = build_feature_set(load_frames(tiny_engine, middle, entrants=False))
    assert without_later.interactions.nnz > 0 and without_later.module_competency.nnz > 0
    assert_feature_sets_equal(with_later, without_later)
    assert_feature_sets_equal(with_later, build_feature_set(later.as_of(middle)))


def test_interaction_log_alone_loads_and_builds(engine: Engine) -> None:
    """No catalog, competencies, programs, goals or demand: an enrollment log with odd term codes."""
    log = small_tables()["enrollments"]
    renamed = {"2024-1": "Autumn A", "2024-2": "Spring B", "2025-1": "Autumn B", "2025-2": "Spring C"}
    write_tables(
        engine,
        {
            "terms": pd.DataFrame({"code": list(renamed.values()), "ordinal": [10, 20, 30, 40]}),
            "modules": pd.DataFrame({"id": sorted(set(log["module_id"])), "pass_grade": 60.0}),
            "students": pd.DataFrame({"id": sorted(set(log["student_id"])), "status": "active"}),
            "enrollments": log.assign(term_code=log["term_code"].map(renamed)),
        },
    )
    frames = load_frames(engine)
    assert frames.cutoff_term == "Autumn B" and frames.cutoff_ordinal == 30
    assert frames.competencies.empty and frames.programs.empty and frames.goals.empty
    fs = build_feature_set(frames)
    assert fs.n_students == 4 and fs.n_modules == 5 and fs.interactions.nnz == 8
    assert fs.student_profile.shape == (4, 0) and fs.student_goals.shape == (4, 0)
    assert fs.popularity.shape[:2] == (1, 3) and fs.track_deficit.sum() == 0
    assert "no competencies: competency profiles, demand and gaps are empty" in fs.missing
    context = build_term_context(fs, load_term_state(engine, None))
    assert context.target_term == "Spring C" and context.offered.all()
    assert context.extra_in_progress.nnz == 3  # S1 M3, S2 M5 and S4 M1 (S4 has no entry term: kept)


def test_a_few_incompletes_do_not_hold_a_term_open(engine: Engine, tmp_path: Path) -> None:
    """Of 20 enrolments per term, 1 stays in progress in 2021-1, 2021-3 and 2021-4 (5%), 3 in 2021-5 (15%)
    and all in 2021-6: the newest closed term is 2021-4."""
    rows = ["student_id,module_id,term,status"]
    in_progress = {"2021-1": 1, "2021-2": 0, "2021-3": 1, "2021-4": 1, "2021-5": 3, "2021-6": 20}
    for term, open_rows in in_progress.items():
        for index in range(20):
            status = "in_progress" if index < open_rows else "completed"
            rows.append(f"L{index},M{term[-1]}{index % 4},{term},{status}")
    directory = write_csv_set(tmp_path / "set", {"enrollments.csv": "\n".join(rows) + "\n"})
    import_directory(engine, directory, allow_uncatalogued=True)
    assert newest_closed_term(engine) == "2021-4"
    assert next_term(engine, None) == "2021-5"
    assert load_frames(engine).cutoff_term == "2021-4"
