"""What the routes taking member-signed messages share: the request bodies, the 202 answers, and accepting a body.

Every such route (``/v1/records``, ``/v1/logistics/messages``, ``/v1/protection/messages``, ``/v1/payments/...``,
``/v1/supervision/...``) takes messages as signed, ``{type, message, signature}``, alone or in a batch (up to
:data:`api.signed_writes.MAX_BATCH`), hands them to an accept function (:func:`api.signed_writes.accept` with the
registry's rules, or ``api.credit_writes.accept``), commits so that they are durable before the 202, and answers each
message's id, type, signer and outbox status. Routes narrow :class:`SignedBody`'s ``type`` to the types they take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, Self, TypeVar

from fastapi import Request
from pydantic import BaseModel, Field
from sqlmodel import Session

from api import signed_writes
from api.schemas import HEX
from node_bridge.eip712 import DOMAIN_TYPE, Domain
from node_bridge.signed import SignedRegistry

Accept = Callable[[list[signed_writes.SignedMessage], str | None], list[signed_writes.Accepted]]
"""Checks and queues messages (not committed); its second argument is the batch's field prefix, which errors are
named under (``messages[3].nonce``), or None for a single message (errors name the field alone)."""


class SignedBody(BaseModel):
    """A message as signed: its EIP-712 primary type, the message (JSON values) and the 65-byte signature."""

    type: str = Field(description="the EIP-712 primary type that was signed")
    message: dict[str, Any] = Field(description="the signed message")
    signature: str = Field(pattern=HEX, description="0x-hex r ‖ s ‖ v")

    def signed(self) -> signed_writes.SignedMessage:
        return signed_writes.SignedMessage(self.type, self.message, self.signature)

    def items(self) -> tuple[list[signed_writes.SignedMessage], str | None]:
        """The messages to accept, and the batch field their errors name (None: one message, not a batch)."""
        return [self.signed()], None


S = TypeVar("S", bound=SignedBody)


class SignedBatch(BaseModel, Generic[S]):
    """``{"messages": [...]}``: accepted whole or not at all."""

    messages: list[S] = Field(min_length=1, max_length=signed_writes.MAX_BATCH)

    def items(self) -> tuple[list[signed_writes.SignedMessage], str | None]:
        return [m.signed() for m in self.messages], "messages"


class Submitted(Protocol):
    """A request body: one signed message or a batch of them."""

    def items(self) -> tuple[list[signed_writes.SignedMessage], str | None]: ...


class Accepted(BaseModel):
    id: str = Field(description="the EIP-712 digest of the signed message")
    type: str
    signer: str
    status: str = Field(description="accepted → submitted → confirmed, or failed")

    @classmethod
    def of(cls, accepted: signed_writes.Accepted, **more: Any) -> Self:
        return cls(id=accepted.id, type=accepted.type, signer=accepted.signer, status=accepted.status, **more)


class MessageAccepted(Accepted):
    """An accepted message and where to follow it (``GET /v1/records/{id}``)."""

    status_url: str


class BatchAccepted(BaseModel):
    accepted: list[MessageAccepted]


def registry_accept(session: Session, registry: SignedRegistry, domain: Domain, check: signed_writes.Check) -> Accept:
    """:func:`api.signed_writes.accept` for one registry's messages, checked by its ``check``."""

    def accept(items: list[signed_writes.SignedMessage], field_prefix: str | None) -> list[signed_writes.Accepted]:
        return signed_writes.accept(session, registry, domain, items, check, field_prefix=field_prefix)

    return accept


def accept_body(session: Session, body: Submitted, accept: Accept) -> tuple[list[signed_writes.Accepted], bool]:
    """Accept the body's messages and commit; whether the body was a batch."""
    items, field_prefix = body.items()
    accepted = accept(items, field_prefix)
    session.commit()  # durable before the 202
    return accepted, field_prefix is not None


def submit(request: Request, session: Session, body: Submitted, accept: Accept) -> MessageAccepted | BatchAccepted:
    """Accept one signed message or a batch and answer it: the message, or ``{"accepted": [...]}`` in batch order."""
    accepted, batch = accept_body(session, body, accept)
    answer = [MessageAccepted.of(a, status_url=str(request.url_for("get_record", record_id=a.id))) for a in accepted]
    return BatchAccepted(accepted=answer) if batch else answer[0]


def eip712(domain: Domain, registry: SignedRegistry) -> dict[str, Any]:
    """The ``domain`` and ``types`` of a registry's typed data, as ``eth_signTypedData_v4`` takes them."""
    return {"domain": domain.as_dict(), "types": {"EIP712Domain": DOMAIN_TYPE, **registry.eip712_types}}
