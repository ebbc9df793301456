"""Public, rate-limited reads (C4, C9): the measure catalogue and the red and black lists.

- ``GET /v1/measures``: the catalogue of ``config/measures.yaml`` (codes, slugs, names, rules).
- ``GET /v1/public/lists/{red|black}``: organisations' list entries within their publication window
  (``effective_at <= now < public_until``, not revoked or repaired), newest first, with a cursor. Natural persons
  never appear (their records carry no credit code), and nothing personal is shown: the credit code, the kind,
  tier and legal basis, the issuing department, the window, and the record id and transaction to verify it by.

No API key is needed; each client address gets ``public_rate_limit`` requests (429 with ``Retry-After`` beyond).
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.deps import SessionDep
from api.ratelimit import public_rate_limit
from api.status import public_list
from credtrace.errors import ValidationFailed

router = APIRouter(prefix="/v1", tags=["public"], dependencies=[Depends(public_rate_limit)])
LISTS = {"red": "red_list", "black": "blacklist"}
_CURSOR = re.compile(r"^(\d{1,15})\.(\d{1,9})$")


class Issuer(BaseModel):
    id: str = Field(description="member id of the issuing organisation")
    name: str | None = Field(description="its name, as the consortium records it")


class ListEntry(BaseModel):
    record: str = Field(description="the record id (EIP-712 digest): GET /v1/records/{id}, or verify on chain")
    kind: str
    tier: str
    subject_code: str = Field(description="the organisation's unified social credit code")
    issuer: Issuer
    legal_basis: str
    effective_at: int
    public_until: int
    block_number: int
    tx_hash: str


class PublicList(BaseModel):
    list_name: str = Field(alias="list", description="red | black")
    as_of_time: int
    items: list[ListEntry]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


@router.get("/measures")
def measures(request: Request) -> dict[str, Any]:
    """The catalogue of joint reward and punishment measures: each measure's code (its bit in a record's
    ``measures`` and the ``measure`` of an enforcement receipt), slug, list and description, and the rules that
    make measures due for a record kind and tier."""
    catalogue: dict[str, Any] = request.app.state.catalogue.public()
    return catalogue


@router.get("/public/lists/{name}", response_model=PublicList)
def published_list(
    session: SessionDep,
    name: Literal["red", "black"],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """The red list or the blacklist as published now: organisations only, within their publication windows."""
    after: tuple[int, int] | None = None
    if cursor is not None:
        match = _CURSOR.match(cursor)
        if match is None:
            raise ValidationFailed("cursor", f"{cursor!r} is not a cursor from a previous page (<block>.<index>)")
        after = (int(match.group(1)), int(match.group(2)))
    now = int(time.time())
    items, following = public_list(session, LISTS[name], now, limit, after)
    return {
        "list": name,
        "as_of_time": now,
        "items": items,
        "next_cursor": f"{following[0]}.{following[1]}" if following else None,
    }
