"""``GET /healthz``: is the service up, can it reach the chain, how far behind is the index, what is queued."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlmodel import Session

from api.chain_view import ChainHealth, IndexerHealth, indexer_health
from api.deps import ChainDep, EngineDep
from credtrace import __version__
from node_bridge import outbox

router = APIRouter(tags=["health"])


class OutboxHealth(BaseModel):
    depth: int


class Health(BaseModel):
    status: str
    version: str
    chain: ChainHealth
    indexer: IndexerHealth
    outbox: OutboxHealth


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(chain: ChainDep, engine: EngineDep, response: Response) -> Health:
    """Chain id, head block, contract addresses, node reachability (503 when it does not answer), indexer lag
    in blocks and seconds, and the outbox depth (writes accepted but not yet confirmed)."""
    health = chain.health()
    if not health.reachable:
        response.status_code = 503
    with Session(engine) as session:
        depth = outbox.depth(session)
    return Health(
        status="ok" if health.reachable else "chain unreachable",
        version=__version__,
        chain=health,
        indexer=indexer_health(engine, health),
        outbox=OutboxHealth(depth=depth),
    )
