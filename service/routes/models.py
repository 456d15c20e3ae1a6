"""Model versions (admin): list, promote, roll back, and each version's report."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response, status
from fastapi.responses import FileResponse, HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from records.schema import Promotion
from service import handlers
from service.deps import CurrentUser, HolderDep, SessionDep, SettingsDep, UowDep
from service.errors import Conflict, Unavailable
from service.schemas import ERROR_RESPONSES, ModelOut, PromotionOut, error_response

router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERROR_RESPONSES)

Version = Annotated[str, Path(min_length=1, max_length=64)]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: error_response(
        "the promotion would change nothing or is impossible", "no version was promoted before 'v1'"
    ),
    503: error_response(
        "promoted already, and this process still cannot load it", "model v1 failed to load: ..."
    ),
}


def latest_promotion(session: Session) -> Promotion | None:
    return session.scalars(select(Promotion).order_by(Promotion.id.desc()).limit(1)).first()


@router.get("", response_model=list[ModelOut], summary="Model versions with metrics (admin)")
def get_models(session: SessionDep, user: CurrentUser, holder: HolderDep) -> list[ModelOut]:
    loaded = holder.current
    return [
        ModelOut(
            version=listing.model.version,
            status=listing.model.status,
            created_at=listing.model.created_at,
            cutoff_term=listing.model.cutoff_term,
            duration_s=listing.model.duration_s,
            metrics=listing.model.metrics,
            gate_reason=listing.model.gate_reason,
            promoted=listing.promoted,
            loaded=loaded is not None and loaded.version == listing.model.version,
            report_url=f"/v1/models/{listing.model.version}/report" if listing.model.report_path else None,
        )
        for listing in handlers.list_models(session, user)
    ]


async def _arrival() -> dt.datetime:
    """When the request arrived (resolved on the event loop, before any worker thread picks it up)."""
    return dt.datetime.now(dt.UTC)


Arrival = Annotated[dt.datetime, Depends(_arrival)]


@router.post(
    "/{version}/promote",
    response_model=PromotionOut,
    status_code=status.HTTP_201_CREATED,
    responses=CONFLICT,
    summary="Promote a version (admin); servers swap to it within seconds",
)
def promote(
    version: Version,
    arrived: Arrival,
    uow: UowDep,
    user: CurrentUser,
    holder: HolderDep,
    response: Response,
) -> PromotionOut:
    """Promote ``version``; 409 when it is already promoted and this process serves it. When it is
    promoted but this process failed to load it, load it again now (no new promotion row): 200 with
    the standing promotion when that succeeds, 503 with the reason when not."""
    try:
        promotion = handlers.promote_model(uow, user, version, requested_at=arrived)
    except Conflict:
        standing = latest_promotion(uow.session)
        if standing is None or standing.version != version or holder.holds(version):
            raise
        if holder.retry_now() is None or not holder.holds(version):
            raise Unavailable(holder.unavailable_reason()) from None
        response.status_code = status.HTTP_200_OK
        return PromotionOut.model_validate(standing)
    holder.refresh(wait=True)
    return PromotionOut.model_validate(promotion)


@router.post(
    "/rollback",
    response_model=PromotionOut,
    status_code=status.HTTP_201_CREATED,
    responses=CONFLICT,
    summary="Promote again the version promoted before the current one (admin)",
)
def rollback(arrived: Arrival, uow: UowDep, user: CurrentUser, holder: HolderDep) -> PromotionOut:
    promotion = handlers.rollback_model(uow, user, requested_at=arrived)
    holder.refresh(wait=True)
    return PromotionOut.model_validate(promotion)


@router.get(
    "/{version}/report",
    response_class=FileResponse,
    responses={200: {"content": {"text/html": {}}, "description": "the HTML training report"}},
    summary="The training report of a version (admin)",
)
def report(version: Version, session: SessionDep, user: CurrentUser, settings: SettingsDep) -> HTMLResponse:
    path = handlers.model_report_path(session, user, version, [settings.reports_dir, settings.artifacts_dir])
    return HTMLResponse(handlers.inline_report_images(path))


@router.get(
    "/{version}/{image}",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}, "description": "a plot of the training report"}},
    summary="A plot of a version's training report, by file name (admin)",
)
def report_image(
    version: Version,
    image: Annotated[str, Path(min_length=5, max_length=64, pattern=r"^[A-Za-z0-9_.-]+\.png$")],
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> FileResponse:
    roots = [settings.reports_dir, settings.artifacts_dir]
    return FileResponse(
        handlers.model_report_image(session, user, version, image, roots), media_type="image/png"
    )
