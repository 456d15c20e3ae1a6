"""Benchmark: what one caller forcing live scoring costs everyone else, with and without the limit.

Run as ``.venv/bin/python -m bench.live_limit`` with ``PATHWAYS_DATABASE_URL`` (and the artifacts folder)
pointing at an institution with a promoted model, e.g. prepared with
``pathways generate --size tiny --seed 7 && pathways train``. For each setting of
``PATHWAYS_LIVE_RATE_PER_MINUTE`` (off, then the default) it starts ``pathways serve`` on a free loopback
port and runs, for ``--duration`` seconds:

- ``--abusers`` connections of one user asking ``/recommendations?k=N`` with a new ``k``/``occupation``
  pair each time (each one a live scoring unless limited), and
- ``--connections`` connections of other users asking their default list (``/recommendations``).

Prints one JSON object per setting: the other users' requests per second and p50/p99 latency, and the
abuser's answers by status (200 scored, 429 refused).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.service import wait_precomputed, wait_ready
from records.db import make_engine, session_scope
from records.schema import Occupation, Student
from records.settings import get_settings
from records.users import add_user


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare(count: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(student id, token) of ``count`` + 1 fresh student users (the first is the abuser), occupation ids."""
    engine = make_engine(get_settings().database_url)
    stamp = int(time.time() * 1000)
    with session_scope(engine) as session:
        ids = session.scalars(
            select(Student.id).where(Student.status == "active").order_by(Student.id).limit(count + 1)
        ).all()
        occupations = list(session.scalars(select(Occupation.id).order_by(Occupation.id)).all())
        users = [
            (
                student_id,
                add_user(session, f"bench-{stamp}-{i}", "student", student_id=student_id, actor="bench")[1],
            )
            for i, student_id in enumerate(ids)
        ]
    engine.dispose()
    return users, occupations


def _client(
    port: int, paths: list[str], token: str, stop: threading.Event, record: list[tuple[int, float]]
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    index = 0
    while not stop.is_set():
        path = paths[index % len(paths)]
        index += 1
        started = time.perf_counter()
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            status = 0
        record.append((status, time.perf_counter() - started))
    connection.close()


def run(
    rate: str,
    duration: float,
    connections: int,
    abusers: int,
    users: list[tuple[str, str]],
    occupations: list[str],
) -> dict[str, Any]:
    port = _free_port()
    log_path = Path(tempfile.mkdtemp(prefix="pathways-bench-")) / "serve.log"
    env = {
        **os.environ,
        "PATHWAYS_HOST": "127.0.0.1",
        "PATHWAYS_PORT": str(port),
        "PATHWAYS_LOG_LEVEL": "INFO",
        "PATHWAYS_LIVE_RATE_PER_MINUTE": rate,
    }
    serve = Path(sys.executable).with_name("pathways")
    with log_path.open("wb") as log:
        server = subprocess.Popen([str(serve), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, 300)
        wait_precomputed(log_path, 600)
        abuser_student, abuser_token = users[0]
        abuse_paths = [
            f"/v1/students/{abuser_student}/recommendations?k={k}&occupation={occupation}"
            for occupation in occupations
            for k in range(1, 51)
            if k != 10
        ]
        stop = threading.Event()
        normal: list[tuple[int, float]] = []
        abuse: list[tuple[int, float]] = []
        threads = [
            threading.Thread(
                target=_client,
                args=(port, [f"/v1/students/{student}/recommendations"], token, stop, normal),
            )
            for student, token in users[1 : connections + 1]
        ]
        threads += [
            threading.Thread(target=_client, args=(port, abuse_paths[i::abusers], abuser_token, stop, abuse))
            for i in range(abusers)
        ]
        for thread in threads:
            thread.start()
        time.sleep(duration)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = sorted(elapsed for status, elapsed in normal if status == 200)
    by_status: dict[str, int] = {}
    for status, _ in abuse:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
    return {
        "live_rate_per_minute": rate,
        "others_rps": round(len(latencies) / duration, 1),
        "others_p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "others_p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
        "others_non_200": sum(1 for status, _ in normal if status != 200),
        "abuser_answers": by_status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=4, help="other users, one connection each")
    parser.add_argument("--abusers", type=int, default=2, help="connections of the one abusing user")
    arguments = parser.parse_args()
    users, occupations = prepare(arguments.connections)
    for rate in ("0", str(get_settings().live_rate_per_minute)):
        result = run(rate, arguments.duration, arguments.connections, arguments.abusers, users, occupations)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
