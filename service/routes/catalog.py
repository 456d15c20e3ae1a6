"""The catalog: modules and occupations (any signed-in user)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from service import handlers
from service.deps import CurrentUser, SessionDep
from service.schemas import (
    ERROR_RESPONSES,
    ModuleCompetencyOut,
    ModuleDetailOut,
    ModuleOut,
    ModulePageOut,
    OccupationOut,
    PrerequisiteOut,
)

router = APIRouter(prefix="/v1", tags=["catalog"], responses=ERROR_RESPONSES)


@router.get("/modules", response_model=ModulePageOut, summary="Modules, paginated, optionally by track")
def get_modules(
    session: SessionDep,
    user: CurrentUser,
    track: Annotated[Literal["academic", "vocational", "project"] | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ModulePageOut:
    rows, total = handlers.list_modules(session, track, offset, limit)
    return ModulePageOut(
        items=[ModuleOut.model_validate(row) for row in rows], total=total, offset=offset, limit=limit
    )


@router.get("/modules/{module_id:path}", response_model=ModuleDetailOut, summary="One module in full")
def get_module(
    module_id: Annotated[str, Path(min_length=1, max_length=64, examples=["M0042"])],
    session: SessionDep,
    user: CurrentUser,
) -> ModuleDetailOut:
    detail = handlers.get_module(session, module_id)
    out = ModuleDetailOut.model_validate(detail.module)
    out.competencies = [ModuleCompetencyOut(**c) for c in detail.competencies]
    out.prerequisites = [PrerequisiteOut(**p) for p in detail.prerequisites]
    out.offered_terms = detail.offered_terms
    return out


@router.get("/occupations", response_model=list[OccupationOut], summary="Occupations students may aim at")
def get_occupations(session: SessionDep, user: CurrentUser) -> list[OccupationOut]:
    return [OccupationOut.model_validate(row) for row in handlers.list_occupations(session)]
