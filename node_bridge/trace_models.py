"""SQL tables of traceability (C5): what producers register and actors sign, kept off chain, and their anchoring.

Products, lots, codes and signed checkpoint events are accepted by the API (like the outbox, they are the
durable record of what was signed); the anchorer groups accepted events into Merkle batches whose roots go on
chain through the outbox. Chain-derived rows (committed code batches, anchored roots) are in ``trace_chain_*``
tables, filled by the indexer, so an index rebuild restores them. Scans are counted without personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from node_bridge.models import utcnow


class Product(SQLModel, table=True):
    """A trade item registered by its producer."""

    __tablename__ = "trace_product"

    gtin: str = Field(primary_key=True, max_length=14, description="GTIN-14 (check digit verified)")
    producer: str = Field(max_length=66, index=True, description="member id of the PRODUCER")
    name: str
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class Lot(SQLModel, table=True):
    """A production lot (batch) of a product."""

    __tablename__ = "trace_lot"

    id: str = Field(primary_key=True, max_length=40, description="'{gtin}/{lot}'")
    gtin: str = Field(max_length=14, index=True)
    lot: str = Field(max_length=20)
    producer: str = Field(max_length=66, index=True)
    produced_on: str | None = Field(default=None, max_length=10, description="ISO date")
    best_before: str | None = Field(default=None, max_length=10)
    recalled_at: datetime | None = None
    recall_event: str | None = Field(default=None, max_length=66)
    created_at: datetime = Field(default_factory=utcnow)


class CodeBatch(SQLModel, table=True):
    """Serialized codes issued together; the producer signs their RFC 6962 root (``CodeBatch``)."""

    __tablename__ = "trace_code_batch"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest of the signed CodeBatch")
    lot_id: str = Field(max_length=40, index=True)
    producer: str = Field(max_length=66)
    count: int
    root: str = Field(max_length=66, description="RFC 6962 root over the code ids, in leaf order")
    nonce: str = Field(max_length=80)
    signature: str | None = Field(default=None, max_length=132, description="None until the producer signs")
    signer: str | None = Field(default=None, max_length=42, description="the PRODUCER key that signed it")
    created_at: datetime = Field(default_factory=utcnow)
    signed_at: datetime | None = None


class TraceCode(SQLModel, table=True):
    """One serialized trace code and where it is in its custody chain."""

    __tablename__ = "trace_code"
    __table_args__ = (Index("ix_trace_code_batch", "batch_id", "leaf_index"),)  # a batch's codes in order

    id: str = Field(primary_key=True, max_length=66, description="keccak256 of the Digital Link path")
    path: str = Field(max_length=80, description="unique as the id is (its keccak): not indexed")
    lot_id: str = Field(max_length=40, index=True)
    batch_id: str = Field(max_length=66)
    leaf_index: int = Field(description="position in its batch's tree")
    state: str = Field(default="issued", max_length=16, description="issued, commissioned, ..., sold, delivered")
    holder: str | None = Field(default=None, max_length=66, description="member id of the last custodian")
    parent: str | None = Field(
        default=None, max_length=66, index=True, description="the case or pallet it is packed in"
    )
    last_event: str | None = Field(default=None, max_length=66)
    updated_at: datetime = Field(default_factory=utcnow)


class TraceEventRow(SQLModel, table=True):
    """A signed checkpoint event, as signed, and its place in an anchored batch once the anchorer closed one."""

    __tablename__ = "trace_event"
    __table_args__ = (
        UniqueConstraint("actor", "nonce", name="uq_trace_event_actor_nonce"),  # also finds an actor's events
        # a batch's leaves in order (proofs); its NULL end is what the anchorer batches next
        Index("ix_trace_event_batch", "batch", "leaf_index"),
    )

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest: the Merkle leaf data")
    actor: str = Field(max_length=66)
    signer: str = Field(max_length=42)
    step: str = Field(max_length=16)
    time: int = Field(sa_type=BigInteger)
    location: str
    geo: str = ""
    disposition: str = Field(max_length=16)
    parent: str | None = Field(default=None, max_length=66)
    corrects: str | None = Field(default=None, max_length=66)
    nonce: str = Field(max_length=80)
    message: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    signature: str = Field(max_length=132)
    accepted_at: datetime = Field(default_factory=utcnow)
    batch: int | None = Field(default=None, sa_type=BigInteger, description="anchor batch index")
    leaf_index: int | None = None


class TraceEventCode(SQLModel, table=True):
    """Which codes an event is about (a code's timeline is its events in time order)."""

    __tablename__ = "trace_event_code"

    code_id: str = Field(primary_key=True, max_length=66)
    event_id: str = Field(primary_key=True, max_length=66, index=True)
    time: int = Field(sa_type=BigInteger)
    via: str | None = Field(
        default=None, max_length=66, description="the case or pallet the event named, if it reached this code packed"
    )


class AnchorBatch(SQLModel, table=True):
    """A batch of events the anchorer closed: its tree's root, chained to the previous, and its anchor write."""

    __tablename__ = "trace_anchor_batch"

    index: int = Field(primary_key=True, sa_type=BigInteger)
    root: str = Field(max_length=66)
    size: int
    previous_root: str = Field(max_length=66)
    first_time: int = Field(sa_type=BigInteger)
    last_time: int = Field(sa_type=BigInteger)
    anchor_id: str = Field(max_length=66, description="EIP-712 digest of the signed Anchor = its outbox id")
    closed_at: datetime = Field(default_factory=utcnow)


class Scan(SQLModel, table=True):
    """A consumer's scan, without personal data: the code, when, a coarse place, the verdict given."""

    __tablename__ = "trace_scan"

    id: int | None = Field(default=None, primary_key=True)
    code_id: str = Field(max_length=66, index=True)
    scanned_at: int = Field(sa_type=BigInteger, index=True)
    region: str | None = Field(default=None, max_length=64, description="coarse place as given, e.g. a city")
    geo: str | None = Field(default=None, max_length=24, description="'lat,lon' rounded to 1 decimal (~10 km)")
    verdict: str = Field(max_length=16)


TRACE_TABLES: tuple[type[SQLModel], ...] = (
    Product,
    Lot,
    CodeBatch,
    TraceCode,
    TraceEventRow,
    TraceEventCode,
    AnchorBatch,
    Scan,
)
