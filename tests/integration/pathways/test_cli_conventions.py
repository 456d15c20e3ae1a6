"""``pathways`` as a user runs it, in real processes, over a real database (issue 11).

A tiny institution is generated and trained once for the module with the command line itself; each test
then runs commands with standard output and standard error captured apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pathways.cli import app

PATHWAYS = str(Path(sys.executable).with_name("pathways"))


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(env: dict[str, str], *args: str, timeout: float = 300) -> Run:
    done = subprocess.run(
        [PATHWAYS, *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Run(done.returncode, done.stdout, done.stderr)


def environment(folder: Path, database_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PATHWAYS_")}
    env.update(
        PATHWAYS_DATABASE_URL=database_url,
        PATHWAYS_ARTIFACTS_DIR=str(folder / "models"),
        PATHWAYS_REPORTS_DIR=str(folder / "reports"),
        PATHWAYS_LOCK_PATH=str(folder / "train.lock"),
        COLUMNS="60",  # a narrow terminal's width, which rich also applies to pipes
    )
    return env


@pytest.fixture(scope="module")
def trained_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The tiny institution (seed 7), generated and trained with ``pathways generate`` and ``train``."""
    folder = tmp_path_factory.mktemp("cli")
    env = environment(folder, f"sqlite:///{folder / 'pathways.db'}")
    for args in (("generate", "--size", "tiny", "--seed", "7"), ("train",)):
        done = run(env, *args, timeout=600)
        assert done.code == 0, done.err
        assert "alembic" not in done.err, done.err
        assert " INFO " in done.err and " INFO " not in done.out  # logs on stderr only
    assert "steps" not in done.out and "report:" in done.out  # train's progress bar too
    return env


def _student(env: dict[str, str]) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(env["PATHWAYS_DATABASE_URL"])
    with engine.connect() as conn:
        student = conn.execute(text("SELECT id FROM student WHERE status = 'active' ORDER BY id")).scalar()
    engine.dispose()
    assert isinstance(student, str)
    return student


@pytest.mark.slow
def test_evaluate_json_is_the_whole_of_standard_output(trained_env: dict[str, str], tmp_path: Path) -> None:
    """`pathways evaluate --json > f`: f parses with json.load; the logs went to stderr, without Alembic."""
    target = tmp_path / "evaluation.json"
    with target.open("w") as out:
        done = subprocess.run(
            [PATHWAYS, "evaluate", "--json"], env=trained_env, stdout=out, stderr=subprocess.PIPE, text=True
        )
    assert done.returncode == 0, done.stderr
    with target.open() as stored:
        evaluation = json.load(stored)
    assert set(evaluation["models"]) >= {"hybrid", "popularity", "sequence"}
    log_lines = done.stderr.splitlines()
    assert any(" INFO " in line for line in log_lines), done.stderr  # the logs are there, on stderr
    assert not any("alembic" in line for line in log_lines)


@pytest.mark.slow
def test_evaluate_table_is_not_truncated_in_a_pipe_and_quiet_logs_nothing(
    trained_env: dict[str, str],
) -> None:
    done = run(trained_env, "-q", "evaluate")
    assert done.code == 0, done.err
    assert done.err == ""
    assert "…" not in done.out
    for name in ("popularity", "sequence", "collaborative", "competency_gap", "precision@10"):
        assert name in done.out
    hybrid = next(line for line in done.out.splitlines() if "hybrid" in line)
    assert all(len(cell) == 6 for cell in hybrid.replace("│", " ").split()[1:])  # 0.7098, all 4 decimals


def test_verbose_shows_the_migration_log(tmp_path: Path) -> None:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    quiet = run(env, "db", "upgrade")
    assert quiet.code == 0, quiet.err
    assert quiet.err == "" and quiet.out.strip() == "database at revision head"
    env["PATHWAYS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'b.db'}"
    verbose = run(env, "-v", "db", "upgrade")
    assert verbose.code == 0
    assert "alembic.runtime.migration" in verbose.err and "alembic" not in verbose.out


@pytest.mark.slow
def test_recommend_json_parses_and_shows_codes_titles_and_credits(trained_env: dict[str, str]) -> None:
    student = _student(trained_env)
    done = run(trained_env, "recommend", student, "--k", "4", "--json")
    assert done.code == 0, done.err
    answer = json.loads(done.out)
    assert answer["student_id"] == student and len(answer["items"]) == 4
    for item in answer["items"]:
        assert item["code"] and item["title"] and item["credits"] > 0
    table = run(trained_env, "recommend", student, "--k", "4")
    assert table.code == 0, table.err
    for item in answer["items"]:
        assert item["code"] in table.out and item["title"] in table.out
        assert item["module_id"] not in table.out  # internal ids stay internal
    assert "credits" in table.out and "…" not in table.out


@pytest.mark.slow
def test_occupation_by_code_or_title_fragment(trained_env: dict[str, str]) -> None:
    student = _student(trained_env)
    found = run(trained_env, "occupations", "--search", "scien", "--json")
    assert found.code == 0, found.err
    assert json.loads(found.out) == [{"id": "15-2051.00", "title": "Data Scientists"}]

    by_fragment = run(trained_env, "recommend", student, "--k", "3", "--occupation", "data scien", "--json")
    by_code = run(trained_env, "recommend", student, "--k", "3", "--occupation", "15-2051.00", "--json")
    assert by_fragment.code == 0 and by_code.code == 0, by_fragment.err + by_code.err
    assert json.loads(by_fragment.out) == json.loads(by_code.out)
    assert json.loads(by_code.out)["occupation_title"] == "Data Scientists"

    ambiguous = run(trained_env, "recommend", student, "--occupation", "analyst")
    assert ambiguous.code == 1 and ambiguous.out == ""
    assert ambiguous.err.count("\n") == 1 and "pathways occupations --search" in ambiguous.err
    unknown = run(trained_env, "recommend", student, "--occupation", "astronaut")
    assert unknown.code == 1 and "no occupation" in unknown.err and "pathways occupations" in unknown.err


@pytest.mark.slow
def test_models_list_json(trained_env: dict[str, str]) -> None:
    done = run(trained_env, "models", "list", "--json")
    assert done.code == 0, done.err
    versions = json.loads(done.out)
    assert len(versions) == 1 and versions[0]["promoted"] is True


READ_ONLY = [
    ["recommend", "S1"],
    ["evaluate"],
    ["models", "list"],
    ["users", "list"],
    ["occupations"],
    ["export-recommendations", "--out", "{tmp}/out.csv"],
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_commands_create_no_database(command: list[str], tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.db"
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    result = CliRunner().invoke(app, args, env={"PATHWAYS_DATABASE_URL": f"sqlite:///{target}"})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: no database at {target}: create it with `pathways db upgrade` " + (
        "(or `pathways demo`)\n"
    )
    assert not target.parent.exists() and not (tmp_path / "out.csv").exists()


def test_a_read_only_command_does_not_migrate_an_empty_database(tmp_path: Path) -> None:
    target = tmp_path / "empty.db"
    target.touch()
    result = CliRunner().invoke(app, ["models", "list"], env={"PATHWAYS_DATABASE_URL": f"sqlite:///{target}"})
    assert result.exit_code == 1 and "holds no Pathways schema" in result.stderr
    assert target.stat().st_size == 0


@pytest.mark.parametrize(
    "url,reason",
    [
        ("postgresql://postgres@127.0.0.1:1/nowhere", "cannot be used: connection failed"),
        ("postgres://postgres@127.0.0.1:1/nowhere", "cannot be used: connection failed"),
        ("mysql://root@127.0.0.1/pathways", "unsupported database 'mysql'"),
        ("sqlite//var/pathways.db", "cannot be parsed"),
    ],
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["models", "list"]], ids=" ".join)
def test_database_errors_are_one_line(url: str, reason: str, command: list[str], tmp_path: Path) -> None:
    done = run(environment(tmp_path, url), *command, timeout=120)
    assert done.code == 1
    assert done.out == ""
    assert done.err.startswith("error: ") and done.err.count("\n") == 1, done.err
    assert reason in done.err


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgres://", "postgresql://"])
def test_postgres_urls_as_users_write_them(scheme: str, postgres_url: str, tmp_path: Path) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    written = scheme + postgres_url.removeprefix("postgresql+psycopg://")
    env = environment(tmp_path, written)
    upgraded = run(env, "db", "upgrade")
    assert upgraded.code == 0, upgraded.err
    added = run(env, "users", "add", "root", "--role", "admin")
    assert added.code == 0, added.err
    listed = run(env, "users", "list", "--json")
    assert listed.code == 0, listed.err
    assert [user["name"] for user in json.loads(listed.out)] == ["root"]


@pytest.fixture
def users_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", f"sqlite:///{tmp_path / 'users.db'}")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    yield runner


def test_users_token_says_whose_token_on_stderr(users_env: CliRunner) -> None:
    added = users_env.invoke(app, ["users", "add", "dana", "--role", "admin"])
    assert added.exit_code == 0, added.output
    assert added.stderr == "created dana (admin)\n"
    token = added.stdout.strip()
    assert len(token.splitlines()) == 1 and len(token) >= 40

    rotated = users_env.invoke(app, ["users", "token", "dana"])
    assert rotated.exit_code == 0
    assert rotated.stderr == "new token for dana (admin)\n"
    assert rotated.stdout.strip() != token and len(rotated.stdout.strip().splitlines()) == 1

    missing = users_env.invoke(app, ["users", "token", "nobody"])
    assert missing.exit_code == 1 and missing.stdout == "" and missing.stderr.count("\n") == 1


def test_users_list_table_and_json(users_env: CliRunner) -> None:
    for name in ("zoe", "amir"):
        assert users_env.invoke(app, ["users", "add", name, "--role", "admin"]).exit_code == 0
    listed = users_env.invoke(app, ["users", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [row["name"] for row in rows] == ["amir", "zoe"]
    assert set(rows[0]) >= {"name", "role", "student_id", "advisor_id", "state", "last_used_at"}
    assert listed.stdout.count("\n") == 1  # one JSON document on one line
    table = users_env.invoke(app, ["users", "list"])
    assert table.exit_code == 0 and table.stderr == ""
    lines = table.stdout.splitlines()
    assert lines[0].startswith("name\trole") and [line.split("\t")[0] for line in lines[1:]] == [
        "amir",
        "zoe",
    ]


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    env["PATHWAYS_PORT"] = "eighty"
    done = run(env, "models", "list")
    assert done.code == 1 and done.out == ""
    assert done.err.startswith("error: bad setting PATHWAYS_PORT: ") and done.err.count("\n") == 1
