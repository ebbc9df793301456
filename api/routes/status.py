"""Subject status for members (C4, C9) and platform compliance for regulators and auditors.

- ``GET /v1/subjects/{subject}/status[?at=]``: red_listed, blacklisted, the active records (and those in their
  notice window), measures_due, as_of_block and the records and transactions that prove it. Without ``at``, from
  the in-memory cache (no SQL); with ``at``, from SQL as of a block or a time (see :mod:`api.status`).
- ``POST /v1/subjects/status:batch``: the same for up to ``status_batch_max`` (10,000) subjects in one call.
- ``GET /v1/compliance[?since=&until=&platform=]``: per platform, measures due, receipts filed, ratio, latency.

Status routes need any member's API key; compliance needs a REGULATOR or AUDITOR.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Caller, CallerDep, member_id_of, require_roles
from api.deps import SessionDep, SettingsDep
from api.status import At, StatusCache, Subject, gone_item, parse_at, parse_subject, parse_time, status_as_of
from api.status import compliance as compute_compliance
from credtrace.errors import ValidationFailed
from node_bridge.consortium import Role

router = APIRouter(prefix="/v1", tags=["status"])
JSON = "application/json"
BATCH_LIMIT = 100_000
"""Hard ceiling of the request model; ``status_batch_max`` (default 10,000) is the configured limit."""


def _json(payload: Any) -> Response:
    return Response(orjson.dumps(payload), media_type=JSON)


# documentation models (answers are built as dicts and serialised with orjson, without response validation)


class MeasureDue(BaseModel):
    code: int
    slug: str
    list_name: str | None = Field(alias="list", description="red | black; null for a bit not in the catalogue")
    name: str
    records: list[str] = Field(description="the active records that make it due")


class RecordRef(BaseModel):
    """A record and the transaction that carried it: what proves a listing."""

    id: str
    kind: str
    tier: str
    block_number: int
    log_index: int
    tx_hash: str


class RecordStatus(RecordRef):
    issuer: str = Field(description="member id of the issuing organisation")
    legal_basis: str
    measures: list[str] = Field(description="slugs due while this record is active (catalogue rule ∪ own bits)")
    effective_at: int
    public_until: int
    valid_until: int


class Proofs(BaseModel):
    red_list: list[RecordRef] = Field(description="the active red-list records")
    blacklist: list[RecordRef] = Field(description="the active blacklist records")


class SubjectStatus(BaseModel):
    subject: str = Field(description="0x-hex 32-byte subject id")
    subject_code: str | None = Field(description="the organisation's credit code; null for a natural person")
    red_listed: bool
    blacklisted: bool
    records: list[RecordStatus] = Field(description="active records")
    notice: list[RecordStatus] = Field(description="records in their notice window (not yet in force)")
    measures_due: list[MeasureDue]
    proof: Proofs = Field(description="the active list records (with their transactions) behind the two booleans")
    as_of_block: int | None = Field(description="the index's block the answer stands on")
    as_of_time: int | None = Field(description="the unix time the records were evaluated at")
    source: str = Field(description="live (in-memory, now) | history (SQL, as of `at`)")
    at: str | None = Field(None, description="the `at` asked for (history only)")
    beyond_head: bool | None = Field(None, description="`at` was past the indexed head; answered as of the head")


class BatchRequest(BaseModel):
    subjects: list[str] = Field(
        min_length=1, max_length=BATCH_LIMIT, description="credit codes or 0x-hex subject ids (up to 10,000)"
    )
    at: str | None = Field(None, description="as `?at=` of the single route: block:N, N, time:N or ISO-8601")
    detail: Literal["compact", "full"] = Field(
        "compact", description="compact: records as references, measures_due as slugs; full: as the single route"
    )


class CompactStatus(BaseModel):
    """One subject of a compact batch answer (``error: Gone`` and ``message`` instead for a shredded person)."""

    subject: str
    subject_code: str | None
    red_listed: bool
    blacklisted: bool
    records: list[RecordRef] = Field(description="active records; the list records among them prove the booleans")
    notice: list[RecordRef]
    measures_due: list[str] = Field(description="slugs of the measures due")


class BatchStatus(BaseModel):
    as_of_block: int | None
    as_of_time: int | None
    source: str
    at: str | None = None
    beyond_head: bool | None = None
    count: int
    results: list[CompactStatus] = Field(description="in the order asked; SubjectStatus items with detail=full")


# routes


def _cache(request: Request) -> StatusCache:
    cache: StatusCache = request.app.state.status_cache
    return cache


def _history(request: Request, subjects: list[Subject], at: At, single: bool, full: bool = True) -> Any:
    cache = _cache(request)
    return run_in_threadpool(status_as_of, cache.engine, cache.views, subjects, at, cache.chain_id, single, full)


@router.get(
    "/subjects/{subject}/status",
    response_class=Response,
    responses={200: {"model": SubjectStatus, "content": {JSON: {}}}},
)
async def subject_status(
    request: Request,
    _caller: CallerDep,
    subject: Annotated[str, Path(description="a unified social credit code or a 0x-hex 32-byte subject id")],
    at: Annotated[
        str | None,
        Query(description="as of a block (`block:123` or `123`) or a time (`time:1733300000`, `2026-12-04T10:00Z`)"),
    ] = None,
) -> Response:
    """Whether a subject is on the red list or the blacklist, its active records and the measures due.

    Now by default (from memory: ``as_of_block`` is the index's checkpoint a fraction of a second ago), or as of
    ``at``. 410 for a natural person whose data was erased.
    """
    parsed = parse_subject(subject, "subject")
    if at is not None:
        answer = await _history(request, [parsed], parse_at(at), single=True)
        return _json({**answer["results"][0], **answer["meta"]})
    cache = _cache(request)
    await cache.ensure_fresh()
    if parsed.code is None and parsed.id in cache.shredded:
        await run_in_threadpool(cache.refuse_shredded, parsed)
    return _json(cache.answer(parsed))


@router.post(
    "/subjects/status:batch",
    response_class=Response,
    responses={200: {"model": BatchStatus, "content": {JSON: {}}}},
)
async def batch_status(request: Request, _caller: CallerDep, settings: SettingsDep, body: BatchRequest) -> Response:
    """The status of many subjects in one call (up to ``status_batch_max``, default 10,000), in the order given.

    Compact by default (records as references with their transactions, measures_due as slugs); ``"detail":
    "full"`` answers each subject as the single route does. ``at`` as for the single route. A bad subject fails
    the call with 422 naming ``subjects[i]``; a shredded natural person gets ``{"error": "Gone"}`` in its place
    and the others are answered.
    """
    if len(body.subjects) > settings.status_batch_max:
        raise ValidationFailed("subjects", f"{len(body.subjects)} subjects; at most {settings.status_batch_max}")
    subjects = [parse_subject(value, f"subjects[{index}]") for index, value in enumerate(body.subjects)]
    full = body.detail == "full"
    if body.at is not None:
        answer = await _history(request, subjects, parse_at(body.at), single=False, full=full)
    else:
        cache = _cache(request)
        await cache.ensure_fresh()
        answer = cache.answer_many(subjects, full)
        flagged = [s for s, item in zip(subjects, answer["results"], strict=True) if item.get("error")]
        if flagged:  # the in-memory set says so; the message comes from credtrace.persons
            gone = await run_in_threadpool(cache.gone_among, flagged)
            answer["results"] = [
                gone_item(s, gone[s.id]) if s.id in gone else item
                for s, item in zip(subjects, answer["results"], strict=True)
            ]
    return _json({**answer["meta"], "count": len(answer["results"]), "results": answer["results"]})


@router.get("/compliance")
def compliance(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _caller: Annotated[Caller, Depends(require_roles(Role.REGULATOR, Role.AUDITOR))],
    since: Annotated[
        str | None, Query(description="start of the window: unix seconds or ISO-8601 (default: 30 days ago)")
    ] = None,
    until: Annotated[str | None, Query(description="end of the window (default: now)")] = None,
    platform: Annotated[str | None, Query(description="one platform's member id (0x-hex)")] = None,
) -> dict[str, Any]:
    """Each platform's compliance with the measures due, and how long it took to file its receipts.

    For the records with measures due that were active at some moment of the window: ``due`` (record, measure)
    pairs, ``filed`` pairs with at least one receipt from the platform, ``compliance = filed / due``, and the
    latency of the first receipt of each pair, ``applied_at - max(effective_at, block_time)`` in seconds (count,
    median, p95, max). See docs/measures.md.
    """
    end = parse_time(until, "until") if until is not None else int(time.time())
    start = parse_time(since, "since") if since is not None else end - int(settings.compliance_window_days * 86400)
    if start > end:
        raise ValidationFailed("since", f"{start} is after until ({end})")
    member = member_id_of(platform, "platform") if platform is not None else None
    return compute_compliance(session, request.app.state.catalogue, start, end, member)
