"""Client of the Consortium contract: members, roles and keys, governed by an M-of-N quorum of regulators.

Governance writes are meta-transactions: a regulator key signs an EIP-712 ``Proposal`` or ``Approval`` and
any sender relays it. The EIP-712 types are defined once here (:data:`EIP712_TYPES`) and mirrored in
``contracts/Consortium.sol``; the contract tests prove both compute the same digests.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from credtrace.errors import ValidationFailed
from node_bridge.compiler import artifact
from node_bridge.transactions import Sender

DOMAIN_NAME = "credtrace Consortium"
DOMAIN_VERSION = "1"
DEFAULT_PROPOSAL_LIFETIME = 7 * 24 * 3600


class Role(enum.IntFlag):
    """Role bits of a member; a member holds one or more."""

    REGULATOR = 1
    PLATFORM = 2
    LOGISTICS = 4
    PRODUCER = 8
    CERTIFIER = 16
    PAYMENT = 32
    AUDITOR = 64


class Action(enum.IntEnum):
    """Governance actions, as numbered by the contract."""

    ADMIT = 0
    SUSPEND = 1
    REINSTATE = 2
    REMOVE = 3
    CHANGE_ROLES = 4
    ADD_KEY = 5
    REVOKE_KEY = 6
    ROTATE_KEY = 7
    CHANGE_THRESHOLD = 8


class MemberStatus(enum.IntEnum):
    """Active <-> Suspended, either -> Removed (final)."""

    NONE = 0
    ACTIVE = 1
    SUSPENDED = 2
    REMOVED = 3


EIP712_DOMAIN_TYPE: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

EIP712_TYPES: dict[str, list[dict[str, str]]] = {
    "Proposal": [
        {"name": "action", "type": "uint8"},
        {"name": "member", "type": "bytes32"},
        {"name": "payload", "type": "bytes"},
        {"name": "nonce", "type": "uint256"},
    ],
    "Approval": [{"name": "proposalId", "type": "bytes32"}],
    "KeyRevocation": [{"name": "member", "type": "bytes32"}, {"name": "key", "type": "address"}],
}

PAYLOAD_FIELDS: dict[Action, tuple[tuple[str, str], ...]] = {
    Action.ADMIT: (("name", "string"), ("roles", "uint8"), ("keys", "address[]")),
    Action.SUSPEND: (),
    Action.REINSTATE: (),
    Action.REMOVE: (),
    Action.CHANGE_ROLES: (("roles", "uint8"),),
    Action.ADD_KEY: (("key", "address"),),
    Action.REVOKE_KEY: (("key", "address"),),
    Action.ROTATE_KEY: (("old_key", "address"), ("new_key", "address")),
    Action.CHANGE_THRESHOLD: (("threshold", "uint16"),),
}

NO_MEMBER = bytes(32)


def member_id(uscc: str) -> bytes:
    """The on-chain id of an organisation: keccak256 of its unified social credit code's UTF-8 bytes."""
    return keccak(uscc.encode())


def domain(chain_id: int, address: str) -> dict[str, Any]:
    """The EIP-712 domain of the Consortium contract at ``address`` on chain ``chain_id``."""
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": Web3.to_checksum_address(address),
    }


def typed_data(primary_type: str, message: Mapping[str, Any], chain_id: int, contract_address: str) -> dict[str, Any]:
    """A full EIP-712 message (``types``, ``primaryType``, ``domain``, ``message``) for one of our types."""
    if primary_type not in EIP712_TYPES:
        raise ValidationFailed("primary_type", f"{primary_type!r} is not one of {', '.join(EIP712_TYPES)}")
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, primary_type: EIP712_TYPES[primary_type]},
        "primaryType": primary_type,
        "domain": domain(chain_id, contract_address),
        "message": dict(message),
    }


def digest(typed: Mapping[str, Any]) -> bytes:
    """The EIP-712 digest (``keccak256(0x1901 ‖ domainSeparator ‖ structHash)``) of a full message."""
    signable = encode_typed_data(full_message=dict(typed))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign(account: LocalAccount, typed: Mapping[str, Any]) -> bytes:
    """``account``'s 65-byte signature of a full EIP-712 message."""
    return bytes(account.sign_typed_data(full_message=dict(typed)).signature)


def encode_payload(action: Action | int, **fields: Any) -> bytes:
    """``abi.encode`` of an action's fields, e.g. ``encode_payload(Action.ADD_KEY, key=address)``."""
    spec = PAYLOAD_FIELDS[Action(action)]
    names = [name for name, _ in spec]
    if sorted(fields) != sorted(names):
        raise ValidationFailed("payload", f"{Action(action).name} takes ({', '.join(names)}), got {sorted(fields)}")
    if not spec:
        return b""
    values = [_abi_value(abi_type, fields[name]) for name, abi_type in spec]
    return abi_encode([abi_type for _, abi_type in spec], values)


def decode_payload(action: Action | int, payload: bytes) -> dict[str, Any]:
    """The fields of an action's payload (addresses checksummed, roles as :class:`Role`)."""
    spec = PAYLOAD_FIELDS[Action(action)]
    if not spec:
        return {}
    values = abi_decode([abi_type for _, abi_type in spec], payload)
    decoded = {name: _abi_value(abi_type, value) for (name, abi_type), value in zip(spec, values, strict=True)}
    if "roles" in decoded:
        decoded["roles"] = Role(decoded["roles"])
    return decoded


def _abi_value(abi_type: str, value: Any) -> Any:
    """A field value normalised: addresses checksummed, integers as int."""
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    if abi_type == "address[]":
        return [Web3.to_checksum_address(v) for v in value]
    return int(value) if abi_type.startswith("uint") else value


def proposal_message(action: Action | int, member: bytes, payload: bytes, nonce: int) -> dict[str, Any]:
    """The EIP-712 ``Proposal`` message."""
    return {"action": int(action), "member": bytes(member), "payload": bytes(payload), "nonce": nonce}


def proposal_id(
    action: Action | int, member: bytes, payload: bytes, nonce: int, chain_id: int, contract_address: str
) -> bytes:
    """A proposal's id: the EIP-712 digest of its ``Proposal`` struct."""
    return digest(typed_data("Proposal", proposal_message(action, member, payload, nonce), chain_id, contract_address))


@dataclass(frozen=True)
class MemberInfo:
    """A member as the contract holds it (``getMember``)."""

    id: bytes
    name: str
    roles: Role
    status: MemberStatus
    admitted_at: int

    @property
    def is_active(self) -> bool:
        return self.status is MemberStatus.ACTIVE


@dataclass(frozen=True)
class ProposalInfo:
    """A proposal as the contract holds it (``getProposal``); ``approvals`` counts every approving org."""

    id: bytes
    action: Action
    member: bytes
    payload: bytes
    proposer: bytes
    created_at: int
    expires_at: int
    approvals: int
    executed: bool


class ConsortiumClient:
    """Signs governance messages with regulators' keys and relays them through ``sender``; reads state."""

    def __init__(self, w3: Web3, contract: Contract, sender: Sender) -> None:
        self.w3 = w3
        self.contract = contract
        self.sender = sender
        self.chain_id = w3.eth.chain_id

    @classmethod
    def read_only(cls, w3: Web3, contract: Contract) -> ConsortiumClient:
        """A client for reads only; a write through it fails for want of a funded, nonce-tracked sender."""
        from eth_account import Account

        return cls(w3, contract, Sender(w3, Account.create()))

    def typed(self, primary_type: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """A full EIP-712 message for this contract."""
        return typed_data(primary_type, message, self.chain_id, self.contract.address)

    # governance writes

    def propose(
        self,
        signer: LocalAccount,
        action: Action | int,
        member: bytes,
        payload: bytes,
        nonce: int | None = None,
    ) -> bytes:
        """Create a proposal signed by ``signer`` (its first approval); returns the proposal id."""
        nonce = secrets.randbits(256) if nonce is None else nonce
        typed = self.typed("Proposal", proposal_message(action, member, payload, nonce))
        call = self.contract.functions.propose(int(action), bytes(member), bytes(payload), nonce, sign(signer, typed))
        self.sender.transact(call)
        return digest(typed)

    def approve(self, signer: LocalAccount, proposal_id: bytes) -> TxReceipt:
        signature = sign(signer, self.typed("Approval", {"proposalId": bytes(proposal_id)}))
        return self.sender.transact(self.contract.functions.approve(bytes(proposal_id), signature))

    def execute(self, proposal_id: bytes) -> TxReceipt:
        return self.sender.transact(self.contract.functions.execute(bytes(proposal_id)))

    def govern(self, action: Action | int, member: bytes, payload: bytes, signers: Sequence[LocalAccount]) -> bytes:
        """Propose with ``signers[0]``, approve with the others, execute; returns the proposal id."""
        if not signers:
            raise ValidationFailed("signers", "at least one regulator key must sign")
        pid = self.propose(signers[0], action, member, payload)
        for signer in signers[1:]:
            self.approve(signer, pid)
        self.execute(pid)
        return pid

    def admit(
        self, uscc: str, name: str, roles: Role | int, keys: Sequence[str], signers: Sequence[LocalAccount]
    ) -> bytes:
        payload = encode_payload(Action.ADMIT, name=name, roles=roles, keys=list(keys))
        return self.govern(Action.ADMIT, member_id(uscc), payload, signers)

    def suspend(self, member: bytes, signers: Sequence[LocalAccount]) -> bytes:
        return self.govern(Action.SUSPEND, member, b"", signers)

    def reinstate(self, member: bytes, signers: Sequence[LocalAccount]) -> bytes:
        return self.govern(Action.REINSTATE, member, b"", signers)

    def remove(self, member: bytes, signers: Sequence[LocalAccount]) -> bytes:
        return self.govern(Action.REMOVE, member, b"", signers)

    def change_roles(self, member: bytes, roles: Role | int, signers: Sequence[LocalAccount]) -> bytes:
        return self.govern(Action.CHANGE_ROLES, member, encode_payload(Action.CHANGE_ROLES, roles=roles), signers)

    def add_key(self, member: bytes, key: str, signers: Sequence[LocalAccount]) -> bytes:
        return self.govern(Action.ADD_KEY, member, encode_payload(Action.ADD_KEY, key=key), signers)

    def revoke_key(self, member: bytes, key: str, signers: Sequence[LocalAccount]) -> bytes:
        return self.govern(Action.REVOKE_KEY, member, encode_payload(Action.REVOKE_KEY, key=key), signers)

    def rotate_key(self, member: bytes, old_key: str, new_key: str, signers: Sequence[LocalAccount]) -> bytes:
        payload = encode_payload(Action.ROTATE_KEY, old_key=old_key, new_key=new_key)
        return self.govern(Action.ROTATE_KEY, member, payload, signers)

    def change_threshold(self, threshold: int, signers: Sequence[LocalAccount]) -> bytes:
        payload = encode_payload(Action.CHANGE_THRESHOLD, threshold=threshold)
        return self.govern(Action.CHANGE_THRESHOLD, NO_MEMBER, payload, signers)

    def revoke_own_key(self, signer: LocalAccount, member: bytes, key: str) -> TxReceipt:
        """Revoke ``key`` of ``member`` at once, signed by any active key of that member (no vote)."""
        key = Web3.to_checksum_address(key)
        signature = sign(signer, self.typed("KeyRevocation", {"member": bytes(member), "key": key}))
        return self.sender.transact(self.contract.functions.revokeOwnKey(bytes(member), key, signature))

    # reads

    def member(self, member: bytes) -> MemberInfo:
        mid, name, roles, status, admitted_at = self.contract.functions.getMember(bytes(member)).call()
        return MemberInfo(bytes(mid), str(name), Role(roles), MemberStatus(status), int(admitted_at))

    def keys_of(self, member: bytes) -> list[str]:
        return [Web3.to_checksum_address(k) for k in self.contract.functions.keysOf(bytes(member)).call()]

    def member_of(self, key: str) -> bytes | None:
        found = bytes(self.contract.functions.memberOf(Web3.to_checksum_address(key)).call())
        return None if found == NO_MEMBER else found

    def is_key_active(self, key: str) -> bool:
        return bool(self.contract.functions.isKeyActive(Web3.to_checksum_address(key)).call())

    def is_active_signer(self, key: str, role: Role | int) -> bool:
        return bool(self.contract.functions.isActiveSigner(Web3.to_checksum_address(key), int(role)).call())

    def threshold(self) -> int:
        return int(self.contract.functions.threshold().call())

    def active_regulator_count(self) -> int:
        return int(self.contract.functions.activeRegulatorCount().call())

    def proposal(self, proposal_id: bytes) -> ProposalInfo:
        fields = self.contract.functions.getProposal(bytes(proposal_id)).call()
        action, member, payload, proposer, created_at, expires_at, approvals, executed = fields
        return ProposalInfo(
            bytes(proposal_id), Action(action), bytes(member), bytes(payload), bytes(proposer),
            int(created_at), int(expires_at), int(approvals), bool(executed),
        )  # fmt: skip

    def has_approved(self, proposal_id: bytes, member: bytes) -> bool:
        return bool(self.contract.functions.hasApproved(bytes(proposal_id), bytes(member)).call())


def deploy_consortium(
    sender: Sender,
    regulators: Sequence[tuple[str, str, str]],
    threshold: int,
    proposal_lifetime: int = DEFAULT_PROPOSAL_LIFETIME,
) -> tuple[Contract, TxReceipt]:
    """Deploy the Consortium with founding regulators given as ``(uscc, name, key address)``.

    A constructor revert raises :class:`ContractReverted` naming the custom error (e.g. ``InvalidThreshold``).
    """
    compiled = artifact("Consortium")
    ids = [member_id(uscc) for uscc, _, _ in regulators]
    names = [name for _, name, _ in regulators]
    keys = [Web3.to_checksum_address(key) for _, _, key in regulators]
    return sender.deploy(compiled, ids, names, keys, threshold, proposal_lifetime)
