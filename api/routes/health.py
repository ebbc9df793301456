"""``GET /healthz``: is the service up, and can it reach the chain."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api.chain_view import ChainHealth
from api.deps import ChainDep
from credtrace import __version__

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str
    chain: ChainHealth


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(chain: ChainDep, response: Response) -> Health:
    """Chain id, head block, contract addresses and whether the node answers (503 when it does not)."""
    health = chain.health()
    if not health.reachable:
        response.status_code = 503
    return Health(status="ok" if health.reachable else "chain unreachable", version=__version__, chain=health)
