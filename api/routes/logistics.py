"""Logistics credit (C6): signed firm and courier registrations, evaluations and rating rules; firms, grades, access.

- ``POST /v1/logistics/messages``: signed ``FirmRegistration`` / ``CourierRegistration`` (LOGISTICS),
  ``Evaluation`` (PLATFORM, REGULATOR) and ``RatingRule`` (REGULATOR) messages, up to 1,000, accepted whole or not
  at all (202 once durable in the outbox; errors name ``messages[i].field``).
- ``GET /v1/logistics/eip712``: the domain and types to sign with.
- ``GET /v1/logistics/rules``: the published rule versions, their hashes and transactions.
- ``GET /v1/logistics/firms/{firm}``: registration, couriers (commitments), evaluations, the grade under every
  published rule with its breakdown, and the current one (latest rule).
- ``GET /v1/logistics/{firm}/access`` and ``POST /v1/logistics/access:batch`` (up to 10,000 firms): allowed or
  refused, the reasons and the records that prove them, from memory (:class:`api.logistics.GradeCache`).

Writes need a LOGISTICS, PLATFORM or REGULATOR member's API key (each message's own signer must hold the role its
type needs); reads need a PLATFORM, REGULATOR, LOGISTICS or AUDITOR member's.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response, status
from pydantic import BaseModel, Field

from api import logistics as logic
from api import signed_writes
from api.auth import Caller, require_roles
from api.deps import ChainDep, SessionDep
from api.lifespan import extend_lifespan
from api.routes import signed
from api.routes.signed import Accepted, SignedBatch, SignedBody
from api.status import StatusCache, parse_subject
from credtrace.errors import ValidationFailed
from node_bridge import logistics
from node_bridge.consortium import Role
from node_bridge.eip712 import Domain

router = APIRouter(prefix="/v1/logistics", tags=["logistics credit"])
WriterDep = Annotated[Caller, Depends(require_roles(Role.LOGISTICS, Role.PLATFORM, Role.REGULATOR))]
ReaderDep = Annotated[Caller, Depends(require_roles(Role.PLATFORM, Role.REGULATOR, Role.LOGISTICS, Role.AUDITOR))]
BATCH_MAX = 10_000
JSON = "application/json"
MessageType = Literal["FirmRegistration", "CourierRegistration", "Evaluation", "RatingRule"]


def logistics_domain(chain: ChainDep) -> Domain:
    """The EIP-712 domain of the deployed LogisticsRegistry."""
    return signed_writes.deployed_domain(
        chain.deployment(), logistics.CONTRACT, logistics.REGISTRY.domain,
        message="the deployment on chain {chain_id} has no {contract}: redeploy",
    )  # fmt: skip


DomainDep = Annotated[Domain, Depends(logistics_domain)]


class SignedLogistics(SignedBody):
    type: MessageType = Field(description="the EIP-712 primary type that was signed")
    message: dict[str, Any] = Field(description="the signed message (see GET /v1/logistics/eip712)")


class AcceptedBatch(BaseModel):
    accepted: list[Accepted]


class AccessBatch(BaseModel):
    firms: list[str] = Field(min_length=1, max_length=100_000, description="credit codes or 0x-hex subject ids")
    detail: Literal["compact", "full"] = "compact"


def _json(payload: Any) -> Response:
    return Response(orjson.dumps(payload), media_type=JSON)


@router.post("/messages", status_code=status.HTTP_202_ACCEPTED, response_model=AcceptedBatch)
def submit(
    session: SessionDep, domain: DomainDep, _caller: WriterDep, body: SignedBatch[SignedLogistics]
) -> AcceptedBatch:
    """Accept signed logistics messages for the chain, all or none; 4xx naming ``messages[i].field`` otherwise."""
    accept = signed.registry_accept(session, logistics.REGISTRY, domain, logic.check)
    accepted, _ = signed.accept_body(session, body, accept)
    return AcceptedBatch(accepted=[Accepted.of(a) for a in accepted])


@router.get("/eip712")
def eip712(domain: DomainDep, _caller: ReaderDep) -> dict[str, Any]:
    """The EIP-712 domain and message types of the LogisticsRegistry."""
    return signed.eip712(domain, logistics.REGISTRY)


@router.get("/rules")
def rules(session: SessionDep, _caller: ReaderDep) -> dict[str, Any]:
    """The published rating rule versions: hash (keccak256 of the file), transaction, and this repository's file."""
    return {"rules": logic.rules_view(session)}


@router.get("/firms/{firm}")
def firm(
    session: SessionDep,
    _caller: ReaderDep,
    firm: Annotated[str, Path(description="the firm's unified social credit code or 0x-hex subject id")],
) -> dict[str, Any]:
    """A firm's registration, couriers, evaluations and grades (every published rule; ``current``: the latest)."""
    return logic.firm_view(session, parse_subject(firm, "firm"))


def grade_cache(request: Request) -> logic.GradeCache:
    found: logic.GradeCache = request.app.state.logistics_cache
    return found


async def _fresh(request: Request) -> logic.GradeCache:
    grades = grade_cache(request)
    await grades.status.ensure_fresh()
    await grades.ensure_fresh()
    return grades


@router.get("/{firm}/access")
async def access(
    request: Request,
    _caller: ReaderDep,
    firm: Annotated[str, Path(description="the firm's unified social credit code or 0x-hex subject id")],
) -> Response:
    """Whether platforms must refuse this firm: graded D under the latest rule, or blacklisted; with the reasons
    and the records (evaluations, the rule, the blacklist record, each with its transaction) that prove them."""
    subject = parse_subject(firm, "firm")
    grades = await _fresh(request)
    now = int(time.time())
    return _json(grades.access(subject, now) | grades.meta(now))


@router.post("/access:batch")
async def access_batch(request: Request, _caller: ReaderDep, body: AccessBatch) -> Response:
    """Access answers for up to 10,000 firms in one call, in the order given (compact unless ``detail=full``)."""
    if len(body.firms) > BATCH_MAX:
        raise ValidationFailed("firms", f"{len(body.firms)} firms; at most {BATCH_MAX}")
    subjects = [parse_subject(value, f"firms[{index}]") for index, value in enumerate(body.firms)]
    grades = await _fresh(request)
    now = int(time.time())
    full = body.detail == "full"
    results = [grades.access(s, now, full) for s in subjects]
    refused = sum(1 for r in results if r["access"] == "refused")
    return _json({**grades.meta(now), "count": len(results), "refused": refused, "results": results})


def install(app: FastAPI) -> logic.GradeCache:
    """Include the routes and create the grade cache (after the status cache, whose blacklist it reads)."""
    status_cache: StatusCache = app.state.status_cache
    grades = logic.GradeCache(app.state.engine, status_cache, status_cache.chain_id)
    app.state.logistics_cache = grades
    app.include_router(router)

    async def grade_all() -> None:  # every firm before the first request rather than during it
        try:
            await grades.ensure_fresh()
        except Exception as exc:  # the database may be briefly away: requests will load it
            logic.log.warning("logistics grade cache not loaded at start-up: %s", exc)

    extend_lifespan(app, start=grade_all)
    return grades
