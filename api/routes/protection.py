"""Consumer protection (C7): platforms' funds and advance-compensation cases; regulators' summary and risk signals.

``POST /v1/protection/messages`` takes one signed ``FundDeclaration`` or ``CaseStep`` or ``{"messages": [...]}``
(up to 1,000) from a PLATFORM member and answers 202 once they are durable in the outbox (logic in
``api/protection.py``). Fund declarations are public (``GET /v1/protection/funds``); a case is seen by its platform,
regulators and auditors; the platform summary likewise; risk signals by regulators and auditors only.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import Field

from api import protection
from api.auth import Caller, CallerDep, require_roles, resolve_member
from api.deps import ChainDep, SessionDep, SettingsDep
from api.ratelimit import public_rate_limit
from api.routes import signed
from api.routes.signed import BatchAccepted, MessageAccepted, SignedBatch, SignedBody
from api.schemas import HEX32
from credtrace import uscc
from credtrace.errors import NotAuthorised
from node_bridge.consortium import Role, member_id
from node_bridge.credit import subject_id
from node_bridge.eip712 import hex32
from node_bridge.protection import MAX_AMOUNT, REGISTRY, Step

router = APIRouter(prefix="/v1/protection", tags=["consumer protection"])
PlatformDep = Annotated[Caller, Depends(require_roles(Role.PLATFORM))]
SupervisorDep = Annotated[Caller, Depends(require_roles(Role.REGULATOR, Role.AUDITOR))]
MessageType = Literal["FundDeclaration", "CaseStep"]
CaseState = Literal["complaint", "compensated", "recovered", "closed"]


class SignedProtection(SignedBody):
    """A fund declaration or case step as signed: the EIP-712 message (JSON values) and the 65-byte signature."""

    type: MessageType = Field(description="the EIP-712 primary type that was signed")
    message: dict[str, Any] = Field(description="the signed message; see GET /v1/protection/eip712 for its fields")


def _member(session: SessionDep, settings: SettingsDep, ref: str) -> tuple[str, str]:
    """A platform named by its 0x member id, its credit code, its name in the index, or its demo key name."""
    from credtrace.demo import demo_directory

    if len(ref) == 18 and all(c in uscc.ALPHABET for c in ref):
        uscc.validate(ref, field="platform")
        ref = hex32(member_id(ref))
    return resolve_member(session, ref, demo_directory(settings))


@router.post("/messages", status_code=status.HTTP_202_ACCEPTED, response_model=MessageAccepted | BatchAccepted)
def submit(
    request: Request,
    session: SessionDep,
    chain: ChainDep,
    _caller: PlatformDep,
    body: SignedProtection | SignedBatch[SignedProtection],
) -> MessageAccepted | BatchAccepted:
    """Accept signed fund declarations and case steps (one, or ``{"messages": [...]}``) for the chain.

    The signature decides which platform speaks; the order and amount rules are the contract's (409 naming the
    field and the custom error), checked against what is indexed, pending and earlier in the batch.
    """
    accept = signed.registry_accept(session, REGISTRY, protection.domain(chain), protection.check)
    return signed.submit(request, session, body, accept)


@router.get("/eip712", dependencies=[Depends(public_rate_limit)])
def eip712(chain: ChainDep) -> dict[str, Any]:
    """The domain and types a platform signs its fund declarations and case steps with (any EIP-712 signer)."""
    return signed.eip712(protection.domain(chain), REGISTRY) | {
        "steps": {s.name.lower(): s.value for s in Step},
        "max_amount": MAX_AMOUNT,
        "submit": "/v1/protection/messages",
    }


@router.get("/funds", dependencies=[Depends(public_rate_limit)])
def list_funds(
    session: SessionDep,
    settings: SettingsDep,
    platform: Annotated[str | None, Query(description="a platform's member id or name")] = None,
) -> dict[str, Any]:
    """Every consumer-protection fund at its current version (public: declarations are public information)."""
    member = _member(session, settings, platform)[0] if platform else None
    return {"funds": protection.funds(session, member)}


@router.get("/funds/{fund_id}", dependencies=[Depends(public_rate_limit)])
def get_fund(session: SessionDep, fund_id: Annotated[str, Path(pattern=HEX32)]) -> dict[str, Any]:
    """A fund's current version and its history of versions (public)."""
    return protection.fund_history(session, fund_id.lower())


@router.get("/cases")
def list_cases(
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    platform: Annotated[str | None, Query(description="a platform's member id or name")] = None,
    merchant: Annotated[str | None, Query(description="the merchant's credit code or 0x subject id")] = None,
    state: CaseState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Cases, newest first: a platform sees its own, regulators and auditors every platform's."""
    if not (caller.has_any(Role.PLATFORM) or protection.may_see_all(caller)):
        raise NotAuthorised(f"Authorization: member {caller.name} may not see cases; platforms see their own, "
                            "regulators and auditors every platform's")  # fmt: skip
    member = _member(session, settings, platform)[0] if platform else None
    subject = hex32(subject_id(merchant)) if merchant else None
    found = protection.cases(
        session, caller, platform=member, merchant=subject, state=state, limit=limit, offset=offset
    )
    return {"cases": found, "limit": limit, "offset": offset}


@router.get("/cases/{case_id}")
def get_case(session: SessionDep, caller: CallerDep, case_id: Annotated[str, Path(pattern=HEX32)]) -> dict[str, Any]:
    """A case with its timeline of signed steps (confirmed, then on their way) and its trace and decision links."""
    return protection.case_detail(session, case_id.lower(), caller)


@router.get("/platforms/{platform}/summary")
def platform_summary(
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    platform: Annotated[str, Path(description="the platform's member id or name")],
    at: Annotated[int | None, Query(ge=0, description="unix seconds (default now)")] = None,
) -> dict[str, Any]:
    """Fund size in effect, cases opened and open, paid within the promised time, recovered (regulators, auditors
    and the platform itself)."""
    member, name = _member(session, settings, platform)
    protection.require_platform_or_supervisor(caller, member)
    return protection.summary(session, member, int(time.time()) if at is None else at) | {"name": name}


@router.get("/risks")
def risk_signals(
    session: SessionDep,
    _caller: SupervisorDep,
    grace_days: Annotated[
        int, Query(ge=0, le=3650, description="days allowed for recovery after compensating")
    ] = protection.RECOVERY_GRACE_DAYS,
    min_cases: Annotated[int, Query(ge=1, le=100)] = protection.RISK_MIN_CASES,
    at: Annotated[int | None, Query(ge=0, description="unix seconds (default now)")] = None,
) -> dict[str, Any]:
    """Merchants with repeated advance compensations not recovered from them, each with its cases as evidence."""
    now = int(time.time()) if at is None else at
    signals = protection.risks(session, now, grace_days, min_cases)
    return {"at": now, "grace_days": grace_days, "min_cases": min_cases, "merchants": signals}
