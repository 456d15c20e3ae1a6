"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text

from records.db import storage_guard
from service.auth import require_role
from service.deps import AccessDep, HolderDep, SessionDep, SettingsDep, principal_for
from service.errors import NotFound
from service.schemas import HealthOut, ModelStateOut, ReadyOut

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz", response_model=HealthOut, summary="The process is up")
async def healthz() -> HealthOut:
    return HealthOut()


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "not ready, with reasons"}},
    summary="Ready to serve: the database answers, and the stored batch or a loaded model can answer",
)
def readyz(request: Request, holder: HolderDep) -> JSONResponse:
    """200 while the database answers and the promoted model is loaded or loading (the stored batch
    serves default lists meanwhile); 503 with the reasons otherwise, e.g. the model failed to load
    (it is tried again with back-off) or nothing was ever promoted. ``model`` says what the holder
    is doing now."""
    reasons = _database_problems(request.app.state.engine)
    holder.maybe_refresh()
    state = holder.state()
    if state.state in ("none", "failed") and state.loaded is None:
        reasons.append(holder.unavailable_reason())
    ready = ReadyOut(
        status="not ready" if reasons else "ready",
        model_version=state.loaded,
        model=ModelStateOut(
            state=state.state,  # type: ignore[arg-type]
            promoted=state.promoted,
            loaded=state.loaded,
            reason=state.reason,
            retry_in_s=state.retry_in_s,
        ),
        reasons=reasons,
    )
    return JSONResponse(ready.model_dump(), status_code=503 if reasons else 200)


def _database_problems(engine: Engine) -> list[str]:
    """Why the database cannot serve: unreachable, or read-only (writes would be refused); [] when healthy."""
    guard = storage_guard(engine)
    problem = guard.problem() if guard is not None else None
    if problem is not None:
        # Not even a SELECT: SQLite would touch its mapped -shm file (see records.db.ReadOnlyStorage).
        log.warning("readyz: database storage is read-only: %s", problem)
        return [f"database is read-only: {problem}"]
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            postgres = engine.dialect.name == "postgresql"
            if postgres and connection.execute(text("SHOW transaction_read_only")).scalar() == "on":
                log.warning("readyz: the database is read-only (transaction_read_only is on)")
                return ["database is read-only (transaction_read_only is on)"]
    except Exception as exc:
        log.warning("readyz: database unreachable: %s: %s", type(exc).__name__, exc)
        return [f"database unreachable ({type(exc).__name__})"]
    return []


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics (open, an admin token, or off: the metrics_access setting)",
)
def metrics(
    request: Request,
    holder: HolderDep,
    settings: SettingsDep,
    session: SessionDep,
    access: AccessDep,
) -> Response:
    if settings.metrics_access == "off":
        raise NotFound("metrics are turned off (PATHWAYS_METRICS_ACCESS=off)")
    if settings.metrics_access == "token":
        # Read by hand rather than through the bearer dependency: the schema stays the same whatever
        # the setting, and in the default ("open") no token is asked for.
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        credentials = (
            HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
            if scheme.lower() == "bearer" and token
            else None
        )
        require_role(principal_for(session, credentials, access), "admin")
    service_metrics = request.app.state.metrics
    loaded = holder.current
    service_metrics.set_model(loaded.version if loaded else None, holder.swaps)
    return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)
