"""The generated institution on disk and in the database: the CSV set and the direct load agree."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from records.csv_formats import CSV_FILES
from records.db import make_engine, upgrade
from records.ingest import import_directory, import_tables
from records.synthetic import generate, write_csv_set


@pytest.fixture(scope="module")
def tiny() -> dict[str, pd.DataFrame]:
    return generate("tiny", seed=7)


def _rows(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


ENROLLMENTS = "SELECT student_id, module_id, term_code, status, grade FROM enrollment ORDER BY 1, 3, 2"
GOALS = "SELECT student_id, occupation_id, weight, set_term FROM goal ORDER BY 1, 2"
PREREQUISITES = "SELECT module_id, group_no, requires_module_id, min_grade FROM prerequisite ORDER BY 1, 2, 3"
MODULES = (
    "SELECT id, code, title, track, level, credits, delivery, capacity, pass_grade FROM module ORDER BY 1"
)
DEMANDS = "SELECT occupation_id, region, period, postings, growth FROM demand ORDER BY 1, 2, 3"
OCCUPATION_COMPETENCIES = "SELECT * FROM occupation_competency ORDER BY 1, 2"
STUDENTS = "SELECT * FROM student ORDER BY 1"


def test_write_csv_set_writes_every_file_with_its_header(
    tiny: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    out = tmp_path / "nested" / "set"
    rows = write_csv_set(tiny, out)
    assert rows == {name: len(frame) for name, frame in tiny.items()}
    for spec in CSV_FILES:
        written = pd.read_csv(out / spec.name, dtype=str, keep_default_na=False)
        assert list(written.columns) == [c for c in spec.columns if c != "enrolled_on"]  # terms, not dates
        assert len(written) == len(tiny[spec.name])
    enrollments = pd.read_csv(out / "enrollments.csv")
    assert enrollments["grade"].isna().sum() == tiny["enrollments.csv"]["grade"].isna().sum()
    assert (
        (out / "terms.csv")
        .read_text(encoding="utf-8")
        .startswith("code,ordinal,starts_on\n2018-1,1,2018-03-01")
    )


def test_generated_frames_load_into_the_database(engine: Engine, tiny: dict[str, pd.DataFrame]) -> None:
    report = import_tables(engine, tiny)
    assert report.rows_written["enrollments.csv"] == len(tiny["enrollments.csv"])
    counts = {
        "student": len(tiny["students.csv"]),
        "module": len(tiny["modules.csv"]),
        "enrollment": len(tiny["enrollments.csv"]),
        "prerequisite": len(tiny["prerequisites.csv"]),
        "offering": len(tiny["offerings.csv"]),
        "demand": len(tiny["demand.csv"]),
        "goal": len(tiny["goals.csv"]),
    }
    for table, expected in counts.items():
        assert _rows(engine, f"SELECT count(*) FROM {table}") == [(expected,)], table
    null_set_terms = int(tiny["goals.csv"]["set_term"].isna().sum())
    assert _rows(engine, "SELECT count(*) FROM goal WHERE set_term IS NULL") == [(null_set_terms,)]


def test_csv_route_and_direct_route_give_the_same_rows(tiny: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    engines = []
    for name in ("direct", "csv"):
        url = f"sqlite:///{tmp_path / name}.db"
        upgrade(url)
        engines.append(make_engine(url))
    direct, via_csv = engines
    import_tables(direct, tiny)
    write_csv_set(tiny, tmp_path / "set")
    import_directory(via_csv, tmp_path / "set")
    for query in (ENROLLMENTS, GOALS, PREREQUISITES, MODULES, DEMANDS, OCCUPATION_COMPETENCIES, STUDENTS):
        assert _rows(direct, query) == _rows(via_csv, query)
    for engine in engines:
        engine.dispose()


def test_committed_sample_is_what_the_generator_writes(tiny: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    """data/sample must be regenerated whenever the generator's output changes."""
    sample = Path(__file__).resolve().parents[3] / "data" / "sample"
    write_csv_set(tiny, tmp_path)
    for spec in CSV_FILES:
        assert (sample / spec.name).read_bytes() == (tmp_path / spec.name).read_bytes(), (
            f"data/sample/{spec.name} is stale: run pathways generate --size tiny --seed 7 --out data/sample"
        )


def test_a_failed_write_leaves_no_files_behind(tiny: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    broken = {"terms.csv": tiny["terms.csv"], "modules.csv": None}
    with pytest.raises(AttributeError):
        write_csv_set(broken, tmp_path)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
