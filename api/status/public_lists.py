"""Public lists: organisations' red-list and blacklist entries within their publication window."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlmodel import Session

from api.status.index import MEMBERS, RECORDS


def public_list(
    session: Session, kind: str, now: int, limit: int, cursor: tuple[int, int] | None
) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
    """Organisations' entries of a list within their publication window, newest first; (items, next cursor)."""
    query = (
        select(
            RECORDS.c.id,
            RECORDS.c.kind,
            RECORDS.c.tier,
            RECORDS.c.subject_code,
            RECORDS.c.issuer,
            MEMBERS.c.name,
            RECORDS.c.legal_basis,
            RECORDS.c.effective_at,
            RECORDS.c.public_until,
            RECORDS.c.block_number,
            RECORDS.c.log_index,
            RECORDS.c.tx_hash,
        )
        .select_from(RECORDS.outerjoin(MEMBERS, MEMBERS.c.id == RECORDS.c.issuer))
        .where(
            RECORDS.c.kind == kind,
            RECORDS.c.subject_code.is_not(None),
            RECORDS.c.closed.is_(None),
            RECORDS.c.effective_at <= now,
            RECORDS.c.public_until > now,
        )
        .order_by(RECORDS.c.block_number.desc(), RECORDS.c.log_index.desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        block, index = cursor
        query = query.where(
            or_(RECORDS.c.block_number < block, and_(RECORDS.c.block_number == block, RECORDS.c.log_index < index))
        )
    rows = session.execute(query).all()
    items = [
        {
            "record": r[0],
            "kind": r[1],
            "tier": r[2],
            "subject_code": r[3],
            "issuer": {"id": r[4], "name": r[5]},
            "legal_basis": r[6],
            "effective_at": r[7],
            "public_until": r[8],
            "block_number": r[9],
            "tx_hash": r[11],
        }
        for r in rows[:limit]
    ]
    following = (rows[limit - 1][9], rows[limit - 1][10]) if len(rows) > limit else None
    return items, following
