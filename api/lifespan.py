"""Work that runs when the API process starts and stops (caches, flushers, worker pools), added by each part of the
app as it is installed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

Step = Callable[[], Awaitable[Any]]


def extend_lifespan(app: FastAPI, *, start: Step | None = None, stop: Step | None = None) -> None:
    """Run ``start`` once the parts installed before have started, and ``stop`` before they stop."""
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        async with previous(application) as state:
            if start is not None:
                await start()
            try:
                yield state
            finally:
                if stop is not None:
                    await stop()

    app.router.lifespan_context = lifespan
