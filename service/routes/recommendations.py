"""The advisor queue and reviews of stored recommendations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from records.settings import Settings
from service import handlers
from service.deps import CurrentUser, LiveDep, SessionDep, SettingsDep, UowDep
from service.schemas import (
    ERROR_RESPONSES,
    AuditEntryOut,
    ErrorOut,
    FlagOut,
    ModuleOut,
    QueueItemOut,
    QueueOut,
    ReviewIn,
    ReviewOut,
)

router = APIRouter(tags=["advisors"], responses=ERROR_RESPONSES)


def queue_out(queue: handlers.Queue, settings: Settings) -> QueueOut:
    batch = queue.batch
    return QueueOut(
        batch_id=batch.id if batch else None,
        model_version=batch.model_version if batch else None,
        items=[
            QueueItemOut(
                recommendation_id=item.recommendation.id,
                student_id=item.recommendation.student_id,
                rank=item.recommendation.rank,
                module=ModuleOut.model_validate(item.module),
                score=item.recommendation.score,
                components={k: float(v) for k, v in (item.recommendation.components or {}).items()},
                reasons=[str(r) for r in item.recommendation.reasons or []],
                expected_grade=item.recommendation.expected_grade,
                fail_probability=item.recommendation.fail_probability,
                risk=handlers.risk_level(  # type: ignore[arg-type]
                    item.recommendation.fail_probability, settings.fail_risk_threshold
                ),
                flags=[FlagOut.model_validate(flag) for flag in item.flags],
                model_version=batch.model_version if batch else "",
                target_term=batch.target_term if batch else None,
            )
            for item in queue.items
        ],
    )


@router.get(
    "/v1/advisors/me/queue",
    response_model=QueueOut,
    summary="Flagged recommendations of the caller's advisees awaiting review",
)
def get_queue(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=500, description="most items to return")] = 100,
) -> QueueOut:
    return queue_out(handlers.advisor_queue(session, user, limit), settings)


def review_out(result: handlers.ReviewResult) -> ReviewOut:
    review = result.review
    return ReviewOut(
        id=review.id,
        recommendation_id=review.recommendation_id,
        student_id=review.student_id,
        module_id=review.module_id,
        action=review.action,
        replacement_module_id=review.replacement_module_id,
        comment=review.comment,
        created_at=review.created_at,
        audit=AuditEntryOut.model_validate(result.audit),
    )


@router.post(
    "/v1/recommendations/{rec_id}/review",
    response_model=ReviewOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": ErrorOut, "description": "already reviewed"}},
    summary="Approve, reject or replace a recommendation, with a comment",
)
def post_review(
    rec_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: ReviewIn,
    uow: UowDep,
    user: CurrentUser,
    live: LiveDep,
) -> ReviewOut:
    eligibility = live.eligibility_check(uow.session) if body.action == "replace" else None
    result = handlers.review_recommendation(
        uow, user, rec_id, body.action, body.replacement_module_id, body.comment, eligibility
    )
    return review_out(result)
