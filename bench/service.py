"""Benchmark: latency and throughput of live recommendations against /healthz, one uvicorn worker.

Run as ``.venv/bin/python -m bench.service`` with ``PATHWAYS_DATABASE_URL`` (and the artifacts and
reports folders) pointing at an institution with a promoted model, e.g. prepared with
``pathways generate --size medium --seed 7 && pathways train``. The script starts ``pathways serve``
in a subprocess on a free loopback port, adds a fresh admin user, and measures with
``--connections`` concurrent connections, using ``wrk`` (Debian's package) or, without it, a bounded
Python client:

1. *cold*: ``GET /v1/students/{id}/recommendations`` for students never asked before, each once
   (after the server's background precompute of every active student's default list has finished,
   which the script waits for in the server log: a first request reads the precomputed list, checks
   it against the fresh exclusions and adds the stored flags);
2. *warm*: the same route over ``--students`` students after each was asked once (repeat views:
   the list comes from the in-memory result cache, after the fresh exclusions check);
3. ``GET /healthz``.

Prints one JSON object: p50/p99 latency, requests per second, non-2xx answers, and the ratio of
each recommendations throughput to the /healthz throughput.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from records.db import make_engine, promoted_version, session_scope
from records.schema import Student
from records.settings import get_settings
from records.users import add_user

WRK_THREADS = 2

WRK_SCRIPT = """
ids = {%(ids)s}
counter = 0
thread_index = 0
local created = 0
-- Each wrk thread walks its own share of the ids (thread t asks ids t, t + THREADS, ...), so no
-- id is asked twice until the list wraps.
setup = function(thread)
  thread:set("thread_index", created)
  created = created + 1
end
request = function()
  local position = (counter * %(threads)d + thread_index) %% #ids
  counter = counter + 1
  local path = string.format("%(template)s", ids[position + 1])
  return wrk.format("GET", path, {["Authorization"] = "Bearer %(token)s"})
end
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_s\\": %%.3f, \\"non_2xx\\": %%d, \\"socket_errors\\": %%d, " ..
    "\\"p50_ms\\": %%.3f, \\"p90_ms\\": %%.3f, \\"p99_ms\\": %%.3f, \\"max_ms\\": %%.3f}\\n",
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sample_students(database_url: str, count: int, seed: int) -> tuple[list[str], str, str]:
    """Active student ids (a seeded sample), a fresh admin token, and the promoted version."""
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            promoted = promoted_version(session)
            if promoted is None:
                sys.exit("bench: no promoted model; run `pathways generate --size medium && pathways train`")
            ids = list(
                session.scalars(select(Student.id).where(Student.status == "active").order_by(Student.id))
            )
            _, token = add_user(session, f"bench-{int(time.time() * 1000)}", "admin", actor="bench")
            version = promoted.version
    finally:
        engine.dispose()
    random.Random(seed).shuffle(ids)
    return ids[:count], token, version


def start_server(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PATHWAYS_HOST": "127.0.0.1",
        "PATHWAYS_PORT": str(port),
        "PATHWAYS_LOG_LEVEL": "INFO",  # no access log; the precompute says when it is done
        # One user asks everything: measure capacity, not the per-user live-scoring limit.
        "PATHWAYS_LIVE_RATE_PER_MINUTE": os.environ.get("PATHWAYS_LIVE_RATE_PER_MINUTE", "0"),
    }
    serve = Path(sys.executable).with_name("pathways")
    with log_path.open("wb") as log:
        return subprocess.Popen([str(serve), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(port: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            body = json.loads(response.read())
            if response.status == 200:
                return body  # type: ignore[no-any-return]
            last = str(body)
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise SystemExit(f"bench: the server did not become ready: {last}")


def resident_mb(pid: int) -> float | None:
    """The resident memory of process ``pid`` in MB (Linux /proc), or None where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def wait_precomputed(log_path: Path, timeout_s: float) -> str:
    """Wait for the server's log line saying every active student's default list is precomputed."""
    deadline = time.monotonic() + timeout_s
    pattern = re.compile(r"precomputed \d+ default lists of model \S+ in [\d.]+s")
    while time.monotonic() < deadline:
        # The server's rich log handler wraps long messages: match on the text with spaces collapsed.
        found = pattern.search(" ".join(log_path.read_text(errors="replace").split()))
        if found is not None:
            return found.group(0)
        time.sleep(1.0)
    raise SystemExit(f"bench: the precompute did not finish within {timeout_s:.0f}s (see {log_path})")


def run_wrk(
    url_path: str, port: int, ids: list[str], token: str, connections: int, duration: int
) -> dict[str, Any]:
    quoted = ", ".join(f'"{i}"' for i in ids) if ids else '""'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            WRK_SCRIPT % {"ids": quoted, "token": token, "template": url_path, "threads": WRK_THREADS}
        )
    try:
        completed = subprocess.run(
            [
                "wrk",
                f"-t{min(WRK_THREADS, connections)}",
                f"-c{connections}",
                f"-d{duration}s",
                "--timeout",
                "5s",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}/",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(script.name)
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["requests_per_s"] = round(result["requests"] / result["duration_s"], 1)
    return result


def run_python_client(
    url_path: str, port: int, ids: list[str], token: str, connections: int, duration: int, once: bool = False
) -> dict[str, Any]:
    """A bounded closed-loop client: ``connections`` threads, one keep-alive connection each.

    ``once``: ask for each id exactly once (no time limit) instead of looping for ``duration``.
    """
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def worker(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        mine: list[float] = []
        count = offset
        while (count < len(ids)) if once else (time.monotonic() < stop_at):
            path = url_path % ids[count % len(ids)] if ids else url_path
            count += connections
            started = time.perf_counter()
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status >= 300:
                with lock:
                    failures[0] += 1
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()

    def percentile(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 3)

    return {
        "requests": len(latencies),
        "duration_s": round(elapsed, 3),
        "non_2xx": failures[0],
        "socket_errors": 0,
        "p50_ms": percentile(50),
        "p90_ms": percentile(90),
        "p99_ms": percentile(99),
        "max_ms": round(1000 * latencies[-1], 3),
        "requests_per_s": round(len(latencies) / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--students", type=int, default=500, help="students of the warm (repeat) run")
    parser.add_argument("--cold-students", type=int, default=600, help="students of the cold run")
    parser.add_argument("--cold-duration", type=int, default=15, help="seconds of the cold run")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--precompute-timeout", type=float, default=900, help="seconds to wait for the precompute"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    arguments = parser.parse_args()

    settings = get_settings()
    ids, token, version = sample_students(
        settings.database_url, arguments.students + arguments.cold_students, arguments.seed
    )
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"pathways-bench-serve-{port}.log"
    server = start_server(port, log_path)
    try:
        ready = wait_ready(port, timeout_s=180)
        ready_at = time.monotonic()
        precomputed = wait_precomputed(log_path, timeout_s=arguments.precompute_timeout)
        precompute_wait_s = round(time.monotonic() - ready_at, 1)
        server_rss_mb = resident_mb(server.pid)
        use_wrk = arguments.client == "wrk" or (
            arguments.client == "auto" and shutil.which("wrk") is not None
        )
        load = run_wrk if use_wrk else run_python_client
        recommendations_path = f"/v1/students/%s/recommendations?k={arguments.k}"
        warm_ids, cold_ids = ids[: arguments.students], ids[arguments.students :]
        cold = load(
            recommendations_path, port, cold_ids, token, arguments.connections, arguments.cold_duration
        )
        if cold["requests"] > len(cold_ids):
            cold["note"] = "more requests than cold students: some were repeats"
        # Ask every warm student once, then measure repeat views.
        run_python_client(recommendations_path, port, warm_ids, token, arguments.connections, 0, once=True)
        warm = load(recommendations_path, port, warm_ids, token, arguments.connections, arguments.duration)
        health = load("/healthz", port, [], token, arguments.connections, arguments.duration)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        json.dumps(
            {
                "client": "wrk" if use_wrk else "python",
                "connections": arguments.connections,
                "duration_s": arguments.duration,
                "model_version": ready.get("model_version") or version,
                "warm_students": len(warm_ids),
                "cold_students": len(cold_ids),
                "precompute": precomputed,
                "precompute_wait_after_ready_s": precompute_wait_s,
                "server_rss_after_precompute_mb": server_rss_mb,
                "recommendations_cold": cold,
                "recommendations_warm": warm,
                "healthz": health,
                "cold_throughput_ratio": round(cold["requests_per_s"] / health["requests_per_s"], 3),
                "warm_throughput_ratio": round(warm["requests_per_s"] / health["requests_per_s"], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
