"""Rate limits on public (unauthenticated) routes, per client IP, with the ``limits`` library (moving window).

The limit is ``CREDTRACE_PUBLIC_RATE_LIMIT`` (default ``300/minute``); the counters live in
``CREDTRACE_RATE_LIMIT_STORAGE`` (default ``memory://``, per API process; ``redis://host:port`` shares them
between processes and needs the ``redis`` package). Over the limit, a route answers 429 with ``Retry-After``.
If the shared storage cannot be reached, requests are let through (and a warning logged): public reads stay up.
"""

from __future__ import annotations

import logging
import math
import time

from fastapi import HTTPException, Request
from limits import parse
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from credtrace.errors import ValidationFailed
from credtrace.settings import Settings

log = logging.getLogger(__name__)
SCOPE = "public"


class PublicRateLimiter:
    """One moving-window limit shared by every public route, keyed by client address."""

    def __init__(self, limit: str, storage_uri: str = "memory://") -> None:
        try:
            self.item = parse(limit)
        except ValueError as exc:
            raise ValidationFailed("public_rate_limit", f"{limit!r} is not a rate such as '300/minute'") from exc
        try:
            storage = storage_from_string(storage_uri, wrap_exceptions=True)
        except ConfigurationError as exc:  # an unknown scheme, or its driver (e.g. redis) is not installed
            raise ValidationFailed("rate_limit_storage", f"{storage_uri!r} cannot be used: {exc}") from exc
        self.limit = limit
        self.in_memory = isinstance(storage, MemoryStorage)
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> PublicRateLimiter:
        return cls(settings.public_rate_limit, settings.rate_limit_storage)

    def check(self, client: str) -> int | None:
        """Count one request from ``client``; None if allowed, else the seconds to wait before the next one."""
        try:
            if self._limiter.hit(self.item, SCOPE, client):
                return None
            stats = self._limiter.get_window_stats(self.item, SCOPE, client)
        except StorageError as exc:
            log.warning("rate limit storage unavailable, letting the request through: %s", exc)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))


async def public_rate_limit(request: Request) -> None:
    """Dependency for public routes: 429 with ``Retry-After`` and a JSON error once a client is over the limit."""
    limiter: PublicRateLimiter = request.app.state.rate_limiter
    client = request.client.host if request.client else "unknown"
    retry = limiter.check(client) if limiter.in_memory else await run_in_threadpool(limiter.check, client)
    if retry is not None:
        detail = {
            "error": "RateLimited",
            "message": f"client {client}: more than {limiter.limit} on public routes; retry after {retry} s",
            "limit": limiter.limit,
            "retry_after": retry,
        }
        raise HTTPException(status_code=429, detail=detail, headers={"Retry-After": str(retry)})
