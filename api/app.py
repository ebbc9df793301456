"""The application factory: ``create_app(settings)`` builds the FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from api import errors
from api.auth import KeyCache
from api.chain_view import ChainView
from api.lifespan import extend_lifespan, tune_gc
from api.metrics import CredtraceCollector
from api.ratelimit import PublicRateLimiter
from api.routes import feed as feed_routes  # feed and webhooks: api/routes/feed.py
from api.routes import health, members, metrics, persons, records, writes
from api.routes import logistics as logistics_routes  # logistics credit (C6): api/routes/logistics.py, api/logistics.py
from api.routes import payments as payment_routes  # online payment management: api/routes/payments.py
from api.routes import protection as protection_routes  # consumer protection (C7): api/routes/protection.py
from api.routes import public as public_routes  # status: api/routes/public.py
from api.routes import scan as scan_routes  # consumer scan: api/routes/scan.py, api/scan.py
from api.routes import status as status_routes  # status: api/routes/status.py
from api.routes import supervision as supervision_routes  # supervision (C12): api/routes/supervision.py
from api.routes import trace as trace_routes  # traceability, producers and actors: api/routes/trace.py
from api.routes import webhooks as webhook_routes  # feed and webhooks: api/routes/webhooks.py
from api.status import install as install_status  # status: catalogue and in-memory status cache
from credtrace import __version__
from credtrace.settings import Settings, get_settings
from node_bridge.store import WalCheckpoints, open_store


def create_app(settings: Settings | None = None) -> FastAPI:
    """A credtrace API for ``settings`` (default: from the environment). OpenAPI docs at ``/docs``."""
    settings = settings or get_settings()
    tune_gc()
    app = FastAPI(
        title="credtrace",
        version=__version__,
        description="Shared e-commerce credit records and product traceability on a permissioned ledger.",
    )
    app.state.settings = settings
    app.state.chain = ChainView(settings)
    app.state.engine = open_store(settings.database)
    checkpoints = WalCheckpoints(app.state.engine)  # SQLite: not in the commits of requests (node_bridge/store.py)
    extend_lifespan(app, start=lambda: run_in_threadpool(checkpoints.start),
                    stop=lambda: run_in_threadpool(checkpoints.stop))  # fmt: skip
    app.state.registry = CollectorRegistry()
    app.state.registry.register(CredtraceCollector(app.state.engine, app.state.chain))
    app.state.key_cache = KeyCache(settings.api_key_cache_seconds)  # access: api/auth.py
    app.state.rate_limiter = PublicRateLimiter.from_settings(settings)  # access: api/ratelimit.py
    errors.install(app)
    for module in (health, metrics, members, writes, persons, records):
        app.include_router(module.router)
    install_status(app, settings)  # status: loads config/measures.yaml, refreshes the cache while the app runs
    for module in (status_routes, public_routes):  # status
        app.include_router(module.router)
    for module in (feed_routes, webhook_routes):  # feed and webhooks
        app.include_router(module.router)
    trace_routes.install(app)  # traceability writes and proofs (before the scan's /v1/trace/{path})
    app.include_router(payment_routes.router)  # online payment management (C11)
    app.include_router(protection_routes.router)  # consumer protection (C7): funds, cases, summary, risks
    app.include_router(supervision_routes.router)  # inter-department supervision (C12): cases, joint decisions
    scan_routes.install(app)  # consumer scan: GET /v1/trace/01/…, GET /t/01/… (after the status cache)
    logistics_routes.install(app)  # logistics credit: /v1/logistics (after the status cache, for the blacklist)
    return app
