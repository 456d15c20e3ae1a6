"""Import the O*NET database text release: occupations, competencies and occupations' demands.

Reads the tab-delimited UTF-8 files ``Occupation Data.txt``, ``Skills.txt``, ``Knowledge.txt``,
``Abilities.txt`` and ``Technology Skills.txt`` (data/README.md, "O*NET files") and fills
``occupation``, ``competency`` and ``occupation_competency``. Same rules as the CSV import: all rows
or none, every rejection listed with file and line, idempotent (upsert by key, identical rows count
as unchanged). Absent files are skipped with a note.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from records.bulk import table_of
from records.csv_read import read_csv_text
from records.ingest import ImportRejected, ImportReport, Rejection, RejectionCollector, upsert_frame
from records.schema import Competency, Occupation, OccupationCompetency

log = logging.getLogger(__name__)

OCCUPATION_FILE = "Occupation Data.txt"
TECHNOLOGY_FILE = "Technology Skills.txt"
CODE = "O*NET-SOC Code"


@dataclass(frozen=True)
class ElementFile:
    """A rated-element file (skills, knowledge, abilities) and the competency kind it holds."""

    name: str
    kind: str


ELEMENT_FILES: tuple[ElementFile, ...] = (
    ElementFile("Skills.txt", "skill"),
    ElementFile("Knowledge.txt", "knowledge"),
    ElementFile("Abilities.txt", "ability"),
)
ELEMENT_COLUMNS = (CODE, "Element ID", "Element Name", "Scale ID", "Data Value")
TECHNOLOGY_COLUMNS = (CODE, "Example", "Commodity Code", "Commodity Title")
# Flag columns: read when present (older releases lack "In Demand"); a missing flag counts as N.
OPTIONAL_COLUMNS = ("Recommend Suppress", "Not Relevant", "Hot Technology", "In Demand")
OCCUPATION_COLUMNS = (CODE, "Title", "Description")

# The O*NET content model's element hierarchy: the longest matching prefix names the domain.
ELEMENT_DOMAINS: dict[str, str] = {
    "1.A": "Abilities",
    "1.A.1": "Cognitive Abilities",
    "1.A.2": "Psychomotor Abilities",
    "1.A.3": "Physical Abilities",
    "1.A.4": "Sensory Abilities",
    "2.A": "Basic Skills",
    "2.A.1": "Basic Skills: Content",
    "2.A.2": "Basic Skills: Process",
    "2.B": "Cross-Functional Skills",
    "2.B.1": "Social Skills",
    "2.B.2": "Complex Problem Solving Skills",
    "2.B.3": "Technical Skills",
    "2.B.4": "Systems Skills",
    "2.B.5": "Resource Management Skills",
    "2.C": "Knowledge",
    "2.C.1": "Business and Management",
    "2.C.2": "Manufacturing and Production",
    "2.C.3": "Engineering and Technology",
    "2.C.4": "Mathematics and Science",
    "2.C.5": "Health Services",
    "2.C.6": "Education and Training",
    "2.C.7": "Arts and Humanities",
    "2.C.8": "Law and Public Safety",
    "2.C.9": "Communications",
    "2.C.10": "Transportation",
}

# Technology importance from the flags: hot and in demand, one of them, neither.
TECHNOLOGY_IMPORTANCE = {2: 1.0, 1: 0.75, 0: 0.5}


def element_domain(element_ids: pd.Series) -> pd.Series:
    """Domain of each O*NET Element ID from its first levels (``2.A.1.a`` → ``Basic Skills: Content``).

    Unknown branches fall back to the first two levels of the id (e.g. ``4.A``).
    """
    parts = element_ids.astype(str).str.split(".")
    domain = pd.Series(None, index=element_ids.index, dtype=object)
    for depth in (2, 3):
        prefix = parts.str[:depth].str.join(".")
        domain = prefix.map(ELEMENT_DOMAINS).where(lambda d: d.notna(), domain)
    fallback = parts.str[:2].str.join(".")
    return domain.fillna(fallback)


def _read(
    directory: Path, name: str, required: tuple[str, ...], rejections: RejectionCollector
) -> pd.DataFrame | None:
    """A tab-delimited file as strings with ``__line__``; None when absent or unreadable."""
    path = directory / name
    if not path.is_file():
        return None
    table, problems = read_csv_text(path.read_bytes(), delimiter="\t", quoting=False)
    for problem in problems:
        rejections.add(name, problem.line, None, problem.reason)
    if table is None:
        return None
    missing = [column for column in required if column not in table.header]
    for column in missing:
        rejections.add(name, 1, column, "required column missing from the header")
    if missing:
        return None
    frame = table.frame[list(required) + [c for c in OPTIONAL_COLUMNS if c in table.header]]
    for flag in ("Hot Technology", "In Demand"):
        if name == TECHNOLOGY_FILE and flag not in frame.columns:
            frame[flag] = "N"
    frame["__line__"] = table.lines
    return frame


def _column_limit(column: Any) -> int:
    """The declared length of a String(n) column of records/schema.py."""
    return int(column.type.length)


def _reject_too_long(
    name: str, frame: pd.DataFrame, limits: dict[str, int], rejections: RejectionCollector
) -> None:
    """Reject values longer than the table columns they fill (file:line column: reason)."""
    lines = frame["__line__"].to_numpy()
    for column, limit in limits.items():
        lengths = frame[column].str.len()
        rejections.rows(
            name,
            lines,
            (lengths > limit).to_numpy(),
            column,
            partial(_too_long_reasons, lengths, limit),
        )


def _too_long_reasons(lengths: pd.Series, limit: int) -> pd.Series:
    return lengths.astype(str) + f" characters, longer than the {limit} allowed"


def _kept(frame: pd.DataFrame) -> pd.Series:
    """Rows not flagged ``Recommend Suppress = Y`` or ``Not Relevant = Y``."""
    keep = pd.Series(True, index=frame.index)
    for flag in ("Recommend Suppress", "Not Relevant"):
        if flag in frame.columns:
            keep &= frame[flag].str.upper() != "Y"
    return keep


def _element_ratings(
    frame: pd.DataFrame, element_file: ElementFile, rejections: RejectionCollector
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Competencies (id, name, kind, domain) and ratings (occupation_id, competency_id, importance, level)."""
    name = element_file.name
    lines = frame["__line__"].to_numpy()
    for column in (CODE, "Element ID", "Element Name", "Scale ID"):
        rejections.rows(name, lines, (frame[column] == "").to_numpy(), column, "empty: a value is required")
    value = pd.to_numeric(frame["Data Value"], errors="coerce")
    rejections.rows(
        name, lines, value.isna().to_numpy(), "Data Value", "not a number: " + frame["Data Value"].map(repr)
    )
    scale = frame["Scale ID"].str.upper()
    out_of_range = ((scale == "IM") & ((value < 1) | (value > 5))) | (
        (scale == "LV") & ((value < 0) | (value > 7))
    )
    rejections.rows(
        name,
        lines,
        out_of_range.to_numpy(),
        "Data Value",
        frame["Data Value"] + " is outside the scale's range (IM 1-5, LV 0-7)",
    )
    competencies = (
        frame[["Element ID", "Element Name"]]
        .drop_duplicates("Element ID")
        .rename(columns={"Element ID": "id", "Element Name": "name"})
    )
    competencies["kind"] = element_file.kind
    competencies["domain"] = element_domain(competencies["id"])
    kept = frame[_kept(frame) & scale.isin(["IM", "LV"]) & value.notna()].assign(value=value, scale=scale)
    ratings = kept.pivot_table(index=[CODE, "Element ID"], columns="scale", values="value", aggfunc="mean")
    ratings = ratings.reindex(columns=["IM", "LV"]).reset_index()
    ratings = ratings[ratings["IM"].notna()]
    first_line = kept.groupby([CODE, "Element ID"])["__line__"].min().rename("__line__").reset_index()
    ratings = ratings.merge(first_line, on=[CODE, "Element ID"], how="left")
    result = pd.DataFrame(
        {
            "occupation_id": ratings[CODE].astype(object),
            "competency_id": ratings["Element ID"].astype(object),
            "importance": ((ratings["IM"] - 1.0) / 4.0).clip(0.0, 1.0),
            "level": ratings["LV"].astype("float64"),
            "__line__": ratings["__line__"].astype("int64"),
        }
    )
    return competencies, result


def _technologies(frame: pd.DataFrame, rejections: RejectionCollector) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Technology competencies (id ``T`` + commodity code) and occupations' ratings of them."""
    name = TECHNOLOGY_FILE
    lines = frame["__line__"].to_numpy()
    for column in (CODE, "Commodity Code", "Commodity Title"):
        rejections.rows(name, lines, (frame[column] == "").to_numpy(), column, "empty: a value is required")
    frame = frame[frame["Commodity Code"] != ""]
    flags = (frame["Hot Technology"].str.upper() == "Y").astype(int) + (
        frame["In Demand"].str.upper() == "Y"
    ).astype(int)
    rated = frame.assign(
        competency_id="T" + frame["Commodity Code"], importance=flags.map(TECHNOLOGY_IMPORTANCE)
    )
    examples = (
        rated.groupby("competency_id", sort=True)["Example"]
        .agg(lambda names: "; ".join(sorted(set(names) - {""})[:5]))
        .rename("description")
    )
    competencies = (
        rated.drop_duplicates("competency_id")[["competency_id", "Commodity Title"]]
        .rename(columns={"competency_id": "id", "Commodity Title": "name"})
        .merge(examples, left_on="id", right_index=True)
    )
    competencies["kind"] = "technology"
    competencies["domain"] = competencies["name"]
    ratings = (
        rated.groupby([CODE, "competency_id"], sort=False)
        .agg(importance=("importance", "max"), __line__=("__line__", "min"))
        .reset_index()
        .rename(columns={CODE: "occupation_id"})
    )
    ratings["level"] = np.nan
    return competencies, ratings


def read_onet_directory(directory: Path) -> tuple[dict[str, pd.DataFrame], ImportReport, list[Rejection]]:
    """Read and check the O*NET files in ``directory``.

    Returns frames for the tables ``occupation``, ``competency`` and ``occupation_competency`` (with
    ``__line__``/``__file__`` columns on ratings for error reports), a report holding rows read and
    notes, and every rejection found.
    """
    directory = Path(directory)
    report = ImportReport()
    rejections = RejectionCollector()
    if not directory.is_dir():
        return {}, report, [Rejection(str(directory), None, None, "no such folder")]
    occupations = _read(directory, OCCUPATION_FILE, OCCUPATION_COLUMNS, rejections)
    code_limit = _column_limit(Occupation.__table__.c.id)
    id_limit, name_limit = (
        _column_limit(Competency.__table__.c.id),
        _column_limit(Competency.__table__.c.name),
    )
    if occupations is not None:
        title_limit = _column_limit(Occupation.__table__.c.title)
        _reject_too_long(OCCUPATION_FILE, occupations, {CODE: code_limit, "Title": title_limit}, rejections)
    competency_parts: list[pd.DataFrame] = []
    rating_parts: list[pd.DataFrame] = []
    absent: list[str] = []
    if occupations is None and not (directory / OCCUPATION_FILE).is_file():
        absent.append(OCCUPATION_FILE)
    if occupations is not None:
        report.rows_read[OCCUPATION_FILE] = len(occupations)
    for element_file in ELEMENT_FILES:
        frame = _read(directory, element_file.name, ELEMENT_COLUMNS, rejections)
        if frame is None:
            if not (directory / element_file.name).is_file():
                absent.append(element_file.name)
            continue
        report.rows_read[element_file.name] = len(frame)
        limits = {CODE: code_limit, "Element ID": id_limit, "Element Name": name_limit}
        _reject_too_long(element_file.name, frame, limits, rejections)
        dropped = int((~_kept(frame)).sum())
        if dropped:
            report.notes.append(
                f"{element_file.name}: dropped {dropped} rows marked Recommend Suppress or Not Relevant"
            )
        competencies, ratings = _element_ratings(frame, element_file, rejections)
        competency_parts.append(competencies)
        rating_parts.append(ratings.assign(__file__=element_file.name))
    technology = _read(directory, TECHNOLOGY_FILE, TECHNOLOGY_COLUMNS, rejections)
    if technology is None and not (directory / TECHNOLOGY_FILE).is_file():
        absent.append(TECHNOLOGY_FILE)
    if technology is not None:
        report.rows_read[TECHNOLOGY_FILE] = len(technology)
        # The id is "T" + the code; the title is the name and the domain too.
        title_limit = min(name_limit, _column_limit(Competency.__table__.c.domain))
        limits = {CODE: code_limit, "Commodity Code": id_limit - 1, "Commodity Title": title_limit}
        _reject_too_long(TECHNOLOGY_FILE, technology, limits, rejections)
        competencies, ratings = _technologies(technology, rejections)
        competency_parts.append(competencies)
        rating_parts.append(ratings.assign(__file__=TECHNOLOGY_FILE))
    if absent:
        report.notes.append(f"absent (skipped): {', '.join(absent)}")
    if not report.rows_read and not rejections.items:
        rejections.add(
            str(directory), None, None, "no O*NET file found (e.g. 'Occupation Data.txt', 'Skills.txt')"
        )
    tables: dict[str, pd.DataFrame] = {}
    if occupations is not None:
        lines = occupations["__line__"].to_numpy()
        for column in (CODE, "Title"):
            rejections.rows(
                OCCUPATION_FILE,
                lines,
                (occupations[column] == "").to_numpy(),
                column,
                "empty: a value is required",
            )
        duplicated = occupations.duplicated(CODE, keep="first").to_numpy()
        rejections.rows(OCCUPATION_FILE, lines, duplicated, CODE, "duplicate O*NET-SOC Code")
        tables["occupation"] = occupations.rename(
            columns={CODE: "id", "Title": "title", "Description": "description"}
        )[["id", "title", "description", "__line__"]]
    if competency_parts:
        tables["competency"] = pd.concat(competency_parts, ignore_index=True).drop_duplicates("id")
    if rating_parts:
        tables["occupation_competency"] = pd.concat(rating_parts, ignore_index=True)
    return tables, report, rejections.items


def import_onet_directory(engine: Engine, directory: Path) -> ImportReport:
    """Import the O*NET files in ``directory`` in one transaction; raises ImportRejected (nothing written)."""
    tables, report, rejections = read_onet_directory(directory)
    if rejections:
        raise ImportRejected(rejections, report.notes)
    with engine.begin() as connection:
        occupations = tables.get("occupation")
        known = set(connection.execute(select(Occupation.id)).scalars().all())
        if occupations is not None:
            known |= set(occupations["id"])
        ratings = tables.get("occupation_competency")
        if ratings is not None:
            unknown = ~ratings["occupation_id"].isin(known)
            if unknown.any():
                collector = RejectionCollector()
                for file, part in ratings[unknown].groupby("__file__"):
                    collector.rows(
                        str(file),
                        part["__line__"].to_numpy(),
                        np.ones(len(part), dtype=bool),
                        CODE,
                        "unknown occupation "
                        + part["occupation_id"].map(repr).reset_index(drop=True)
                        + f" (not in {OCCUPATION_FILE} nor in the database)",
                    )
                raise ImportRejected(collector.items, report.notes)
        try:
            for name, table, key in (
                ("occupation", Occupation, ("id",)),
                ("competency", Competency, ("id",)),
                ("occupation_competency", OccupationCompetency, ("occupation_id", "competency_id")),
            ):
                frame = tables.get(name)
                if frame is None:
                    continue
                columns = tuple(c for c in frame.columns if not c.startswith("__"))
                upsert_frame(connection, name, table_of(table), key, frame, columns, report)
        except SQLAlchemyError as error:
            original = getattr(error, "orig", None)
            reason = str(original) if original is not None else str(error)
            raise ImportRejected(
                [Rejection("(database)", None, None, reason.splitlines()[0])], report.notes
            ) from error
    log.info("O*NET import: %s", report.rows_written)
    return report
