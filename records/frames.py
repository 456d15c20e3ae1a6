"""The institution's records as pandas frames as of a cutoff term, with nothing from later terms.

``load_frames(engine, cutoff_term)`` reads every record table with ``pd.read_sql`` on SQLAlchemy
selects and keeps only what was known at the end of the cutoff term:

- terms, enrollments and offerings of terms whose ordinal is <= the cutoff's (by ordinal, never by code);
- students who entered in or before the term after the cutoff, the target term (unknown entry term:
  kept): the cohort starting in the target term is known at the cutoff and is scored, from its entry
  alone, for its first term; ``as_of`` an earlier cutoff keeps those who entered by that cutoff only
  (the time-ordered evaluation is unchanged);
- goals set in or before the cutoff term (no ``set_term``: known from the start);
- demand periods starting on or before the cutoff term's ``starts_on``; without a start date, periods
  of a year <= the year in the cutoff's code; without either, every period (and a note says so).

The catalog (competencies, modules, tags, prerequisites, programs, occupations) has no time and is
kept whole. ``Frames.as_of(term)`` applies the same filter in memory for an earlier cutoff, so
time-ordered splits need one read. ``load_term_state`` reads what is true of the target term at
scoring time (offerings, seats taken, exclusions).

Id columns of the large frames (enrollments, goals, student attributes) are ``category`` whose
categories are the ids of ``students`` / ``modules`` / ``occupations`` in frame order; low-cardinality
strings are ``category``; numbers are int32/float32.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Select, and_, case, func, or_, select
from sqlalchemy.orm import aliased

from records.schema import (
    ENROLLMENT_STATUSES,
    Advisor,
    Competency,
    Demand,
    Enrollment,
    Feedback,
    Goal,
    Module,
    ModuleCompetency,
    Occupation,
    OccupationCompetency,
    Offering,
    Prerequisite,
    Program,
    ProgramModule,
    ProgramOccupation,
    Review,
    Student,
    StudentAttribute,
    Term,
)

log = logging.getLogger(__name__)

NO_ORDINAL = -1
"""Ordinal used for an unknown term (entry term not recorded, goal known from the start)."""
ENROLLMENT_CHUNK_ROWS = 500_000

_YEAR = re.compile(r"(19|20|21)\d{2}")


@dataclass(frozen=True)
class Frames:
    """Every record table as a DataFrame, restricted to what was known at the end of ``cutoff_term``.

    Columns (dtypes in brackets; ``cat`` = category, ``str`` = pandas string):

    - ``terms``: code [str], ordinal [int64], starts_on [datetime64, NaT unknown]; sorted by ordinal.
    - ``competencies``: id, name [str], kind, domain [cat], description [str].
    - ``modules``: id, code, title, description [str], track, department, delivery [cat], level,
      credits, capacity, pass_grade [float32, NaN unknown]; sorted by id.
    - ``module_competencies``: module_id, competency_id [str], weight, level [float32].
    - ``prerequisites``: module_id [str], group_no [int32], requires_module_id [str], min_grade [float32].
    - ``offerings``: module_id, term_code [str], term_ordinal [int32].
    - ``programs``: id, name [str], department [cat], credits_to_graduate, target_academic,
      target_vocational, target_project [float32].
    - ``program_occupations``: program_id, occupation_id [str]. ``program_modules``: program_id, module_id.
    - ``occupations``: id, title, description [str].
    - ``occupation_competencies``: occupation_id, competency_id [str], importance, level [float32].
    - ``demand``: occupation_id [str], region [cat], period [str], period_start [datetime64],
      postings, growth [float32].
    - ``advisors``: id, name [str], department [cat].
    - ``students``: id [str], program_id, entry_route, advisor_id, status [cat], entry_term [str],
      entry_ordinal [int32, -1 unknown], max_credits_per_term [float32]; sorted by id. ``status`` is
      the status recorded now, not as of the cutoff: do not use it to select students in evaluation.
    - ``student_attributes``: student_id [cat of students.id], name [cat], value [str].
    - ``enrollments``: student_id [cat of students.id], module_id [cat of modules.id], term_ordinal
      [int32], status [cat: completed, failed, withdrawn, in_progress], grade [float32, NaN unknown],
      enrolled_on [datetime64, NaT unless the log dates its rows]; sorted by term_ordinal, student, module.
    - ``goals``: student_id [cat of students.id], occupation_id [str], weight [float32],
      set_ordinal [int32, -1 = known from the start].

    ``notes`` are plain-language remarks on what could not be filtered or is absent.
    """

    cutoff_term: str | None
    cutoff_ordinal: int | None
    terms: pd.DataFrame
    competencies: pd.DataFrame
    modules: pd.DataFrame
    module_competencies: pd.DataFrame
    prerequisites: pd.DataFrame
    offerings: pd.DataFrame
    programs: pd.DataFrame
    program_occupations: pd.DataFrame
    program_modules: pd.DataFrame
    occupations: pd.DataFrame
    occupation_competencies: pd.DataFrame
    demand: pd.DataFrame
    advisors: pd.DataFrame
    students: pd.DataFrame
    student_attributes: pd.DataFrame
    enrollments: pd.DataFrame
    goals: pd.DataFrame
    notes: tuple[str, ...] = field(default=())

    def as_of(self, term_code: str) -> Frames:
        """The same frames restricted to an earlier (or the same) cutoff term, without a database read.

        Raises ValueError when ``term_code`` is not among the terms up to the current cutoff.
        """
        ordinal = _ordinal_of(self.terms, term_code)
        if ordinal is None:
            raise ValueError(
                f"term {term_code!r} is not among the terms up to the cutoff {self.cutoff_term!r}"
            )
        return _restrict(replace(self, notes=()), term_code, ordinal)


@dataclass
class TermState:
    """What is true of the target term at scoring time, by external id.

    ``offered_module_ids``: modules offered in the target term (a module with no offering rows at all
    is offered every term; with no target term, every module). ``seats_taken``: module_id -> number of
    in-progress enrollments in the target term (int64 Series). ``in_progress``: (student_id, module_id)
    pairs in progress in terms after the cutoff up to the target. ``excluded``: (student_id, module_id)
    pairs an advisor rejected or replaced, or the student dismissed.
    """

    target_term: str | None
    offered_module_ids: frozenset[str]
    seats_taken: pd.Series
    in_progress: pd.DataFrame
    excluded: pd.DataFrame


# ---------------------------------------------------------------------------------------------
# Terms
# ---------------------------------------------------------------------------------------------


def _read(engine: Engine, statement: Select, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_sql`` of a select; on SQLite through the sqlite3 connection (see :func:`_read_chunks`)."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            driver: Any = connection.connection.driver_connection
            frame: pd.DataFrame = pd.read_sql(_sqlite_text(connection, statement), driver, **kwargs)
            return frame
        return pd.read_sql(statement, connection, **kwargs)


def _sqlite_text(connection: Connection, statement: Select) -> str:
    """The select as SQLite text with its parameters inlined (they are term ordinals and literals)."""
    return str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))


def _read_terms(engine: Engine) -> pd.DataFrame:
    terms = _read(engine, select(Term.code, Term.ordinal, Term.starts_on))
    return _typed_terms(terms)


def _typed_terms(terms: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "code": terms["code"].astype(str),
            "ordinal": terms["ordinal"].astype(np.int64),
            "starts_on": _dates(terms["starts_on"]),
        }
    )
    return out.sort_values("ordinal", kind="stable").reset_index(drop=True)


def _dates(values: pd.Series) -> pd.Series:
    """Dates (date objects or ISO text, as drivers return them) as datetime64[ns], NaT when missing."""
    return pd.to_datetime(values).astype("datetime64[ns]")


def _ordinal_of(terms: pd.DataFrame, term_code: str) -> int | None:
    match = terms.loc[terms["code"] == term_code, "ordinal"]
    return None if match.empty else int(match.iloc[0])


CLOSED_TERM_MAX_IN_PROGRESS = 0.05
"""A term with enrollments is closed when at most this share of them is still in progress, or at most
twice the typical term's share (the lower quartile of the terms' shares) when that is higher (up to
:data:`CLOSED_TERM_CEILING`): incompletes left open in old terms (``I`` grades never resolved) do not
keep every term open, and one old term that happens to have fewer does not set the bar for the rest."""
CLOSED_TERM_CEILING = 0.25
OPEN_TERMS_EXPECTED = 2
"""Open terms after the newest closed one that are usual (the running term, the next one's early
enrolments); more are named in a warning."""


def closed_term_position(shares: np.ndarray) -> int | None:
    """Index of the newest closed term among terms with enrollments ordered oldest first, given the share
    of each term's enrollments in progress (:data:`CLOSED_TERM_MAX_IN_PROGRESS`); None if none is."""
    if len(shares) == 0:
        return None
    typical = float(np.quantile(shares, 0.25))
    limit = max(CLOSED_TERM_MAX_IN_PROGRESS, min(2 * typical, CLOSED_TERM_CEILING))
    closed = np.flatnonzero(shares <= limit)
    return int(closed[-1]) if len(closed) else None


def newest_closed_term(engine: Engine) -> str | None:
    """The newest term (by ordinal) that has enrollments and is closed (:func:`closed_term_position`);
    None if none."""
    in_progress = func.sum(case((Enrollment.status == "in_progress", 1), else_=0))
    statement = (
        select(Term.code, in_progress, func.count())
        .join(Enrollment, Enrollment.term_code == Term.code)
        .group_by(Term.code, Term.ordinal)
        .order_by(Term.ordinal)
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    shares = np.asarray([float(open_rows) / count for _, open_rows, count in rows], dtype=np.float64)
    position = closed_term_position(shares)
    newer = len(rows) - 1 - (-1 if position is None else position)
    if newer > OPEN_TERMS_EXPECTED:
        named = [f"{row[0]} {share:.0%}" for row, share in zip(rows[-newer:], shares[-newer:], strict=True)]
        log.warning(
            "terms: %d terms with enrollments after the newest closed one (%s) count as open, their shares "
            "in progress %s: training learns up to %s",
            newer,
            "none" if position is None else rows[position][0],
            ", ".join(named[:6]) + (", ..." if len(named) > 6 else ""),
            "nothing" if position is None else rows[position][0],
        )
    return None if position is None else str(rows[position][0])


def next_term(engine: Engine, after: str | None) -> str | None:
    """The term that follows ``after`` by ordinal, None when there is none.

    ``after=None`` means after the newest closed term (the usual target of the nightly job); with no
    closed term, the first term. Raises ValueError for an unknown term code.
    """
    terms = _read_terms(engine)
    if after is None:
        after = newest_closed_term(engine)
        if after is None:
            return None if terms.empty else str(terms["code"].iloc[0])
    ordinal = _ordinal_of(terms, after)
    if ordinal is None:
        raise ValueError(f"unknown term {after!r}: not in the term table")
    later = terms.loc[terms["ordinal"] > ordinal, "code"]
    return None if later.empty else str(later.iloc[0])


def _default_cutoff(engine: Engine, terms: pd.DataFrame) -> str | None:
    closed = newest_closed_term(engine)
    if closed is not None:
        return closed
    with engine.connect() as connection:
        newest_with_enrollments = connection.scalars(
            select(Term.code)
            .join(Enrollment, Enrollment.term_code == Term.code)
            .order_by(Term.ordinal.desc())
            .limit(1)
        ).first()
    if newest_with_enrollments is not None:
        log.warning(
            "no closed term: cutting off at %s, which has in-progress enrollments", newest_with_enrollments
        )
        return newest_with_enrollments
    if terms.empty:
        return None
    return str(terms["code"].iloc[-1])


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _as_str(frame: pd.DataFrame, columns: list[str]) -> None:
    for column in columns:
        frame[column] = frame[column].astype("str") if len(frame) else frame[column].astype(object)


def _as_optional_str(frame: pd.DataFrame, columns: list[str]) -> None:
    for column in columns:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)


def _as_category(frame: pd.DataFrame, columns: list[str]) -> None:
    for column in columns:
        frame[column] = frame[column].astype("category")


def _as_float32(frame: pd.DataFrame, columns: list[str]) -> None:
    for column in columns:
        frame[column] = pd.to_numeric(frame[column]).astype(np.float32)


def _read_catalog(engine: Engine) -> dict[str, pd.DataFrame]:
    competencies = _read(
        engine,
        select(Competency.id, Competency.name, Competency.kind, Competency.domain, Competency.description),
    )
    _as_str(competencies, ["id", "name"])
    _as_optional_str(competencies, ["description"])
    _as_category(competencies, ["kind", "domain"])

    modules = _read(
        engine,
        select(
            Module.id,
            Module.code,
            Module.title,
            Module.description,
            Module.track,
            Module.department,
            Module.delivery,
            Module.level,
            Module.credits,
            Module.capacity,
            Module.pass_grade,
        ),
    )
    _as_str(modules, ["id"])
    _as_optional_str(modules, ["code", "title", "description"])
    _as_category(modules, ["track", "department", "delivery"])
    _as_float32(modules, ["level", "credits", "capacity", "pass_grade"])

    module_competencies = _read(
        engine,
        select(
            ModuleCompetency.module_id,
            ModuleCompetency.competency_id,
            ModuleCompetency.weight,
            ModuleCompetency.level,
        ),
    )
    _as_str(module_competencies, ["module_id", "competency_id"])
    _as_float32(module_competencies, ["weight", "level"])

    prerequisites = _read(
        engine,
        select(
            Prerequisite.module_id,
            Prerequisite.group_no,
            Prerequisite.requires_module_id,
            Prerequisite.min_grade,
        ),
    )
    _as_str(prerequisites, ["module_id", "requires_module_id"])
    prerequisites["group_no"] = prerequisites["group_no"].astype(np.int32)
    _as_float32(prerequisites, ["min_grade"])

    programs = _read(
        engine,
        select(
            Program.id,
            Program.name,
            Program.department,
            Program.credits_to_graduate,
            Program.target_academic,
            Program.target_vocational,
            Program.target_project,
        ),
    )
    _as_str(programs, ["id", "name"])
    _as_category(programs, ["department"])
    _as_float32(programs, ["credits_to_graduate", "target_academic", "target_vocational", "target_project"])

    program_occupations = _read(engine, select(ProgramOccupation.program_id, ProgramOccupation.occupation_id))
    _as_str(program_occupations, ["program_id", "occupation_id"])
    program_modules = _read(engine, select(ProgramModule.program_id, ProgramModule.module_id))
    _as_str(program_modules, ["program_id", "module_id"])

    occupations = _read(engine, select(Occupation.id, Occupation.title, Occupation.description))
    _as_str(occupations, ["id", "title"])
    _as_optional_str(occupations, ["description"])

    occupation_competencies = _read(
        engine,
        select(
            OccupationCompetency.occupation_id,
            OccupationCompetency.competency_id,
            OccupationCompetency.importance,
            OccupationCompetency.level,
        ),
    )
    _as_str(occupation_competencies, ["occupation_id", "competency_id"])
    _as_float32(occupation_competencies, ["importance", "level"])

    advisors = _read(engine, select(Advisor.id, Advisor.name, Advisor.department))
    _as_str(advisors, ["id"])
    _as_optional_str(advisors, ["name"])
    _as_category(advisors, ["department"])

    return {
        "competencies": competencies.sort_values("id", ignore_index=True),
        "modules": modules.sort_values("id", ignore_index=True),
        "module_competencies": module_competencies.sort_values(
            ["module_id", "competency_id"], ignore_index=True
        ),
        "prerequisites": prerequisites.sort_values(
            ["module_id", "group_no", "requires_module_id"], ignore_index=True
        ),
        "programs": programs.sort_values("id", ignore_index=True),
        "program_occupations": program_occupations.sort_values(
            ["program_id", "occupation_id"], ignore_index=True
        ),
        "program_modules": program_modules.sort_values(["program_id", "module_id"], ignore_index=True),
        "occupations": occupations.sort_values("id", ignore_index=True),
        "occupation_competencies": occupation_competencies.sort_values(
            ["occupation_id", "competency_id"], ignore_index=True
        ),
        "advisors": advisors.sort_values("id", ignore_index=True),
    }


def _read_timed(
    engine: Engine, cutoff_ordinal: int | None, entrants_until: int | None = None
) -> dict[str, pd.DataFrame]:
    """The time-dependent tables, pre-filtered in SQL to terms <= the cutoff (to save memory); students
    who entered up to ``entrants_until`` (default: the cutoff)."""
    limit = cutoff_ordinal if cutoff_ordinal is not None else np.iinfo(np.int32).max
    entry_limit = limit if entrants_until is None else max(limit, entrants_until)
    entry_term = aliased(Term)
    students = _read(
        engine,
        select(
            Student.id,
            Student.program_id,
            Student.entry_term,
            entry_term.ordinal.label("entry_ordinal"),
            Student.entry_route,
            Student.advisor_id,
            Student.max_credits_per_term,
            Student.status,
        )
        .outerjoin(entry_term, entry_term.code == Student.entry_term)
        .where(or_(entry_term.ordinal.is_(None), entry_term.ordinal <= entry_limit)),
    )
    _as_str(students, ["id"])
    _as_optional_str(students, ["entry_term"])
    students["entry_ordinal"] = students["entry_ordinal"].fillna(NO_ORDINAL).astype(np.int32)
    _as_category(students, ["program_id", "entry_route", "advisor_id", "status"])
    _as_float32(students, ["max_credits_per_term"])

    attributes = _read(
        engine, select(StudentAttribute.student_id, StudentAttribute.name, StudentAttribute.value)
    )
    _as_str(attributes, ["student_id", "value"])
    _as_category(attributes, ["name"])

    set_term = aliased(Term)
    goals = _read(
        engine,
        select(Goal.student_id, Goal.occupation_id, Goal.weight, set_term.ordinal.label("set_ordinal"))
        .outerjoin(set_term, set_term.code == Goal.set_term)
        .where(or_(set_term.ordinal.is_(None), set_term.ordinal <= limit)),
    )
    _as_str(goals, ["student_id", "occupation_id"])
    _as_float32(goals, ["weight"])
    goals["set_ordinal"] = goals["set_ordinal"].fillna(NO_ORDINAL).astype(np.int32)

    offerings = _read(
        engine,
        select(Offering.module_id, Offering.term_code, Term.ordinal.label("term_ordinal"))
        .join(Term, Term.code == Offering.term_code)
        .where(Term.ordinal <= limit),
    )
    _as_str(offerings, ["module_id", "term_code"])
    offerings["term_ordinal"] = offerings["term_ordinal"].astype(np.int32)

    demand = _read(
        engine,
        select(
            Demand.occupation_id,
            Demand.region,
            Demand.period,
            Demand.period_start,
            Demand.postings,
            Demand.growth,
        ),
    )
    _as_str(demand, ["occupation_id", "period"])
    _as_category(demand, ["region"])
    demand["period_start"] = _dates(demand["period_start"])
    _as_float32(demand, ["postings", "growth"])

    return {
        "students": students,
        "student_attributes": attributes,
        "goals": goals,
        "offerings": offerings,
        "demand": demand,
        "enrollments": _read_enrollments(engine, limit, students["id"], None),
    }


def _read_enrollments(
    engine: Engine, limit: int, student_ids: pd.Series, module_ids: pd.Index | None
) -> pd.DataFrame:
    """Enrollments of terms with ordinal <= ``limit``, read in chunks so strings never pile up.

    Each chunk's ids become category codes at once; peak memory is one chunk of Python strings.
    """
    statement = (
        select(
            Enrollment.student_id,
            Enrollment.module_id,
            Term.ordinal.label("term_ordinal"),
            Enrollment.status,
            Enrollment.grade,
            Enrollment.enrolled_on,
        )
        .join(Term, Term.code == Enrollment.term_code)
        .where(Term.ordinal <= limit)
    )
    if module_ids is None:
        with engine.connect() as connection:
            module_ids = pd.Index(sorted(connection.scalars(select(Module.id)).all()), dtype=object)
    student_categories = pd.Index(student_ids.astype(object).to_numpy(), dtype=object)
    status_type = pd.CategoricalDtype(list(ENROLLMENT_STATUSES))
    parts: list[pd.DataFrame] = []
    with engine.connect() as connection:
        for chunk in _read_chunks(connection, statement, {"term_ordinal": "int32", "grade": "float32"}):
            parts.append(
                pd.DataFrame(
                    {
                        "student_id": pd.Categorical(chunk["student_id"], categories=student_categories),
                        "module_id": pd.Categorical(chunk["module_id"], categories=module_ids),
                        "term_ordinal": chunk["term_ordinal"].to_numpy(np.int32),
                        "status": pd.Categorical(chunk["status"], dtype=status_type),
                        "grade": chunk["grade"].to_numpy(np.float32),
                        "enrolled_on": _dates(chunk["enrolled_on"]).to_numpy(),
                    }
                )
            )
    if not parts:
        return pd.DataFrame(
            {
                "student_id": pd.Categorical([], categories=student_categories),
                "module_id": pd.Categorical([], categories=module_ids),
                "term_ordinal": np.empty(0, np.int32),
                "status": pd.Categorical([], dtype=status_type),
                "grade": np.empty(0, np.float32),
                "enrolled_on": np.empty(0, "datetime64[ns]"),
            }
        )
    return pd.concat(parts, ignore_index=True)


def _read_chunks(connection: Connection, statement: Select, dtype: dict[str, str]) -> Iterator[pd.DataFrame]:
    """``pd.read_sql`` of ``statement`` in chunks of ENROLLMENT_CHUNK_ROWS rows.

    On SQLite the select is compiled (its parameters are integers only) and read through the sqlite3
    connection, which pandas reads row tuples from directly: about twice as fast as going through
    SQLAlchemy result rows for millions of rows. Elsewhere the rows stream through SQLAlchemy.
    """
    if connection.dialect.name == "sqlite":
        driver: Any = connection.connection.driver_connection
        yield from pd.read_sql(
            _sqlite_text(connection, statement), driver, chunksize=ENROLLMENT_CHUNK_ROWS, dtype=dtype
        )
    else:
        streaming = connection.execution_options(stream_results=True)
        yield from pd.read_sql(statement, streaming, chunksize=ENROLLMENT_CHUNK_ROWS, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# The cutoff filter (shared by load_frames and Frames.as_of, so both give identical frames)
# ---------------------------------------------------------------------------------------------


def _demand_cutoff(terms: pd.DataFrame, cutoff_term: str) -> tuple[pd.Timestamp | None, int | None]:
    """The cutoff term's start date, else the year in its code, else neither."""
    row = terms.loc[terms["code"] == cutoff_term]
    if not row.empty and pd.notna(row["starts_on"].iloc[0]):
        return pd.Timestamp(row["starts_on"].iloc[0]), None
    year = _YEAR.search(cutoff_term)
    return None, (int(year.group(0)) if year else None)


def _target_ordinal(terms: pd.DataFrame, cutoff_ordinal: int | None) -> int | None:
    """The ordinal of the term after the cutoff (None: no cutoff, or no term after it)."""
    if cutoff_ordinal is None:
        return None
    later = terms["ordinal"].to_numpy(np.int64)
    later = later[later > cutoff_ordinal]
    return int(later.min()) if len(later) else None


def _restrict(
    frames: Frames, cutoff_term: str | None, cutoff_ordinal: int | None, entrants_until: int | None = None
) -> Frames:
    """``frames`` as of ``cutoff_ordinal``; students who entered up to ``entrants_until`` (the target
    term's ordinal; default the cutoff's) are kept, without anything after the cutoff."""
    notes: list[str] = []
    if cutoff_ordinal is None:
        limit = np.iinfo(np.int32).max
        notes.append("no terms: nothing is time-filtered")
    else:
        limit = cutoff_ordinal

    terms = frames.terms.loc[frames.terms["ordinal"] <= limit].reset_index(drop=True)

    entry_limit = limit if entrants_until is None else max(limit, entrants_until)
    students = frames.students.loc[frames.students["entry_ordinal"] <= entry_limit]
    students = students.sort_values("id", ignore_index=True)
    for column in ("program_id", "entry_route", "advisor_id", "status"):
        students[column] = students[column].cat.remove_unused_categories()
    student_categories = pd.Index(students["id"].astype(object).to_numpy(), dtype=object)
    student_set = set(student_categories)

    enrollments = frames.enrollments
    keep = enrollments["term_ordinal"].to_numpy() <= limit
    if not keep.all():
        enrollments = enrollments.loc[keep]
    enrollments = _recategorise(enrollments, "student_id", student_categories, "enrollments")
    order = np.lexsort(
        (
            enrollments["module_id"].cat.codes.to_numpy(),
            enrollments["student_id"].cat.codes.to_numpy(),
            enrollments["term_ordinal"].to_numpy(),
        )
    )
    enrollments = enrollments.iloc[order].reset_index(drop=True)

    goals = frames.goals.loc[frames.goals["set_ordinal"] <= limit]
    goals = goals.loc[goals["student_id"].astype(object).isin(student_set)]
    goals = goals.sort_values(["student_id", "occupation_id"], ignore_index=True)
    goals["student_id"] = pd.Categorical(goals["student_id"].astype(object), categories=student_categories)

    attributes = frames.student_attributes
    attributes = attributes.loc[attributes["student_id"].astype(object).isin(student_set)]
    attributes = attributes.sort_values(["student_id", "name"], ignore_index=True)
    attributes["student_id"] = pd.Categorical(
        attributes["student_id"].astype(object), categories=student_categories
    )

    offerings = frames.offerings.loc[frames.offerings["term_ordinal"] <= limit]
    offerings = offerings.sort_values(["term_ordinal", "module_id"], ignore_index=True)

    demand = frames.demand
    if cutoff_term is not None and not demand.empty:
        start, year = _demand_cutoff(terms, cutoff_term)
        if start is not None:
            demand = demand.loc[demand["period_start"] <= start]
        elif year is not None:
            demand = demand.loc[demand["period_start"].dt.year <= year]
            notes.append(f"term {cutoff_term} has no start date: demand kept up to the year {year}")
        else:
            notes.append(
                f"term {cutoff_term} has no start date and no year in its code: "
                "demand of every period kept (may include periods after the cutoff)"
            )
    demand = demand.sort_values(["occupation_id", "region", "period"], ignore_index=True)

    return replace(
        frames,
        cutoff_term=cutoff_term,
        cutoff_ordinal=cutoff_ordinal,
        terms=terms,
        students=students,
        student_attributes=attributes,
        enrollments=enrollments,
        goals=goals,
        offerings=offerings,
        demand=demand,
        notes=tuple(notes),
    )


def _recategorise(frame: pd.DataFrame, column: str, categories: pd.Index, table: str) -> pd.DataFrame:
    """Re-code ``column`` to ``categories``; rows whose id is not among them are dropped (logged)."""
    values = frame[column]
    if values.cat.categories.equals(categories) and (values.cat.codes.to_numpy() >= 0).all():
        return frame
    codes = categories.get_indexer(values.cat.categories)[values.cat.codes.to_numpy()]
    codes = np.where(values.cat.codes.to_numpy() < 0, -1, codes)
    known = codes >= 0
    if not known.all():
        log.warning("%s: %d rows of unknown or later students dropped", table, int((~known).sum()))
    frame = frame.loc[known].copy()
    frame[column] = pd.Categorical.from_codes(codes[known].astype(np.int32), categories=categories)
    return frame


def load_frames(engine: Engine, cutoff_term: str | None = None, *, entrants: bool = True) -> Frames:
    """Read the records as of ``cutoff_term`` (None: the newest closed term); ``entrants``: with the
    students who enter in the term after it (as ``Frames.as_of`` does not: False gives its frames).

    Raises ValueError when ``cutoff_term`` is not in the term table. Empty tables give empty frames
    with the documented columns; ``notes`` says what could not be filtered.
    """
    terms = _read_terms(engine)
    if cutoff_term is None:
        cutoff_term = _default_cutoff(engine, terms)
    cutoff_ordinal: int | None = None
    if cutoff_term is not None:
        cutoff_ordinal = _ordinal_of(terms, cutoff_term)
        if cutoff_ordinal is None:
            raise ValueError(f"unknown cutoff term {cutoff_term!r}: not in the term table")
    catalog = _read_catalog(engine)
    entrants_until = _target_ordinal(terms, cutoff_ordinal) if entrants else None
    timed = _read_timed(engine, cutoff_ordinal, entrants_until)
    tables: dict[str, Any] = {**catalog, **timed}
    raw = Frames(cutoff_term=cutoff_term, cutoff_ordinal=cutoff_ordinal, terms=terms, **tables)
    frames = _restrict(raw, cutoff_term, cutoff_ordinal, entrants_until)
    log.info(
        "frames as of %s: %d students, %d modules, %d enrollments",
        cutoff_term,
        len(frames.students),
        len(frames.modules),
        len(frames.enrollments),
    )
    return frames


# ---------------------------------------------------------------------------------------------
# The target term
# ---------------------------------------------------------------------------------------------


def load_term_state(
    engine: Engine,
    target_term: str | None,
    cutoff_term: str | None = None,
    *,
    taken_since_cutoff: bool = False,
) -> TermState:
    """Offerings, seats taken, in-progress enrollments and exclusions for ``target_term``.

    ``target_term=None``: the term after the newest closed term (if there is none, every module is
    offered and no seats are taken). ``cutoff_term`` (default: the term before the target) bounds the
    in-progress enrollments from below. ``taken_since_cutoff`` (serving, never evaluation): every
    module a student has completed or is taking in any term after the cutoff counts as in progress, so
    it is not suggested again. That matters for dated logs, where the newest closed term can lie months
    behind the newest enrolments (modules overlap the month windows). Raises ValueError for unknown
    term codes.
    """
    terms = _read_terms(engine)
    if target_term is None:
        target_term = next_term(engine, None) if not terms.empty else None
    target_ordinal: int | None = None
    if target_term is not None:
        target_ordinal = _ordinal_of(terms, target_term)
        if target_ordinal is None:
            raise ValueError(f"unknown target term {target_term!r}: not in the term table")
    if cutoff_term is not None:
        cutoff_ordinal = _ordinal_of(terms, cutoff_term)
        if cutoff_ordinal is None:
            raise ValueError(f"unknown cutoff term {cutoff_term!r}: not in the term table")
    elif target_ordinal is not None:
        earlier = terms.loc[terms["ordinal"] < target_ordinal, "ordinal"]
        cutoff_ordinal = int(earlier.iloc[-1]) if not earlier.empty else target_ordinal - 1
    else:
        cutoff_ordinal = None

    with engine.connect() as connection:
        module_ids = set(connection.scalars(select(Module.id)).all())
        scheduled = set(connection.scalars(select(Offering.module_id).distinct()).all())
        offered_now: set[str] = set()
        if target_term is not None:
            offered_now = set(
                connection.scalars(select(Offering.module_id).where(Offering.term_code == target_term)).all()
            )
    offered = frozenset((module_ids - scheduled) | offered_now) if target_term else frozenset(module_ids)

    if target_ordinal is not None and cutoff_ordinal is not None:
        taken = (
            Enrollment.status.in_(("in_progress", "completed"))
            if taken_since_cutoff
            else and_(Enrollment.status == "in_progress", Term.ordinal <= target_ordinal)
        )
        in_progress = _read(
            engine,
            select(
                Enrollment.student_id,
                Enrollment.module_id,
                Enrollment.status,
                Term.ordinal.label("term_ordinal"),
            )
            .join(Term, Term.code == Enrollment.term_code)
            .where(taken, Term.ordinal > cutoff_ordinal),
        )
        in_target = in_progress.loc[
            (in_progress["term_ordinal"] == target_ordinal) & (in_progress["status"] == "in_progress"),
            "module_id",
        ]
        seats_taken: pd.Series = in_target.astype(str).value_counts().astype(np.int64).sort_index()
        in_progress = in_progress[["student_id", "module_id"]].drop_duplicates()
    else:
        in_progress = pd.DataFrame({"student_id": [], "module_id": []}, dtype=object)
        seats_taken = pd.Series([], dtype=np.int64, index=pd.Index([], dtype=object))
    seats_taken.index.name = "module_id"
    seats_taken.name = "seats_taken"

    rejected = _read(
        engine,
        select(Review.student_id, Review.module_id).where(Review.action.in_(("reject", "replace"))),
    )
    dismissed = _read(
        engine, select(Feedback.student_id, Feedback.module_id).where(Feedback.action == "dismiss")
    )
    excluded = (
        pd.concat([rejected, dismissed], ignore_index=True)
        .drop_duplicates()
        .sort_values(["student_id", "module_id"], ignore_index=True)
    )
    return TermState(
        target_term=target_term,
        offered_module_ids=offered,
        seats_taken=seats_taken,
        in_progress=in_progress.sort_values(["student_id", "module_id"], ignore_index=True),
        excluded=excluded,
    )


# ---------------------------------------------------------------------------------------------
# Frames from in-memory tables (tests, benchmarks, generated CSV frames)
# ---------------------------------------------------------------------------------------------

_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "terms": ("code", "ordinal", "starts_on"),
    "competencies": ("id", "name", "kind", "domain", "description"),
    "modules": (
        "id",
        "code",
        "title",
        "description",
        "track",
        "department",
        "delivery",
        "level",
        "credits",
        "capacity",
        "pass_grade",
    ),
    "module_competencies": ("module_id", "competency_id", "weight", "level"),
    "prerequisites": ("module_id", "group_no", "requires_module_id", "min_grade"),
    "offerings": ("module_id", "term_code"),
    "programs": (
        "id",
        "name",
        "department",
        "credits_to_graduate",
        "target_academic",
        "target_vocational",
        "target_project",
    ),
    "program_occupations": ("program_id", "occupation_id"),
    "program_modules": ("program_id", "module_id"),
    "occupations": ("id", "title", "description"),
    "occupation_competencies": ("occupation_id", "competency_id", "importance", "level"),
    "demand": ("occupation_id", "region", "period", "period_start", "postings", "growth"),
    "advisors": ("id", "name", "department"),
    "students": (
        "id",
        "program_id",
        "entry_term",
        "entry_route",
        "advisor_id",
        "max_credits_per_term",
        "status",
    ),
    "student_attributes": ("student_id", "name", "value"),
    "enrollments": ("student_id", "module_id", "term_code", "status", "grade", "enrolled_on"),
    "goals": ("student_id", "occupation_id", "weight", "set_term"),
}
_DEFAULTS: dict[tuple[str, str], Any] = {
    ("modules", "pass_grade"): 60.0,
    ("programs", "target_academic"): 0.0,
    ("programs", "target_vocational"): 0.0,
    ("programs", "target_project"): 0.0,
    ("students", "status"): "active",
    ("goals", "weight"): 1.0,
    ("enrollments", "status"): "completed",
}


def frames_from_tables(
    tables: dict[str, pd.DataFrame], cutoff_term: str | None = None, *, entrants: bool = True
) -> Frames:
    """Frames from in-memory tables named like the Frames fields, with the database's columns
    (``entrants`` as in :func:`load_frames`).

    Term references are codes (``enrollments.term_code``, ``students.entry_term``, ``goals.set_term``,
    ``offerings.term_code``), resolved through ``tables['terms']`` (``code``, ``ordinal``, optional
    ``starts_on``). Absent tables and columns are empty / NULL. ``cutoff_term=None``: the newest term
    with enrollments none of which is in progress (else the newest term). Gives the same dtypes and
    filtering as :func:`load_frames`; raises ValueError for unknown term codes.
    """
    full: dict[str, pd.DataFrame] = {}
    for name, columns in _TABLE_COLUMNS.items():
        given = tables.get(name)
        frame = pd.DataFrame(index=range(0 if given is None else len(given)))
        for column in columns:
            if given is not None and column in given.columns:
                frame[column] = given[column].to_numpy()
            else:
                frame[column] = _DEFAULTS.get((name, column))
        full[name] = frame

    if full["terms"]["ordinal"].isna().all() and len(full["terms"]):
        full["terms"]["ordinal"] = np.arange(1, len(full["terms"]) + 1)
    terms = _typed_terms(full["terms"])
    ordinal_by_code = pd.Series(terms["ordinal"].to_numpy(), index=terms["code"].to_numpy())

    def ordinals(values: pd.Series, where: str, missing_ok: bool) -> np.ndarray:
        mapped = values.map(ordinal_by_code)
        unknown = mapped.isna() & values.notna()
        if unknown.any():
            raise ValueError(
                f"{where}: unknown term {values[unknown].iloc[0]!r} "
                f"(row {int(np.argmax(unknown.to_numpy()))})"
            )
        if not missing_ok and values.isna().any():
            raise ValueError(f"{where}: missing term (row {int(np.argmax(values.isna().to_numpy()))})")
        return mapped.fillna(NO_ORDINAL).to_numpy(np.int32)

    modules = full["modules"]
    _as_str(modules, ["id"])
    _as_optional_str(modules, ["code", "title", "description"])
    _as_category(modules, ["track", "department", "delivery"])
    _as_float32(modules, ["level", "credits", "capacity", "pass_grade"])
    modules = modules.sort_values("id", ignore_index=True)

    competencies = full["competencies"]
    _as_str(competencies, ["id", "name"])
    _as_optional_str(competencies, ["description"])
    _as_category(competencies, ["kind", "domain"])
    module_competencies = full["module_competencies"]
    _as_str(module_competencies, ["module_id", "competency_id"])
    _as_float32(module_competencies, ["weight", "level"])
    prerequisites = full["prerequisites"]
    _as_str(prerequisites, ["module_id", "requires_module_id"])
    prerequisites["group_no"] = prerequisites["group_no"].fillna(1).astype(np.int32)
    _as_float32(prerequisites, ["min_grade"])
    programs = full["programs"]
    _as_str(programs, ["id", "name"])
    _as_category(programs, ["department"])
    _as_float32(programs, ["credits_to_graduate", "target_academic", "target_vocational", "target_project"])
    for name in ("program_occupations", "program_modules"):
        _as_str(full[name], list(_TABLE_COLUMNS[name]))
    occupations = full["occupations"]
    _as_str(occupations, ["id", "title"])
    _as_optional_str(occupations, ["description"])
    occupation_competencies = full["occupation_competencies"]
    _as_str(occupation_competencies, ["occupation_id", "competency_id"])
    _as_float32(occupation_competencies, ["importance", "level"])
    demand = full["demand"]
    _as_str(demand, ["occupation_id", "period"])
    _as_category(demand, ["region"])
    demand["period_start"] = _dates(demand["period_start"])
    _as_float32(demand, ["postings", "growth"])
    advisors = full["advisors"]
    _as_str(advisors, ["id"])
    _as_optional_str(advisors, ["name"])
    _as_category(advisors, ["department"])

    students = full["students"]
    _as_str(students, ["id"])
    students["entry_ordinal"] = ordinals(students["entry_term"], "students.entry_term", True)
    _as_optional_str(students, ["entry_term"])
    _as_category(students, ["program_id", "entry_route", "advisor_id", "status"])
    _as_float32(students, ["max_credits_per_term"])
    students = students[
        [
            "id",
            "program_id",
            "entry_term",
            "entry_ordinal",
            "entry_route",
            "advisor_id",
            "max_credits_per_term",
            "status",
        ]
    ]
    attributes = full["student_attributes"]
    _as_str(attributes, ["student_id", "value"])
    _as_category(attributes, ["name"])

    goals = full["goals"]
    _as_str(goals, ["student_id", "occupation_id"])
    _as_float32(goals, ["weight"])
    goals["set_ordinal"] = ordinals(goals["set_term"], "goals.set_term", True)
    goals = goals[["student_id", "occupation_id", "weight", "set_ordinal"]]

    offerings = full["offerings"]
    _as_str(offerings, ["module_id", "term_code"])
    offerings["term_ordinal"] = ordinals(offerings["term_code"], "offerings.term_code", False)

    raw_enrollments = full["enrollments"]
    module_ids = pd.Index(modules["id"].astype(object).to_numpy(), dtype=object)
    unknown_modules = ~raw_enrollments["module_id"].isin(module_ids)
    if unknown_modules.any():
        raise ValueError(
            f"enrollments: unknown module {raw_enrollments['module_id'][unknown_modules].iloc[0]!r}"
        )
    enrollments = pd.DataFrame(
        {
            "student_id": pd.Categorical(
                raw_enrollments["student_id"].astype(object),
                categories=pd.Index(students["id"].astype(object).to_numpy(), dtype=object),
            ),
            "module_id": pd.Categorical(raw_enrollments["module_id"].astype(object), categories=module_ids),
            "term_ordinal": ordinals(raw_enrollments["term_code"], "enrollments.term_code", False),
            "status": pd.Categorical(
                raw_enrollments["status"], dtype=pd.CategoricalDtype(list(ENROLLMENT_STATUSES))
            ),
            "grade": pd.to_numeric(raw_enrollments["grade"]).astype(np.float32).to_numpy(),
            "enrolled_on": _dates(raw_enrollments["enrolled_on"]).to_numpy(),
        }
    )

    if cutoff_term is None and not terms.empty:
        cutoff_term = _closed_term_in_memory(enrollments, terms)
    cutoff_ordinal = None if cutoff_term is None else _ordinal_of(terms, cutoff_term)
    if cutoff_term is not None and cutoff_ordinal is None:
        raise ValueError(f"unknown cutoff term {cutoff_term!r}: not in the terms table")

    raw = Frames(
        cutoff_term=cutoff_term,
        cutoff_ordinal=cutoff_ordinal,
        terms=terms,
        competencies=competencies.sort_values("id", ignore_index=True),
        modules=modules,
        module_competencies=module_competencies.sort_values(
            ["module_id", "competency_id"], ignore_index=True
        ),
        prerequisites=prerequisites.sort_values(
            ["module_id", "group_no", "requires_module_id"], ignore_index=True
        ),
        offerings=offerings,
        programs=programs.sort_values("id", ignore_index=True),
        program_occupations=full["program_occupations"].sort_values(
            ["program_id", "occupation_id"], ignore_index=True
        ),
        program_modules=full["program_modules"].sort_values(["program_id", "module_id"], ignore_index=True),
        occupations=occupations.sort_values("id", ignore_index=True),
        occupation_competencies=occupation_competencies.sort_values(
            ["occupation_id", "competency_id"], ignore_index=True
        ),
        demand=demand,
        advisors=advisors.sort_values("id", ignore_index=True),
        students=students,
        student_attributes=attributes,
        enrollments=enrollments,
        goals=goals,
    )
    return _restrict(
        raw, cutoff_term, cutoff_ordinal, _target_ordinal(terms, cutoff_ordinal) if entrants else None
    )


def _closed_term_in_memory(enrollments: pd.DataFrame, terms: pd.DataFrame) -> str:
    if enrollments.empty:
        return str(terms["code"].iloc[-1])
    share = (enrollments["status"] == "in_progress").groupby(enrollments["term_ordinal"]).mean().sort_index()
    position = closed_term_position(share.to_numpy(dtype=np.float64))
    ordinal = share.index[-1 if position is None else position]
    return str(terms.loc[terms["ordinal"] == ordinal, "code"].iloc[0])
