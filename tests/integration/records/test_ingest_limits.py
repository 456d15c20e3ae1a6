"""Import validation of what the database or pandas cannot hold: dates, column lengths, huge fields.

Each check rejects the set as ``file:line column: reason`` with nothing written, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from pathways.cli import app
from records.frames import load_frames
from records.ingest import ImportRejected, import_directory
from records.onet import import_onet_directory
from records.schema import Module, Term
from tests.integration.records.csv_set import FILES, write_csv_set
from tests.integration.records.test_ingest import table_counts


def rejected(engine: Engine, directory: Path) -> list[str]:
    """The rejections of importing ``directory`` as text; fails the test if the import passes."""
    with pytest.raises(ImportRejected) as caught:
        import_directory(engine, directory)
    return [str(r) for r in caught.value.rejections]


def with_files(**changes: str) -> dict[str, str]:
    files = dict(FILES)
    files.update({name.replace("__", "."): text for name, text in changes.items()})
    return files


# ---------------------------------------------------------------------------------------------
# Dates pandas cannot hold
# ---------------------------------------------------------------------------------------------


def test_a_term_starting_in_2449_is_rejected_at_import_with_its_line(engine: Engine, tmp_path: Path) -> None:
    terms = "code,ordinal,starts_on\n2020-1,1,2020-02-01\n2020-2,2,2449-09-01\n2021-1,3,2021-02-01\n"
    problems = rejected(engine, write_csv_set(tmp_path / "set", with_files(terms__csv=terms)))
    assert len(problems) == 1
    assert problems[0].startswith(
        "terms.csv:3 starts_on: '2449-09-01' is outside the dates Pathways can hold"
    )
    assert sum(table_counts(engine).values()) == 0


@pytest.mark.parametrize(
    ("terms", "problem"),
    [
        # Ordinals past 2**31 - 1 imported on SQLite once, then broke training (read as int32).
        (
            "code,ordinal\n2020-1,1000000000\n2020-2,2147483647\n2021-1,3000000000\n",
            "terms.csv:4 ordinal: '3000000000' is outside the whole numbers Pathways can hold"
            " (-2147483648 to 2147483647)",
        ),
        # Dated rows are placed by starts_on and terms ordered by ordinal: a term starting before an
        # earlier-numbered one would put an October enrolment before an April one.
        (
            "code,ordinal,starts_on\n2020-1,1,2020-09-01\n2020-2,2,2020-03-01\n2021-1,3,2021-02-01\n",
            "terms.csv:3 starts_on: starts on 2020-03-01, before a term with a smaller ordinal (starting"
            " 2020-09-01): ordinals and dates must agree",
        ),
    ],
    ids=["ordinal-beyond-32-bits", "dates-against-ordinals"],
)
def test_terms_training_could_not_use_are_rejected_with_their_line(
    engine: Engine, tmp_path: Path, terms: str, problem: str
) -> None:
    problems = rejected(engine, write_csv_set(tmp_path / "set", with_files(terms__csv=terms)))
    assert problems == [problem]
    assert sum(table_counts(engine).values()) == 0


def test_dates_in_range_import_and_load_as_frames(engine: Engine, tmp_path: Path) -> None:
    """The limits are pandas' own: the earliest and latest accepted dates load without OutOfBounds."""
    terms = "code,ordinal,starts_on\n2020-1,1,1677-09-22\n2020-2,2,2020-09-01\n2021-1,3,2262-04-11\n"
    import_directory(engine, write_csv_set(tmp_path / "set", with_files(terms__csv=terms)))
    frames = load_frames(engine, "2021-1")
    assert frames.terms["starts_on"].dt.year.tolist() == [1677, 2020, 2262]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0001-01-01", "is outside the dates Pathways can hold"),
        ("2020-02-30", "not a date (YYYY-MM-DD)"),
        ("2020-13-01", "not a date (YYYY-MM-DD)"),
        ("next spring", "not a date (YYYY-MM-DD)"),
    ],
)
def test_malformed_and_out_of_range_dates_are_rejected(
    engine: Engine, tmp_path: Path, value: str, reason: str
) -> None:
    terms = f"code,ordinal,starts_on\n2020-1,1,2020-02-01\n2020-2,2,{value}\n2021-1,3,2021-02-01\n"
    problems = rejected(engine, write_csv_set(tmp_path / "set", with_files(terms__csv=terms)))
    assert len(problems) == 1
    assert problems[0].startswith("terms.csv:3 starts_on: ")
    assert reason in problems[0] and repr(value) in problems[0]
    assert sum(table_counts(engine).values()) == 0


def test_a_demand_period_beyond_the_date_range_is_rejected(engine: Engine, tmp_path: Path) -> None:
    demand = "occupation_id,region,period,postings,growth\n15-2051.00,north,2449,120,0.08\n"
    problems = rejected(engine, write_csv_set(tmp_path / "set", with_files(demand__csv=demand)))
    assert len(problems) == 1 and problems[0].startswith("demand.csv:2 period: '2449' is outside the dates")


# ---------------------------------------------------------------------------------------------
# Column lengths, read from records/schema.py
# ---------------------------------------------------------------------------------------------


def test_column_lengths_come_from_the_schema(engine: Engine, tmp_path: Path) -> None:
    id_limit = Module.__table__.c.id.type.length  # type: ignore[attr-defined]
    term_limit = Term.__table__.c.code.type.length  # type: ignore[attr-defined]
    title_limit = Module.__table__.c.title.type.length  # type: ignore[attr-defined]
    long_id = "M" * (id_limit + 1)
    long_term = "2020-" + "9" * term_limit
    long_title = "T" * (title_limit + 1)
    files = with_files(
        modules__csv=FILES["modules.csv"]
        + f"{long_id},X1,Long id,,academic,Maths,1,5,offline,10,60\n"
        + f"M9,X2,{long_title},,academic,Maths,1,5,offline,10,60\n"
        + f"M8,X3,{'t' * title_limit},,academic,Maths,1,5,offline,10,60\n",
        terms__csv=FILES["terms.csv"] + f"{long_term},4,2021-09-01\n",
        offerings__csv=FILES["offerings.csv"] + f"M1,{long_term}\n",
    )
    problems = rejected(engine, write_csv_set(tmp_path / "set", files))
    assert f"modules.csv:6 id: {id_limit + 1} characters, longer than the {id_limit} allowed" in problems
    assert f"modules.csv:7 title: {title_limit + 1} characters, longer than the {title_limit} allowed" in (
        problems
    )
    assert f"terms.csv:5 code: {len(long_term)} characters, longer than the {term_limit} allowed" in problems
    assert f"offerings.csv:5 term: {len(long_term)} characters, longer than the {term_limit} allowed" in (
        problems
    )
    assert not any(p.startswith("modules.csv:8") for p in problems), "exactly at the limit is allowed"
    assert not any(p.startswith("(database)") for p in problems), "caught by validation, not the database"
    assert sum(table_counts(engine).values()) == 0


def test_a_long_id_in_an_interaction_log_is_rejected_with_its_line(engine: Engine, tmp_path: Path) -> None:
    """Ids of uncatalogued students and modules are checked too (they become rows of their own)."""
    log = "student_id,module_id,term\nS1,M1,2020-1\n" + f"S2,{'m' * 100},2020-2\n"
    directory = write_csv_set(tmp_path / "set", {"enrollments.csv": log})
    with pytest.raises(ImportRejected) as caught:
        import_directory(engine, directory, allow_uncatalogued=True)
    assert [str(r) for r in caught.value.rejections] == [
        "enrollments.csv:3 module_id: 100 characters, longer than the 64 allowed"
    ]
    assert sum(table_counts(engine).values()) == 0


# ---------------------------------------------------------------------------------------------
# A 10 MB field
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("quoted", [False, True])
def test_a_ten_megabyte_field_is_rejected_with_its_line(engine: Engine, tmp_path: Path, quoted: bool) -> None:
    huge = "x" * (10 * 1024 * 1024)
    value = f'"{huge}"' if quoted else huge
    modules = FILES["modules.csv"] + f"M9,X9,Big,{value},academic,Maths,1,5,offline,10,60\n"
    problems = rejected(engine, write_csv_set(tmp_path / "set", with_files(modules__csv=modules)))
    assert len(problems) == 1
    assert problems[0].startswith("modules.csv:6 -: a field of 10,485,76")
    assert problems[0].endswith("bytes is longer than the 131,072 allowed")
    assert sum(table_counts(engine).values()) == 0


# ---------------------------------------------------------------------------------------------
# pathways import FILE
# ---------------------------------------------------------------------------------------------


def test_import_of_a_file_says_it_needs_a_folder(sqlite_url: str, tmp_path: Path) -> None:
    directory = write_csv_set(tmp_path / "set")
    result = CliRunner().invoke(
        app,
        ["import", str(directory / "enrollments.csv")],
        env={"PATHWAYS_DATABASE_URL": sqlite_url},
    )
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "enrollments.csv is a file" in lines[0] and "needs the folder" in lines[0]
    assert str(directory) in lines[0]

    onet = CliRunner().invoke(
        app, ["import-onet", str(directory / "enrollments.csv")], env={"PATHWAYS_DATABASE_URL": sqlite_url}
    )
    assert onet.exit_code != 0 and len(onet.stderr.strip().splitlines()) == 1
    assert "is a file: pathways import-onet needs the folder" in onet.stderr


def test_onet_values_longer_than_their_columns_are_rejected(engine: Engine, tmp_path: Path) -> None:
    onet = Path(__file__).parents[2] / "fixtures" / "onet"
    directory = tmp_path / "onet"
    shutil.copytree(onet, directory)
    occupations = directory / "Occupation Data.txt"
    occupations.write_text(
        occupations.read_text(encoding="utf-8") + f"15-1252.00\t{'D' * 300}\tWrites code.\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRejected) as caught:
        import_onet_directory(engine, directory)
    assert [str(r) for r in caught.value.rejections] == [
        "Occupation Data.txt:5 Title: 300 characters, longer than the 255 allowed"
    ]
    assert sum(table_counts(engine).values()) == 0
