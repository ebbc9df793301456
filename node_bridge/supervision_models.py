"""SQL tables of inter-department supervision (C12): the chain's case entries and joint decisions, and case texts.

``supervision_entry``, ``supervision_joint_decision`` and ``supervision_joint_signature`` are what the
SupervisionRegistry's events say (filled by :mod:`node_bridge.supervision_index`, rebuilt from the chain alone).
Cases and referrals are not tables of their own: a case is its entries in chain order (the OPEN entry gives its
subject and opener; REFER and ACKNOWLEDGE entries its referrals), replayed by :func:`node_bridge.supervision.replay`.

``supervision_note`` is the API's own: the texts whose keccak256 the entries sign (descriptions, findings), kept
off chain because every member's node reads the chain, and shown only to the departments on the case and to
auditors. Deleting a text leaves its hash on chain, unlinked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from node_bridge.models import utcnow


class SupervisionEntry(SQLModel, table=True):
    """A recorded ``CaseEntry`` (event ``CaseEntryRecorded``), every signed field as 0x-hex or an integer."""

    __tablename__ = "supervision_entry"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest of the signed entry")
    case_id: str = Field(max_length=66, index=True)
    action: str = Field(max_length=16, description="open, refer, acknowledge, evidence, finding, link-decision, close")
    department: str = Field(max_length=66, index=True, description="member id of the signing department")
    subject: str = Field(max_length=66)
    counterpart: str = Field(max_length=66, description="the department referred to (REFER)")
    deadline: int = Field(sa_type=BigInteger)
    document_hash: str = Field(max_length=66)
    note_hash: str = Field(max_length=66)
    ref: str = Field(max_length=66, index=True, description="referral acknowledged or decision linked")
    at: int = Field(sa_type=BigInteger, description="when the department signed (unix seconds)")
    nonce: str = Field(max_length=80)
    signer: str = Field(max_length=42)
    late: bool = Field(default=False, description="an acknowledgement after the referral's deadline")
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


class SupervisionJointDecision(SQLModel, table=True):
    """A joint decision, from its first signature; ``active`` once every named department signed."""

    __tablename__ = "supervision_joint_decision"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest every department signs")
    case_id: str = Field(max_length=66, index=True)
    subject: str = Field(max_length=66, index=True)
    kind: int
    tier: int
    measures: int = Field(sa_type=BigInteger)
    document_hash: str = Field(max_length=66)
    effective_at: int = Field(sa_type=BigInteger)
    valid_until: int = Field(sa_type=BigInteger)
    departments: str = Field(description="the named departments' member ids, comma-separated, in signed order")
    nonce: str = Field(max_length=80)
    first_block: int = Field(sa_type=BigInteger, index=True)
    active: bool = False
    active_block: int | None = Field(default=None, sa_type=BigInteger, index=True)
    active_time: int | None = Field(default=None, sa_type=BigInteger)


class SupervisionJointSignature(SQLModel, table=True):
    """One department's signature of a joint decision (event ``JointDecisionSigned``)."""

    __tablename__ = "supervision_joint_signature"

    decision_id: str = Field(primary_key=True, max_length=66)
    department: str = Field(primary_key=True, max_length=66)
    signer: str = Field(max_length=42)
    remaining: int
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


class SupervisionNote(SQLModel, table=True):
    """A case text the API took beside a signed entry; its keccak256 is the entry's ``noteHash``."""

    __tablename__ = "supervision_note"

    note_hash: str = Field(primary_key=True, max_length=66, description="keccak256 of the UTF-8 text")
    case_id: str = Field(max_length=66, index=True)
    text: str
    department: str = Field(max_length=66, description="the department whose entry carried it first")
    created_at: datetime = Field(default_factory=utcnow)


SUPERVISION_TABLES: tuple[type[SQLModel], ...] = (
    SupervisionEntry,
    SupervisionJointDecision,
    SupervisionJointSignature,
    SupervisionNote,
)
