"""The FastAPI app factory. Nothing is connected at import: the engine, the session factory, the
model holder and the metrics are created in the lifespan and live on ``app.state``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError, OperationalError

from records.db import ReadOnlyStorage, dispose_engine, is_read_only_error, make_engine, session_factory
from records.settings import Settings, get_settings
from service.answers import Recommendations
from service.auth import Access, LastUse
from service.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    ServiceError,
    Unavailable,
)
from service.live import LiveRecommender
from service.middleware import PageSecurityMiddleware, RequestMetricsMiddleware, ServiceMetrics
from service.model_holder import HolderPoller, ModelHolder, ModelLoader, load_hybrid
from service.ratelimit import RateLimiter
from service.stored import StoredLists

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "web" / "static"
DOCS_ASSETS_URL = "/docs/assets"

STATUS_OF: dict[type[ServiceError], int] = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    Invalid: 422,
    Unavailable: 503,
    RateLimited: 429,
}


def create_app(
    settings: Settings | None = None,
    *,
    model_loader: ModelLoader = load_hybrid,
    model_check_interval_s: float = 2.0,
    context_ttl_s: float = 60.0,
    wait_for_model_s: float = 0.0,
    freeze_heap: bool = False,
) -> FastAPI:
    """The Pathways HTTP app: JSON API under /v1, pages, health and metrics.

    ``settings`` default to the environment. The process serves at once: the default list comes
    from the stored batch, which needs no model. The promoted model (for live scoring) loads in a
    background thread that then checks every ``model_check_interval_s`` seconds for a newer
    promotion and retries a failed load with back-off; start-up waits up to ``wait_for_model_s``
    for that first load (0: not at all). A zero interval means no thread: the holder checks on the
    requests themselves (tests). ``freeze_heap``: after each model load the process's objects are kept
    out of the garbage collector's full collections (:func:`service.model_holder.freeze_heap`; the
    service's worker processes). Term contexts (offerings, seats) are cached ``context_ttl_s`` seconds;
    a student's own exclusions and decisions are always read fresh.
    """
    settings = settings or get_settings()
    metrics = ServiceMetrics()
    access = Access(
        token_ttl=settings.token_ttl,
        session_ttl=settings.session_ttl,
        live_limiter=(
            RateLimiter(settings.live_rate_per_minute, settings.live_burst)
            if settings.live_rate_per_minute > 0
            else None
        ),
        last_use=LastUse(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
        sessions = session_factory(engine)
        holder = ModelHolder(
            sessions,
            settings.artifacts_dir,
            loader=model_loader,
            check_interval_s=model_check_interval_s,
            retry_base_s=settings.model_retry_base_s,
            retry_max_s=settings.model_retry_max_s,
            freeze_heap=freeze_heap,
        )
        stored = StoredLists(settings.fail_risk_threshold)
        live = LiveRecommender(holder, engine, settings, stored, context_ttl_s=context_ttl_s)
        holder.on_swap = live.prepare
        poller = HolderPoller(holder, model_check_interval_s) if model_check_interval_s > 0 else None
        if poller is not None:
            poller.start()
            if wait_for_model_s > 0:
                await asyncio.to_thread(poller.first_check_done.wait, wait_for_model_s)
        else:
            holder.refresh()
        app.state.engine = engine
        app.state.sessions = sessions
        # Sessions of routes that only read (the default list and live scoring). On a database server
        # without a transaction: no BEGIN before the first read, no ROLLBACK when the session closes, two
        # round trips fewer per request; each read sees what is committed. Their own pool, whose
        # connections stay in autocommit: switching a shared pool's connection to it and back on every
        # checkout cost more CPU than the default list's read itself. And their own threads, one per
        # pooled connection, lighter to hand work to than the general thread pool (no cancel scope, no
        # capacity limiter): a read there waits for the server while the event loop serves other
        # requests. On SQLite (reads in this process, CPU only) they read on the event loop.
        on_server = engine.dialect.name != "sqlite"
        read_engine = (
            make_engine(
                settings.database_url,
                pool_size=settings.database_pool_size,
                isolation_level="AUTOCOMMIT",
                pool_reset_on_return=None,
            )
            if on_server
            else None
        )
        app.state.read_sessions = session_factory(read_engine) if read_engine is not None else sessions
        app.state.read_threads = (
            ThreadPoolExecutor(settings.database_pool_size, thread_name_prefix="pathways-reads")
            if on_server
            else None
        )
        app.state.holder = holder
        app.state.live = Recommendations(stored, live)
        access.last_use.start(sessions)
        log.info("service started; the promoted model loads in the background")
        try:
            yield
        finally:
            if poller is not None:
                poller.stop()
            access.last_use.stop()
            if app.state.read_threads is not None:
                app.state.read_threads.shutdown(wait=True, cancel_futures=True)
            if read_engine is not None:
                dispose_engine(read_engine)
            dispose_engine(engine)

    app = FastAPI(
        title="Pathways",
        version="1",
        summary="Next-term module recommendations with explanations, pathways and advisor review.",
        lifespan=lifespan,
        max_body_size=settings.max_request_bytes,
        # /docs and /redoc are served below from installed assets, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.access = access
    app.add_middleware(PageSecurityMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    _install_error_handlers(app)

    from service.routes import catalog, health, models, pages, recommendations, students

    app.include_router(health.router)
    app.include_router(students.router)
    app.include_router(recommendations.router)
    app.include_router(catalog.router)
    app.include_router(models.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_docs(app)
    return app


def docs_assets_dir() -> Path:
    """The folder of Swagger UI's and ReDoc's files, shipped by the ``fastapi-offline`` package."""
    from importlib.resources import files

    return Path(str(files("fastapi_offline") / "static"))


def _install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` that work without internet: their scripts and styles are
    served by this app from the installed package, so nothing is fetched from a CDN."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=docs_assets_dir()), name="docs-assets")

    def assets(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "")
        return f"{root}{app.openapi_url}", f"{root}{DOCS_ASSETS_URL}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, base = assets(request)
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{base}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}/swagger-ui.css",
            swagger_favicon_url=f"{base}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi_url, base = assets(request)
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{base}/redoc.standalone.js",
            redoc_favicon_url=f"{base}/favicon.png",
            with_google_fonts=False,
        )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        status = next((code for kind, code in STATUS_OF.items() if isinstance(exc, kind)), 400)
        if isinstance(exc, Invalid) and exc.field:
            detail: object = [{"loc": list(exc.field), "msg": str(exc), "type": "value_error"}]
        else:
            detail = str(exc)
        headers = (
            {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
            if isinstance(exc, RateLimited)
            else None
        )
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default, minus the echoed input (it may hold personal data or be large).
        errors = [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
            for error in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ReadOnlyStorage)
    async def storage_read_only(request: Request, exc: ReadOnlyStorage) -> JSONResponse:
        # Refused before SQLite touched its files: the process stays up and recovers when they are writable.
        request_id = getattr(request.state, "request_id", None)
        log.error("%s %s refused (request %s): %s", request.method, request.url.path, request_id, exc)
        return _read_only_answer()

    @app.exception_handler(DBAPIError)
    async def database_unavailable(request: Request, exc: DBAPIError) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        reason = _first_line(exc.orig)
        if is_read_only_error(exc):
            log.error(
                "%s %s refused: the database is read-only (request %s): %s: %s",
                request.method,
                request.url.path,
                request_id,
                type(exc.orig).__name__,
                reason,
            )
            return _read_only_answer()
        if not isinstance(exc, OperationalError):
            return await unexpected(request, exc)
        # The database is down, unreachable or locked: the request may succeed later.
        log.warning(
            "database unavailable on %s (request %s): %s: %s",
            request.url.path,
            request_id,
            type(exc.orig).__name__,
            reason,
        )
        return JSONResponse(
            {"detail": "the database is unavailable; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        log.exception("unhandled error on %s (request %s)", request.url.path, request_id)
        # This answer comes from the outermost middleware, past the one that adds the header.
        return JSONResponse(
            {"detail": f"internal error; quote request id {request_id}"},
            status_code=500,
            headers={"X-Request-ID": str(request_id)},
        )


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _read_only_answer() -> JSONResponse:
    return JSONResponse(
        {"detail": "the database is read-only: writes are refused until it is writable again"},
        status_code=503,
        headers={"Retry-After": "30"},
    )


def app_from_environment() -> FastAPI:
    """The app with settings from the environment: the factory ``pathways serve --workers N`` hands
    uvicorn (``service.app:app_from_environment``), which calls it once in every worker process.

    Logs go to standard error at the settings' level when the process has no handler yet (a
    worker process does not inherit the command line's logging set-up). Native thread pools (BLAS,
    OpenMP) get the cores divided among the workers, so N workers do not oversubscribe them."""
    from threadpoolctl import threadpool_limits

    settings = get_settings()
    threadpool_limits(max(1, (os.cpu_count() or 1) // settings.workers))
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(settings.log_level.upper())
    return create_app(settings, freeze_heap=True)
