"""The O*NET import on SQLite and PostgreSQL: counts, scaling, suppressed rows, absent files, atomicity."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from pathways.cli import app
from records.ingest import ImportRejected
from records.onet import import_onet_directory
from records.schema import Competency, Occupation, OccupationCompetency

FIXTURE = Path(__file__).parents[2] / "fixtures" / "onet"


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (Occupation, Competency, OccupationCompetency)
        )


def rating(engine: Engine, occupation: str, competency: str) -> tuple[float, float | None] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(OccupationCompetency.importance, OccupationCompetency.level).where(
                OccupationCompetency.occupation_id == occupation,
                OccupationCompetency.competency_id == competency,
            )
        ).one_or_none()
    return None if row is None else (row[0], row[1])


def test_fixture_import_counts_scaling_and_idempotence(engine: Engine) -> None:
    report = import_onet_directory(engine, FIXTURE)
    # 3 occupations; 4 skills + 3 knowledge elements + 4 technology commodities; 14 kept ratings
    assert counts(engine) == (3, 11, 14)
    assert any("Abilities.txt" in note and "absent" in note for note in report.notes)
    assert report.rows_read["Skills.txt"] == 14

    importance, level = rating(engine, "15-2051.00", "2.B.3.e") or (None, None)
    assert importance == pytest.approx((4.5 - 1) / 4) and level == pytest.approx(5.0)
    assert rating(engine, "15-2051.00", "T43232609") == (1.0, None)  # hot and in demand
    assert rating(engine, "15-2051.00", "T43232306") == (0.75, None)  # hot only
    assert rating(engine, "29-1141.00", "T43231507") == (0.5, None)  # neither
    # Recommend Suppress = Y on both scales: the rating is dropped
    assert rating(engine, "47-2111.00", "2.B.3.m") is None
    # Not Relevant = Y on the level row only: importance kept, level unknown
    assert rating(engine, "47-2111.00", "2.B.3.e") == (0.0, None)
    with engine.connect() as conn:
        kinds = dict(conn.execute(select(Competency.id, Competency.kind)).all())
        domain = conn.execute(select(Competency.domain).where(Competency.id == "2.C.4.a")).scalar_one()
        python = conn.execute(
            select(Competency.name, Competency.description).where(Competency.id == "T43232609")
        )
        assert python.one() == ("Object or component oriented development software", "Python; R")
    assert (
        kinds["2.A.1.a"] == "skill" and kinds["2.C.5.a"] == "knowledge" and kinds["T43231507"] == "technology"
    )
    assert domain == "Mathematics and Science"

    again = import_onet_directory(engine, FIXTURE)
    assert sum(again.rows_written.values()) == 0 and again.unchanged["occupation_competency"] == 14
    assert counts(engine) == (3, 11, 14)


def test_bad_rows_are_all_listed_and_nothing_is_written(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    directory = tmp_path / "onet"
    shutil.copytree(FIXTURE, directory)
    skills = (directory / "Skills.txt").read_text(encoding="utf-8").splitlines()
    fields = skills[3].split("\t")
    fields[5] = "9.5"  # line 4: an LV above 7
    skills[3] = "\t".join(fields)
    fields = skills[5].split("\t")
    fields[5] = "high"  # line 6: not a number
    skills[5] = "\t".join(fields)
    (directory / "Skills.txt").write_text("\r\n".join(skills) + "\r\n", encoding="utf-8")

    result = CliRunner().invoke(
        app, ["import-onet", str(directory)], env={"PATHWAYS_DATABASE_URL": database_url}
    )

    assert result.exit_code == 1
    assert "Skills.txt:4 Data Value" in result.output and "Skills.txt:6 Data Value" in result.output
    assert counts(engine) == (0, 0, 0)


def test_ratings_of_unknown_occupations_are_rejected(engine: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "onet"
    directory.mkdir()
    shutil.copy(FIXTURE / "Knowledge.txt", directory / "Knowledge.txt")
    with pytest.raises(ImportRejected) as caught:
        import_onet_directory(engine, directory)
    lines = {r.line for r in caught.value.rejections if r.file == "Knowledge.txt"}
    assert lines == {2, 4, 6, 8} and "unknown occupation" in caught.value.rejections[0].reason
    assert counts(engine) == (0, 0, 0)

    shutil.copy(FIXTURE / "Occupation Data.txt", directory / "Occupation Data.txt")
    import_onet_directory(engine, directory)
    assert counts(engine) == (3, 3, 4)


def test_non_utf8_and_missing_columns_are_rejected(engine: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "onet"
    directory.mkdir()
    (directory / "Occupation Data.txt").write_bytes(
        "O*NET-SOC Code\tTitle\tDescription\n11-1011.00\tDirecteur g\xe9n\xe9ral\tx\n".encode("latin-1")
    )
    (directory / "Skills.txt").write_text("O*NET-SOC Code\tElement ID\tData Value\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_onet_directory(engine, directory)
    found = {(r.file, r.line, r.column) for r in caught.value.rejections}
    assert ("Occupation Data.txt", 2, None) in found
    assert ("Skills.txt", 1, "Element Name") in found and ("Skills.txt", 1, "Scale ID") in found
    assert counts(engine) == (0, 0, 0)


def test_technology_flags_may_be_missing_in_older_releases(engine: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "onet"
    directory.mkdir()
    shutil.copy(FIXTURE / "Occupation Data.txt", directory / "Occupation Data.txt")
    lines = (FIXTURE / "Technology Skills.txt").read_text(encoding="utf-8").splitlines()
    without_in_demand = ["\t".join(line.split("\t")[:-1]) for line in lines]
    (directory / "Technology Skills.txt").write_text("\n".join(without_in_demand) + "\n", encoding="utf-8")
    import_onet_directory(engine, directory)
    assert rating(engine, "15-2051.00", "T43232609") == (0.75, None)  # hot; "In Demand" unknown
    assert rating(engine, "29-1141.00", "T43231507") == (0.5, None)
