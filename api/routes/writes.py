"""``GET /v1/writes/{id}``: where an accepted signed write is on its way to the chain (any member's API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.auth import CallerDep
from api.deps import SessionDep
from api.schemas import HEX32, WriteStatus
from credtrace.errors import NotFound
from node_bridge import outbox

router = APIRouter(prefix="/v1", tags=["writes"])


@router.get("/writes/{record_id}", response_model=WriteStatus, name="get_write")
def get_write(caller: CallerDep, session: SessionDep, record_id: Annotated[str, Path(pattern=HEX32)]) -> WriteStatus:
    """accepted → submitted → confirmed (with block), or failed with the contract's decoded error."""
    entry = outbox.get(session, record_id)
    if entry is None:
        raise NotFound(f"no write {record_id} was accepted here")
    return WriteStatus.model_validate(entry, from_attributes=True)
