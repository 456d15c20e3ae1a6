"""`pathways generate`: a CSV set with --out, straight into a real SQLite database without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from pathways.cli import app
from records.csv_formats import CSV_FILES
from records.db import make_engine


def test_generate_out_writes_the_csv_set_and_reports_rows(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["generate", "--size", "tiny", "--seed", "3", "--out", str(tmp_path / "set")]
    )
    assert result.exit_code == 0, result.output
    for spec in CSV_FILES:
        assert (tmp_path / "set" / spec.name).is_file(), spec.name
    students = (tmp_path / "set" / "students.csv").read_text(encoding="utf-8").splitlines()
    assert f"students.csv: {len(students) - 1} rows" in result.output


def test_generate_without_out_fills_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'generated.db'}"
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["generate", "--size", "tiny", "--seed", "7"])
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    with engine.connect() as connection:
        students = connection.execute(text("SELECT count(*) FROM student")).scalar_one()
        enrollments = connection.execute(text("SELECT count(*) FROM enrollment")).scalar_one()
    engine.dispose()
    assert students == 200
    assert enrollments > 10 * students


def test_generate_refuses_an_unknown_size_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate", "--size", "huge", "--out", str(tmp_path / "never")])
    assert result.exit_code != 0
    assert "unknown size 'huge'" in result.output
    assert not (tmp_path / "never").exists()
