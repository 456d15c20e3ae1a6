"""The system of record: every table Pathways keeps, as SQLAlchemy 2.0 typed ORM classes.

Only this module defines tables. External ids (students, modules, competencies, occupations,
programs, advisors) are strings as the source system spells them; term codes are strings whose
order comes from ``Term.ordinal``, never from comparing the codes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TRACKS = ("academic", "vocational", "project")
COMPETENCY_KINDS = ("knowledge", "skill", "ability", "technology", "value")
DELIVERY_MODES = ("offline", "online", "blended")
ENTRY_ROUTES = ("general", "vocational", "transfer")
ENROLLMENT_STATUSES = ("completed", "failed", "withdrawn", "in_progress")
STUDENT_STATUSES = ("active", "graduated", "dropped_out")
ROLES = ("student", "advisor", "admin")
REVIEW_ACTIONS = ("approve", "reject", "replace")
FEEDBACK_ACTIONS = ("accept", "dismiss")
MODEL_STATUSES = ("candidate", "promoted", "rejected", "failed", "retired")
BATCH_STATUSES = ("writing", "complete", "superseded")
DEFAULT_PASS_GRADE = 60.0


def _in(column: str, values: tuple[str, ...], nullable: bool = False) -> str:
    allowed = ", ".join(f"'{v}'" for v in values)
    clause = f"{column} IN ({allowed})"
    return f"{column} IS NULL OR {clause}" if nullable else clause


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012 - SQLAlchemy's API


# ---------------------------------------------------------------------------------------------
# Catalog and competencies
# ---------------------------------------------------------------------------------------------


class Competency(Base):
    __tablename__ = "competency"
    __table_args__ = (CheckConstraint(_in("kind", COMPETENCY_KINDS), name="kind"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    domain: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)


class Module(Base):
    __tablename__ = "module"
    __table_args__ = (
        CheckConstraint(_in("track", TRACKS, nullable=True), name="track"),
        CheckConstraint(_in("delivery", DELIVERY_MODES, nullable=True), name="delivery"),
        CheckConstraint("level IS NULL OR (level BETWEEN 1 AND 4)", name="level"),
        CheckConstraint("credits IS NULL OR credits > 0", name="credits"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity"),
        CheckConstraint("pass_grade BETWEEN 0 AND 100", name="pass_grade"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    # NULL track/level/credits: an uncatalogued module known only from an interaction log.
    track: Mapped[str | None] = mapped_column(String(16))
    department: Mapped[str | None] = mapped_column(String(128))
    level: Mapped[int | None] = mapped_column(Integer)
    credits: Mapped[float | None] = mapped_column(Float)
    delivery: Mapped[str | None] = mapped_column(String(16))
    capacity: Mapped[int | None] = mapped_column(Integer)
    pass_grade: Mapped[float] = mapped_column(Float, default=DEFAULT_PASS_GRADE)


class ModuleCompetency(Base):
    __tablename__ = "module_competency"
    __table_args__ = (
        CheckConstraint("weight BETWEEN 0 AND 1", name="weight"),
        CheckConstraint("level IS NULL OR (level BETWEEN 1 AND 7)", name="level"),
    )

    module_id: Mapped[str] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"), primary_key=True)
    competency_id: Mapped[str] = mapped_column(
        ForeignKey("competency.id", ondelete="CASCADE"), primary_key=True
    )
    weight: Mapped[float] = mapped_column(Float)
    level: Mapped[int | None] = mapped_column(Integer)


class Prerequisite(Base):
    """Modules in one ``group_no`` are alternatives; every group of a module is required."""

    __tablename__ = "prerequisite"
    __table_args__ = (
        CheckConstraint("min_grade IS NULL OR (min_grade BETWEEN 0 AND 100)", name="min_grade"),
        CheckConstraint("module_id <> requires_module_id", name="not_self"),
    )

    module_id: Mapped[str] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"), primary_key=True)
    group_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    requires_module_id: Mapped[str] = mapped_column(
        ForeignKey("module.id", ondelete="CASCADE"), primary_key=True
    )
    # NULL: the requiring module's pass grade is enough.
    min_grade: Mapped[float | None] = mapped_column(Float)


class Term(Base):
    __tablename__ = "term"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer, unique=True)
    starts_on: Mapped[dt.date | None] = mapped_column(Date)


class Offering(Base):
    """A module with no offering rows at all is offered every term."""

    __tablename__ = "offering"

    module_id: Mapped[str] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"), primary_key=True)
    term_code: Mapped[str] = mapped_column(ForeignKey("term.code"), primary_key=True)


# ---------------------------------------------------------------------------------------------
# Programs, people, records
# ---------------------------------------------------------------------------------------------


class Program(Base):
    __tablename__ = "program"
    __table_args__ = (
        CheckConstraint(
            "target_academic >= 0 AND target_vocational >= 0 AND target_project >= 0",
            name="track_targets",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    department: Mapped[str | None] = mapped_column(String(128))
    credits_to_graduate: Mapped[float | None] = mapped_column(Float)
    # Share of credits per track; the three add up to 1 when the program states targets.
    target_academic: Mapped[float] = mapped_column(Float, default=0.0)
    target_vocational: Mapped[float] = mapped_column(Float, default=0.0)
    target_project: Mapped[float] = mapped_column(Float, default=0.0)


class ProgramOccupation(Base):
    __tablename__ = "program_occupation"

    program_id: Mapped[str] = mapped_column(ForeignKey("program.id", ondelete="CASCADE"), primary_key=True)
    occupation_id: Mapped[str] = mapped_column(
        ForeignKey("occupation.id", ondelete="CASCADE"), primary_key=True
    )


class ProgramModule(Base):
    """Modules a program requires for graduation."""

    __tablename__ = "program_module"

    program_id: Mapped[str] = mapped_column(ForeignKey("program.id", ondelete="CASCADE"), primary_key=True)
    module_id: Mapped[str] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"), primary_key=True)


class Advisor(Base):
    __tablename__ = "advisor"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    department: Mapped[str | None] = mapped_column(String(128))


class Student(Base):
    __tablename__ = "student"
    __table_args__ = (
        CheckConstraint(_in("entry_route", ENTRY_ROUTES, nullable=True), name="entry_route"),
        CheckConstraint(_in("status", STUDENT_STATUSES), name="status"),
        CheckConstraint("max_credits_per_term IS NULL OR max_credits_per_term > 0", name="max_credits"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # NULL program: a student known only from an interaction log.
    program_id: Mapped[str | None] = mapped_column(ForeignKey("program.id"), index=True)
    entry_term: Mapped[str | None] = mapped_column(ForeignKey("term.code"))
    entry_route: Mapped[str | None] = mapped_column(String(16))
    advisor_id: Mapped[str | None] = mapped_column(ForeignKey("advisor.id"), index=True)
    max_credits_per_term: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="active")


class StudentAttribute(Base):
    """Optional group attributes (e.g. ``gender``, ``first_generation``), used only for fairness audits."""

    __tablename__ = "student_attribute"

    student_id: Mapped[str] = mapped_column(ForeignKey("student.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


class Enrollment(Base):
    __tablename__ = "enrollment"
    __table_args__ = (
        UniqueConstraint("student_id", "module_id", "term_code", name="uq_enrollment_student_module_term"),
        CheckConstraint(_in("status", ENROLLMENT_STATUSES), name="status"),
        CheckConstraint("grade IS NULL OR (grade BETWEEN 0 AND 100)", name="grade"),
        Index("ix_enrollment_term_code", "term_code"),
        Index("ix_enrollment_module_id", "module_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    student_id: Mapped[str] = mapped_column(ForeignKey("student.id", ondelete="CASCADE"))
    module_id: Mapped[str] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"))
    term_code: Mapped[str] = mapped_column(ForeignKey("term.code"))
    status: Mapped[str] = mapped_column(String(16))
    grade: Mapped[float | None] = mapped_column(Float)
    # The day the student enrolled, when the source log dates its rows (orders modules within a term).
    enrolled_on: Mapped[dt.date | None] = mapped_column(Date)


# ---------------------------------------------------------------------------------------------
# Industry: occupations, competency demands, labour market, goals
# ---------------------------------------------------------------------------------------------


class Occupation(Base):
    __tablename__ = "occupation"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # O*NET-SOC style, e.g. 15-2051.00
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)


class OccupationCompetency(Base):
    __tablename__ = "occupation_competency"
    __table_args__ = (
        CheckConstraint("importance BETWEEN 0 AND 1", name="importance"),
        CheckConstraint("level IS NULL OR (level BETWEEN 0 AND 7)", name="level"),
    )

    occupation_id: Mapped[str] = mapped_column(
        ForeignKey("occupation.id", ondelete="CASCADE"), primary_key=True
    )
    competency_id: Mapped[str] = mapped_column(
        ForeignKey("competency.id", ondelete="CASCADE"), primary_key=True
    )
    importance: Mapped[float] = mapped_column(Float)
    level: Mapped[float | None] = mapped_column(Float)


class Demand(Base):
    """Labour-market signal for an occupation in a region and period.

    ``period`` is ``YYYY``, ``YYYY-MM`` or ``YYYY-Qn``; ``period_start`` is the first day it covers,
    used to keep later periods out of features built as of an earlier term.
    """

    __tablename__ = "demand"
    __table_args__ = (CheckConstraint("postings >= 0", name="postings"),)

    occupation_id: Mapped[str] = mapped_column(
        ForeignKey("occupation.id", ondelete="CASCADE"), primary_key=True
    )
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    period_start: Mapped[dt.date] = mapped_column(Date)
    postings: Mapped[float] = mapped_column(Float)
    growth: Mapped[float | None] = mapped_column(Float)  # relative change per year, e.g. 0.08


class Goal(Base):
    __tablename__ = "goal"
    __table_args__ = (CheckConstraint("weight > 0", name="weight"),)

    student_id: Mapped[str] = mapped_column(ForeignKey("student.id", ondelete="CASCADE"), primary_key=True)
    occupation_id: Mapped[str] = mapped_column(
        ForeignKey("occupation.id", ondelete="CASCADE"), primary_key=True
    )
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    # The term in which the student named the goal; NULL means known from the start.
    set_term: Mapped[str | None] = mapped_column(ForeignKey("term.code"))


# ---------------------------------------------------------------------------------------------
# Service and training: users, models, batches, recommendations, flags, reviews, feedback, audit
# ---------------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class User(Base):
    __tablename__ = "app_user"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    student_id: Mapped[str | None] = mapped_column(ForeignKey("student.id"))
    advisor_id: Mapped[str | None] = mapped_column(ForeignKey("advisor.id"))
    # sha256 hex of the bearer token; the token itself is never stored.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    # When the current token was issued; it expires ``token_ttl_days`` (a setting) after this.
    token_issued_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=_now)
    # Last authenticated request (token or page session), written at most once a minute.
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class UserSession(Base):
    """A signed-in page session: the cookie holds a random key, this row only its SHA-256 hash."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Set by sign-out, by deactivating the user, or by issuing the user a new token.
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ModelVersion(Base):
    __tablename__ = "model_version"
    __table_args__ = (CheckConstraint(_in("status", MODEL_STATUSES), name="status"),)

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    cutoff_term: Mapped[str | None] = mapped_column(String(32))
    code_version: Mapped[str | None] = mapped_column(String(64))
    duration_s: Mapped[float | None] = mapped_column(Float)
    artifact_path: Mapped[str | None] = mapped_column(Text)
    checksum: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gate_reason: Mapped[str | None] = mapped_column(Text)
    report_path: Mapped[str | None] = mapped_column(Text)


def _newest_promotion_id(context: Any) -> int:
    """``promotion.follows`` when the caller did not say: the newest row's id at insert time."""
    newest = context.connection.execute(select(func.max(Promotion.id))).scalar()
    return int(newest or 0)


class Promotion(Base):
    """Append-only promotion log; the promoted model is the version of the newest row.

    Promoting or rolling back is one INSERT, hence atomic. ``follows`` is the id of the row that was
    newest when the promotion was decided (0 for the first); it is unique, so of several promotions
    or rollbacks decided from the same state exactly one is stored (the others violate the
    constraint): promotions are serialised by the database, on SQLite and PostgreSQL alike.
    """

    __tablename__ = "promotion"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    follows: Mapped[int] = mapped_column(Integer, unique=True, default=_newest_promotion_id)
    version: Mapped[str] = mapped_column(ForeignKey("model_version.version"))
    previous_version: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16), default="promote")  # promote | rollback
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    actor: Mapped[str | None] = mapped_column(String(128))


class RecommendationBatch(Base):
    __tablename__ = "recommendation_batch"
    __table_args__ = (CheckConstraint(_in("status", BATCH_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_version: Mapped[str] = mapped_column(ForeignKey("model_version.version"), index=True)
    target_term: Mapped[str | None] = mapped_column(String(32))
    k: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="writing")
    n_students: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Recommendation(Base):
    __tablename__ = "recommendation"
    __table_args__ = (Index("ix_recommendation_batch_student", "batch_id", "student_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("recommendation_batch.id", ondelete="CASCADE"))
    student_id: Mapped[str] = mapped_column(ForeignKey("student.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    module_id: Mapped[str] = mapped_column(ForeignKey("module.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    # Per-component contributions to the score, e.g. {"sequence": 0.41, "risk": -0.05}.
    components: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reasons: Mapped[list[Any] | None] = mapped_column(JSON)
    expected_grade: Mapped[float | None] = mapped_column(Float)
    fail_probability: Mapped[float | None] = mapped_column(Float)


class Flag(Base):
    __tablename__ = "flag"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recommendation_id: Mapped[int] = mapped_column(
        ForeignKey("recommendation.id", ondelete="CASCADE"), index=True
    )
    # fail_risk | low_confidence | off_target | large_change | uncovered_goal
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)


class Review(Base):
    """An advisor's decision on one stored recommendation: at most one per recommendation.

    The decision applies to (student, module, target term): later batches of the same target term
    inherit it (``records.decisions``). Undoing a decision deletes the row (the audit log keeps it).
    """

    __tablename__ = "review"
    __table_args__ = (
        CheckConstraint(_in("action", REVIEW_ACTIONS), name="action"),
        Index("ix_review_student_term", "student_id", "target_term"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recommendation_id: Mapped[int] = mapped_column(ForeignKey("recommendation.id"), unique=True)
    # The reviewed batch's target term (copied so decisions are found by (student, module, term)).
    target_term: Mapped[str | None] = mapped_column(String(32))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    student_id: Mapped[str] = mapped_column(ForeignKey("student.id"), index=True)
    module_id: Mapped[str] = mapped_column(ForeignKey("module.id"))
    action: Mapped[str] = mapped_column(String(16))
    replacement_module_id: Mapped[str | None] = mapped_column(ForeignKey("module.id"))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Feedback(Base):
    """A student's latest action on a module suggested for a term: one row per (student, module, term).

    Feedback again on the same module and term updates the row (the audit log keeps every action).
    ``target_term`` is ``""`` when the suggestion's term had no code.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint(_in("action", FEEDBACK_ACTIONS), name="action"),
        UniqueConstraint("student_id", "module_id", "target_term", name="uq_feedback_student_module_term"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    student_id: Mapped[str] = mapped_column(ForeignKey("student.id"), index=True)
    module_id: Mapped[str] = mapped_column(ForeignKey("module.id"))
    target_term: Mapped[str] = mapped_column(String(32), default="")
    recommendation_id: Mapped[int | None] = mapped_column(ForeignKey("recommendation.id"))
    action: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuditLog(Base):
    """Append-only: the migration installs triggers that refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, server_default=func.now())
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# Tables of the institution's records, in an order that respects foreign keys (parents first).
RECORD_TABLES: tuple[type[Base], ...] = (
    Competency,
    Occupation,
    OccupationCompetency,
    Demand,
    Term,
    Module,
    ModuleCompetency,
    Prerequisite,
    Offering,
    Program,
    ProgramOccupation,
    ProgramModule,
    Advisor,
    Student,
    StudentAttribute,
    Enrollment,
    Goal,
)
