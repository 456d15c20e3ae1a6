"""Benchmark: `pathways serve --workers N` — ready time, the default list (stored batch) and live
scoring against /healthz, resident memory per worker.

Run as ``.venv/bin/python -m bench.service`` with ``PATHWAYS_DATABASE_URL`` and
``PATHWAYS_ARTIFACTS_DIR`` pointing at an institution with a promoted model and its batch (e.g.
``pathways generate --size medium --seed 7 && pathways train``). The script adds a fresh admin
user, starts ``pathways serve --workers N`` on a free loopback port with one BLAS/OpenMP thread per
worker, and measures:

1. *ready*: seconds from the process start to the first ``/readyz`` 200 (the stored batch answers
   then), with the CPU seconds the shell and each worker had used by then, and to the model being
   loaded (20 ``/readyz`` answers in a row say so, i.e. every worker);
2. a check that the default list answers ``source=batch`` and the what-ifs ``source=live``, and that
   the default list of ``--check-students`` students equals ``export-recommendations``' rows;
3. ``--passes`` passes of: ``/healthz``, then the default list ``GET /v1/students/{id}/recommendations``
   over the shuffled students of the batch (each wrk thread walks its own share: distinct students until
   the list wraps), each for ``--duration`` seconds, and the ratio of their requests/s within the pass;
   with each phase the workers' CPU milliseconds per request, and the ratio of /healthz's to the
   default list's (``cpu_ratio``: the throughput ratio the workers' own work allows, which what else
   runs on a shared machine does not move);
4. live scoring for ``--duration`` seconds each: an occupation what-if (a different occupation per
   student) and another k (``k=15``, beyond the batch's), over distinct students;
5. resident memory (VmRSS) of every worker after start, after the default-list passes and at the end.

Load is generated with ``wrk`` (Debian's package; ``--client python`` for a bounded Python client).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from records.db import current_batch, make_engine, promoted_version, session_scope
from records.schema import Occupation, OccupationCompetency, Recommendation
from records.settings import get_settings
from records.users import add_user

WRK_THREADS = 2
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}

WRK_SCRIPT = """
paths = {%(paths)s}
counter = 0
thread_index = 0
local created = 0
-- Each wrk thread walks its own share of the paths (thread t asks t, t + THREADS, ...), so no
-- path is asked twice until the list wraps.
setup = function(thread)
  thread:set("thread_index", created)
  created = created + 1
end
request = function()
  local position = (counter * %(threads)d + thread_index) %% #paths
  counter = counter + 1
  return wrk.format("GET", paths[position + 1], {["Authorization"] = "Bearer %(token)s"})
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


def sample(database_url: str, seed: int) -> tuple[list[str], list[str], str, str]:
    """Ids of the students the current batch holds lists for (shuffled: the active, recently enrolled
    ones), occupations with a profile, a fresh admin token, the version."""
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            promoted = promoted_version(session)
            if promoted is None:
                sys.exit("bench: no promoted model; run `pathways generate --size medium && pathways train`")
            batch = current_batch(session)
            if batch is None:
                sys.exit("bench: the promoted model has no complete batch; run `pathways rescore`")
            ids = list(
                session.scalars(
                    select(Recommendation.student_id)
                    .where(Recommendation.batch_id == batch.id)
                    .distinct()
                    .order_by(Recommendation.student_id)
                )
            )
            occupations = list(
                session.scalars(
                    select(Occupation.id)
                    .where(Occupation.id.in_(select(OccupationCompetency.occupation_id)))
                    .order_by(Occupation.id)
                )
            )
            _, token = add_user(session, f"bench-{int(time.time() * 1000)}", "admin", actor="bench")
            version = promoted.version
    finally:
        engine.dispose()
    random.Random(seed).shuffle(ids)
    return ids, occupations, token, version


def start_server(port: int, workers: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **ONE_THREAD,
        "PATHWAYS_HOST": "127.0.0.1",
        "PATHWAYS_PORT": str(port),
        "PATHWAYS_LOG_LEVEL": "WARNING",
        # One user asks everything: measure capacity, not the per-user live-scoring limit.
        "PATHWAYS_LIVE_RATE_PER_MINUTE": os.environ.get("PATHWAYS_LIVE_RATE_PER_MINUTE", "0"),
    }
    serve = Path(sys.executable).with_name("pathways")
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [str(serve), "serve", "--workers", str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def get(port: int, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds process ``pid`` has used so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def wait_ready(
    port: int, started: float, timeout_s: float, server_pid: int
) -> tuple[float, float, dict[str, Any]]:
    """(seconds to the first /readyz 200, seconds until 20 answers in a row say the model is loaded,
    CPU seconds the shell and each worker had used at that first 200): on a loaded machine the wall
    time mostly waits for a core, the CPU time does not."""
    deadline = started + timeout_s
    ready_s: float | None = None
    cpu_at_ready: dict[str, Any] = {}
    in_a_row = 0
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = get(port, "/readyz")
            last = str(body)
            if status == 200 and ready_s is None:
                ready_s = time.monotonic() - started
                cpu_at_ready = {
                    "shell": cpu_s(server_pid),
                    "workers": [cpu_s(pid) for pid in worker_pids(server_pid)],
                }
            in_a_row = in_a_row + 1 if status == 200 and body["model"]["state"] == "loaded" else 0
            if in_a_row >= 20:
                assert ready_s is not None
                return round(ready_s, 2), round(time.monotonic() - started, 2), cpu_at_ready
        except OSError as exc:
            last = str(exc)
        time.sleep(0.02)
    raise SystemExit(f"bench: the server did not become ready with its model loaded: {last}")


def worker_pids(server_pid: int) -> list[int]:
    """The server's uvicorn worker processes (multiprocessing spawn children); the server itself
    when it runs a single worker in-process."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    workers = [int(p) for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
    return workers or [server_pid]


def resident_mb(pid: int) -> float | None:
    """The resident memory of process ``pid`` in MB (Linux /proc), or None where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def run_wrk(paths: list[str], port: int, token: str, connections: int, duration: int) -> dict[str, Any]:
    quoted = ", ".join(f'"{p}"' for p in paths)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"paths": quoted, "token": token, "threads": WRK_THREADS})
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
    result["distinct_paths"] = len(paths)
    return result


def run_python_client(
    paths: list[str], port: int, token: str, connections: int, duration: int
) -> dict[str, Any]:
    """A bounded closed-loop client: ``connections`` threads, one keep-alive connection each."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def worker(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        mine: list[float] = []
        count = offset
        while time.monotonic() < stop_at:
            path = paths[count % len(paths)]
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
        "distinct_paths": len(paths),
    }


def check_equals_export(database_url: str, port: int, token: str, students: list[str]) -> int:
    """Ask for the default list of ``students`` and compare each with ``export-recommendations``'
    rows (rank, module, score to six decimals); exits on the first difference. Returns the count."""
    from training.batch import export_current_batch

    engine = make_engine(database_url)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "export.csv"
        export_current_batch(engine, out)
        wanted = set(students)
        exported: dict[str, list[tuple[int, str, str]]] = {}
        with out.open() as handle:
            for row in csv.DictReader(handle):
                if row["student_id"] in wanted:
                    exported.setdefault(row["student_id"], []).append(
                        (int(row["rank"]), row["module_id"], row["score"])
                    )
    engine.dispose()
    for student in students:
        status, body = get(port, f"/v1/students/{student}/recommendations", token)
        served = [(i["rank"], i["module"]["id"], f"{i['score']:.6f}") for i in body.get("items", [])]
        if status != 200 or body.get("source") != "batch" or served != exported.get(student, []):
            raise SystemExit(f"bench: the default list of {student} differs from the exported batch")
    return len(students)


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=15, help="seconds per phase")
    parser.add_argument("--passes", type=int, default=3, help="passes of /healthz + default list")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--live-students", type=int, default=3000, help="students of each live phase")
    parser.add_argument("--check-students", type=int, default=300, help="compared with the export")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    arguments = parser.parse_args()

    settings = get_settings()
    ids, occupations, token, version = sample(settings.database_url, arguments.seed)
    use_wrk = arguments.client == "wrk" or (arguments.client == "auto" and shutil.which("wrk") is not None)
    load = run_wrk if use_wrk else run_python_client
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"pathways-bench-serve-{port}.log"
    started = time.monotonic()
    server = start_server(port, arguments.workers, log_path)
    try:
        ready_s, loaded_s, cpu_at_ready = wait_ready(port, started, timeout_s=900, server_pid=server.pid)
        pids = worker_pids(server.pid)
        rss_start = [resident_mb(pid) for pid in pids]
        default_paths = [f"/v1/students/{i}/recommendations" for i in ids]
        live_ids = ids[: arguments.live_students]
        what_if_paths = [
            f"/v1/students/{student}/recommendations?occupation={occupations[n % len(occupations)]}"
            for n, student in enumerate(live_ids)
        ]
        other_k_paths = [f"/v1/students/{student}/recommendations?k=15" for student in live_ids]
        for path, expected in (
            (default_paths[0], "batch"),
            (what_if_paths[0], "live"),
            (other_k_paths[0], "live"),
        ):
            status, body = get(port, path, token)
            if status != 200 or body.get("source") != expected:
                raise SystemExit(
                    f"bench: {path} answered {status} {body.get('source')!r}, expected {expected}"
                )
        equal = check_equals_export(settings.database_url, port, token, ids[: arguments.check_students])

        def phase(paths: list[str]) -> dict[str, Any]:
            """One load phase, with the workers' CPU per request (their CPU clocks, not the wall's:
            what other work on a shared machine takes from them does not count)."""
            before = sum(cpu_s(pid) or 0.0 for pid in pids)
            result = load(paths, port, token, arguments.connections, arguments.duration)
            used = sum(cpu_s(pid) or 0.0 for pid in pids) - before
            result["worker_cpu_ms_per_request"] = round(1000 * used / max(result["requests"], 1), 3)
            return result

        passes = []
        for _ in range(arguments.passes):
            health = phase(["/healthz"])
            default = phase(default_paths)
            passes.append(
                {
                    "healthz": health,
                    "default_list": default,
                    "ratio": round(default["requests_per_s"] / health["requests_per_s"], 3),
                    "cpu_ratio": round(
                        health["worker_cpu_ms_per_request"] / default["worker_cpu_ms_per_request"], 3
                    ),
                }
            )
        rss_after_default = [resident_mb(pid) for pid in pids]
        what_if = phase(what_if_paths)
        other_k = phase(other_k_paths)
        rss_end = [resident_mb(pid) for pid in pids]
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(
        json.dumps(
            {
                "client": "wrk" if use_wrk else "python",
                "workers": arguments.workers,
                "blas_threads_per_worker": 1,
                "connections": arguments.connections,
                "duration_s": arguments.duration,
                "model_version": version,
                "active_students": len(ids),
                "default_list_equals_export": f"{equal} students",
                "ready_s": ready_s,
                "cpu_s_at_ready": cpu_at_ready,
                "model_loaded_s": loaded_s,
                "worker_rss_mb": {"start": rss_start, "after_default": rss_after_default, "end": rss_end},
                "passes": passes,
                "default_list_ratio": spread([p["ratio"] for p in passes]),
                "default_list_cpu_ratio": spread([p["cpu_ratio"] for p in passes]),
                "default_list_p99_ms": spread([p["default_list"]["p99_ms"] for p in passes]),
                "live_what_if": what_if,
                "live_other_k": other_k,
                "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
