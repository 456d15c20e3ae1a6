"""Who is calling and what they may see: bearer tokens, roles, and the visibility rules.

Framework-free: routes pass the token they found; these functions answer with a :class:`Principal`
or raise :mod:`service.errors`. Rules: a student sees only their own records, an advisor only their
advisees, an admin everything; a student outside the caller's reach is reported as not found.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from records.schema import Student, User
from records.users import hash_token
from service.errors import Forbidden, NotFound


@dataclass(frozen=True)
class Principal:
    """The signed-in user, detached from any session."""

    user_id: int
    name: str
    role: str
    student_id: str | None = None
    advisor_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this user."""
        return f"{self.role}:{self.name}"


# Built once: every request runs it, and building a statement costs more than the lookup itself.
_USER_BY_TOKEN_HASH = select(User.id, User.name, User.role, User.student_id, User.advisor_id).where(
    User.token_hash == bindparam("token_hash"), User.active.is_(True)
)


def authenticate(session: Session, token: str) -> Principal | None:
    """The active user holding ``token``, or None (the rule of ``records.users.user_for_token``)."""
    if not token:
        return None
    row = session.execute(_USER_BY_TOKEN_HASH, {"token_hash": hash_token(token)}).first()
    if row is None:
        return None
    return Principal(
        user_id=row.id, name=row.name, role=row.role, student_id=row.student_id, advisor_id=row.advisor_id
    )


def require_role(principal: Principal, *roles: str) -> None:
    """Raise Forbidden unless the caller has one of ``roles``."""
    if principal.role not in roles:
        raise Forbidden(f"the {principal.role} role may not do this (needs {' or '.join(roles)})")


def can_see_student(principal: Principal, student: Student) -> bool:
    if principal.role == "admin":
        return True
    if principal.role == "student":
        return principal.student_id is not None and student.id == principal.student_id
    if principal.role == "advisor":
        return principal.advisor_id is not None and student.advisor_id == principal.advisor_id
    return False


_STUDENT_BY_ID = select(Student).where(Student.id == bindparam("student_id"))


def visible_student(session: Session, principal: Principal, student_id: str) -> Student:
    """The student ``student_id`` if the caller may see them; NotFound otherwise (even if they exist)."""
    student = session.scalars(_STUDENT_BY_ID, {"student_id": student_id}).first()
    if student is None or not can_see_student(principal, student):
        raise NotFound(f"no student with id {student_id!r}")
    return student
