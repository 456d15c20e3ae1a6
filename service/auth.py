"""Who is calling and what they may see: bearer tokens, page sessions, roles, and the visibility rules.

Framework-free: routes pass the token (or session key) they found; these functions answer with a
:class:`Principal` or raise :mod:`service.errors`. Rules: a student sees only their own records, an
advisor only their advisees, an admin everything; a student outside the caller's reach is reported as
not found. A token works until it expires (``token_ttl_days``) or its user is deactivated; a page
session until it expires, is signed out, or its user is deactivated or given a new token.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import TypeVar, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from records.db import HotRead
from records.schema import Student, User, UserSession
from records.users import as_utc, hash_token, token_expires_at, utc_now
from service.errors import Forbidden, NotFound, RateLimited
from service.ratelimit import RateLimiter

log = logging.getLogger(__name__)


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
_USER_BY_TOKEN_HASH = select(
    User.id, User.name, User.role, User.student_id, User.advisor_id, User.token_issued_at, User.created_at
).where(User.token_hash == bindparam("token_hash"), User.active.is_(True))

_USER_BY_SESSION_KEY_HASH = (
    select(
        UserSession.id.label("session_id"),
        UserSession.expires_at,
        User.id,
        User.name,
        User.role,
        User.student_id,
        User.advisor_id,
    )
    .join(User, User.id == UserSession.user_id)
    .where(
        UserSession.key_hash == bindparam("key_hash"),
        UserSession.revoked_at.is_(None),
        User.active.is_(True),
    )
)


def authenticate(session: Session, token: str, token_ttl: dt.timedelta | None = None) -> Principal | None:
    """The active user holding ``token`` if it was issued less than ``token_ttl`` ago, or None.

    The rule of ``records.users.user_for_token``; ``token_ttl`` None means tokens do not expire.
    """
    if not token:
        return None
    row = session.execute(_USER_BY_TOKEN_HASH, {"token_hash": hash_token(token)}).first()
    if row is None:
        return None
    expires_at = token_expires_at(row.token_issued_at or row.created_at, token_ttl)
    if expires_at is not None and expires_at <= utc_now():
        return None
    return Principal(
        user_id=row.id, name=row.name, role=row.role, student_id=row.student_id, advisor_id=row.advisor_id
    )


@dataclass(frozen=True)
class PageSession:
    """A live page session and the user it belongs to."""

    session_id: int
    principal: Principal


def session_user(session: Session, key: str) -> PageSession | None:
    """The live page session whose cookie holds ``key`` (not expired, not revoked, user active), or None."""
    if not key:
        return None
    row = session.execute(_USER_BY_SESSION_KEY_HASH, {"key_hash": hash_token(key)}).first()
    if row is None or as_utc(row.expires_at) <= utc_now():
        return None
    principal = Principal(
        user_id=row.id, name=row.name, role=row.role, student_id=row.student_id, advisor_id=row.advisor_id
    )
    return PageSession(session_id=row.session_id, principal=principal)


class LastUse:
    """Remembers when each user and page session was last used and writes it to the database.

    Requests only note the time (no database write on the request path); a writer thread stores it,
    at most once per ``interval_s`` per user or session, so ``pathways users list`` is accurate to
    about that interval. A failed write (e.g. read-only storage) is logged and dropped.
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._written: dict[tuple[str, int], float] = {}
        self._users: dict[int, dt.datetime] = {}
        self._sessions: dict[int, dt.datetime] = {}
        self._factory: sessionmaker[Session] | None = None
        self._thread: threading.Thread | None = None

    def seen(self, user_id: int, session_id: int | None = None) -> None:
        """Note a use now; cheap enough for the event loop."""
        now = time.monotonic()
        due = False
        with self._lock:
            for kind, ident, pending in (
                ("user", user_id, self._users),
                ("session", session_id, self._sessions),
            ):
                if ident is None:
                    continue
                last = self._written.get((kind, ident))
                if last is None or now - last >= self.interval_s:
                    self._written[(kind, ident)] = now
                    pending[ident] = utc_now()
                    due = True
        if due:
            self._wake.set()

    def start(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pathways-last-use", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the writer after writing what is pending."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Write the pending last-use times now."""
        with self._lock:
            users, self._users = self._users, {}
            sessions, self._sessions = self._sessions, {}
            # An entry older than the interval means "write on next use" either way: forget it, so
            # that the map stays as small as the set of recently active users and sessions.
            horizon = time.monotonic() - self.interval_s
            self._written = {key: at for key, at in self._written.items() if at > horizon}
        if self._factory is None or not (users or sessions):
            return
        users_table, sessions_table = cast(Table, User.__table__), cast(Table, UserSession.__table__)
        try:
            with self._factory() as session:
                if users:
                    session.execute(
                        update(users_table)
                        .where(users_table.c.id == bindparam("b_id"))
                        .values(last_used_at=bindparam("b_at")),
                        [{"b_id": ident, "b_at": at} for ident, at in users.items()],
                    )
                if sessions:
                    session.execute(
                        update(sessions_table)
                        .where(sessions_table.c.id == bindparam("b_id"))
                        .values(last_used_at=bindparam("b_at")),
                        [{"b_id": ident, "b_at": at} for ident, at in sessions.items()],
                    )
                session.commit()
        except (SQLAlchemyError, OSError) as exc:
            log.warning(
                "could not record last use of %d users and %d sessions: %s", len(users), len(sessions), exc
            )


class Access:
    """The app's sign-in rules: token and session lifetimes, last-use recording, live-scoring limit."""

    def __init__(
        self,
        token_ttl: dt.timedelta | None,
        session_ttl: dt.timedelta,
        live_limiter: RateLimiter | None = None,
        last_use: LastUse | None = None,
    ) -> None:
        self.token_ttl = token_ttl
        self.session_ttl = session_ttl
        self.live_limiter = live_limiter
        self.last_use = last_use or LastUse()

    def token_user(self, session: Session, token: str) -> Principal | None:
        """The user a bearer token names (see :func:`authenticate`), noting the use."""
        principal = authenticate(session, token, self.token_ttl)
        if principal is not None:
            self.last_use.seen(principal.user_id)
        return principal

    def token_user_and_student(
        self, session: Session, token: str, student_id: str
    ) -> tuple[Principal | None, StudentRef | None]:
        """:meth:`token_user` and the student ``student_id`` in one read (see
        :func:`authenticate_with_student`), noting the use."""
        principal, student = authenticate_with_student(session, token, student_id, self.token_ttl)
        if principal is not None:
            self.last_use.seen(principal.user_id)
        return principal, student

    def page_user(self, session: Session, key: str) -> PageSession | None:
        """The page session a cookie names (see :func:`session_user`), noting the use."""
        page_session = session_user(session, key)
        if page_session is not None:
            self.last_use.seen(page_session.principal.user_id, page_session.session_id)
        return page_session

    def allow_live_scoring(self, principal: Principal) -> None:
        """The one place live scoring is limited: RateLimited when the caller is over its allowance."""
        if self.live_limiter is None:
            return
        wait_s = self.live_limiter.acquire(principal.user_id)
        if wait_s > 0:
            raise RateLimited(
                f"too many live recommendation requests (other k, term or occupation); "
                f"retry in {wait_s:.0f} s, or ask for the default list",
                retry_after_s=wait_s,
            )


def require_role(principal: Principal, *roles: str) -> None:
    """Raise Forbidden unless the caller has one of ``roles``."""
    if principal.role not in roles:
        raise Forbidden(f"the {principal.role} role may not do this (needs {' or '.join(roles)})")


@dataclass(frozen=True)
class StudentRef:
    """What visibility and the list readers need of a student (read without the ORM on the hot route)."""

    id: str
    advisor_id: str | None


StudentT = TypeVar("StudentT", Student, StudentRef)


def can_see_student(principal: Principal, student: Student | StudentRef) -> bool:
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
    return checked_student(principal, student, student_id)


def checked_student(principal: Principal, student: StudentT | None, student_id: str) -> StudentT:
    """``student`` (read for ``student_id``) if the caller may see them; NotFound otherwise."""
    if student is None or not can_see_student(principal, student):
        raise NotFound(f"no student with id {student_id!r}")
    return student


# The token's user and the asked-for student in one round trip (the hottest route asks for both).
_USER_BY_TOKEN_HASH_WITH_STUDENT = HotRead(
    select(
        User.id,
        User.name,
        User.role,
        User.student_id,
        User.advisor_id,
        User.token_issued_at,
        User.created_at,
        Student.id.label("asked_student_id"),
        Student.advisor_id.label("asked_student_advisor_id"),
    )
    .outerjoin(Student, Student.id == bindparam("student_id"))
    .where(User.token_hash == bindparam("token_hash"), User.active.is_(True))
)


def authenticate_with_student(
    session: Session, token: str, student_id: str, token_ttl: dt.timedelta | None = None
) -> tuple[Principal | None, StudentRef | None]:
    """:func:`authenticate` and the student ``student_id`` (None when unknown) in one read; the
    student is None too when the token names no one (visibility is the caller's to check)."""
    if not token:
        return None, None
    parameters = {"token_hash": hash_token(token), "student_id": student_id}
    rows = _USER_BY_TOKEN_HASH_WITH_STUDENT.rows(session, parameters)
    if not rows:
        return None, None
    row = rows[0]
    expires_at = token_expires_at(row.token_issued_at or row.created_at, token_ttl)
    if expires_at is not None and expires_at <= utc_now():
        return None, None
    principal = Principal(
        user_id=row.id, name=row.name, role=row.role, student_id=row.student_id, advisor_id=row.advisor_id
    )
    if row.asked_student_id is None:
        return principal, None
    return principal, StudentRef(row.asked_student_id, row.asked_student_advisor_id)
