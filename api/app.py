"""The application factory: ``create_app(settings)`` builds the FastAPI app (``uvicorn api.app:app``)."""

from __future__ import annotations

from fastapi import FastAPI

from api import errors
from api.chain_view import ChainView
from api.routes import health
from credtrace import __version__
from credtrace.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """A credtrace API for ``settings`` (default: from the environment). OpenAPI docs at ``/docs``."""
    settings = settings or get_settings()
    app = FastAPI(
        title="credtrace",
        version=__version__,
        description="Shared e-commerce credit records and product traceability on a permissioned ledger.",
    )
    app.state.settings = settings
    app.state.chain = ChainView(settings)
    errors.install(app)
    app.include_router(health.router)
    return app
