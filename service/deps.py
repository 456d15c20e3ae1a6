"""FastAPI dependencies as ``Annotated`` aliases: the unit of work, the caller, settings, the model.

Everything comes from ``app.state`` (built in the app's lifespan), never from module globals.
Dependencies that only read attributes are ``async`` so FastAPI does not hop to a worker thread for
them; the ones that touch the database stay synchronous (they run in the thread pool).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from records.db import UnitOfWork
from records.settings import Settings
from service.answers import Recommendations
from service.auth import Access, PageSession, Principal, StudentRef, checked_student
from service.model_holder import ModelHolder

# The page cookie holds a random session key (never the API token); see service.auth.session_user.
SESSION_COOKIE = "pathways_session"

bearer_scheme = HTTPBearer(auto_error=False, description="a token from `pathways users add|token`")


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    """A unit of work per request; it rolls back unless a handler commits.

    Opening a session touches no connection (that happens at the first query, in a worker thread);
    closing hands the connection back to the pool after a rollback, which is quick, so this runs on
    the event loop and saves a thread hop per request.
    """
    with UnitOfWork(request.app.state.sessions) as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]


async def get_session(uow: UowDep) -> Session:
    return uow.session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


HolderDep = Annotated[ModelHolder, Depends(get_holder)]


async def get_live(request: Request) -> Recommendations:
    recommendations: Recommendations = request.app.state.live
    return recommendations


LiveDep = Annotated[Recommendations, Depends(get_live)]
"""Recommendations, pathways and eligibility: the stored batch first, the live model otherwise."""


async def get_access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


AccessDep = Annotated[Access, Depends(get_access)]


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": "Bearer"})


def principal_for(
    session: Session, credentials: HTTPAuthorizationCredentials | None, access: Access
) -> Principal:
    """The caller named by the ``Authorization: Bearer`` header; 401 when missing, unknown or expired."""
    if credentials is None:
        raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
    principal = access.token_user(session, credentials.credentials)
    if principal is None:
        raise _unauthorized("unknown, expired or revoked token")
    return principal


def principal_and_student(
    session: Session, credentials: HTTPAuthorizationCredentials | None, access: Access, student_id: str
) -> tuple[Principal, StudentRef]:
    """:func:`principal_for` and :func:`service.auth.visible_student` in one read: 401 as the one,
    NotFound as the other."""
    if credentials is None:
        raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
    principal, student = access.token_user_and_student(session, credentials.credentials, student_id)
    if principal is None:
        raise _unauthorized("unknown, expired or revoked token")
    return principal, checked_student(principal, student, student_id)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def get_current_user(session: SessionDep, credentials: Credentials, access: AccessDep) -> Principal:
    return principal_for(session, credentials, access)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def page_session(request: Request, session: Session) -> PageSession | None:
    """The caller's page session, from the sign-in cookie; None when not signed in (or it ended)."""
    key = request.cookies.get(SESSION_COOKIE)
    access: Access = request.app.state.access
    return access.page_user(session, key) if key else None


def page_user(request: Request, session: Session) -> Principal | None:
    """The caller of a page, from the sign-in cookie; None when not signed in."""
    signed_in = page_session(request, session)
    return signed_in.principal if signed_in else None


def get_page_user(request: Request, session: SessionDep) -> Principal | None:
    return page_user(request, session)


PageUser = Annotated[Principal | None, Depends(get_page_user)]
