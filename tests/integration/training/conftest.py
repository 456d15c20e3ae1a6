"""Fixtures for the nightly job: the tiny institution imported into real databases, and a trained copy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine

from records.db import make_engine, upgrade
from records.ingest import import_tables
from records.settings import Settings, get_settings
from records.synthetic import generate
from training.batch import export_current_batch
from training.pipeline import run_nightly

# Smaller than the production defaults so a run on the tiny institution takes seconds.
FAST_MODEL = {"collaborative_algorithms": ("als",), "num_threads": 1}


@pytest.fixture(scope="session")
def tiny_tables() -> dict[str, pd.DataFrame]:
    return generate("tiny", seed=7)


def job_settings(database_url: str, folder: Path) -> Settings:
    return get_settings(
        database_url=database_url,
        artifacts_dir=folder / "models",
        reports_dir=folder / "reports",
        lock_path=folder / "train.lock",
        log_level="WARNING",
    )


@pytest.fixture
def tiny_engine(database_url: str, tiny_tables: dict[str, pd.DataFrame]) -> Iterator[Engine]:
    """The tiny institution in an empty database (SQLite and PostgreSQL)."""
    engine = make_engine(database_url)
    import_tables(engine, tiny_tables)
    yield engine
    engine.dispose()


@dataclass
class Trained:
    """A SQLite database file holding the tiny institution after one successful run."""

    db_file: Path
    folder: Path
    version: str
    export: bytes


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory, tiny_tables: dict[str, pd.DataFrame]) -> Trained:
    folder = tmp_path_factory.mktemp("trained")
    db_file = folder / "pathways.db"
    url = f"sqlite:///{db_file}"
    upgrade(url)
    engine = make_engine(url)
    import_tables(engine, tiny_tables)
    result = run_nightly(job_settings(url, folder), engine=engine, model_options=FAST_MODEL)
    export_current_batch(engine, folder / "export.csv")
    engine.dispose()
    return Trained(db_file, folder, result.version, (folder / "export.csv").read_bytes())


@pytest.fixture
def trained_copy(trained_tiny: Trained, tmp_path: Path) -> tuple[str, Settings]:
    """A private copy of the trained database; its settings write into tmp_path."""
    db_file = tmp_path / "pathways.db"
    shutil.copyfile(trained_tiny.db_file, db_file)
    url = f"sqlite:///{db_file}"
    return url, job_settings(url, tmp_path)
