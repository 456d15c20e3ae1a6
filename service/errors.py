"""Failures of the use cases, free of any web framework; ``service.app`` maps each to an HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service cannot fulfil; ``str(error)`` is the reason shown to the caller."""


class NotFound(ServiceError):
    """No such resource, or one the caller may not see (answered the same way: 404)."""


class Forbidden(ServiceError):
    """The caller's role may not do this (403)."""


class Conflict(ServiceError):
    """The resource is not in a state that allows this, e.g. already reviewed (409)."""


class Invalid(ServiceError):
    """Input that parses but makes no sense here (422); ``field`` names the offending field."""

    def __init__(self, reason: str, field: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.field = field


class Unavailable(ServiceError):
    """A part the request needs is not ready, e.g. no promoted model is loaded (503)."""


class RateLimited(ServiceError):
    """The caller has used up its allowance for this kind of request (429, with Retry-After)."""

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s
