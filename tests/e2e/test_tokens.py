"""Tokens expire and can be revoked, `users list` shows last use, and the page cookie is a server-side
session that sign-out ends (issue 12 point 7; SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from pathways.cli import app as cli
from records.db import session_scope
from records.schema import AuditLog, User, UserSession
from records.users import hash_token
from service.deps import SESSION_COOKIE
from tests.e2e.conftest import World, auth


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> CliRunner:
    """The command line pointed at the test's database."""
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", database_url)
    return CliRunner()


def _users(runner: CliRunner) -> dict[str, dict[str, object]]:
    listed = runner.invoke(cli, ["users", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    # The JSON is the last line (log lines may precede it).
    return {row["name"]: row for row in json.loads(listed.stdout.strip().splitlines()[-1])}


def _sign_in(client: TestClient, token: str, page: str = "/student") -> str:
    client.cookies.clear()
    response = client.post("/signin", data={"token": token, "next": page}, follow_redirects=False)
    assert response.status_code == 303, response.text
    key = response.cookies.get(SESSION_COOKIE)
    assert key
    return key


def test_an_expired_token_is_refused_and_listed_as_expired(
    client: TestClient, world: World, engine: Engine, cli_env: CliRunner
) -> None:
    token = world.tokens["s1"]
    assert client.get("/v1/students/S1/recommendations", headers=auth(token)).status_code == 200
    with session_scope(engine) as session:
        # The default lifetime is 90 days: this token was issued 91 days ago.
        session.execute(
            update(User)
            .where(User.name == "s1")
            .values(token_issued_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=91))
        )
    refused = client.get("/v1/students/S1/recommendations", headers=auth(token))
    assert refused.status_code == 401
    assert refused.json()["detail"] == "unknown, expired or revoked token"
    signin = client.post("/signin", data={"token": token, "next": "/student"}, follow_redirects=False)
    assert signin.status_code == 401 and "expired" in signin.text

    users = _users(cli_env)
    assert users["s1"]["state"] == "token expired"
    assert users["s3"]["state"] == "active"

    # A new token works again, for the full lifetime.
    rotated = cli_env.invoke(cli, ["users", "token", "s1"])
    assert rotated.exit_code == 0, rotated.output
    new_token = rotated.stdout.strip().splitlines()[-1]
    assert client.get("/v1/students/S1/recommendations", headers=auth(new_token)).status_code == 200
    assert _users(cli_env)["s1"]["state"] == "active"


def test_deactivate_revokes_the_token_and_ends_page_sessions(
    client: TestClient, world: World, engine: Engine, cli_env: CliRunner
) -> None:
    token = world.tokens["a1"]
    _sign_in(client, token, "/advisor")
    assert client.get("/advisor").status_code == 200
    assert client.get("/v1/advisors/me/queue", headers=auth(token)).status_code == 200

    done = cli_env.invoke(cli, ["users", "deactivate", "a1"])
    assert done.exit_code == 0, done.output
    assert "deactivated advisor user a1" in done.output

    assert client.get("/v1/advisors/me/queue", headers=auth(token)).status_code == 401
    page = client.get("/advisor")  # the same session cookie
    assert page.status_code == 401 and "Sign in" in page.text
    review = client.post(f"/advisor/reviews/{world.flagged['S1'][0]}", data={"action": "approve"})
    assert review.status_code == 401
    assert _users(cli_env)["a1"]["state"] == "deactivated"
    with session_scope(engine) as session:
        sessions = session.scalars(
            select(UserSession).join(User, User.id == UserSession.user_id).where(User.name == "a1")
        ).all()
        assert sessions and all(s.revoked_at is not None for s in sessions)
        actions = session.scalars(select(AuditLog.action).where(AuditLog.action == "user.deactivate")).all()
        assert actions == ["user.deactivate"]

    unknown = cli_env.invoke(cli, ["users", "deactivate", "nobody"])
    assert unknown.exit_code == 1 and "no user named 'nobody'" in unknown.output


def test_the_page_cookie_is_a_session_id_and_sign_out_revokes_it(
    client: TestClient, world: World, engine: Engine
) -> None:
    token = world.tokens["s1"]
    key = _sign_in(client, token)
    assert key != token and token not in key
    assert "pathways_token" not in client.cookies
    with session_scope(engine) as session:
        stored = session.scalars(select(UserSession).where(UserSession.key_hash == hash_token(key))).one()
        assert stored.revoked_at is None
        # Neither the key nor the token is stored in the clear.
        assert session.scalars(select(UserSession.key_hash)).all() == [hash_token(key)]
    assert client.get("/student").status_code == 200
    # The session key is not an API token.
    assert client.get("/v1/students/S1/recommendations", headers=auth(key)).status_code == 401

    signed_out = client.post("/signout", follow_redirects=False)
    assert signed_out.status_code == 303
    assert (
        SESSION_COOKIE in signed_out.headers["set-cookie"] and "Max-Age=0" in signed_out.headers["set-cookie"]
    )
    # A copy of the cookie taken before sign-out no longer works.
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, key)
    page = client.get("/student")
    assert page.status_code == 401 and "Sign in" in page.text
    with session_scope(engine) as session:
        assert session.scalars(select(UserSession.revoked_at)).one() is not None
    # The API token itself is untouched by signing out of the pages.
    assert client.get("/v1/students/S1/recommendations", headers=auth(token)).status_code == 200


def test_an_expired_page_session_signs_out(client: TestClient, world: World, engine: Engine) -> None:
    _sign_in(client, world.tokens["root"], "/advisor")
    assert client.get("/advisor").status_code == 200
    with session_scope(engine) as session:
        session.execute(
            update(UserSession).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert client.get("/advisor").status_code == 401


def test_users_list_shows_last_use(client: TestClient, world: World, cli_env: CliRunner) -> None:
    before = _users(cli_env)
    assert before["s3"]["last_used_at"] is None and before["a2"]["last_used_at"] is None
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert client.get("/v1/students/S3/recommendations", headers=auth(world.tokens["s3"])).status_code == 200
    # The use is written by a background thread, off the request path.
    deadline = time.monotonic() + 10
    while (last_used := _users(cli_env)["s3"]["last_used_at"]) is None:
        assert time.monotonic() < deadline, "last use of s3 was never recorded"
        time.sleep(0.1)
    assert isinstance(last_used, str)
    assert dt.datetime.fromisoformat(last_used) >= started
    listing = _users(cli_env)
    assert listing["a2"]["last_used_at"] is None  # a2 never called
    table = cli_env.invoke(cli, ["users", "list"])
    assert table.exit_code == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in table.stdout.splitlines() if "\t" in line}
    assert rows["a2"][4] == "never" and rows["s3"][4] == last_used


def test_users_add_refuses_a_student_id_for_another_role(cli_env: CliRunner, world: World) -> None:
    refused = cli_env.invoke(cli, ["users", "add", "boss", "--role", "admin", "--student-id", "S1"])
    assert refused.exit_code == 1
    assert "--student-id is for student users only, not for the admin role" in refused.output
    refused = cli_env.invoke(
        cli, ["users", "add", "kim", "--role", "student", "--student-id", "S1", "--advisor-id", "A1"]
    )
    assert refused.exit_code == 1 and "--advisor-id is for advisor users only" in refused.output
    assert "boss" not in _users(cli_env) and "kim" not in _users(cli_env)


def test_signing_in_again_ends_the_previous_session_and_prunes_ended_ones(
    client: TestClient, world: World, engine: Engine
) -> None:
    first = _sign_in(client, world.tokens["root"], "/advisor")
    client.cookies.set(SESSION_COOKIE, first)
    second = client.post(
        "/signin", data={"token": world.tokens["root"], "next": "/advisor"}, follow_redirects=False
    )
    assert second.status_code == 303
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, first)
    assert client.get("/advisor").status_code == 401  # the first session ended with the second sign-in
    second_key = second.cookies[SESSION_COOKIE]
    with session_scope(engine) as session:
        # The ended first session was deleted with the second sign-in.
        assert session.scalars(select(UserSession.key_hash)).all() == [hash_token(second_key)]
    _sign_in(client, world.tokens["root"], "/advisor")  # another browser: the second stays live
    with session_scope(engine) as session:
        keys = set(session.scalars(select(UserSession.key_hash)).all())
        assert hash_token(second_key) in keys and hash_token(first) not in keys and len(keys) == 2
