"""The database the notebooks in ``notebooks/`` read, chosen once for all three.

1. ``PATHWAYS_DATABASE_URL`` when it is set and holds an institution with a closed term;
2. otherwise, when it is unset, the demo's database (``var/pathways.db`` of the checkout, as
   ``make demo`` leaves it) when that holds one;
3. otherwise a generated institution, made once into ``data_dir`` and reused.

Nothing is created or migrated in a database that is only read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from records.db import DatabaseMissing, make_engine, open_existing, upgrade
from records.frames import newest_closed_term
from records.ingest import import_tables
from records.synthetic import generate

DEMO_DATABASE = Path("var") / "pathways.db"


@dataclass
class NotebookData:
    engine: Engine
    source: str
    """Whose records these are, for the notebook to print."""
    notes: list[str] = field(default_factory=list)


def _institution(url: str) -> Engine | None:
    """An engine on ``url`` when it holds an institution with a closed term, else None."""
    try:
        engine = open_existing(url)
    except DatabaseMissing:
        return None
    if newest_closed_term(engine) is None:
        engine.dispose()
        return None
    return engine


def notebook_database(
    root: Path, size: str = "small", seed: int = 7, data_dir: Path | None = None
) -> NotebookData:
    """The records for a notebook run from the checkout at ``root`` (see the module's docstring)."""
    notes: list[str] = []
    url = os.environ.get("PATHWAYS_DATABASE_URL")
    if url:
        engine = _institution(url)
        if engine is not None:
            return NotebookData(engine, "PATHWAYS_DATABASE_URL")
        notes.append("PATHWAYS_DATABASE_URL holds no institution with a closed term: using a generated one")
    else:
        demo = root / DEMO_DATABASE
        engine = _institution(f"sqlite:///{demo}") if demo.is_file() else None
        if engine is not None:
            return NotebookData(engine, f"the demo's database ({DEMO_DATABASE})")
    data_dir = data_dir if data_dir is not None else root / "var" / "notebooks"
    generated = f"sqlite:///{data_dir / f'{size}-seed{seed}.db'}"
    upgrade(generated)
    engine = make_engine(generated)
    if newest_closed_term(engine) is None:
        import_tables(engine, generate(size, seed))
    return NotebookData(engine, f"the generated {size} institution (seed {seed})", notes)
