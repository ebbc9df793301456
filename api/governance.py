"""Accepting signed governance writes: validate what the contract will check, then put them in the outbox.

These checks are a courtesy (a clear 4xx now rather than a failed transaction later); the Consortium contract
checks every signature and role itself. A write is accepted once: the same signed write gives the same id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from sqlmodel import Session, select
from web3 import Web3
from web3.contract import Contract

from api.schemas import ApprovalCreate, KeyRevocationCreate, ProposalCreate
from api.signers import active_member_of
from credtrace.errors import NotAuthorised, NotFound, ValidationFailed
from node_bridge import outbox
from node_bridge.consortium import (
    NO_MEMBER,
    PAYLOAD_FIELDS,
    Action,
    Role,
    decode_payload,
    digest,
    encode_payload,
    proposal_message,
    typed_data,
)
from node_bridge.models import ChainParameter, Member, MemberKey, Proposal, ProposalApproval

CONTRACT = "Consortium"
ACTIVE = "active"


@dataclass(frozen=True)
class ContractRef:
    """Where the Consortium lives: what a signature's EIP-712 domain names."""

    chain_id: int
    address: str
    abi: list[dict[str, Any]]

    @cached_property
    def _contract(self) -> Contract:
        return Web3().eth.contract(address=Web3.to_checksum_address(self.address), abi=self.abi)

    def encode(self, function: str, args: list[Any]) -> bytes:
        return bytes.fromhex(self._contract.encode_abi(function, args=args)[2:])

    def typed(self, primary_type: str, message: dict[str, Any]) -> dict[str, Any]:
        return typed_data(primary_type, message, self.chain_id, self.address)


@dataclass(frozen=True)
class Accepted:
    record_id: str
    signer: str
    status: str


def _signer(typed: dict[str, Any], signature: str) -> str:
    try:
        return str(Account.recover_message(encode_typed_data(full_message=typed), signature=signature))
    except Exception as exc:  # eth-keys raises several types for a malformed signature
        raise ValidationFailed("signature", f"is not a valid secp256k1 signature: {exc}") from exc


def _regulator(session: Session, signer: str) -> Member:
    member = active_member_of(session, signer)
    if member is None or not member.roles & Role.REGULATOR:
        raise NotAuthorised(f"signature: signer {signer} is not an active key of an active regulator")
    return member


def _already(session: Session, record_id: bytes, signer: str) -> Accepted | None:
    """The earlier acceptance of this very write, if any: the same signed write gives the same answer."""
    entry = outbox.get(session, record_id)
    return Accepted(entry.id, signer, entry.status) if entry is not None else None


def _accept(session: Session, record_id: bytes, function: str, calldata: bytes, signer: str) -> Accepted:
    entry = outbox.enqueue(session, record_id, CONTRACT, function, calldata)
    return Accepted(entry.id, signer, entry.status)


def accept_proposal(session: Session, ref: ContractRef, body: ProposalCreate) -> Accepted:
    """Validate a signed proposal and accept it; its record id is the proposal id."""
    try:
        action = Action[body.action.upper()]
    except KeyError as exc:
        raise ValidationFailed("action", f"{body.action!r} is not one of {', '.join(a.name for a in Action)}") from exc
    member = bytes.fromhex(body.member[2:])
    if (action is Action.CHANGE_THRESHOLD) != (member == NO_MEMBER):
        rule = "must be zero for" if action is Action.CHANGE_THRESHOLD else "must not be zero for"
        raise ValidationFailed("member", f"{rule} {action.name}")
    payload = bytes.fromhex(body.payload[2:])
    fields = ", ".join(f"{t} {n}" for n, t in PAYLOAD_FIELDS[action]) or "nothing"
    try:
        canonical = encode_payload(action, **decode_payload(action, payload))
    except Exception as exc:
        raise ValidationFailed("payload", f"does not decode as the fields of {action.name} ({fields}): {exc}") from exc
    if canonical != payload:
        raise ValidationFailed("payload", f"is not the ABI encoding of {action.name}'s fields ({fields})")
    nonce = int(body.nonce)
    if nonce >= 2**256:
        raise ValidationFailed("nonce", "exceeds uint256")
    typed = ref.typed("Proposal", proposal_message(action, member, payload, nonce))
    proposal_id = digest(typed)
    signer = _signer(typed, body.signature)
    if earlier := _already(session, proposal_id, signer):
        return earlier
    _regulator(session, signer)
    if session.get(Proposal, "0x" + proposal_id.hex()) is not None:
        return Accepted("0x" + proposal_id.hex(), signer, "confirmed")
    signature = bytes.fromhex(body.signature[2:])
    calldata = ref.encode("propose", [int(action), member, payload, nonce, signature])
    return _accept(session, proposal_id, "propose", calldata, signer)


def accept_approval(session: Session, ref: ContractRef, proposal_id: str, body: ApprovalCreate) -> Accepted:
    """Validate a signed approval; its record id is keccak256(approval digest ‖ signer)."""
    pid = bytes.fromhex(proposal_id[2:])
    typed = ref.typed("Approval", {"proposalId": pid})
    signer = _signer(typed, body.signature)
    record_id = keccak(digest(typed) + bytes.fromhex(signer[2:]))
    if earlier := _already(session, record_id, signer):
        return earlier
    regulator = _regulator(session, signer)
    proposal = session.get(Proposal, proposal_id.lower())
    if proposal is None and outbox.get(session, pid) is None:
        raise NotFound(f"proposal {proposal_id} is neither indexed nor waiting in the outbox")
    if proposal is not None and proposal.executed:
        raise ValidationFailed("proposal_id", f"proposal {proposal_id} was already executed")
    approved = session.exec(
        select(ProposalApproval).where(
            ProposalApproval.proposal_id == proposal_id.lower(), ProposalApproval.member_id == regulator.id
        )
    ).first()
    if approved is not None:
        raise ValidationFailed("signature", f"regulator {regulator.name} already approved proposal {proposal_id}")
    calldata = ref.encode("approve", [pid, bytes.fromhex(body.signature[2:])])
    return _accept(session, record_id, "approve", calldata, signer)


def accept_key_revocation(session: Session, ref: ContractRef, body: KeyRevocationCreate) -> Accepted:
    """Validate a member's immediate revocation of one of its keys; its record id is the message digest."""
    member = bytes.fromhex(body.member[2:])
    key = Web3.to_checksum_address(body.key)
    typed = ref.typed("KeyRevocation", {"member": member, "key": key})
    signer = _signer(typed, body.signature)
    record_id = digest(typed)
    if earlier := _already(session, record_id, signer):
        return earlier
    signer_key = session.get(MemberKey, signer)
    if signer_key is None or not signer_key.active or signer_key.member_id != body.member.lower():
        raise NotAuthorised(f"signature: signer {signer} is not an active key of member {body.member}")
    revoked = session.get(MemberKey, key)
    if revoked is None or revoked.member_id != body.member.lower():
        raise ValidationFailed("key", f"{key} is not a key of member {body.member}")
    if not revoked.active:
        raise ValidationFailed("key", f"{key} is already revoked")
    calldata = ref.encode("revokeOwnKey", [member, key, bytes.fromhex(body.signature[2:])])
    return _accept(session, record_id, "revokeOwnKey", calldata, signer)


def accept_execution(session: Session, ref: ContractRef, proposal_id: str) -> Accepted:
    """Queue ``execute(proposalId)`` once the index shows the quorum; anyone may ask, no signature needed.

    The contract recounts approvals of organisations that are still active regulators when it runs, so a
    regulator suspended meanwhile makes the write fail with ``QuorumNotReached``, decoded in its status.
    """
    proposal = session.get(Proposal, proposal_id.lower())
    if proposal is None:
        raise NotFound(f"no proposal {proposal_id} in the index")
    record_id = keccak(b"execute" + bytes.fromhex(proposal_id[2:]))
    if earlier := _already(session, record_id, ""):
        return earlier
    if proposal.executed:
        raise ValidationFailed("proposal_id", f"proposal {proposal_id} was already executed")
    parameter = session.get(ChainParameter, "threshold")
    threshold = int(parameter.value) if parameter else 1
    if proposal.approvals < threshold:
        raise ValidationFailed(
            "proposal_id", f"proposal {proposal_id} has {proposal.approvals} of the {threshold} approvals it needs"
        )
    if proposal.expires_at <= int(time.time()):
        raise ValidationFailed("proposal_id", f"proposal {proposal_id} expired at {proposal.expires_at}")
    calldata = ref.encode("execute", [bytes.fromhex(proposal_id[2:])])
    return _accept(session, record_id, "execute", calldata, "")
