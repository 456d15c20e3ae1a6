"""The advisor queue and reviews of stored recommendations."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from records.settings import Settings
from service import handlers
from service.deps import CurrentUser, LiveDep, SessionDep, SettingsDep, UowDep
from service.schemas import (
    ERROR_RESPONSES,
    AuditEntryOut,
    FlagOut,
    ModuleOut,
    QueueItemOut,
    QueueOut,
    ReviewIn,
    ReviewOut,
    UndoOut,
    error_response,
)

router = APIRouter(tags=["advisors"], responses=ERROR_RESPONSES)


def queue_out(queue: handlers.Queue, settings: Settings) -> QueueOut:
    batch = queue.batch
    return QueueOut(
        batch_id=batch.id if batch else None,
        model_version=batch.model_version if batch else None,
        total=queue.total,
        offset=queue.offset,
        limit=queue.limit,
        kinds=queue.kinds,
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


class QueueQuery(BaseModel):
    """The queue's query parameters; an unknown parameter is refused (422), not ignored."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=500, description="most items to return")
    offset: int = Field(default=0, ge=0, le=10**6, description="items to skip (paging)")
    kind: Literal["fail_risk", "low_confidence", "off_target", "large_change", "uncovered_goal"] | None = (
        Field(default=None, description="only items with a flag of this kind")
    )
    student_id: str | None = Field(default=None, max_length=64, description="only this student's items")
    sort: Literal["student", "risk"] = Field(
        default="student", description="student id, or highest risk first"
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
    query: Annotated[QueueQuery, Query()],
) -> QueueOut:
    queue = handlers.advisor_queue(
        session, user, query.limit, query.offset, query.kind, query.student_id, query.sort
    )
    return queue_out(queue, settings)


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
    responses={
        409: error_response("already reviewed", "recommendation 7 was already reviewed (approve, review 3)")
    },
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


@router.delete(
    "/v1/reviews/{review_id}",
    response_model=UndoOut,
    responses={
        409: error_response(
            "the review's batch is no longer current",
            "review 3 belongs to a batch that is no longer current; it cannot be undone",
        )
    },
    summary="Undo one of the caller's decisions while its batch is current",
)
def delete_review(
    review_id: Annotated[int, Path(ge=1, le=2**31 - 1)], uow: UowDep, user: CurrentUser
) -> UndoOut:
    audit = handlers.undo_review(uow, user, review_id)
    return UndoOut(
        review_id=review_id,
        recommendation_id=int(audit.entity_id or 0),
        audit=AuditEntryOut.model_validate(audit),
    )
