"""Registry and batch storage on a real database (SQLite and PostgreSQL), with hand-made rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from records.db import promoted_version
from records.schema import Flag, ModelVersion, Module, Recommendation, RecommendationBatch, Student
from training import batch as batches
from training import registry


def _seed(engine: Engine) -> None:
    with Session(engine) as session:
        session.add_all([Module(id=f"M{i}", title=f"Module {i}") for i in range(4)])
        session.flush()
        session.add_all([Student(id=sid) for sid in ("s2", "s10", "s1")])
        session.commit()


def _register(engine: Engine, artifacts: Path, version: str) -> None:
    folder, checksum = registry.write_artifacts(
        artifacts, version, lambda target: (target / "weights.json").write_text(json.dumps({"v": version}))
    )
    with Session(engine) as session:
        session.add(
            ModelVersion(
                version=version,
                status="candidate",
                artifact_path=str(folder),
                checksum=checksum,
                metrics={"models": {"hybrid": {"ndcg@10": 0.5, "recall@10": 0.25}}},
            )
        )
        session.commit()


def _store_batch(engine: Engine, version: str, modules: list[str], score_offset: float) -> int:
    batch_id = batches.start_batch(engine, version, "2026-1", k=2)
    students = ["s1", "s10", "s2"]
    rows = pd.DataFrame(
        {
            "student_id": np.repeat(students, 2),
            "rank": np.tile([1, 2], 3),
            "module_id": modules * 3,
            "score": np.array([0.9, 0.5, 0.8, 0.4, 0.7, 0.3]) + score_offset,
            "components": [{"sequence": 0.5}] * 6,
            "reasons": [["because"]] * 6,
            "fail_probability": [0.1, np.nan, 0.2, 0.3, 0.4, 0.5],
        }
    )
    flags = pd.DataFrame(
        {"student_id": ["s10"], "rank": [2], "kind": ["fail_risk"], "reason": ["predicted fail risk 0.60"]}
    )
    with engine.begin() as connection:
        assert batches.write_recommendations(connection, batch_id, rows) == 6
        assert batches.write_flags(connection, batch_id, flags) == 1
    return batch_id


def _promote_with_batch(engine: Engine, version: str, batch_id: int) -> None:
    with Session(engine) as session:
        batches.complete_batch(session, batch_id, n_students=3)
        registry.record_promotion(session, version, actor="test")
        session.commit()


def test_artifacts_verify_and_detect_tampering(tmp_path: Path) -> None:
    folder, checksum = registry.write_artifacts(tmp_path, "v1", lambda t: (t / "a.bin").write_bytes(b"abc"))
    assert registry.verify_artifacts(folder, checksum) == folder
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    (folder / "a.bin").write_bytes(b"abd")
    with pytest.raises(registry.ArtifactError, match=r"a\.bin does not match"):
        registry.verify_artifacts(folder, checksum)
    (folder / "a.bin").write_bytes(b"abc")
    (folder / "extra.txt").write_text("x")
    with pytest.raises(registry.ArtifactError, match=r"unlisted file extra\.txt"):
        registry.verify_artifacts(folder, checksum)


def test_failed_save_leaves_no_version_folder(tmp_path: Path) -> None:
    def broken(target: Path) -> None:
        (target / "half.bin").write_bytes(b"x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        registry.write_artifacts(tmp_path, "v1", broken)
    assert list(tmp_path.iterdir()) == []


def test_promote_export_rollback_swaps_batches(engine: Engine, tmp_path: Path) -> None:
    _seed(engine)
    _register(engine, tmp_path / "models", "v1")
    _register(engine, tmp_path / "models", "v2")
    with Session(engine) as session, pytest.raises(registry.RegistryError, match="no complete"):
        registry.record_promotion(session, "v1")

    first = _store_batch(engine, "v1", ["M0", "M1"], 0.0)
    # A writing batch is invisible: nothing to export yet.
    with pytest.raises(batches.BatchError, match="no promoted model"):
        batches.export_current_batch(engine, tmp_path / "none.csv")
    _promote_with_batch(engine, "v1", first)
    out_first = tmp_path / "first.csv"
    assert batches.export_current_batch(engine, out_first) == (first, 6)
    text = out_first.read_text()
    assert text.splitlines()[0] == "student_id,rank,module_id,score,review,replacement_module_id"
    assert text.splitlines()[1] == "s1,1,M0,0.900000,,"
    # Sorted by student id as strings: s1, s10, s2.
    assert [line.split(",")[0] for line in text.splitlines()[1:]] == ["s1", "s1", "s10", "s10", "s2", "s2"]

    second = _store_batch(engine, "v2", ["M2", "M3"], 0.05)
    _promote_with_batch(engine, "v2", second)
    out_second = tmp_path / "second.csv"
    batches.export_current_batch(engine, out_second)
    assert out_second.read_bytes() != out_first.read_bytes()

    with Session(engine) as session:
        listing = registry.list_versions(session)
    assert [(v.version, v.promoted) for v in sorted(listing, key=lambda v: v.version)] == [
        ("v1", False),
        ("v2", True),
    ]
    assert {v.status for v in listing} == {"retired", "promoted"}

    with Session(engine) as session:
        promotion = registry.rollback(session, actor="test")
        session.commit()
        assert (promotion.version, promotion.previous_version, promotion.action) == ("v1", "v2", "rollback")
    out_again = tmp_path / "again.csv"
    batches.export_current_batch(engine, out_again)
    assert out_again.read_bytes() == out_first.read_bytes()
    with Session(engine) as session:
        assert promoted_version(session).version == "v1"  # type: ignore[union-attr]
        with pytest.raises(registry.RegistryError, match="already promoted"):
            registry.promote(session, "v1")


def test_stale_writing_batches_are_discarded_with_their_rows(engine: Engine, tmp_path: Path) -> None:
    _seed(engine)
    _register(engine, tmp_path / "models", "v1")
    kept = _store_batch(engine, "v1", ["M0", "M1"], 0.0)
    _promote_with_batch(engine, "v1", kept)
    stale = _store_batch(engine, "v1", ["M2", "M3"], 0.0)
    assert batches.discard_stale_batches(engine) == [stale]
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Recommendation)) == 6
        assert session.scalar(select(func.count()).select_from(Flag)) == 1
        assert [b.id for b in session.scalars(select(RecommendationBatch))] == [kept]


def test_rollback_without_history_is_refused(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(registry.RegistryError, match="nothing to roll back"):
        registry.rollback(session)
