"""Platform compliance: per PLATFORM member, the measures due, the receipts filed and their latency."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from api.status.index import MEMBERS, RECEIPTS, RECORDS
from credtrace.measures import Catalogue
from node_bridge.consortium import Role


def _percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of a sorted, non-empty list."""
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def compliance(
    session: Session, catalogue: Catalogue, since: int, until: int, platform: str | None = None
) -> dict[str, Any]:
    """Per PLATFORM member: measures due, receipts filed, the ratio, and the latency of the receipts.

    In scope are the records with measures due (catalogue rule or own bits) that were active at some moment of
    ``[since, until]``. Every platform is expected to apply every measure due for each of them. A due pair
    (record, measure) counts as filed when the platform filed at least one receipt for it; its latency is the
    earliest receipt's ``applied_at`` minus ``max(effective_at, block_time)`` of the record (when the record took
    effect, or when the chain accepted it if later), floored at 0.
    """
    ends = func.coalesce(RECORDS.c.closed_time, RECORDS.c.valid_until)
    in_window = and_(
        RECORDS.c.effective_at <= until,
        RECORDS.c.block_time <= until,
        RECORDS.c.valid_until > since,
        or_(RECORDS.c.closed_time.is_(None), and_(RECORDS.c.closed_time > since, ends > RECORDS.c.effective_at)),
    )
    scope: dict[str, tuple[int, int]] = {}  # record id -> (due mask, start of its duty)
    query = select(
        RECORDS.c.id, RECORDS.c.kind, RECORDS.c.tier, RECORDS.c.measures, RECORDS.c.effective_at, RECORDS.c.block_time
    ).where(in_window)
    for record_id, kind, tier, measures, effective_at, block_time in session.execute(query):
        mask = catalogue.due_mask(kind, tier, measures)
        if mask:
            scope[record_id] = (mask, max(effective_at, block_time))
    due_total = sum(mask.bit_count() for mask, _ in scope.values())
    receipts = (
        select(RECEIPTS.c.platform, RECEIPTS.c.record_id, RECEIPTS.c.measure, func.min(RECEIPTS.c.applied_at))
        .join(RECORDS, RECORDS.c.id == RECEIPTS.c.record_id)
        .where(in_window, RECEIPTS.c.measure < 32)
        .group_by(RECEIPTS.c.platform, RECEIPTS.c.record_id, RECEIPTS.c.measure)
    )
    if platform is not None:
        receipts = receipts.where(RECEIPTS.c.platform == platform)
    filed: dict[str, list[int]] = {}
    for member, record_id, measure, applied_at in session.execute(receipts):
        duty = scope.get(record_id)
        if duty is not None and duty[0] >> measure & 1:
            filed.setdefault(member, []).append(max(0, int(applied_at) - duty[1]))
    members = select(MEMBERS.c.id, MEMBERS.c.name, MEMBERS.c.status, MEMBERS.c.roles).order_by(MEMBERS.c.name)
    if platform is not None:
        members = members.where(MEMBERS.c.id == platform)
    platforms = []
    for member_id, name, status, roles in session.execute(members):
        if not roles & Role.PLATFORM:
            continue
        latencies = sorted(filed.get(member_id, []))
        count = len(latencies)
        platforms.append({
            "platform": member_id,
            "name": name,
            "status": status,
            "due": due_total,
            "filed": count,
            "missing": due_total - count,
            "compliance": round(count / due_total, 6) if due_total else None,
            "latency_seconds": {
                "count": count,
                "median": _percentile(latencies, 0.5) if count else None,
                "p95": _percentile(latencies, 0.95) if count else None,
                "max": latencies[-1] if count else None,
            },
        })  # fmt: skip
    return {
        "since": since,
        "until": until,
        "records_in_scope": len(scope),
        "measures_due": due_total,
        "platforms": platforms,
    }
