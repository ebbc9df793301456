"""SQL tables (sqlmodel): the outbox the relayer drains, and the index the indexer builds from chain events.

The index tables hold only what the chain says; ``credtrace index rebuild`` can drop and recreate them.
Schema changes go through alembic migrations in ``node_bridge/migrations/``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxStatus(enum.StrEnum):
    """Lifecycle of an accepted write: accepted → submitted → confirmed, or failed (with the decoded error)."""

    ACCEPTED = "accepted"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class OutboxEntry(SQLModel, table=True):
    """A signed write accepted by the API, waiting to reach (or already on) the chain. Its id is the record id."""

    __tablename__ = "outbox"

    id: str = Field(primary_key=True, max_length=66, description="record id (0x-hex EIP-712 digest)")
    contract: str = Field(max_length=64, description="deployment name of the target contract")
    function: str = Field(max_length=64, description="contract function the calldata calls")
    calldata: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default=OutboxStatus.ACCEPTED, max_length=16, index=True)
    attempts: int = 0
    tx_hash: str | None = Field(default=None, max_length=66, index=True)
    batch_index: int | None = None
    block_number: int | None = Field(default=None, sa_type=BigInteger)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class SignedSubmission(SQLModel, table=True):
    """A signed credit message the API accepted (record, revocation, repair or enforcement), kept as signed.

    Written in the same SQL transaction as its outbox row. It answers ``GET /v1/records/{id}`` before the chain
    does, keeps each issuer's nonces unique among pending writes, and holds the record a later revocation needs.
    """

    __tablename__ = "signed_submission"
    __table_args__ = (UniqueConstraint("issuer", "nonce", name="uq_signed_submission_issuer_nonce"),)

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest")
    type: str = Field(max_length=16, description="CreditRecord | Revocation | Repair | Enforcement")
    issuer: str = Field(max_length=66, description="signing organisation (issuer or platform)")
    nonce: str = Field(max_length=80)
    subject: str | None = Field(default=None, max_length=66, index=True)
    target: str | None = Field(default=None, max_length=66, index=True, description="record a closure closes")
    signer: str = Field(max_length=42)
    message: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    signature: str = Field(max_length=132)
    created_at: datetime = Field(default_factory=utcnow)


class RelayTxStatus(enum.StrEnum):
    PENDING = "pending"
    MINED = "mined"
    REPLACED = "replaced"


class RelayTransaction(SQLModel, table=True):
    """A transaction the relayer signed, recorded (with its raw bytes) before it is sent, so it can be re-sent."""

    __tablename__ = "relay_tx"

    tx_hash: str = Field(primary_key=True, max_length=66)
    sender: str = Field(max_length=42, index=True)
    nonce: int = Field(sa_type=BigInteger, index=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int = Field(description="outbox entries carried")
    status: str = Field(default=RelayTxStatus.PENDING, max_length=16, index=True)
    sends: int = 0
    block_number: int | None = Field(default=None, sa_type=BigInteger)
    block_hash: str | None = Field(default=None, max_length=66)
    created_at: datetime = Field(default_factory=utcnow)
    mined_at: datetime | None = None


# The index: rebuilt from the chain alone.


class IndexedBlock(SQLModel, table=True):
    """A block the indexer has processed: its hash and parent, to detect reorgs."""

    __tablename__ = "indexed_block"

    chain_id: int = Field(primary_key=True, sa_type=BigInteger)
    number: int = Field(primary_key=True, sa_type=BigInteger)
    hash: str = Field(max_length=66)
    parent_hash: str = Field(max_length=66)
    timestamp: int = Field(sa_type=BigInteger)


class IndexerCheckpoint(SQLModel, table=True):
    """The last block indexed per chain, written in the same SQL transaction as the rows it produced."""

    __tablename__ = "indexer_checkpoint"

    chain_id: int = Field(primary_key=True, sa_type=BigInteger)
    block_number: int = Field(sa_type=BigInteger)
    block_hash: str = Field(max_length=66)
    block_timestamp: int = Field(sa_type=BigInteger)


class ChainEvent(SQLModel, table=True):
    """Every decoded contract event, keyed by its natural key (chain, transaction, log index)."""

    __tablename__ = "chain_event"

    chain_id: int = Field(primary_key=True, sa_type=BigInteger)
    tx_hash: str = Field(primary_key=True, max_length=66)
    log_index: int = Field(primary_key=True)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_hash: str = Field(max_length=66)
    contract: str = Field(max_length=64)
    address: str = Field(max_length=42)
    name: str = Field(max_length=64, index=True)
    args: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class Member(SQLModel, table=True):
    """A consortium member as the chain last said."""

    __tablename__ = "member"

    id: str = Field(primary_key=True, max_length=66, description="keccak256 of the unified social credit code")
    name: str
    roles: int
    status: str = Field(max_length=16, index=True)
    admitted_block: int = Field(sa_type=BigInteger)
    updated_block: int = Field(sa_type=BigInteger)


class MemberKey(SQLModel, table=True):
    """A signing key of a member, active or revoked."""

    __tablename__ = "member_key"

    address: str = Field(primary_key=True, max_length=42)
    member_id: str = Field(max_length=66, index=True)
    active: bool
    added_block: int = Field(sa_type=BigInteger)
    revoked_block: int | None = Field(default=None, sa_type=BigInteger)
    revoked_by_self: bool | None = None


class Proposal(SQLModel, table=True):
    """A governance proposal, its approvals and whether it was executed."""

    __tablename__ = "proposal"

    id: str = Field(primary_key=True, max_length=66)
    action: str = Field(max_length=32)
    member_id: str = Field(max_length=66, index=True)
    payload: str
    proposer_id: str = Field(max_length=66)
    signer: str = Field(max_length=42)
    expires_at: int = Field(sa_type=BigInteger)
    created_block: int = Field(sa_type=BigInteger)
    approvals: int
    executed: bool
    executed_block: int | None = Field(default=None, sa_type=BigInteger)


class ProposalApproval(SQLModel, table=True):
    """One regulator organisation's approval of a proposal (the proposer's included)."""

    __tablename__ = "proposal_approval"

    proposal_id: str = Field(primary_key=True, max_length=66)
    member_id: str = Field(primary_key=True, max_length=66)
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger)


class ChainParameter(SQLModel, table=True):
    """A consortium-wide value the chain holds (the approval threshold)."""

    __tablename__ = "chain_parameter"

    name: str = Field(primary_key=True, max_length=64)
    value: str
    updated_block: int = Field(sa_type=BigInteger)


class CreditRecordRow(SQLModel, table=True):
    """A credit record the chain accepted (``RecordIssued``), with its revocation or repair if one followed.

    Times are unix seconds; ``block_time`` is when the chain accepted it, ``closed_time`` when it was closed.
    ``subject_code`` is the organisation's credit code (None for a natural person's commitment).
    """

    __tablename__ = "credit_record"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest")
    kind: str = Field(max_length=32, index=True)
    subject: str = Field(max_length=66, index=True)
    subject_code: str | None = Field(default=None, max_length=18)
    issuer: str = Field(max_length=66, index=True)
    signer: str = Field(max_length=42)
    legal_basis: str
    tier: str = Field(max_length=8)
    measures: int = Field(sa_type=BigInteger, description="bits of the measure catalogue")
    document_hash: str = Field(max_length=66)
    effective_at: int = Field(sa_type=BigInteger)
    public_until: int = Field(sa_type=BigInteger)
    valid_until: int = Field(sa_type=BigInteger)
    relation: str = Field(max_length=24)
    refers_to: str | None = Field(default=None, max_length=66, index=True)
    nonce: str = Field(max_length=80, description="uint256 as decimal text")
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int
    closed: str | None = Field(default=None, max_length=8, description="revoked | repaired")
    closure_id: str | None = Field(default=None, max_length=66)
    closed_reason: str | None = None
    closed_by: str | None = Field(default=None, max_length=42, description="signer of the closure")
    closed_block: int | None = Field(default=None, sa_type=BigInteger, index=True)
    closed_time: int | None = Field(default=None, sa_type=BigInteger)
    closed_tx: str | None = Field(default=None, max_length=66)


class EnforcementRow(SQLModel, table=True):
    """A platform's signed receipt that it applied a measure (``EnforcementFiled``)."""

    __tablename__ = "enforcement"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest")
    platform: str = Field(max_length=66, index=True)
    subject: str = Field(max_length=66, index=True)
    record_id: str = Field(max_length=66, index=True)
    measure: int
    applied_at: int = Field(sa_type=BigInteger)
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


INDEX_TABLES: tuple[type[SQLModel], ...] = (
    IndexedBlock,
    IndexerCheckpoint,
    ChainEvent,
    Member,
    MemberKey,
    Proposal,
    ProposalApproval,
    ChainParameter,
    CreditRecordRow,
    EnforcementRow,
)
"""Tables the indexer owns; dropped and refilled by a rebuild, compared by ``credtrace index check``."""


# chain side (TraceRegistry)


class TraceChainCodeBatch(SQLModel, table=True):
    """A code batch the chain accepted (``CodesCommitted``): the producer's signed root over its codes' ids."""

    __tablename__ = "trace_chain_code_batch"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest of the signed CodeBatch")
    producer: str = Field(max_length=66, index=True, description="member id of the PRODUCER")
    gtin: str = Field(description="as signed (the API only accepts GTIN-14)")
    lot: str
    count: int = Field(sa_type=BigInteger)
    root: str = Field(max_length=66, description="RFC 6962 root over the code ids, in leaf order")
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


class TraceChainAnchor(SQLModel, table=True):
    """A batch root the chain anchored (``BatchAnchored``), chained to the one before it by ``previous_root``."""

    __tablename__ = "trace_chain_anchor"

    index: int = Field(primary_key=True, sa_type=BigInteger, description="position in the chain of anchors, from 0")
    root: str = Field(max_length=66, index=True, description="RFC 6962 root over the batch's event digests")
    size: int = Field(sa_type=BigInteger, description="events in the batch (tree size)")
    previous_root: str = Field(max_length=66, description="zero (0x00…00) for the first anchor")
    first_time: int = Field(sa_type=BigInteger)
    last_time: int = Field(sa_type=BigInteger)
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_hash: str = Field(max_length=66)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


INDEX_TABLES = (*INDEX_TABLES, TraceChainCodeBatch, TraceChainAnchor)
