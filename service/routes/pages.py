"""Server-rendered pages: /advisor (the review queue) and /student (suggestions and pathway).

Signing in exchanges the bearer token for a page session whose key goes in an HttpOnly,
SameSite=Strict cookie; signing out ends the session. The pages use the same handlers and
visibility rules as the JSON API. htmx submits reviews and swaps in the audit entry.
"""

from __future__ import annotations

from html import escape
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from records.users import open_session, revoke_session
from service import handlers
from service.auth import Principal, visible_student
from service.deps import (
    SESSION_COOKIE,
    AccessDep,
    LiveDep,
    PageUser,
    SessionDep,
    SettingsDep,
    UowDep,
    page_user,
)
from service.errors import Forbidden, NotFound, ServiceError, Unavailable

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=FilePath(__file__).resolve().parent.parent / "web" / "templates")

PAGES = ("/advisor", "/student")


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _signin(
    request: Request, next_page: str, error: str | None = None, status_code: int = 401
) -> HTMLResponse:
    return _render(request, "signin.html", status_code, user=None, next=next_page, error=error)


def _message(
    request: Request, user: Principal | None, status_code: int, heading: str, message: str
) -> HTMLResponse:
    return _render(request, "message.html", status_code, user=user, heading=heading, message=message)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/student", status_code=303)


@router.post("/signin")
def signin(
    request: Request,
    uow: UowDep,
    access: AccessDep,
    token: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=256)] = "/student",
) -> Response:
    """Exchange an API token for a page session; the cookie holds the session key, not the token."""
    next_page = next if next.split("?")[0] in PAGES or next.startswith("/student/") else "/student"
    user = access.token_user(uow.session, token.strip())
    if user is None:
        return _signin(request, next_page, "That token is not valid (unknown, expired or revoked).")
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        revoke_session(uow.session, previous)  # a new sign-in never keeps an older session alive
    key = open_session(uow.session, user.user_id, access.session_ttl)
    uow.commit()
    response = RedirectResponse(next_page, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        key,
        max_age=int(access.session_ttl.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout")
def signout(request: Request, uow: UowDep) -> RedirectResponse:
    """End the page session on the server (a copied cookie stops working) and drop the cookie."""
    key = request.cookies.get(SESSION_COOKIE)
    if key and revoke_session(uow.session, key):
        uow.commit()
    response = RedirectResponse("/student", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response


# ---------------------------------------------------------------------------------------------
# Advisor
# ---------------------------------------------------------------------------------------------


@router.get("/advisor", response_class=HTMLResponse)
def advisor_page(
    request: Request, session: SessionDep, user: PageUser, live: LiveDep, settings: SettingsDep
) -> HTMLResponse:
    if user is None:
        return _signin(request, "/advisor")
    if user.role not in ("advisor", "admin"):
        return _message(request, user, 403, "Advisors only", "The review queue is for advisors.")
    queue = handlers.advisor_queue(session, user)
    batch_term = queue.batch.target_term if queue.batch else None
    alternatives: dict[str, list[Any]] = {}
    items = []
    for item in queue.items:
        student_id = item.recommendation.student_id
        if student_id not in alternatives:
            alternatives[student_id] = live.eligible_modules(session, student_id, batch_term)
        choices = [m for m in alternatives[student_id] if m.id != item.module.id]
        items.append(_QueueView(item.recommendation, item.module, item.flags, choices))
    return _render(
        request,
        "advisor.html",
        user=user,
        queue=handlers.Queue(batch=queue.batch, items=items),  # type: ignore[arg-type]
        risk=lambda p: handlers.risk_level(p, settings.fail_risk_threshold),
    )


class _QueueView:
    """A queue item with the replacement choices the page offers."""

    def __init__(self, recommendation: Any, module: Any, flags: list[Any], alternatives: list[Any]) -> None:
        self.recommendation = recommendation
        self.module = module
        self.flags = flags
        self.alternatives = alternatives


@router.post("/advisor/reviews/{rec_id}", response_class=HTMLResponse)
def advisor_review(
    request: Request,
    rec_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    uow: UowDep,
    live: LiveDep,
    settings: SettingsDep,
    action: Annotated[str, Form(pattern="^(approve|reject|replace)$")],
    replacement_module_id: Annotated[str, Form(max_length=64)] = "",
    comment: Annotated[str, Form(max_length=2000)] = "",
) -> HTMLResponse:
    user = page_user(request, uow.session)
    if user is None:
        return _message(request, None, 401, "Signed out", "Sign in again to review.")
    eligibility = live.eligibility_check(uow.session) if action == "replace" else None
    try:
        result = handlers.review_recommendation(
            uow,
            user,
            rec_id,
            action,
            replacement_module_id or None if action == "replace" else None,
            comment.strip() or None,
            eligibility,
        )
    except ServiceError as exc:
        return _review_error(request, uow, live, settings, user, rec_id, exc)
    return _render(request, "_reviewed_item.html", review=result.review, audit=result.audit)


def _review_error(
    request: Request,
    uow: Any,
    live: Any,
    settings: Any,
    user: Principal,
    rec_id: int,
    exc: ServiceError,
) -> HTMLResponse:
    """The reviewed item again with the reason it was refused, or a message page when it cannot be shown."""
    if isinstance(exc, NotFound | Forbidden | Unavailable):
        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, Forbidden) else 503
        return _message(request, user, status, "Cannot review", str(exc))
    uow.rollback()
    queue = handlers.advisor_queue(uow.session, user, limit=500)
    item = next((i for i in queue.items if i.recommendation.id == rec_id), None)
    if item is None:
        return _message(request, user, 409, "Cannot review", str(exc))
    batch_term = queue.batch.target_term if queue.batch else None
    choices = live.eligible_modules(uow.session, item.recommendation.student_id, batch_term)
    view = _QueueView(
        item.recommendation, item.module, item.flags, [m for m in choices if m.id != item.module.id]
    )
    return _render(
        request,
        "_queue_item.html",
        422,
        item=view,
        error=str(exc),
        risk=lambda p: handlers.risk_level(p, settings.fail_risk_threshold),
    )


# ---------------------------------------------------------------------------------------------
# Student
# ---------------------------------------------------------------------------------------------


Occupation = Annotated[str | None, Query(max_length=32, description="what-if target occupation")]


@router.get("/student", response_class=HTMLResponse)
def student_home(
    request: Request, session: SessionDep, user: PageUser, live: LiveDep, occupation: Occupation = None
) -> Response:
    if user is None:
        return _signin(request, "/student")
    if user.role == "student" and user.student_id:
        return _student(request, session, user, live, user.student_id, occupation or None)
    return _render(request, "student_pick.html", user=user)


@router.get("/student/lookup")
def student_lookup(student_id: Annotated[str, Query(min_length=1, max_length=64)]) -> RedirectResponse:
    return RedirectResponse(f"/student/{quote(student_id, safe='')}", status_code=303)


@router.get("/student/{student_id}", response_class=HTMLResponse)
def student_page(
    request: Request,
    student_id: Annotated[str, Path(min_length=1, max_length=64)],
    session: SessionDep,
    user: PageUser,
    live: LiveDep,
    occupation: Occupation = None,
) -> Response:
    if user is None:
        return _signin(request, f"/student/{quote(student_id, safe='')}")
    return _student(request, session, user, live, student_id, occupation or None)


@router.post("/student/{student_id}/feedback/{module_id}", response_class=HTMLResponse)
def student_feedback(
    request: Request,
    student_id: Annotated[str, Path(min_length=1, max_length=64)],
    module_id: Annotated[str, Path(min_length=1, max_length=64)],
    uow: UowDep,
    action: Annotated[str, Form(pattern="^(accept|dismiss)$")],
) -> HTMLResponse:
    """The student's accept/dismiss button; answers the small note that replaces the button row."""
    user = page_user(request, uow.session)
    if user is None:
        return _message(request, None, 401, "Signed out", "Sign in again.")
    try:
        handlers.record_feedback(uow, user, student_id, module_id, action, None)
    except NotFound as exc:
        return _message(request, user, 404, "Not found", str(exc))
    except ServiceError as exc:
        return HTMLResponse(f'<p class="error" role="alert">{escape(str(exc))}</p>', status_code=422)
    note = "Noted: it will not be suggested again." if action == "dismiss" else "Noted: you plan to take it."
    return HTMLResponse(f'<p class="feedback-note" role="status">{note}</p>')


def _student(
    request: Request, session: Any, user: Principal, live: Any, student_id: str, occupation: str | None
) -> HTMLResponse:
    try:
        student = visible_student(session, user, student_id)
    except NotFound as exc:
        return _message(request, user, 404, "Not found", str(exc))
    context: dict[str, Any] = {
        "user": user,
        "student": student,
        "occupation": occupation,
        "occupations": handlers.list_occupations(session),
        "can_give_feedback": user.role == "student" and user.student_id == student.id,
    }
    try:
        if occupation is not None and live.holder.current is not None:
            request.app.state.access.allow_live_scoring(user)  # a what-if is live scoring
        context["recommendations"] = live.recommend(session, student, None, 10, occupation)
    except ServiceError as exc:
        context["recommendations_error"] = f"Suggestions are not available: {exc}"
    try:
        context["pathway"] = live.pathway(session, student, 4, occupation)
    except ServiceError as exc:
        context["pathway_error"] = f"A pathway is not available: {exc}"
    return _render(request, "student.html", **context)
