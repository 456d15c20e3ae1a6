"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from service.deps import HolderDep
from service.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz", response_model=HealthOut, summary="The process is up")
async def healthz() -> HealthOut:
    return HealthOut()


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "not ready, with reasons"}},
    summary="Ready to serve: the database answers and a promoted model is loaded",
)
def readyz(request: Request, holder: HolderDep) -> JSONResponse:
    reasons: list[str] = []
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("readyz: database unreachable: %s", type(exc).__name__)
        reasons.append(f"database unreachable ({type(exc).__name__})")
    loaded = holder.maybe_refresh()
    if loaded is None:
        reasons.append(holder.last_error or "no promoted model is loaded")
    ready = ReadyOut(
        status="not ready" if reasons else "ready",
        model_version=loaded.version if loaded else None,
        reasons=reasons,
    )
    return JSONResponse(ready.model_dump(), status_code=503 if reasons else 200)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
def metrics(request: Request, holder: HolderDep) -> Response:
    service_metrics = request.app.state.metrics
    loaded = holder.current
    service_metrics.set_model(loaded.version if loaded else None, holder.swaps)
    results = loaded.cache.get("results") if loaded else None
    if results is not None:
        service_metrics.set_result_cache(results.hits, results.misses)
    return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)
