"""Online payment management (C11): settlement account bindings, monthly payment signals, alerts, a merchant's picture.

``POST /v1/payments/bindings``, ``/unbindings``, ``/relations`` and ``/signals`` take one signed message or
``{"messages": [...]}`` (up to 1,000) from a PAYMENT member (a REGULATOR may relay, and declare relations), check what
the PaymentRegistry would, and answer 202 once the messages are durable in the outbox; ``GET /v1/records/{id}``
follows each. The account number is never sent: only ``accountHash`` (``credtrace payments hash-account``). Payment
violations are credit records of kind ``payment_violation``, submitted through ``POST /v1/records``. Logic and views:
``api/payments.py``.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import Field

from api import payments
from api.auth import Caller, CallerDep, require_roles
from api.deps import ChainDep, SessionDep
from api.payments import AlertView, MerchantView
from api.ratelimit import public_rate_limit
from api.routes import signed
from api.routes.signed import BatchAccepted, MessageAccepted, SignedBatch, SignedBody
from api.schemas import HEX32
from node_bridge.consortium import Role
from node_bridge.payment_index import ALERT_KINDS
from node_bridge.payments import BINDING, REGISTRY, RELATION, SIGNAL, UNBINDING

router = APIRouter(prefix="/v1/payments", tags=["payments"])
Writer = Annotated[Caller, Depends(require_roles(Role.PAYMENT, Role.REGULATOR))]
Watcher = Annotated[Caller, Depends(require_roles(Role.REGULATOR, Role.PAYMENT, Role.AUDITOR))]


class SignedBinding(SignedBody):
    """A settlement account binding as signed: the EIP-712 message (JSON values) and the 65-byte signature."""

    type: Literal["AccountBinding"] = "AccountBinding"
    message: dict[str, Any] = Field(description="payment, subject, accountHash, boundAt, nonce (GET …/eip712)")


class SignedUnbinding(SignedBody):
    """The end of a binding, as signed by the PAYMENT member that made it."""

    type: Literal["AccountUnbinding"] = "AccountUnbinding"
    message: dict[str, Any] = Field(description="payment, subject, accountHash, unboundAt, nonce")


class SignedRelation(SignedBody):
    """A declaration that two subjects are one group, signed by a PAYMENT member or a REGULATOR."""

    type: Literal["SubjectRelation"] = "SubjectRelation"
    message: dict[str, Any] = Field(description="declarant, subject, related, nonce")


class SignedSignal(SignedBody):
    """A monthly payment signal as signed."""

    type: Literal["PaymentSignal"] = "PaymentSignal"
    message: dict[str, Any] = Field(
        description="payment, merchant, month (YYYYMM), orders, refundBps, chargebackBps, nonce"
    )


@router.post("/bindings", status_code=status.HTTP_202_ACCEPTED, response_model=MessageAccepted | BatchAccepted)
def submit_bindings(
    request: Request,
    session: SessionDep,
    chain: ChainDep,
    _caller: Writer,
    body: SignedBinding | SignedBatch[SignedBinding],
) -> MessageAccepted | BatchAccepted:
    """Accept signed settlement account bindings (one, or ``{"messages": [...]}``): a PAYMENT member's signature.

    403 if the signer is not a PAYMENT member's active key; 409 ``BindingExists`` if the account is already bound to
    the subject; 422 naming the field otherwise (an ``accountNumber`` field is refused: send only the hash).
    """
    return signed.submit(request, session, body, partial(payments.submit, session, chain))


@router.post("/unbindings", status_code=status.HTTP_202_ACCEPTED, response_model=MessageAccepted | BatchAccepted)
def submit_unbindings(
    request: Request,
    session: SessionDep,
    chain: ChainDep,
    _caller: Writer,
    body: SignedUnbinding | SignedBatch[SignedUnbinding],
) -> MessageAccepted | BatchAccepted:
    """Accept signed ends of bindings (the account was closed or changed): 409 ``NotBound`` if the pair is not
    bound (or its unbinding is pending), 403 if another member made the binding (``NotBinder``)."""
    return signed.submit(request, session, body, partial(payments.submit, session, chain))


@router.post("/relations", status_code=status.HTTP_202_ACCEPTED, response_model=MessageAccepted | BatchAccepted)
def submit_relations(
    request: Request,
    session: SessionDep,
    chain: ChainDep,
    _caller: Writer,
    body: SignedRelation | SignedBatch[SignedRelation],
) -> MessageAccepted | BatchAccepted:
    """Accept signed declarations that two subjects are one group (an account they share is then no
    ``shared_account`` alert): 409 ``RelationExists``, 422 if both are the same subject."""
    return signed.submit(request, session, body, partial(payments.submit, session, chain))


@router.post("/signals", status_code=status.HTTP_202_ACCEPTED, response_model=MessageAccepted | BatchAccepted)
def submit_signals(
    request: Request,
    session: SessionDep,
    chain: ChainDep,
    _caller: Writer,
    body: SignedSignal | SignedBatch[SignedSignal],
) -> MessageAccepted | BatchAccepted:
    """Accept signed monthly refund and chargeback aggregates (one, or ``{"messages": [...]}``).

    409 ``SignalExists`` for a second signal of one member for one merchant and month; 422 for a month that is not
    YYYYMM or a rate above 10,000 basis points.
    """
    return signed.submit(request, session, body, partial(payments.submit, session, chain))


@router.get("/alerts", response_model=list[AlertView])
def alerts(
    session: SessionDep,
    _caller: Watcher,
    kind: Annotated[str | None, Query(description=" | ".join(ALERT_KINDS))] = None,
    subject: Annotated[str | None, Query(description="credit code or 0x commitment: alerts involving it")] = None,
    account: Annotated[str | None, Query(pattern=HEX32, description="an account hash")] = None,
    from_block: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertView]:
    """Shared-account and blacklist-reappearance alerts, in chain order, each with the bindings and blacklist
    records that prove it (REGULATOR, PAYMENT and AUDITOR members)."""
    return payments.list_alerts(
        session,
        kind=kind,
        subject=payments.subject_key(subject) if subject is not None else None,
        account=account.lower() if account is not None else None,
        from_block=from_block,
        limit=limit,
    )


@router.get("/merchants/{subject}", response_model=MerchantView)
def merchant(session: SessionDep, caller: CallerDep, subject: Annotated[str, Path()]) -> MerchantView:
    """A merchant's payment picture: bindings (with account hashes and alerts for PAYMENT, REGULATOR and AUDITOR
    members; counts only for others), monthly signals and payment violation records."""
    return payments.merchant(session, payments.subject_key(subject), caller.roles)


@router.get("/eip712", dependencies=[Depends(public_rate_limit)])
def eip712(chain: ChainDep) -> dict[str, Any]:
    """The typed data to sign bindings and signals with any EIP-712 signer, and where to send them."""
    return signed.eip712(payments.domain(chain), REGISTRY) | {
        "signer_roles": {t.name: [str(r.name) for r in Role if r & t.roles] for t in REGISTRY.types},
        "submit": {
            BINDING.name: "/v1/payments/bindings",
            UNBINDING.name: "/v1/payments/unbindings",
            RELATION.name: "/v1/payments/relations",
            SIGNAL.name: "/v1/payments/signals",
        },
        "account_hash": "HMAC-SHA256(consortium account pepper, normalised account number): see docs/payments.md",
    }
