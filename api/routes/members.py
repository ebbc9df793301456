"""Consortium members and governance, read from the index; signed governance writes into the outbox.

Reads are public (rate-limited per client); governance writes need a REGULATOR member's API key, a key
revocation any member's. The key says who calls; the EIP-712 signature in the body is what the chain checks.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from sqlmodel import Session

from api import governance, index_queries
from api.auth import CallerDep, RegulatorDep
from api.deps import ConsortiumDep, SessionDep
from api.ratelimit import public_rate_limit
from api.schemas import (
    HEX32,
    ApprovalCreate,
    KeyRevocationCreate,
    MemberPublic,
    Page,
    ProposalCreate,
    ProposalPublic,
    WriteAccepted,
)

router = APIRouter(prefix="/v1", tags=["consortium"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]
Id32 = Annotated[str, Path(pattern=HEX32)]
PUBLIC = [Depends(public_rate_limit)]


def _accepted(request: Request, session: Session, accepted: governance.Accepted) -> WriteAccepted:
    """Commit the outbox row (the write is durable from here), then answer with where to follow it."""
    session.commit()
    url = str(request.url_for("get_write", record_id=accepted.record_id))
    return WriteAccepted(id=accepted.record_id, status=accepted.status, signer=accepted.signer, status_url=url)


@router.get("/members", response_model=Page[MemberPublic], dependencies=PUBLIC)
def list_members(
    session: SessionDep, role: str | None = None, status: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> Page[MemberPublic]:
    """Members with their roles, status and keys; filter by ``role`` (e.g. PLATFORM) or ``status``."""
    return index_queries.list_members(session, role, status, limit, offset)


@router.get("/members/{member_id}", response_model=MemberPublic, dependencies=PUBLIC)
def get_member(session: SessionDep, member_id: Id32) -> MemberPublic:
    """One member (id = keccak256 of its unified social credit code) with its keys."""
    return index_queries.get_member(session, member_id)


@router.get("/proposals", response_model=Page[ProposalPublic], dependencies=PUBLIC)
def list_proposals(
    session: SessionDep,
    executed: bool | None = None,
    member_id: Annotated[str | None, Query(pattern=HEX32)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[ProposalPublic]:
    """Governance proposals, newest first; filter by ``executed`` or by the member they concern."""
    return index_queries.list_proposals(session, executed, member_id, limit, offset)


@router.get("/proposals/{proposal_id}", response_model=ProposalPublic, dependencies=PUBLIC)
def get_proposal(session: SessionDep, proposal_id: Id32) -> ProposalPublic:
    """One proposal with the regulators that approved it."""
    return index_queries.get_proposal(session, proposal_id)


@router.post("/proposals", response_model=WriteAccepted, status_code=status.HTTP_202_ACCEPTED)
def create_proposal(
    request: Request, caller: RegulatorDep, session: SessionDep, consortium: ConsortiumDep, body: ProposalCreate
) -> WriteAccepted:
    """Accept a proposal signed by a regulator (EIP-712 ``Proposal``; see docs/governance.md). 202 with its id."""
    return _accepted(request, session, governance.accept_proposal(session, consortium, body))


@router.post("/proposals/{proposal_id}/approvals", response_model=WriteAccepted, status_code=status.HTTP_202_ACCEPTED)
def approve_proposal(
    request: Request,
    caller: RegulatorDep,
    session: SessionDep,
    consortium: ConsortiumDep,
    proposal_id: Id32,
    body: ApprovalCreate,
) -> WriteAccepted:
    """Accept a regulator's signed approval (EIP-712 ``Approval``) of a proposal."""
    return _accepted(request, session, governance.accept_approval(session, consortium, proposal_id, body))


@router.post("/proposals/{proposal_id}/execution", response_model=WriteAccepted, status_code=status.HTTP_202_ACCEPTED)
def execute_proposal(
    request: Request, caller: RegulatorDep, session: SessionDep, consortium: ConsortiumDep, proposal_id: Id32
) -> WriteAccepted:
    """Queue the execution of a proposal that has its quorum (a regulator's key; the contract recounts approvals)."""
    return _accepted(request, session, governance.accept_execution(session, consortium, proposal_id))


@router.post("/key-revocations", response_model=WriteAccepted, status_code=status.HTTP_202_ACCEPTED)
def revoke_key(
    request: Request, caller: CallerDep, session: SessionDep, consortium: ConsortiumDep, body: KeyRevocationCreate
) -> WriteAccepted:
    """Accept a member's immediate revocation of one of its keys (EIP-712 ``KeyRevocation``), no vote needed."""
    return _accepted(request, session, governance.accept_key_revocation(session, consortium, body))
