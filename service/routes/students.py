"""Student resources: live recommendations, the pathway plan, and feedback on suggestions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from service import handlers
from service.answer_json import list_json
from service.answers import Recommendations
from service.auth import Access, Principal, StudentRef, visible_student
from service.deps import (
    AccessDep,
    Credentials,
    CurrentUser,
    LiveDep,
    SessionDep,
    UowDep,
    bearer_scheme,
    principal_and_student,
)
from service.lists import DEFAULT_K, Item, RecommendationList
from service.schemas import (
    ERROR_RESPONSES,
    FeedbackIn,
    FeedbackOut,
    FlagOut,
    ModuleOut,
    PathwayModuleOut,
    PathwayOut,
    PathwayTermOut,
    RecommendationItemOut,
    RecommendationsOut,
    error_response,
)

router = APIRouter(prefix="/v1/students", tags=["students"], responses=ERROR_RESPONSES)

MAX_STUDENT_ID = 64
StudentId = Annotated[
    str, Path(min_length=1, max_length=MAX_STUDENT_ID, description="the student's id", examples=["S00578"])
]
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: error_response("no model is loaded and no stored list matches", "no promoted model is loaded")
}


def recommendations_out(result: RecommendationList) -> RecommendationsOut:
    return RecommendationsOut(
        student_id=result.student_id,
        term=result.term,
        occupation=result.occupation,
        model_version=result.model_version,
        source=result.source,
        items=[item_out(item) for item in result.items],
        notes=result.notes,
    )


def item_out(item: Item) -> RecommendationItemOut:
    return RecommendationItemOut(
        rank=item.rank,
        module=ModuleOut.model_validate(item.module),
        score=item.score,
        components=item.components,
        reasons=item.reasons,
        expected_grade=item.expected_grade,
        fail_probability=item.fail_probability,
        risk=item.risk,  # type: ignore[arg-type]
        flags=[FlagOut(**flag) for flag in item.flags],
        recommendation_id=item.recommendation_id,
        origin=item.origin,
        review=item.review,
        feedback=item.feedback,  # type: ignore[arg-type]
    )


class DefaultListRoute(APIRoute):
    """The recommendations route, answering the default question (no query parameters) before FastAPI
    resolves the endpoint's parameters and dependencies: on the hottest route that resolution costs
    about as much as the answer. Anything else (a query, no bearer token, a path FastAPI would refuse)
    goes the general way; both ways call :func:`_recommendations`, so they answer alike."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        general = super().get_route_handler()

        async def handler(request: Request) -> Response:
            student_id = request.path_params.get("student_id", "")
            if request.scope["query_string"] or not 1 <= len(student_id) <= MAX_STUDENT_ID:
                return await general(request)
            credentials = await bearer_scheme(request)
            if credentials is None:
                return await general(request)
            return await _recommendations(request, student_id, credentials, None, DEFAULT_K, None)

        return handler


async def get_recommendations(
    request: Request,
    student_id: StudentId,
    credentials: Credentials,
    term: Annotated[str | None, Query(max_length=32, description="target term; default the next")] = None,
    k: Annotated[int, Query(ge=1, le=50, description="list length")] = DEFAULT_K,
    occupation: Annotated[str | None, Query(max_length=32, description="what-if target occupation")] = None,
) -> Response:
    return await _recommendations(request, student_id, credentials, term, k, occupation)


router.add_api_route(
    "/{student_id:path}/recommendations",
    get_recommendations,
    methods=["GET"],
    response_model=RecommendationsOut,
    responses={
        **UNAVAILABLE,
        429: error_response(
            "too many live scorings (other k, term or occupation)",
            "too many live recommendation requests (other k, term or occupation); "
            "retry in 12 s, or ask for the default list",
        ),
    },
    summary="Next-term recommendations: the stored nightly list, or scored live for other questions",
    route_class_override=DefaultListRoute,
)


async def _recommendations(
    request: Request,
    student_id: str,
    credentials: HTTPAuthorizationCredentials | None,
    term: str | None,
    k: int,
    occupation: str | None,
) -> Response:
    # The hottest route: token with student, then the stored list with its decisions, two quick indexed
    # reads; live scoring (tens of milliseconds of CPU) only for other questions. The sessions, access
    # rules and recommender come straight from app.state, not as dependencies: resolving each costs about
    # as much as a read. The sessions only read (outside a transaction on a database server).
    state = request.app.state
    access: Access = state.access
    live: Recommendations = state.live

    def stored() -> tuple[Principal, StudentRef, bytes | RecommendationList | None]:
        with state.read_sessions() as session:
            user, student = principal_and_student(session, credentials, access, student_id)
            return user, student, live.batch_answer(session, student, term, k, occupation)

    # On the event loop when the reads only take CPU (SQLite: a thread hop would cost more than it
    # frees); on the read threads when each read waits for a database server, so that the loop serves
    # other requests meanwhile. Session opened and closed there too: the loop touches no connection.
    read_threads: ThreadPoolExecutor | None = state.read_threads
    if read_threads is None:
        user, student, result = stored()
    else:
        user, student, result = await asyncio.get_running_loop().run_in_executor(read_threads, stored)
    if result is None:
        if live.holder.current is not None:
            # Only a question the stored batch does not answer costs model scoring: that is what
            # is limited (without a model, every answer is read from the stored batch).
            access.allow_live_scoring(user)

        def scored() -> RecommendationList:
            with state.read_sessions() as session:
                return live.recommend(session, student, term, k, occupation, True)

        result = await run_in_threadpool(scored)
    if isinstance(result, bytes):
        source, body = "batch", result
    elif result.source == "batch":
        source, body = result.source, list_json(result)
    else:
        source, body = result.source, recommendations_out(result).model_dump_json().encode("utf-8")
    state.metrics.lists_served.labels(source=source).inc()
    return Response(body, media_type="application/json")


@router.get(
    "/{student_id:path}/pathway",
    response_model=PathwayOut,
    responses=UNAVAILABLE,
    summary="A term-by-term plan over the next terms",
)
def get_pathway(
    student_id: StudentId,
    session: SessionDep,
    user: CurrentUser,
    live: LiveDep,
    terms: Annotated[int, Query(ge=1, le=12, description="how many terms to plan")] = 4,
    occupation: Annotated[str | None, Query(max_length=32, description="what-if target occupation")] = None,
) -> PathwayOut:
    student = visible_student(session, user, student_id)
    plan = live.pathway(session, student, terms, occupation)
    return PathwayOut(
        student_id=plan.student_id,
        occupation=plan.occupation,
        model_version=plan.model_version,
        terms=[
            PathwayTermOut(
                term=term.term,
                credits=term.credits,
                modules=[
                    PathwayModuleOut(**vars(module), reasons=reasons) for module, reasons in term.modules
                ],
            )
            for term in plan.terms
        ],
        notes=plan.notes,
    )


@router.post(
    "/{student_id:path}/feedback",
    response_model=FeedbackOut,
    status_code=status.HTTP_201_CREATED,
    summary="The student accepts or dismisses a suggested module (201 new, 200 changed its earlier action)",
)
def post_feedback(
    student_id: StudentId,
    body: FeedbackIn,
    uow: UowDep,
    user: CurrentUser,
    live: LiveDep,
    access: AccessDep,
    response: Response,
) -> FeedbackOut:
    result = handlers.record_feedback(
        uow,
        user,
        student_id,
        body.module_id,
        body.action,
        body.recommendation_id,
        suggested_live=live.suggestion_check(
            uow.session, body.occupation, lambda: access.allow_live_scoring(user)
        ),
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return FeedbackOut.model_validate(result.feedback)
