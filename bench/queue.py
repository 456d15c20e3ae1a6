"""The advisor queue at institution scale: the true count, paging and filters over a full batch.

    .venv/bin/python -m bench.queue --size medium

Copies ``var/bench/<size>-7.db`` (prepared by the features benchmark) to ``var/bench/queue-<size>.db``,
stores one complete batch of ``--k`` recommendations for every active student with a flag on
``--flag-share`` of them (kinds drawn at random, seed 7), promotes a version, approves
``--approved-share`` of the flagged recommendations, then times ``service.handlers.advisor_queue``
(first page of 25, then the last page, a kind filter and the risk sort) for an admin (every student)
and for the advisor with the most advisees. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from records.bulk import bulk_insert
from records.db import make_engine, session_factory, upgrade
from records.schema import (
    Flag,
    ModelVersion,
    Module,
    Promotion,
    Recommendation,
    RecommendationBatch,
    Review,
    Student,
)
from records.users import add_user
from service.auth import Principal
from service.handlers import advisor_queue

KINDS = ("fail_risk", "low_confidence", "off_target", "large_change", "uncovered_goal")


def prepare(path: Path, k: int, flag_share: float, approved_share: float) -> dict[str, int]:
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    rng = np.random.default_rng(7)
    with session_factory(engine)() as session:
        students = list(session.scalars(select(Student.id).where(Student.status == "active")))
        modules = list(session.scalars(select(Module.id)))
        session.add(ModelVersion(version="bench", status="promoted", artifact_path="bench"))
        batch = RecommendationBatch(model_version="bench", target_term="bench", k=k, status="complete")
        session.add(batch)
        session.commit()
        batch_id = batch.id
    picks = np.stack([rng.choice(len(modules), size=k, replace=False) for _ in students])
    frame = pd.DataFrame(
        {
            "batch_id": batch_id,
            "student_id": np.repeat(students, k),
            "rank": np.tile(np.arange(1, k + 1), len(students)),
            "module_id": np.asarray(modules, dtype=object)[picks.ravel()],
            "score": rng.random(len(students) * k),
            "fail_probability": rng.random(len(students) * k) * 0.7,
        }
    )
    with engine.begin() as connection:
        bulk_insert(connection, Recommendation, frame)
    with engine.connect() as connection:
        ids = pd.read_sql(
            select(Recommendation.id, Recommendation.student_id, Recommendation.module_id), connection
        )
    flagged = ids.sample(frac=flag_share, random_state=7)
    flags = pd.DataFrame(
        {
            "recommendation_id": flagged["id"].to_numpy(),
            "kind": rng.choice(KINDS, size=len(flagged)),
            "reason": "bench",
        }
    )
    approved = flagged.sample(frac=approved_share, random_state=8)
    with session_factory(engine)() as session:
        user, _ = add_user(session, "bench-admin", "admin")
        session.commit()
        user_id = user.id
    reviews = pd.DataFrame(
        {
            "recommendation_id": approved["id"].to_numpy(),
            "target_term": "bench",
            "reviewer_id": user_id,
            "student_id": approved["student_id"].to_numpy(),
            "module_id": approved["module_id"].to_numpy(),
            "action": "approve",
            "created_at": dt.datetime.now(dt.UTC),
        }
    )
    with engine.begin() as connection:
        bulk_insert(connection, Flag, flags)
        bulk_insert(connection, Review, reviews)
    with session_factory(engine)() as session:
        session.add(Promotion(version="bench", action="promote", actor="bench"))
        session.commit()
    engine.dispose()
    return {
        "students": len(students),
        "recommendations": len(frame),
        "flagged": len(flagged),
        "approved": len(approved),
        "admin_user_id": user_id,
    }


def timed(call):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="medium")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--flag-share", type=float, default=0.1)
    parser.add_argument("--approved-share", type=float, default=0.3)
    args = parser.parse_args()
    source = Path("var/bench") / f"{args.size}-7.db"
    target = Path("var/bench") / f"queue-{args.size}.db"
    shutil.copyfile(source, target)
    counts = prepare(target, args.k, args.flag_share, args.approved_share)
    engine = make_engine(f"sqlite:///{target}")
    figures: dict[str, object] = {"size": args.size, **counts}
    with session_factory(engine)() as session:
        advisor_id, advisees = session.execute(
            select(Student.advisor_id, func.count())
            .where(Student.advisor_id.is_not(None))
            .group_by(Student.advisor_id)
            .order_by(func.count().desc())
            .limit(1)
        ).one()
        admin = Principal(user_id=int(counts["admin_user_id"]), name="bench-admin", role="admin")
        advisor = Principal(user_id=0, name="bench-advisor", role="advisor", advisor_id=advisor_id)
        for name, principal in (("admin", admin), ("advisor", advisor)):
            first, first_s = timed(lambda p=principal: advisor_queue(session, p, 25, 0))
            _, last_s = timed(
                lambda p=principal, t=first.total: advisor_queue(session, p, 25, max(t - 25, 0))
            )
            kind, kind_s = timed(lambda p=principal: advisor_queue(session, p, 25, 0, "fail_risk"))
            _, risk_s = timed(lambda p=principal: advisor_queue(session, p, 25, 0, None, None, "risk"))
            figures[name] = {
                "waiting": first.total,
                "fail_risk_waiting": kind.total,
                "first_page_s": round(first_s, 3),
                "last_page_s": round(last_s, 3),
                "kind_filter_s": round(kind_s, 3),
                "risk_sort_s": round(risk_s, 3),
                "page_items": len(first.items),
            }
        figures["advisor_advisees"] = advisees
    engine.dispose()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
