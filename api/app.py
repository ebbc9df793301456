"""The application factory: ``create_app(settings)`` builds the FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api import errors
from api.chain_view import ChainView
from api.metrics import CredtraceCollector
from api.routes import health, members, metrics, writes
from credtrace import __version__
from credtrace.settings import Settings, get_settings
from node_bridge.store import open_store


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
    app.state.engine = open_store(settings.database)
    app.state.registry = CollectorRegistry()
    app.state.registry.register(CredtraceCollector(app.state.engine, app.state.chain))
    errors.install(app)
    for module in (health, metrics, members, writes):
        app.include_router(module.router)
    return app
