"""What status reads of the index: the tables, the columns a record is loaded with, and the indexer checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select
from sqlmodel import Session

from api.models import Person
from node_bridge.models import CreditRecordRow, EnforcementRow, IndexedBlock, IndexerCheckpoint, Member
from node_bridge.projections import table_of

RECORDS = table_of(CreditRecordRow)
RECEIPTS = table_of(EnforcementRow)
BLOCKS = table_of(IndexedBlock)
CHECKPOINTS = table_of(IndexerCheckpoint)
MEMBERS = table_of(Member)
PERSONS = table_of(Person)
IN_CHUNK = 500
"""Subjects (or commitments) per ``IN (...)`` query."""
COLUMNS = (
    RECORDS.c.id, RECORDS.c.subject, RECORDS.c.kind, RECORDS.c.tier, RECORDS.c.issuer, RECORDS.c.legal_basis,
    RECORDS.c.measures, RECORDS.c.effective_at, RECORDS.c.public_until, RECORDS.c.valid_until,
    RECORDS.c.block_number, RECORDS.c.tx_hash, RECORDS.c.log_index, RECORDS.c.closed_block,
)  # fmt: skip
"""The columns of a record row, in the order :meth:`api.status.evaluation.Views.entry` unpacks them."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    number: int
    hash: str
    timestamp: int


def read_checkpoint(session: Session | Connection, chain_id: int | None) -> Checkpoint | None:
    """The indexer checkpoint (of ``chain_id``, or the only/most advanced chain indexed); None before any."""
    query = select(CHECKPOINTS.c.block_number, CHECKPOINTS.c.block_hash, CHECKPOINTS.c.block_timestamp)
    if chain_id is not None:
        query = query.where(CHECKPOINTS.c.chain_id == chain_id)
    row = session.execute(query.order_by(CHECKPOINTS.c.block_number.desc()).limit(1)).first()
    return Checkpoint(int(row[0]), str(row[1]), int(row[2])) if row else None
