"""``GET /metrics``: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Relayer and indexer counters, indexer lag, outbox depth, chain head."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
