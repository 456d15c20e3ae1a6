"""Users and their bearer tokens. Tokens are shown once and stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from records.schema import ROLES, Advisor, AuditLog, Student, User


class UserError(ValueError):
    """A user could not be created or found; the message says why."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def add_user(
    session: Session,
    name: str,
    role: str,
    student_id: str | None = None,
    advisor_id: str | None = None,
    actor: str = "cli",
) -> tuple[User, str]:
    """Create a user with a fresh token; returns the user and the token (shown once).

    A student user must name an existing student, an advisor user an existing advisor.
    """
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise UserError(f"user {name!r} already exists")
    if role == "student":
        if not student_id:
            raise UserError("a student user needs --student-id")
        if session.get(Student, student_id) is None:
            raise UserError(f"no student with id {student_id!r}")
    if role == "advisor":
        if not advisor_id:
            raise UserError("an advisor user needs --advisor-id")
        if session.get(Advisor, advisor_id) is None:
            raise UserError(f"no advisor with id {advisor_id!r}")
    token = new_token()
    user = User(
        name=name,
        role=role,
        student_id=student_id if role == "student" else None,
        advisor_id=advisor_id if role == "advisor" else None,
        token_hash=hash_token(token),
    )
    session.add(user)
    session.flush()
    session.add(
        AuditLog(
            actor=actor,
            action="user.add",
            entity="user",
            entity_id=str(user.id),
            after={"name": name, "role": role, "student_id": user.student_id, "advisor_id": user.advisor_id},
        )
    )
    return user, token


def rotate_token(session: Session, name: str, actor: str = "cli") -> str:
    """Issue a new token for an existing user; the old one stops working."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserError(f"no user named {name!r}")
    token = new_token()
    user.token_hash = hash_token(token)
    session.add(AuditLog(actor=actor, action="user.token", entity="user", entity_id=str(user.id)))
    return token


def user_for_token(session: Session, token: str) -> User | None:
    user = session.scalar(select(User).where(User.token_hash == hash_token(token)))
    return user if user is not None and user.active else None
