"""The demo's set-up: demo accounts for people to sign in with, chosen from the stored batch.

The CLI's ``demo`` command creates the database, generates an institution, trains, calls
:func:`demo_accounts` and serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from records.db import current_batch
from records.schema import Flag, Recommendation, Student, User
from records.users import add_user, rotate_token


@dataclass(frozen=True)
class DemoAccount:
    name: str
    role: str
    token: str
    page: str
    detail: str


def _busiest_advisee(session: Session, batch_id: int | None) -> tuple[str | None, str | None]:
    """The advisor with most flagged recommendations in the current batch, and one flagged advisee."""
    if batch_id is not None:
        row = session.execute(
            select(Student.advisor_id, Recommendation.student_id, func.count(Flag.id).label("flags"))
            .join(Recommendation, Recommendation.student_id == Student.id)
            .join(Flag, Flag.recommendation_id == Recommendation.id)
            .where(Recommendation.batch_id == batch_id, Student.advisor_id.is_not(None))
            .group_by(Student.advisor_id, Recommendation.student_id)
            .order_by(func.count(Flag.id).desc(), Recommendation.student_id)
            .limit(1)
        ).first()
        if row is not None:
            return row.advisor_id, row.student_id
    student = session.scalars(
        select(Student).where(Student.status == "active", Student.advisor_id.is_not(None)).limit(1)
    ).first()
    return (student.advisor_id, student.id) if student is not None else (None, None)


def _account(session: Session, name: str, role: str, page: str, **ids: str | None) -> DemoAccount:
    """A demo account: created with ``ids`` the first time; afterwards its token is re-issued and the
    account is described as it really is (a second demo may pick another advisor, but the existing
    user still signs in as the one it was created for)."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user, token = add_user(session, name, role, actor="demo", **ids)
    else:
        token = rotate_token(session, name, actor="demo")
    if user.student_id:
        detail = f"student {user.student_id}"
    elif user.advisor_id:
        detail = f"advisor {user.advisor_id}"
    else:
        detail = "admin: everything" if user.role == "admin" else user.role
    return DemoAccount(user.name, user.role, token, page, detail)


def demo_accounts(session: Session) -> list[DemoAccount]:
    """Create (or re-issue tokens for) an admin, an advisor with flags to review, and one advisee."""
    advisor_id, student_id = _busiest_advisee(
        session, batch.id if (batch := current_batch(session)) else None
    )
    accounts = [_account(session, "demo-admin", "admin", "/docs")]
    if advisor_id is not None:
        accounts.append(_account(session, "demo-advisor", "advisor", "/advisor", advisor_id=advisor_id))
    if student_id is not None:
        accounts.append(_account(session, "demo-student", "student", "/student", student_id=student_id))
    return accounts


def has_students(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(Student)) != 0
