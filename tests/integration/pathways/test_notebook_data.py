"""The notebooks read the demo's database when it exists, instead of generating a second institution."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathways.notebook_data import notebook_database
from records.db import make_engine, upgrade
from records.ingest import import_tables
from records.synthetic import generate


@pytest.fixture(scope="module")
def checkout_with_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like a checkout after `make demo`: var/pathways.db holds the tiny institution."""
    root = tmp_path_factory.mktemp("checkout")
    url = f"sqlite:///{root / 'var' / 'pathways.db'}"
    upgrade(url)
    engine = make_engine(url)
    import_tables(engine, generate("tiny", 7))
    engine.dispose()
    return root


def test_the_demo_database_is_used_when_no_url_is_set(
    checkout_with_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PATHWAYS_DATABASE_URL", raising=False)
    data = notebook_database(checkout_with_demo, "tiny", 7, tmp_path / "generated")
    assert data.source == "the demo's database (var/pathways.db)"
    assert str(data.engine.url).endswith("var/pathways.db")
    data.engine.dispose()
    assert not (tmp_path / "generated").exists()


def test_a_set_url_wins_and_an_unusable_one_falls_back_to_a_generated_institution(
    checkout_with_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "absent" / "x.db"
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", f"sqlite:///{missing}")
    data = notebook_database(checkout_with_demo, "tiny", 7, tmp_path / "generated")
    assert data.source == "the generated tiny institution (seed 7)"
    assert data.notes == [
        "PATHWAYS_DATABASE_URL holds no institution with a closed term: using a generated one"
    ]
    data.engine.dispose()
    assert (tmp_path / "generated" / "tiny-seed7.db").stat().st_size > 0
    assert not missing.parent.exists()  # reading never creates the database it was pointed at

    monkeypatch.setenv("PATHWAYS_DATABASE_URL", f"sqlite:///{checkout_with_demo / 'var' / 'pathways.db'}")
    chosen = notebook_database(tmp_path, "tiny", 7, tmp_path / "generated")
    assert chosen.source == "PATHWAYS_DATABASE_URL" and chosen.notes == []
    chosen.engine.dispose()


def test_without_a_demo_database_an_institution_is_generated_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PATHWAYS_DATABASE_URL", raising=False)
    first = notebook_database(tmp_path, "tiny", 7)
    assert first.source == "the generated tiny institution (seed 7)" and first.notes == []
    first.engine.dispose()
    stored = tmp_path / "var" / "notebooks" / "tiny-seed7.db"
    size = stored.stat().st_size
    again = notebook_database(tmp_path, "tiny", 7)
    again.engine.dispose()
    assert stored.stat().st_size == size  # reused, not generated a second time
