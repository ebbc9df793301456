"""Work that runs when the API process starts and stops (caches, flushers, worker pools), added by each part of the
app as it is installed; and the process's garbage collector settings."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

Step = Callable[[], Awaitable[Any]]
GC_THRESHOLDS = (50_000, 20, 20)
"""The cyclic garbage collector's thresholds in API processes and their worker processes (Python's: 700, 10, 10).
A request with 5,000 trace events allocates tens of thousands of objects; at 700 the collector ran dozens of
times in each, and a full collection over an API process's caches cost up to 110 ms (parsing bench/trace.py's
body: 12 ms on average, 3 ms with these). Little here forms reference cycles, which are all the collector is for."""


def tune_gc() -> None:
    """Apply :data:`GC_THRESHOLDS` to this process."""
    gc.set_threshold(*GC_THRESHOLDS)


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
