"""Public shapes of what the API returns and accepts (pydantic), one family per resource."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

HEX32 = r"^0x[0-9a-fA-F]{64}$"
HEX = r"^0x([0-9a-fA-F]{2})*$"
ADDRESS = r"^0x[0-9a-fA-F]{40}$"


class KeyPublic(BaseModel):
    address: str
    active: bool
    added_block: int
    revoked_block: int | None = None
    revoked_by_self: bool | None = None


class MemberPublic(BaseModel):
    id: str = Field(description="keccak256 of the member's unified social credit code")
    name: str
    roles: list[str]
    status: str
    admitted_block: int
    updated_block: int
    keys: list[KeyPublic] = []


class ApprovalPublic(BaseModel):
    member_id: str
    signer: str
    block_number: int


class ProposalPublic(BaseModel):
    id: str
    action: str
    member_id: str
    payload: str
    fields: dict[str, Any] = Field(description="the payload decoded for its action")
    proposer_id: str
    signer: str
    expires_at: int
    created_block: int
    approvals: int
    executed: bool
    executed_block: int | None = None
    approvers: list[ApprovalPublic] = []


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ProposalCreate(BaseModel):
    """A proposal signed (EIP-712 ``Proposal``) by an active regulator key."""

    action: str = Field(description="ADMIT, SUSPEND, REINSTATE, REMOVE, CHANGE_ROLES, ADD_KEY, REVOKE_KEY, ...")
    member: str = Field(pattern=HEX32, description="member id (bytes32); zero for CHANGE_THRESHOLD")
    payload: str = Field(pattern=HEX, description="abi.encode of the action's fields, 0x-hex")
    nonce: str = Field(pattern=r"^[0-9]{1,78}$", description="the uint256 the proposer chose, in decimal")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class ApprovalCreate(BaseModel):
    """An approval signed (EIP-712 ``Approval``) by an active regulator key."""

    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class KeyRevocationCreate(BaseModel):
    """A key's revocation signed (EIP-712 ``KeyRevocation``) by any active key of its member."""

    member: str = Field(pattern=HEX32)
    key: str = Field(pattern=ADDRESS)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class WriteAccepted(BaseModel):
    """A signed write accepted into the outbox; follow it at ``status_url``."""

    id: str
    status: str
    signer: str = Field(description="who signed it (empty for an execution, which needs no signature)")
    status_url: str


class WriteStatus(BaseModel):
    id: str
    contract: str
    function: str
    status: str
    attempts: int
    tx_hash: str | None
    block_number: int | None
    error: str | None
