"""How the promoted model enters an evaluation: stored metrics, live scoring, or not at all."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from records.db import make_engine
from records.frames import load_frames
from records.schema import ModelVersion
from records.settings import Settings
from training.evaluate import make_split
from training.pipeline import promoted_on_split

from .conftest import Trained


def test_same_cutoff_uses_stored_metrics(trained_tiny: Trained, trained_copy: tuple[str, Settings]) -> None:
    url, _ = trained_copy
    engine = make_engine(url)
    try:
        metrics, note = promoted_on_split(engine, make_split(load_frames(engine)))
        assert metrics is not None and metrics["source"] == "stored"
        assert metrics["version"] == trained_tiny.version and 0.0 <= metrics["ndcg@10"] <= 1.0
        assert "same data cutoff" in note
    finally:
        engine.dispose()


def test_earlier_cutoff_is_scored_live_and_broken_artifacts_are_refused(
    trained_tiny: Trained, trained_copy: tuple[str, Settings], tmp_path: Path
) -> None:
    url, _ = trained_copy
    engine = make_engine(url)
    try:
        # Pretend the promoted model was trained a term earlier, on a private copy of its artifacts.
        with Session(engine) as session:
            row = session.get(ModelVersion, trained_tiny.version)
            assert row is not None and row.artifact_path
            artifacts = tmp_path / "artifacts"
            shutil.copytree(row.artifact_path, artifacts)
            session.execute(
                update(ModelVersion)
                .where(ModelVersion.version == row.version)
                .values(cutoff_term="2025-1", artifact_path=str(artifacts))
            )
            session.commit()
        split = make_split(load_frames(engine))
        metrics, note = promoted_on_split(engine, split)
        assert metrics is not None and metrics["source"] == "live", note
        assert metrics["n_students"] > 0 and 0.0 <= metrics["ndcg@10"] <= 1.0
        assert metrics["eligibility_violations"] == 0

        model_file = next(p for p in artifacts.iterdir() if p.name != "checksums.json")
        model_file.write_bytes(model_file.read_bytes() + b"tampered")
        metrics, note = promoted_on_split(engine, split)
        assert metrics is None
        assert "does not match its sha256 checksum" in note
    finally:
        engine.dispose()


def test_later_cutoff_is_not_comparable(trained_tiny: Trained, trained_copy: tuple[str, Settings]) -> None:
    url, _ = trained_copy
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            session.execute(
                update(ModelVersion)
                .where(ModelVersion.version == trained_tiny.version)
                .values(cutoff_term="2026-1")
            )
            session.commit()
        metrics, note = promoted_on_split(engine, make_split(load_frames(engine)))
        assert metrics is None and "not comparable" in note
    finally:
        engine.dispose()
