"""Benchmark: the CPU of the default list's reads in-process, each way of making them side by side.

Run as ``.venv/bin/python -m bench.default_reads`` with ``PATHWAYS_DATABASE_URL`` pointing at an
institution with a promoted model's batch (e.g. ``pathways generate --size medium --seed 7 && pathways
train``). In one process, ``--rounds`` times, each way in turn answers the same ``--students`` distinct
students of the batch (the caller's token with the student, then the stored rows with the decisions, as
the route reads them), timed with the process CPU clock; the rounds of the ways alternate within
seconds, so other work on a shared machine weighs on all alike. The ways:

- ``shared pool, SQLAlchemy``: a session of the service's pool, its connection switched to autocommit for
  the request on a database server (the read sessions before 3f962ac), each read through SQLAlchemy's
  execution (before 0bcb752);
- ``read pool, SQLAlchemy``: a session of a pool of its own whose connections stay in autocommit
  (3f962ac), each read through SQLAlchemy's execution;
- ``read pool, HotRead``: the same pool, the reads on the DBAPI connection (0bcb752, the route today).

On SQLite the service's read sessions are its ordinary ones (no autocommit switch, no pool of their own):
the first two ways are then the same. Each way's figure is its least round (the one the rest of the
machine disturbed least), with the median; the answers of every way must be the same bytes. Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from records.db import HotRead, current_batch, make_engine, session_factory, session_scope
from records.schema import Recommendation
from records.settings import get_settings
from records.users import add_user
from service import auth, stored
from service.stored import StoredLists


class _ThroughSQLAlchemy:
    """A HotRead's statement run the way it was before HotRead: ``connection.execute``."""

    def __init__(self, hot: HotRead) -> None:
        self.statement = hot.statement

    def rows(self, session: Session, parameters: dict[str, Any]) -> list[Any]:
        return list(session.connection().execute(self.statement, parameters))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()

    settings = get_settings()
    engine = make_engine(settings.database_url)
    with session_scope(engine) as session:
        batch = current_batch(session)
        if batch is None:
            raise SystemExit("bench: no promoted model's batch to read")
        ids = sorted(
            session.scalars(
                select(Recommendation.student_id).where(Recommendation.batch_id == batch.id).distinct()
            )
        )
        _, token = add_user(session, f"bench-reads-{random.randrange(10**9)}", "admin")
    students = random.Random(arguments.seed).sample(ids, min(arguments.students, len(ids)))
    on_server = engine.dialect.name != "sqlite"
    shared: sessionmaker[Session] = (
        session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
        if on_server
        else session_factory(engine)
    )
    read_engine = (
        make_engine(
            settings.database_url,
            isolation_level="AUTOCOMMIT",
            pool_reset_on_return=None,
        )
        if on_server
        else engine
    )
    own: sessionmaker[Session] = session_factory(read_engine)
    lists = StoredLists(settings.fail_risk_threshold)
    hot = {
        "auth": auth._USER_BY_TOKEN_HASH_WITH_STUDENT,
        "rows": stored._CURRENT_ROWS_AND_DECISIONS,
    }
    slow = {name: _ThroughSQLAlchemy(statement) for name, statement in hot.items()}

    def reads(sessions: sessionmaker[Session], statements: dict[str, Any]) -> Callable[[str], bytes]:
        def answer(student_id: str) -> bytes:
            auth._USER_BY_TOKEN_HASH_WITH_STUDENT = statements["auth"]
            stored._CURRENT_ROWS_AND_DECISIONS = statements["rows"]
            with sessions() as session:
                principal, student = auth.authenticate_with_student(session, token, student_id)
                assert principal is not None and student is not None
                answer = lists.default_answer(session, student.id, None, batch.k, None)
            assert isinstance(answer, bytes), f"{student_id}: the stored list does not answer alone"
            return answer

        return answer

    ways = {
        "shared pool, SQLAlchemy": reads(shared, slow),
        "read pool, SQLAlchemy": reads(own, slow),
        "read pool, HotRead": reads(own, hot),
    }
    for answer in ways.values():  # warm-up: pools filled, statements compiled and prepared
        for student_id in students[:50]:
            answer(student_id)
    cpu_ms: dict[str, list[float]] = {name: [] for name in ways}
    digests: set[str] = set()
    for round_ in range(arguments.rounds):
        order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
        for name in order:
            digest = hashlib.sha256()
            started = time.process_time()
            for student_id in students:
                digest.update(ways[name](student_id))
            cpu_ms[name].append(1000 * (time.process_time() - started) / len(students))
            digests.add(digest.hexdigest())
    auth._USER_BY_TOKEN_HASH_WITH_STUDENT, stored._CURRENT_ROWS_AND_DECISIONS = hot["auth"], hot["rows"]
    if len(digests) != 1:
        raise SystemExit("bench: the ways answered differently")
    least = {name: min(values) for name, values in cpu_ms.items()}
    first = next(iter(ways))
    print(
        json.dumps(
            {
                "database": engine.dialect.name,
                "students": len(students),
                "rounds": arguments.rounds,
                "answers_identical": True,
                "cpu_ms_per_answer": {
                    name: {"least": round(least[name], 3), "median": round(statistics.median(values), 3)}
                    for name, values in cpu_ms.items()
                },
                "ratio_to_first": {name: round(least[name] / least[first], 3) for name in ways},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
