"""Pure ASGI middleware: request ids, metrics per route template, and the pages' security rules.

Pure ASGI (not ``BaseHTTPMiddleware``) keeps the per-request overhead small on the hot path.
"""

from __future__ import annotations

import logging
import time
import uuid
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """The Prometheus series of one app, in a registry of its own (several apps may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pathways_http_requests",
            "HTTP requests by method, route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "pathways_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "pathways_model_info",
            "1 for the model version this server holds in memory",
            ("version",),
            registry=self.registry,
        )
        self.model_loaded = Gauge(
            "pathways_model_loaded", "1 when a promoted model is loaded, else 0", registry=self.registry
        )
        self.model_swaps = Gauge(
            "pathways_model_swaps", "models swapped in since the server started", registry=self.registry
        )

        self.lists_served = Counter(
            "pathways_recommendation_lists",
            "recommendation lists answered, by source (batch: the stored list; live: scored now)",
            ("source",),
            registry=self.registry,
        )

    def set_model(self, version: str | None, swaps: int) -> None:
        self.model_info.clear()
        if version is not None:
            self.model_info.labels(version=version).set(1)
        self.model_loaded.set(1 if version is not None else 0)
        self.model_swaps.set(swaps)


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by its route template (``/v1/students/{student_id}/...``).

    Unmatched paths are counted under ``<unmatched>`` so that arbitrary URLs cannot blow up the
    label set. Each request gets an ``X-Request-ID`` (the caller's, if it sent a sane one).
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            # The template without converters (``{student_id:path}`` reads ``{student_id}``).
            template = getattr(route, "path_format", None) or getattr(route, "path", None) or "<unmatched>"
            elapsed = time.perf_counter() - started
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            log.debug("%s %s %s %.1fms id=%s", method, template, status, elapsed * 1000, request_id)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if 0 < len(candidate) <= 64 and candidate.replace("-", "").isalnum():
                return candidate
    return uuid.uuid4().hex


# Pages load only their own script, styles and images, submit forms only to themselves, and may not be
# framed. The interactive API documentation (Swagger UI, ReDoc) loads from a CDN and is left out.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
COMMON_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)


class PageSecurityMiddleware:
    """Security headers on every answer (a Content-Security-Policy on HTML pages), and an Origin check
    on page form posts in addition to the SameSite=Strict session cookie.

    A page POST (anything outside ``/v1``, which takes bearer tokens, not cookies) whose ``Origin``
    (or, without one, ``Referer``) names another host than the request's ``Host`` is refused with 403.
    Browsers send ``Origin`` on every cross-origin POST, so a request with neither header is not a
    cross-site form and passes. ``exempt`` paths (the API documentation) get no CSP.
    """

    def __init__(self, app: ASGIApp, exempt: tuple[str, ...] = ("/docs", "/redoc")) -> None:
        self.app = app
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if scope["method"] == "POST" and not path.startswith("/v1/"):
            refusal = _cross_origin(Headers(scope=scope))
            if refusal is not None:
                log.warning("refused a cross-origin page post to %s: %s", path, refusal)
                response = PlainTextResponse(f"cross-origin form post refused: {refusal}", status_code=403)
                await response(scope, receive, self._with_headers(path, send))
                return
        await self.app(scope, receive, self._with_headers(path, send))

    def _with_headers(self, path: str, send: Send) -> Send:
        exempt = path.startswith(self.exempt)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_SECURITY_HEADERS:
                    headers.setdefault(name, value)
                if not exempt and headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", PAGE_CSP)
            await send(message)

        return send_with_headers


def _cross_origin(headers: Headers) -> str | None:
    """Why a form post is cross-origin, or None when it is same-origin (or not from a browser).

    The site is the request's ``Host``, or the ``X-Forwarded-Host`` a reverse proxy sets (a cross-site
    form cannot set that header, so trusting it here opens nothing).
    """
    host = headers.get("host", "").lower()
    forwarded = headers.get("x-forwarded-host", "").split(",")[0].strip().lower()
    origin = headers.get("origin")
    if origin is None:
        referer = headers.get("referer")
        if referer is None:
            return None
        origin, what = referer, "Referer"
    else:
        what = "Origin"
    if origin == "null":
        return f"{what} is null (an opaque origin)"
    sender = urlsplit(origin).netloc.lower()
    if not sender or sender not in (host, forwarded):
        return f"{what} {origin!r} is not this site ({host!r})"
    return None
