"""`pathways users add|token` against a real SQLite file."""

from __future__ import annotations

from typer.testing import CliRunner

from pathways.cli import app


def test_users_add_prints_token_last_and_rejects_unknown_student(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "root", "--role", "admin"])
    assert added.exit_code == 0, added.output
    token = added.output.strip().splitlines()[-1]
    assert len(token) >= 40 and " " not in token

    again = runner.invoke(app, ["users", "add", "root", "--role", "admin"])
    assert again.exit_code == 1
    assert "already exists" in again.output

    ghost = runner.invoke(app, ["users", "add", "kim", "--role", "student", "--student-id", "S404"])
    assert ghost.exit_code == 1
    assert "no student with id 'S404'" in ghost.output

    rotated = runner.invoke(app, ["users", "token", "root"])
    assert rotated.exit_code == 0
    assert rotated.output.strip().splitlines()[-1] != token
