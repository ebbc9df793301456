"""The outbox: signed writes accepted for the chain, one row per record id.

:func:`enqueue` is called inside the caller's SQL transaction (the one that validated the write), so a write
is durable before the API answers; the relayer (:mod:`node_bridge.relayer`) drains it.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from node_bridge.models import OutboxEntry, OutboxStatus, utcnow


def record_hex(record_id: bytes | str) -> str:
    """A record id as lower-case 0x-hex (how the outbox and the index key it)."""
    return record_id.lower() if isinstance(record_id, str) else "0x" + record_id.hex()


def enqueue(session: Session, record_id: bytes | str, contract: str, function: str, calldata: bytes) -> OutboxEntry:
    """Accept a write once: a second submission of the same record id returns the existing row unchanged."""
    key = record_hex(record_id)
    existing = session.get(OutboxEntry, key)
    if existing is not None:
        return existing
    entry = OutboxEntry(id=key, contract=contract, function=function, calldata=calldata)
    session.add(entry)
    session.flush()
    return entry


def get(session: Session, record_id: bytes | str) -> OutboxEntry | None:
    return session.get(OutboxEntry, record_hex(record_id))


def depth(session: Session) -> int:
    """Writes accepted but not yet confirmed or failed."""
    pending = (OutboxStatus.ACCEPTED, OutboxStatus.SUBMITTED)
    return int(session.exec(select(func.count()).where(OutboxEntry.status.in_(pending))).one())  # type: ignore[attr-defined]


def counts(session: Session) -> dict[str, int]:
    """Number of outbox rows per status."""
    rows = session.exec(select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)).all()
    return {str(status): int(count) for status, count in rows}


def mark(entry: OutboxEntry, status: OutboxStatus, **fields: object) -> None:
    """Move an entry to ``status``, setting any other fields given."""
    entry.status = status
    for name, value in fields.items():
        setattr(entry, name, value)
    entry.updated_at = utcnow()
