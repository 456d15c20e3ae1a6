"""bulk_insert writes frames on SQLite (executemany) and PostgreSQL (COPY) in the caller's transaction."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from records.bulk import BulkWriteError, bulk_insert
from records.schema import Demand, Enrollment, ModelVersion, Module, Occupation, Student, Term


def _count(engine: Engine, table: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_bulk_insert_converts_missing_values_and_numpy_scalars(engine: Engine) -> None:
    terms = pd.DataFrame(
        {
            "code": ["2020-1", "2020-2"],
            "ordinal": np.array([1, 2], dtype=np.int64),
            "starts_on": [pd.Timestamp("2020-02-01"), pd.NaT],
        }
    )
    modules = pd.DataFrame(
        {
            "id": ["M1", "M2", "M3"],
            "title": ["Algebra", None, "Welding"],
            "level": [1.0, np.nan, 3.0],  # floats bound for an integer column
            "credits": pd.array([5.0, None, 7.5], dtype="Float64"),
            "pass_grade": [60.0, 60.0, 50.0],
        }
    )
    students = pd.DataFrame({"id": ["S1"], "status": ["active"]})
    enrollments = pd.DataFrame(
        {
            "student_id": ["S1", "S1"],
            "module_id": ["M1", "M3"],
            "term_code": ["2020-1", "2020-2"],
            "status": ["completed", "in_progress"],
            "grade": [np.float32(71.5), np.nan],
        }
    )
    with engine.begin() as conn:
        assert bulk_insert(conn, Term, terms) == 2
        assert bulk_insert(conn, Module.__table__, modules, chunk_size=2) == 3  # type: ignore[arg-type]
        assert bulk_insert(conn, Student, students) == 1
        assert bulk_insert(conn, Enrollment, enrollments) == 2
    with engine.connect() as conn:
        rows = conn.execute(select(Term.code, Term.ordinal, Term.starts_on).order_by(Term.ordinal)).all()
        assert rows == [("2020-1", 1, dt.date(2020, 2, 1)), ("2020-2", 2, None)]
        module_rows = conn.execute(select(Module.id, Module.title, Module.level, Module.credits)).all()
        assert sorted(module_rows) == [
            ("M1", "Algebra", 1, 5.0),
            ("M2", None, None, None),
            ("M3", "Welding", 3, 7.5),
        ]
        grades = conn.execute(select(Enrollment.module_id, Enrollment.grade).order_by(Enrollment.module_id))
        assert grades.all() == [("M1", 71.5), ("M3", None)]


def test_bulk_insert_writes_in_the_callers_transaction(engine: Engine) -> None:
    occupations = pd.DataFrame({"id": [f"15-{i:04d}.00" for i in range(120)], "title": ["x"] * 120})
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert bulk_insert(conn, Occupation, occupations, chunk_size=50) == 120
        raise RuntimeError("roll back")
    assert _count(engine, Occupation) == 0
    with engine.begin() as conn:
        bulk_insert(conn, Occupation, occupations, chunk_size=50)
    assert _count(engine, Occupation) == 120


def test_bulk_insert_dates_json_and_empty_frames(engine: Engine) -> None:
    demand = pd.DataFrame(
        {
            "occupation_id": ["15-1.00"],
            "region": ["north"],
            "period": ["2021-Q2"],
            "period_start": [dt.date(2021, 4, 1)],
            "postings": [12],
            "growth": [None],
        }
    )
    versions = pd.DataFrame(
        {
            "version": ["v1"],
            "status": ["candidate"],
            "metrics": [{"ndcg": 0.5}],
            "created_at": [pd.Timestamp.now()],
        }
    )
    with engine.begin() as conn:
        bulk_insert(conn, Occupation, pd.DataFrame({"id": ["15-1.00"], "title": ["Analyst"]}))
        assert bulk_insert(conn, Demand, demand) == 1
        assert bulk_insert(conn, ModelVersion, versions) == 1
        assert bulk_insert(conn, Student, pd.DataFrame({"id": [], "status": []})) == 0
    with engine.connect() as conn:
        assert conn.execute(select(Demand.period_start, Demand.postings, Demand.growth)).one() == (
            dt.date(2021, 4, 1),
            12.0,
            None,
        )
        assert conn.execute(select(ModelVersion.metrics)).scalar_one() == {"ndcg": 0.5}


def test_bulk_insert_rejects_unknown_columns(engine: Engine) -> None:
    with pytest.raises(BulkWriteError, match="no column"), engine.begin() as conn:
        bulk_insert(conn, Student, pd.DataFrame({"id": ["S1"], "colour": ["red"]}))
