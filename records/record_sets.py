"""Record sets of every shape, cut from a generated institution as a real institution's records would lack
parts: an interaction log alone, a log with grades, no terms file, a dated log, a catalogue without
competencies, competencies without occupations. The test matrix (tests/integration/training/
test_record_sets.py) and bench/record_sets.py use the same cuts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from records.synthetic_online import generate_online

Tables = dict[str, pd.DataFrame]


def log_tables(tables: Tables, *, grades: bool) -> Tables:
    """An interaction log: learner, module, term (and status, grade), no catalogue or anything else."""
    columns = ["student_id", "module_id", "term", "status"] + (["grade"] if grades else [])
    log = tables["enrollments.csv"][columns].copy()
    if not grades:
        # A public log often only says who completed what.
        log = log[log["status"] != "failed"].copy()
        log["status"] = log["status"].where(log["status"] == "in_progress", "completed")
    return {"terms.csv": tables["terms.csv"], "enrollments.csv": log}


def without(*files: str) -> Callable[[Tables], Tables]:
    """The institution without ``files``."""

    def build(tables: Tables) -> Tables:
        return {name: frame for name, frame in tables.items() if name not in files}

    return build


@dataclass(frozen=True)
class RecordSet:
    """How a set is cut from the generated institution's tables (``size`` and ``seed`` for the sets
    generated on their own, such as the dated log), and whether it imports with
    ``--allow-uncatalogued``."""

    cut: Callable[[Tables, str, int], Tables]
    uncatalogued: bool = False


RECORD_SETS: dict[str, RecordSet] = {
    "log_alone": RecordSet(lambda tables, _size, _seed: log_tables(tables, grades=False), True),
    "log_with_grades": RecordSet(lambda tables, _size, _seed: log_tables(tables, grades=True), True),
    "no_terms_file": RecordSet(lambda tables, _size, _seed: without("terms.csv")(tables)),
    # The online regime: a dated log (enrolled_on, no terms file), one module at a time.
    "dated_log": RecordSet(lambda _tables, size, seed: generate_online(size, seed=seed)),
    "catalogue_without_competencies": RecordSet(
        lambda tables, _size, _seed: without(
            "competencies.csv", "module_competencies.csv", "occupation_competencies.csv"
        )(tables)
    ),
    "competencies_without_occupations": RecordSet(
        lambda tables, _size, _seed: without(
            "occupations.csv",
            "occupation_competencies.csv",
            "demand.csv",
            "goals.csv",
            "program_occupations.csv",
        )(tables)
    ),
}
