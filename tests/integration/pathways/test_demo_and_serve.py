"""The demo's accounts say whom their tokens sign in as; ``pathways serve`` flags win over the environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import Engine, select

from pathways.demo import demo_accounts
from records.db import session_scope
from records.ingest import import_tables
from records.schema import Advisor, User
from records.synthetic import generate
from records.users import user_for_token


def _acting_as(engine: Engine, token: str) -> str:
    with session_scope(engine) as session:
        user = user_for_token(session, token)
        assert user is not None
        acting = user.student_id or user.advisor_id
        return f"{user.role} {acting}" if acting else user.role


def test_a_second_demo_prints_whom_its_tokens_sign_in_as(engine: Engine) -> None:
    import_tables(engine, generate("tiny", 7))
    with session_scope(engine) as session:
        first = {account.name: account for account in demo_accounts(session)}
    assert set(first) == {"demo-admin", "demo-advisor", "demo-student"}
    for name in ("demo-advisor", "demo-student"):
        assert first[name].detail == _acting_as(engine, first[name].token)

    # A demo run on other records (or an earlier version of them) created demo-advisor for another advisor.
    with session_scope(engine) as session:
        advisor = session.scalars(select(User).where(User.name == "demo-advisor")).one()
        other = session.scalars(select(Advisor.id).where(Advisor.id != advisor.advisor_id)).first()
        assert other is not None
        advisor.advisor_id = other
    with session_scope(engine) as session:
        second = {account.name: account for account in demo_accounts(session)}
    assert second["demo-advisor"].detail == f"advisor {other}"
    for account in second.values():
        assert account.token != first[account.name].token  # re-issued: the printed token works
        if account.role != "admin":
            assert account.detail == _acting_as(engine, account.token)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_host_and_port_flags_override_the_environment(tmp_path: Path) -> None:
    flag_port, env_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "PATHWAYS_ARTIFACTS_DIR": str(tmp_path / "models"),
        "PATHWAYS_HOST": "192.0.2.1",  # not an address of this machine: serving there would fail
        "PATHWAYS_PORT": str(env_port),
    }
    serve = [str(Path(sys.executable).with_name("pathways")), "serve", "--host", "127.0.0.1"]
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*serve, "--port", str(flag_port)], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{flag_port}/healthz", timeout=5) as response:
                    assert json.loads(response.read()) == {"status": "ok"}
                break
            except OSError:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "pathways serve did not start"
                time.sleep(0.2)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", env_port)) != 0  # nothing listens on PATHWAYS_PORT
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert f"serving on http://127.0.0.1:{flag_port}" in log_path.read_text()
