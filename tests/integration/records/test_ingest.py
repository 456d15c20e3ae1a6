"""The CSV-set import on SQLite and PostgreSQL: atomic, validated, idempotent, tolerant of partial sets."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from pathways.cli import app
from records.ingest import ImportRejected, Rejection, import_directory, import_tables, read_csv_set
from records.schema import (
    RECORD_TABLES,
    Competency,
    Demand,
    Enrollment,
    Module,
    Offering,
    Prerequisite,
    Program,
    Student,
    Term,
)
from tests.integration.records.csv_set import FILES, write_csv_set


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.__tablename__: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in RECORD_TABLES
        }


def contents_checksum(engine: Engine) -> str:
    """sha256 over every record table's rows, sorted, as text."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table in RECORD_TABLES:
            rows = conn.execute(select(table.__table__)).all()  # type: ignore[call-overload]
            for row in sorted(repr(tuple(r)) for r in rows):
                digest.update(row.encode())
    return digest.hexdigest()


def many_enrollments(students: int = 30) -> tuple[str, str]:
    """students.csv and enrollments.csv texts with ``students`` students and 4 rows each (no duplicates)."""
    student_lines = ["id,program_id,entry_term,entry_route,advisor_id,max_credits_per_term,status"]
    enrollment_lines = ["student_id,module_id,term,status,grade"]
    for number in range(1, students + 1):
        student_lines.append(f"S{number},P1,2020-1,general,A1,30,active")
        for module, term in (("M1", "2020-1"), ("M3", "2020-1"), ("M2", "2020-2"), ("M4", "2021-1")):
            enrollment_lines.append(f"S{number},{module},{term},completed,{60 + number % 40}")
    return "\n".join(student_lines) + "\n", "\n".join(enrollment_lines) + "\n"


def run_import(database_url: str, directory: Path, *extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        app, ["import", str(directory), *extra], env={"PATHWAYS_DATABASE_URL": database_url}
    )


# ---------------------------------------------------------------------------------------------
# A whole set, twice
# ---------------------------------------------------------------------------------------------


def test_a_full_set_imports_and_a_second_import_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    directory = write_csv_set(tmp_path / "set")
    report = import_directory(engine, directory)
    counts = table_counts(engine)
    assert counts["enrollment"] == 8 and counts["module"] == 4 and counts["term"] == 3
    assert report.rows_written["enrollments.csv"] == 8 and report.rows_read["goals.csv"] == 2
    checksum = contents_checksum(engine)

    again = import_directory(engine, directory)
    assert table_counts(engine) == counts
    assert contents_checksum(engine) == checksum
    assert sum(again.rows_written.values()) == 0
    assert again.unchanged == report.rows_written

    with engine.connect() as conn:
        # status derived from the grade and the module's pass grade (M3 passes at 50)
        statuses = dict(
            conn.execute(
                select(Enrollment.module_id, Enrollment.status)
                .where(Enrollment.student_id == "S2")
                .where(Enrollment.term_code == "2020-1")
            ).all()
        )
        assert statuses == {"M1": "failed", "M3": "completed"}
        assert conn.execute(select(Module.pass_grade).where(Module.id == "M2")).scalar_one() == 60.0
        assert conn.execute(select(Student.status).where(Student.id == "S2")).scalar_one() == "active"
        starts = dict(conn.execute(select(Demand.period, Demand.period_start)).all())
        assert str(starts["2020-Q3"]) == "2020-07-01" and str(starts["2021-03"]) == "2021-03-01"
        assert str(starts["2020"]) == "2020-01-01"


def test_changed_rows_are_updated_and_counted(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write_csv_set(tmp_path / "first"))
    changed = dict(FILES)
    changed["modules.csv"] = FILES["modules.csv"].replace("Algebra", "Linear Algebra")
    report = import_directory(engine, write_csv_set(tmp_path / "second", changed))
    assert report.rows_updated["modules.csv"] == 1 and report.unchanged["modules.csv"] == 3
    with engine.connect() as conn:
        assert conn.execute(select(Module.title).where(Module.id == "M1")).scalar_one() == "Linear Algebra"


SAMPLE = Path(__file__).parents[3] / "data" / "sample"


@pytest.fixture(scope="module")
def tiny_institution() -> dict[str, pd.DataFrame]:
    """``generate("tiny", 7)``, made once for the module."""
    synthetic = pytest.importorskip("records.synthetic")
    tables: dict[str, pd.DataFrame] = synthetic.generate("tiny", 7)
    return tables


@pytest.mark.parametrize("source", ["generated", "sample"])
def test_a_generated_csv_set_matches_a_direct_import_and_reimports_unchanged(
    engine: Engine, tmp_path: Path, source: str, tiny_institution: dict[str, pd.DataFrame]
) -> None:
    synthetic = pytest.importorskip("records.synthetic")
    tables = tiny_institution
    if source == "sample":
        if not (SAMPLE / "enrollments.csv").is_file():
            pytest.skip("data/sample is not committed yet")
        directory = SAMPLE
    else:
        directory = tmp_path / "tiny"
        synthetic.write_csv_set(tables, directory)
    import_directory(engine, directory)
    from_csv = table_counts(engine)
    checksum = contents_checksum(engine)
    again = import_directory(engine, directory)
    assert sum(again.rows_written.values()) == 0
    assert table_counts(engine) == from_csv
    assert contents_checksum(engine) == checksum

    from records.db import make_engine, upgrade

    other_url = f"sqlite:///{tmp_path / 'direct.db'}"
    upgrade(other_url)
    direct = make_engine(other_url)
    import_tables(direct, tables)
    assert table_counts(direct) == from_csv
    assert from_csv["enrollment"] == len(tables["enrollments.csv"]) > 0
    direct.dispose()


# ---------------------------------------------------------------------------------------------
# Rejections: nothing written, every problem named
# ---------------------------------------------------------------------------------------------


def test_a_bad_grade_on_line_57_is_rejected_through_the_cli(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    files = dict(FILES)
    files["students.csv"], enrollments = many_enrollments()
    lines = enrollments.splitlines()
    lines[56] = lines[56].rsplit(",", 1)[0] + ",140"  # file line 57
    files["enrollments.csv"] = "\n".join(lines) + "\n"
    directory = write_csv_set(tmp_path / "set", files)
    before = table_counts(engine)

    result = run_import(database_url, directory)

    assert result.exit_code == 1
    assert "enrollments.csv:57 grade: 140 is above the maximum 100" in result.output
    assert "nothing written" in result.output
    assert table_counts(engine) == before


def test_every_rejection_is_listed_and_nothing_is_written(engine: Engine, tmp_path: Path) -> None:
    files = dict(FILES)
    files["students.csv"], enrollments = many_enrollments()
    lines = enrollments.splitlines()
    lines[1] = "S1,M1,2020-1,completed,abc"  # line 2: not a number
    lines[9] = "S404,M1,2020-1,completed,70"  # line 10: unknown student
    lines[20] = lines[21]  # lines 21 and 22 repeat a key
    lines[30] = "S8,M2,2020-2,passed,70"  # line 31: status not allowed
    files["enrollments.csv"] = "\n".join(lines) + "\n"
    files["modules.csv"] = FILES["modules.csv"].replace(
        "M3,ELE110,Wiring practice,,vocational", "M3,ELE110,Wiring practice,,trade"
    )
    files["prerequisites.csv"] = FILES["prerequisites.csv"] + "M1,1,M4,\n"  # M1 → M4 → M2 → M1
    directory = write_csv_set(tmp_path / "set", files)
    before = table_counts(engine)

    with pytest.raises(ImportRejected) as caught:
        import_directory(engine, directory)

    found = {(r.file, r.line, r.column) for r in caught.value.rejections}
    assert ("enrollments.csv", 2, "grade") in found
    assert ("enrollments.csv", 10, "student_id") in found
    assert ("enrollments.csv", 22, "student_id") in found
    assert ("enrollments.csv", 31, "status") in found
    assert ("modules.csv", 4, "track") in found
    cycle = [r for r in caught.value.rejections if "cycle" in r.reason]
    assert {r.line for r in cycle} == {2, 3, 5}
    assert "M1 → M2 → M4" in cycle[0].reason
    duplicate = next(r for r in caught.value.rejections if r.line == 22)
    assert "duplicate key" in duplicate.reason and "line 21" in duplicate.reason
    assert table_counts(engine) == before


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "enrollments.csv",
            b"student_id,module_id,term,status,grade\nS1,M1,2020-1,completed,70,extra\n",
            (2, "malformed row"),
        ),
        ("modules.csv", "id,title\nM1,Alg\xe8bre\n".encode("latin-1"), (2, "not UTF-8")),
        ("enrollments.csv", b"student_id,module_id,grade\nS1,M1,70\n", (1, "required column missing")),
        ("offerings.csv", b"module_id,term\nM1,2020-1\nM9,2020-1\n", (3, "unknown module 'M9'")),
        ("offerings.csv", b"module_id,term\nM1,2020-1\nM1,2020-1\n", (3, "duplicate key (module_id, term)")),
        (
            "prerequisites.csv",
            b"module_id,group,requires_module_id\nM2,1,M1\nM1,1,M2\n",
            (3, "prerequisite cycle among modules M1 → M2"),
        ),
    ],
    ids=["ragged", "encoding", "missing-column", "unknown-id", "duplicate-key", "cycle"],
)
def test_malformed_files_are_rejected_with_their_line(
    database_url: str, engine: Engine, tmp_path: Path, name: str, content: bytes, expected: tuple[int, str]
) -> None:
    directory = write_csv_set(tmp_path / "set")
    (directory / name).write_bytes(content)
    before = table_counts(engine)
    result = run_import(database_url, directory)
    assert result.exit_code == 1
    line, reason = expected
    assert f"{name}:{line}" in result.output and reason in result.output
    assert table_counts(engine) == before


def test_an_id_spelt_in_other_unicode_code_points_is_named_as_such(engine: Engine) -> None:
    """``Modül`` with ``ü`` as one code point in modules.csv and as ``u`` plus a combining mark elsewhere:
    the two look alike, and the rejection says why they differ."""
    composed, decomposed = "Mod\u00fcl-1", "Modu\u0308l-1"
    tables = {
        "modules.csv": pd.DataFrame({"id": [composed, "M2"]}),
        "students.csv": pd.DataFrame({"id": ["S1"]}),
        "terms.csv": pd.DataFrame({"code": ["2020-1"], "ordinal": [1]}),
        "enrollments.csv": pd.DataFrame(
            {"student_id": ["S1", "S1"], "module_id": ["M2", decomposed], "term": ["2020-1", "2020-1"]}
        ),
    }
    with pytest.raises(ImportRejected) as caught:
        import_tables(engine, tables)
    [rejection] = caught.value.rejections
    assert (rejection.file, rejection.line, rejection.column) == ("enrollments.csv", 3, "module_id")
    assert rejection.reason == (
        f"unknown module {decomposed!r}: the same text as {composed!r} in other Unicode code points"
        " (save both files in one normal form, NFC)"
    )


def test_a_rejection_leaves_earlier_imports_intact(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write_csv_set(tmp_path / "good"))
    checksum = contents_checksum(engine)
    files = dict(FILES)
    files["modules.csv"] = FILES["modules.csv"].replace("Algebra", "Changed") + "M9,X,,,academic,,9,5,,,\n"
    with pytest.raises(ImportRejected) as caught:
        import_directory(engine, write_csv_set(tmp_path / "bad", files))
    assert caught.value.rejections == [Rejection("modules.csv", 6, "level", "9 is above the maximum 4")]
    assert contents_checksum(engine) == checksum


# ---------------------------------------------------------------------------------------------
# Partial sets, odd codes, extra columns
# ---------------------------------------------------------------------------------------------


def test_enrollments_alone_need_allow_uncatalogued(database_url: str, engine: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "log"
    directory.mkdir()
    (directory / "enrollments.csv").write_text(
        "student_id,module_id,term,grade\nS1,M1,2019-10,55\nS1,M2,2019-2,75\nS2,M1,2020-1,\n",
        encoding="utf-8",
    )
    refused = run_import(database_url, directory)
    assert refused.exit_code == 1 and "--allow-uncatalogued" in refused.output
    assert table_counts(engine)["student"] == 0

    accepted = run_import(database_url, directory, "--allow-uncatalogued")
    assert accepted.exit_code == 0, accepted.output
    with engine.connect() as conn:
        students = conn.execute(select(Student.id, Student.program_id).order_by(Student.id)).all()
        assert students == [("S1", None), ("S2", None)]
        assert conn.execute(select(Module.track).where(Module.id == "M1")).scalar_one() is None
        terms = conn.execute(select(Term.code).order_by(Term.ordinal)).scalars().all()
        assert terms == ["2019-2", "2019-10", "2020-1"]
        statuses = dict(
            conn.execute(
                select(Enrollment.module_id, Enrollment.status).where(Enrollment.student_id == "S1")
            ).all()
        )
        assert statuses == {"M1": "failed", "M2": "completed"}
        assert conn.execute(select(func.count()).select_from(Offering)).scalar_one() == 0
    assert run_import(database_url, directory, "--allow-uncatalogued").exit_code == 0
    assert table_counts(engine)["enrollment"] == 3


def test_odd_term_codes_without_terms_csv_are_ordered_in_time(engine: Engine) -> None:
    tables = {
        "enrollments.csv": pd.DataFrame(
            {
                "student_id": ["S1", "S1", "S1", "S1"],
                "module_id": ["M1", "M2", "M3", "M4"],
                "term": ["Spring 2020", "Fall 2019", "Summer 2020", "Fall 2020"],
                "grade": [70.0, 80.0, None, 65.0],
            }
        )
    }
    import_tables(engine, tables, allow_uncatalogued=True)
    with engine.connect() as conn:
        terms = conn.execute(select(Term.code).order_by(Term.ordinal)).scalars().all()
    assert terms == ["Fall 2019", "Spring 2020", "Summer 2020", "Fall 2020"]


def test_unorderable_term_codes_are_rejected_with_their_lines(engine: Engine) -> None:
    tables = {
        "enrollments.csv": pd.DataFrame(
            {"student_id": ["S1", "S1"], "module_id": ["M1", "M2"], "term": ["2020-1", "the rainy season"]}
        )
    }
    with pytest.raises(ImportRejected) as caught:
        import_tables(engine, tables, allow_uncatalogued=True)
    [rejection] = caught.value.rejections
    assert (rejection.file, rejection.line, rejection.column) == ("enrollments.csv", 3, "term")
    assert "terms.csv with an ordinal" in rejection.reason
    assert table_counts(engine)["term"] == 0


def test_two_spellings_of_one_time_are_rejected_with_their_lines(engine: Engine) -> None:
    """``Spring 2020`` and ``2020-2`` are both (2020, 2): which comes first cannot be told."""
    tables = {
        "enrollments.csv": pd.DataFrame(
            {
                "student_id": ["S1", "S1", "S1"],
                "module_id": ["M1", "M2", "M3"],
                "term": ["2020-1", "Spring 2020", "2020-2"],
            }
        )
    }
    with pytest.raises(ImportRejected) as caught:
        import_tables(engine, tables, allow_uncatalogued=True)
    assert [(r.line, r.column) for r in caught.value.rejections] == [(3, "term"), (4, "term")]
    assert caught.value.rejections[0].reason == (
        "term codes '2020-2' and 'Spring 2020' name the same time (year 2020, part 2): spell each term one "
        "way, or give terms.csv with an ordinal per code"
    )
    assert table_counts(engine)["term"] == 0


def test_a_new_term_among_stored_codes_that_tell_no_time_is_rejected_with_its_line(engine: Engine) -> None:
    """Terms first ordered by a terms.csv of their own (``Michaelmas``, ``Hilary``); a later log naming a
    new code cannot be placed among them: its lines say so (it failed on the database's foreign key)."""
    terms = pd.DataFrame({"code": ["Michaelmas", "Hilary", "Trinity"], "ordinal": [1, 2, 3]})
    log = pd.DataFrame({"student_id": ["S1"], "module_id": ["M1"], "term": ["Hilary"]})
    import_tables(engine, {"terms.csv": terms, "enrollments.csv": log}, allow_uncatalogued=True)
    later = pd.DataFrame(
        {"student_id": ["S1", "S1"], "module_id": ["M2", "M3"], "term": ["Trinity", "2020-1"]}
    )
    with pytest.raises(ImportRejected) as caught:
        import_tables(engine, {"enrollments.csv": later}, allow_uncatalogued=True)
    [rejection] = caught.value.rejections
    assert (rejection.file, rejection.line, rejection.column) == ("enrollments.csv", 3, "term")
    assert rejection.reason.startswith("cannot place the new term '2020-1' among the database's terms")
    assert table_counts(engine)["term"] == 3


def test_no_terms_csv_creates_terms_and_extra_columns_are_noted(engine: Engine, tmp_path: Path) -> None:
    files = {name: text for name, text in FILES.items() if name != "terms.csv"}
    files["modules.csv"] = FILES["modules.csv"].replace("pass_grade\n", "pass_grade,colour\n", 1)
    files["modules.csv"] = (
        "\n".join(
            line if i == 0 else line + ",blue" for i, line in enumerate(files["modules.csv"].splitlines())
        )
        + "\n"
    )
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "notes.csv").write_text("anything\n", encoding="utf-8")
    report = import_directory(engine, write_csv_set(tmp_path / "set", files))
    assert any("modules.csv: ignored unknown column(s) colour" in note for note in report.notes)
    assert any("notes.csv" in note for note in report.notes)
    assert any("terms.csv" in note and "absent" in note for note in report.notes)
    with engine.connect() as conn:
        terms = conn.execute(select(Term.code, Term.ordinal).order_by(Term.ordinal)).all()
    assert terms == [("2020-1", 1), ("2020-2", 2), ("2021-1", 3)]


def test_terms_csv_order_wins_and_later_sets_add_terms_in_order(engine: Engine) -> None:
    terms = pd.DataFrame({"code": ["B", "A"], "starts_on": ["2020-09-01", "2020-02-01"]})
    import_tables(engine, {"terms.csv": terms})
    with engine.connect() as conn:
        assert conn.execute(select(Term.code).order_by(Term.ordinal)).scalars().all() == ["A", "B"]
    unknown_term = {
        "terms.csv": terms,
        "modules.csv": pd.DataFrame({"id": ["M1"]}),
        "offerings.csv": pd.DataFrame({"module_id": ["M1"], "term": ["C"]}),
    }
    with pytest.raises(ImportRejected, match="unknown term 'C'"):
        import_tables(engine, unknown_term)
    assert table_counts(engine)["module"] == 0


def test_catalog_only_and_tables_with_typed_values(engine: Engine) -> None:
    tables = {
        "competencies.csv": pd.DataFrame({"id": ["C1"], "name": ["SQL"], "kind": ["Skill"]}),
        "modules.csv": pd.DataFrame({"id": ["M1", "M2"], "level": [1, 2], "credits": [5.0, 7.5]}),
        "prerequisites.csv": pd.DataFrame({"module_id": ["M2"], "group": [1], "requires_module_id": ["M1"]}),
        "programs.csv": pd.DataFrame({"id": ["P1"], "name": ["Data"]}),
    }
    report = import_tables(engine, tables)
    assert report.rows_written == {
        "competencies.csv": 1,
        "modules.csv": 2,
        "prerequisites.csv": 1,
        "programs.csv": 1,
    }
    with engine.connect() as conn:
        assert conn.execute(select(Competency.kind)).scalar_one() == "skill"
        assert conn.execute(select(Prerequisite.group_no)).scalar_one() == 1
        assert conn.execute(select(Program.target_academic)).scalar_one() == 0.0
    assert sum(import_tables(engine, tables).rows_written.values()) == 0


def test_read_csv_set_reports_absent_files(tmp_path: Path) -> None:
    directory = write_csv_set(tmp_path / "set", {"terms.csv": FILES["terms.csv"]})
    frames, rejections, notes = read_csv_set(directory)
    assert list(frames) == ["terms.csv"] and rejections == []
    assert frames["terms.csv"]["__line__"].tolist() == [2, 3, 4]
    assert "enrollments.csv" in notes[0]


def test_a_later_set_slots_new_terms_between_stored_ones(engine: Engine) -> None:
    def enrollments(term: str, module: str) -> dict[str, pd.DataFrame]:
        return {
            "enrollments.csv": pd.DataFrame({"student_id": ["S1"], "module_id": [module], "term": [term]})
        }

    import_tables(engine, enrollments("2020-1", "M1"), allow_uncatalogued=True)
    import_tables(engine, enrollments("2021-1", "M2"), allow_uncatalogued=True)
    report = import_tables(engine, enrollments("2020-2", "M3"), allow_uncatalogued=True)
    with engine.connect() as conn:
        terms = conn.execute(select(Term.code, Term.ordinal).order_by(Term.ordinal)).all()
    assert terms == [("2020-1", 1), ("2020-2", 2), ("2021-1", 3)]
    assert report.rows_updated["terms.csv"] == 1  # 2021-1 moved from 2 to 3
