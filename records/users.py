"""Users, their bearer tokens and their page sessions.

Tokens and session keys are shown once (the token to the operator, the key to the browser as a cookie)
and stored only as SHA-256 hashes. A token expires ``token_ttl_days`` (a setting) after it was issued;
deactivating a user, or issuing them a new token, also ends their page sessions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from records.schema import ROLES, Advisor, AuditLog, Student, User, UserSession


class UserError(ValueError):
    """A user could not be created or found; the message says why."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` as an aware UTC time (SQLite hands back naive times that were stored as UTC)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def token_expires_at(issued_at: dt.datetime | None, ttl: dt.timedelta | None) -> dt.datetime | None:
    """When a token issued at ``issued_at`` stops working; None when tokens do not expire."""
    if ttl is None or issued_at is None:
        return None
    return as_utc(issued_at) + ttl


def add_user(
    session: Session,
    name: str,
    role: str,
    student_id: str | None = None,
    advisor_id: str | None = None,
    actor: str = "cli",
) -> tuple[User, str]:
    """Create a user with a fresh token; returns the user and the token (shown once).

    A student user must name an existing student, an advisor user an existing advisor; a user of
    another role naming a student or an advisor is refused (it would be stored without the link).
    """
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if student_id and role != "student":
        raise UserError(f"--student-id is for student users only, not for the {role} role")
    if advisor_id and role != "advisor":
        raise UserError(f"--advisor-id is for advisor users only, not for the {role} role")
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
        student_id=student_id,
        advisor_id=advisor_id,
        token_hash=hash_token(token),
        token_issued_at=utc_now(),
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


def _named(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserError(f"no user named {name!r}")
    return user


def rotate_token(session: Session, name: str, actor: str = "cli") -> str:
    """Issue a new token for an existing user; the old one and the user's page sessions stop working."""
    user = _named(session, name)
    token = new_token()
    user.token_hash = hash_token(token)
    user.token_issued_at = utc_now()
    revoke_sessions(session, user.id)
    session.add(AuditLog(actor=actor, action="user.token", entity="user", entity_id=str(user.id)))
    return token


def deactivate_user(session: Session, name: str, actor: str = "cli") -> User:
    """Revoke ``name``: their token stops working and their page sessions end. Idempotent."""
    user = _named(session, name)
    was_active = user.active
    user.active = False
    ended = revoke_sessions(session, user.id)
    if was_active or ended:
        session.add(
            AuditLog(
                actor=actor,
                action="user.deactivate",
                entity="user",
                entity_id=str(user.id),
                before={"active": was_active},
                after={"active": False, "sessions_ended": ended},
            )
        )
    return user


@dataclass(frozen=True)
class UserListing:
    name: str
    role: str
    student_id: str | None
    advisor_id: str | None
    active: bool
    created_at: dt.datetime
    token_expires_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def state(self, now: dt.datetime) -> str:
        """``active``, ``deactivated`` or ``token expired``."""
        if not self.active:
            return "deactivated"
        if self.token_expires_at is not None and self.token_expires_at <= now:
            return "token expired"
        return "active"


def list_users(session: Session, token_ttl: dt.timedelta | None) -> list[UserListing]:
    """Every user by name, with when their token expires and when they last used it (or a session)."""
    users = session.scalars(select(User).order_by(User.name)).all()
    return [
        UserListing(
            name=user.name,
            role=user.role,
            student_id=user.student_id,
            advisor_id=user.advisor_id,
            active=user.active,
            created_at=as_utc(user.created_at),
            token_expires_at=token_expires_at(user.token_issued_at or user.created_at, token_ttl),
            last_used_at=as_utc(user.last_used_at) if user.last_used_at else None,
        )
        for user in users
    ]


def user_for_token(session: Session, token: str, token_ttl: dt.timedelta | None = None) -> User | None:
    """The active user holding ``token`` if it has not expired, else None."""
    user = session.scalar(select(User).where(User.token_hash == hash_token(token)))
    if user is None or not user.active:
        return None
    expires_at = token_expires_at(user.token_issued_at or user.created_at, token_ttl)
    return None if expires_at is not None and expires_at <= utc_now() else user


# ---------------------------------------------------------------------------------------------
# Page sessions
# ---------------------------------------------------------------------------------------------


def open_session(session: Session, user_id: int, ttl: dt.timedelta) -> str:
    """Start a page session for ``user_id`` lasting ``ttl``; returns its key (for the cookie only).

    The user's ended sessions (expired or revoked) are deleted, so the table holds about one row per
    signed-in browser.
    """
    key = new_token()
    now = utc_now()
    session.execute(
        delete(UserSession).where(
            UserSession.user_id == user_id,
            (UserSession.expires_at <= now) | UserSession.revoked_at.is_not(None),
        )
    )
    session.add(UserSession(key_hash=hash_token(key), user_id=user_id, created_at=now, expires_at=now + ttl))
    session.flush()
    return key


def revoke_session(session: Session, key: str) -> bool:
    """End the page session whose cookie holds ``key``; False when there was no live one."""
    result = session.execute(
        update(UserSession)
        .where(UserSession.key_hash == hash_token(key), UserSession.revoked_at.is_(None))
        .values(revoked_at=utc_now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke_sessions(session: Session, user_id: int) -> int:
    """End every live page session of ``user_id``; returns how many were ended."""
    result = session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utc_now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
