"""Signed credit records (C3): submit records, revocations, repairs and enforcement receipts; read one back.

``POST /v1/records`` and ``POST /v1/enforcements`` take one signed message or ``{"records": [...]}`` (up to
1,000), check everything the CreditRegistry would, and answer 202 once the messages are durable in the outbox.
``GET /v1/eip712`` publishes the typed data a client needs to sign without our SDK.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, Field
from sqlmodel import Session

from api import credit_writes, signed_writes
from api.auth import Caller, CallerDep, require_roles
from api.chain_view import ChainView
from api.deps import ChainDep, SessionDep, SettingsDep
from api.ratelimit import public_rate_limit
from api.routes import signed
from api.routes.signed import BatchAccepted, MessageAccepted, SignedBody
from api.schemas import HEX32
from credtrace.errors import NotFound
from credtrace.settings import Settings
from node_bridge import credit, outbox
from node_bridge.consortium import Role
from node_bridge.eip712 import DOMAIN_TYPE
from node_bridge.models import CreditRecordRow, SignedSubmission

router = APIRouter(prefix="/v1", tags=["credit records"])
RecordType = Literal["CreditRecord", "Revocation", "Repair"]
R = TypeVar("R", bound=SignedBody)


class SignedRecord(SignedBody):
    """A record, revocation or repair as signed: the EIP-712 message (JSON values) and the 65-byte signature."""

    type: RecordType = Field("CreditRecord", description="the EIP-712 primary type that was signed")
    message: dict[str, Any] = Field(description="the signed message; see GET /v1/eip712 for its fields")


class SignedEnforcement(SignedBody):
    type: Literal["Enforcement"] = "Enforcement"


class SignedRecords(BaseModel, Generic[R]):
    """``{"records": [...]}``: accepted whole or not at all."""

    records: list[R] = Field(min_length=1, max_length=signed_writes.MAX_BATCH)

    def items(self) -> tuple[list[signed_writes.SignedMessage], str | None]:
        return [r.signed() for r in self.records], "records"


class RecordView(BaseModel):
    """A signed message and where it is: in the outbox, on chain, and (for a record) in its lifecycle."""

    id: str
    type: str
    write_status: str | None = Field(description="outbox status, if it was submitted here")
    error: str | None = Field(None, description="the contract's custom error, if the write failed")
    state: str | None = Field(None, description="notice | active | expired | revoked | repaired, once indexed")
    signer: str | None = None
    message: dict[str, Any] | None = None
    block_number: int | None = None
    tx_hash: str | None = None
    closed_by: str | None = Field(None, description="id of the revocation or repair that closed it")
    closed_reason: str | None = None
    closed_tx: str | None = None


def _accept(session: Session, chain: ChainView, settings: Settings) -> signed.Accept:
    """Credit messages have their own checks (record kinds, tiers, closures): ``credit_writes.accept``."""

    def accept(items: list[signed_writes.SignedMessage], field_prefix: str | None) -> list[signed_writes.Accepted]:
        return credit_writes.accept(
            session, chain.credit(), items, strict_org_code=settings.strict_org_code, field_prefix=field_prefix
        )

    return accept


@router.post("/records", status_code=status.HTTP_202_ACCEPTED, response_model=MessageAccepted | BatchAccepted)
def submit_records(
    request: Request,
    session: SessionDep,
    chain: ChainDep,
    settings: SettingsDep,
    _caller: CallerDep,
    body: SignedRecord | SignedRecords[SignedRecord],
) -> MessageAccepted | BatchAccepted:
    """Accept signed records, revocations or repairs for the chain (one, or ``{"records": [...]}``).

    Any member may relay; the signature decides who issued it. Errors name the message and field.
    """
    return signed.submit(request, session, body, _accept(session, chain, settings))


@router.post("/enforcements", status_code=status.HTTP_202_ACCEPTED, response_model=MessageAccepted | BatchAccepted)
def submit_enforcements(
    request: Request,
    session: SessionDep,
    chain: ChainDep,
    settings: SettingsDep,
    _caller: Annotated[Caller, Depends(require_roles(Role.PLATFORM))],
    body: SignedEnforcement | SignedRecords[SignedEnforcement],
) -> MessageAccepted | BatchAccepted:
    """A platform's signed receipts that it applied a measure to a subject under a record."""
    return signed.submit(request, session, body, _accept(session, chain, settings))


@router.get("/records/{record_id}", response_model=RecordView, name="get_record")
def get_record(session: SessionDep, _caller: CallerDep, record_id: Annotated[str, Path(pattern=HEX32)]) -> RecordView:
    """A record (or revocation, repair, receipt) by id: outbox status, chain position, lifecycle state."""
    key = record_id.lower()
    entry = outbox.get(session, key)
    submission = session.get(SignedSubmission, key)
    row = session.get(CreditRecordRow, key)
    if entry is None and row is None:
        raise NotFound(f"no record {record_id} was accepted here or indexed")
    view = RecordView(
        id=key,
        type=submission.type if submission else "CreditRecord",
        write_status=entry.status if entry else None,
        error=entry.error if entry else None,
        signer=submission.signer if submission else None,
        message=submission.message if submission else None,
        block_number=entry.block_number if entry else None,
    )
    if row is not None:
        record = credit_writes.record_message(row)
        view.state = credit.state_at(record, int(time.time()), row.closed).name.lower()
        view.signer, view.message = row.signer, credit.to_json(record)
        view.block_number, view.tx_hash = row.block_number, row.tx_hash
        view.closed_by, view.closed_reason, view.closed_tx = row.closure_id, row.closed_reason, row.closed_tx
    return view


@router.get("/eip712", dependencies=[Depends(public_rate_limit)])
def eip712(chain: ChainDep) -> dict[str, Any]:
    """Everything a client needs to sign credit messages with any EIP-712 signer (eth-account, ethers, a wallet).

    ``domain`` and ``types`` as in standard typed data; ``examples`` holds one complete typed-data object per
    record kind and per other message type, ready for ``eth_signTypedData_v4`` once its values are replaced.
    """
    domain = chain.credit()
    return {
        "domain": domain.as_dict(),
        "types": {"EIP712Domain": DOMAIN_TYPE, **credit.EIP712_TYPES},
        "kinds": [
            {
                "kind": kind.value,
                "name": kind.slug,
                "signer_roles": [str(r.name) for r in Role if r & credit.REQUIRED_ROLES[kind]],
                "list": credit.LIST_KINDS.get(kind),
            }
            for kind in credit.Kind
        ],
        "tiers": {t.name.lower(): t.value for t in credit.Tier},
        "relations": {r.name.lower(): r.value for r in credit.Relation},
        "submit": {"CreditRecord": "/v1/records", "Revocation": "/v1/records", "Repair": "/v1/records",
                   "Enforcement": "/v1/enforcements"},
        "examples": credit.examples(domain),
    }  # fmt: skip
