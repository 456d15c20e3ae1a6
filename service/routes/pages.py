"""Server-rendered pages: /advisor (the review queue) and /student (suggestions and pathway).

Signing in exchanges the bearer token for a page session whose key goes in an HttpOnly,
SameSite=Strict cookie; signing out ends the session. The pages use the same handlers and
visibility rules as the JSON API. htmx submits reviews and swaps in the audit entry.
"""

from __future__ import annotations

from html import escape
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import quote, urlencode

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


QUEUE_PAGE = 25
"""Queue items per page."""


@router.get("/advisor", response_class=HTMLResponse)
def advisor_page(
    request: Request,
    session: SessionDep,
    user: PageUser,
    live: LiveDep,
    settings: SettingsDep,
    kind: Annotated[str, Query(max_length=32)] = "",
    sort: Annotated[str, Query(pattern="^(student|risk)$")] = "student",
    student: Annotated[str, Query(max_length=64)] = "",
    offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
) -> HTMLResponse:
    if user is None:
        return _signin(request, "/advisor")
    if user.role not in ("advisor", "admin"):
        return _message(request, user, 403, "Advisors only", "The review queue is for advisors.")
    queue = handlers.advisor_queue(
        session, user, QUEUE_PAGE, offset, kind or None, student.strip() or None, sort
    )
    batch_term = queue.batch.target_term if queue.batch else None
    alternatives: dict[str, list[Any]] = {}
    groups: list[dict[str, Any]] = []
    records = handlers.student_records(session, [i.recommendation.student_id for i in queue.items])
    for item in queue.items:
        student_id = item.recommendation.student_id
        if student_id not in alternatives:
            alternatives[student_id] = live.eligible_modules(session, student_id, batch_term)
            groups.append({"student_id": student_id, "record": records.get(student_id), "items": []})
        choices = [m for m in alternatives[student_id] if m.id != item.module.id]
        groups[-1]["items"].append(_QueueView(item, choices))

    def page_url(new_offset: int) -> str:
        query = urlencode({"kind": kind, "sort": sort, "student": student, "offset": max(new_offset, 0)})
        return f"/advisor?{query}"

    return _render(
        request,
        "advisor.html",
        user=user,
        queue=queue,
        groups=groups,
        filters={"kind": kind, "sort": sort, "student": student},
        previous_url=page_url(offset - QUEUE_PAGE) if offset > 0 else None,
        next_url=page_url(offset + QUEUE_PAGE) if offset + QUEUE_PAGE < queue.total else None,
        history=handlers.decision_history(session, user),
        risk=lambda p: handlers.risk_level(p, settings.fail_risk_threshold),
    )


class _QueueView:
    """A queue item with the replacement choices the page offers."""

    def __init__(self, item: handlers.QueueItem, alternatives: list[Any]) -> None:
        self.recommendation = item.recommendation
        self.module = item.module
        self.flags = item.flags
        self.carried_approval = item.carried_approval
        self.alternatives = alternatives


def _plain_review_problem(action: str, replacement_module_id: str) -> str | None:
    """What is wrong with a review form as submitted, in the advisor's words; None when it is clear."""
    if action not in ("approve", "reject", "replace"):
        if replacement_module_id:
            return "You picked a replacement module but no decision: choose “Replace with” to replace it."
        return "Choose a decision: Approve, Reject or Replace with."
    if action == "replace" and not replacement_module_id:
        return "Choose the module to replace it with from the list."
    if action != "replace" and replacement_module_id:
        verb = "Approve" if action == "approve" else "Reject"
        return (
            f"You chose “{verb}” but also picked a replacement module. Choose “Replace with” to "
            "replace it, or clear the replacement to keep your decision. Nothing was recorded."
        )
    return None


@router.post("/advisor/reviews/{rec_id}", response_class=HTMLResponse)
def advisor_review(
    request: Request,
    rec_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    uow: UowDep,
    live: LiveDep,
    settings: SettingsDep,
    action: Annotated[str, Form(max_length=16)] = "",
    replacement_module_id: Annotated[str, Form(max_length=64)] = "",
    comment: Annotated[str, Form(max_length=2000)] = "",
) -> HTMLResponse:
    user = page_user(request, uow.session)
    if user is None:
        return _message(request, None, 401, "Signed out", "Sign in again to review.")
    chosen = {"action": action, "replacement": replacement_module_id, "comment": comment}
    problem = _plain_review_problem(action, replacement_module_id)
    if problem is not None:
        return _review_error(request, uow, live, settings, user, rec_id, problem, chosen)
    eligibility = live.eligibility_check(uow.session) if action == "replace" else None
    try:
        result = handlers.review_recommendation(
            uow,
            user,
            rec_id,
            action,
            replacement_module_id or None,
            comment.strip() or None,
            eligibility,
        )
    except (NotFound, Forbidden, Unavailable) as exc:
        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, Forbidden) else 503
        return _message(request, user, status, "Cannot review", str(exc))
    except ServiceError as exc:
        return _review_error(request, uow, live, settings, user, rec_id, _plain(exc), chosen)
    modules = handlers.modules_by_id(
        uow.session, [result.review.module_id, result.review.replacement_module_id or ""]
    )
    return _render(
        request,
        "_reviewed_item.html",
        review=result.review,
        audit=result.audit,
        module=modules.get(result.review.module_id),
        replacement=modules.get(result.review.replacement_module_id or ""),
    )


def _plain(exc: ServiceError) -> str:
    """A refusal of the review handler, as the advisor should read it."""
    text = str(exc)
    if "already reviewed" in text:
        return "Someone already decided on this recommendation; reload the queue to see the decision."
    if "no longer current" in text:
        return "A newer batch of recommendations has replaced this one; reload the queue."
    if "not eligible" in text:
        return "That module cannot be taken by this student in that term; choose another one."
    if "no model is loaded" in text:
        return "Replacements cannot be checked right now (no model is loaded); try again later."
    return text


@router.post("/advisor/reviews/{review_id}/undo", response_class=HTMLResponse)
def advisor_undo(
    request: Request, review_id: Annotated[int, Path(ge=1, le=2**31 - 1)], uow: UowDep
) -> HTMLResponse:
    user = page_user(request, uow.session)
    if user is None:
        return _message(request, None, 401, "Signed out", "Sign in again to undo.")
    try:
        audit = handlers.undo_review(uow, user, review_id)
    except ServiceError as exc:
        return HTMLResponse(
            f'<li class="error" role="alert">Cannot undo: {escape(str(exc))}</li>', status_code=409
        )
    module = (audit.before or {}).get("module_id", "")
    names = handlers.modules_by_id(uow.session, [module])
    name = (
        f"{names[module].code or module} {names[module].title or ''}".strip() if module in names else module
    )
    return HTMLResponse(
        f'<li class="card" role="status">Decision undone: {escape(name)} is back in the queue.</li>'
    )


def _review_error(
    request: Request,
    uow: Any,
    live: Any,
    settings: Any,
    user: Principal,
    rec_id: int,
    message: str,
    chosen: dict[str, str],
) -> HTMLResponse:
    """The item again, with the advisor's choices kept and the reason it was refused; nothing stored."""
    uow.rollback()
    session = uow.session
    recommendation = session.get(handlers.Recommendation, rec_id)
    try:
        if recommendation is None:
            raise NotFound(f"no recommendation with id {rec_id}")
        visible_student(session, user, recommendation.student_id)
    except NotFound as exc:
        return _message(request, user, 404, "Cannot review", str(exc))
    batch = session.get(handlers.RecommendationBatch, recommendation.batch_id)
    module = session.get(handlers.Module, recommendation.module_id)
    flags = handlers.flags_for(session, [rec_id]).get(rec_id, [])
    choices = live.eligible_modules(session, recommendation.student_id, batch.target_term if batch else None)
    view = _QueueView(
        handlers.QueueItem(recommendation, module, flags), [m for m in choices if m.id != module.id]
    )
    return _render(
        request,
        "_queue_item.html",
        422,
        item=view,
        error=message,
        chosen=chosen,
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
    live: LiveDep,
    action: Annotated[str, Form(pattern="^(accept|dismiss)$")],
    recommendation_id: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
    occupation: Annotated[str, Form(max_length=32)] = "",
) -> HTMLResponse:
    """The student's accept/dismiss button; answers the small note that replaces the button row."""
    user = page_user(request, uow.session)
    if user is None:
        return _message(request, None, 401, "Signed out", "Sign in again.")
    try:
        handlers.record_feedback(
            uow,
            user,
            student_id,
            module_id,
            action,
            recommendation_id,
            suggested_live=live.suggestion_check(
                uow.session,
                occupation or None,
                lambda: request.app.state.access.allow_live_scoring(user),
            ),
        )
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
    record = handlers.student_records(session, [student.id]).get(student.id)
    occupations = handlers.list_occupations(session)
    context: dict[str, Any] = {
        "user": user,
        "student": student,
        "occupation": occupation,
        "occupation_title": next((o.title for o in occupations if o.id == occupation), occupation),
        "goals": record.goals if record else [],
        "occupations": occupations,
        "can_give_feedback": user.role == "student" and user.student_id == student.id,
        # Scores, component contributions and model versions are for advisors and admins.
        "show_internals": user.role in ("advisor", "admin"),
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
    context.update(_story(session, student, context.get("recommendations"), context.get("pathway")))
    return _render(request, "student.html", **context)


def _name(module: Any) -> str:
    return f"{module.code or module.id} {module.title or ''}".strip()


def _story(session: Any, student: Any, recommendations: Any, pathway: Any) -> dict[str, Any]:
    """What makes the page one story: pass marks, credits against the limit, the plan's first term
    against the suggestions, and the left-out list without the suggested modules."""
    items = recommendations.items if recommendations is not None else []
    suggested = [item.module.id for item in items]
    catalog = handlers.modules_by_id(session, suggested)
    pass_marks = {m: catalog[m].pass_grade if m in catalog else 60.0 for m in suggested}
    limit = student.max_credits_per_term
    total = sum(item.module.credits or 0.0 for item in items)
    fits: list[str] = []
    running = 0.0
    for item in items:
        credits = item.module.credits or 0.0
        if limit is None or running + credits <= limit:
            fits.append(item.module.id)
            running += credits
    left_out = [m for m in pathway.skipped_risky if m.id not in suggested] if pathway is not None else []
    first_term_note = None
    if pathway is not None and pathway.terms and recommendations is not None:
        first = pathway.terms[0]
        planned = [module for module, _ in first.modules]
        planned_ids = {m.id for m in planned}
        if first.term == recommendations.term and planned_ids != set(suggested):
            both = [item.module for item in items if item.module.id in planned_ids]
            extra = [m for m in planned if m.id not in set(suggested)]
            parts = [
                f"The pathway's first term ({first.term}) takes {len(both)} of the suggestions"
                + (f" ({', '.join(_name(m) for m in both)})" if both else "")
            ]
            if limit is not None:
                parts.append(f"so that the term stays within your limit of {limit:g} credits")
            parts.append("and keeps the credit mix balanced over the terms after it")
            note = " ".join(parts) + "."
            if extra:
                note += f" It also plans {', '.join(_name(m) for m in extra)} (not among the suggestions)."
            first_term_note = note
    return {
        "pass_marks": pass_marks,
        "credit_total": total,
        "credit_limit": limit,
        "credit_fits": fits,
        "left_out": left_out,
        "first_term_note": first_term_note,
    }
