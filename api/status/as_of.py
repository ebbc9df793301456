"""Answers as of ``at`` (:func:`parse_at`), from SQL.

- ``at=block:B`` (or a bare integer ``B``): records accepted in blocks ``<= B`` and not closed in a block
  ``<= B``, evaluated at the timestamp of block B. The index keeps the timestamps of the blocks that carried
  events and of the last ``reorg_window`` blocks below the checkpoint, so the time used is that of the latest
  indexed block ``<= B``: B itself when it is recent or carried an event; otherwise the last block before B that
  carried one. No record was accepted or closed between that block and B, but a notice window or a validity may
  have ended in the seconds between them; ask with ``at=time:`` for an exact time. ``as_of_time`` says which
  time was used.
- ``at=time:T`` (unix seconds) or an ISO-8601 time (``2026-12-04T10:00:00Z``; without a zone, UTC): records
  accepted in blocks whose timestamp is ``<= T`` and not closed by then, evaluated at T. ``as_of_block`` is the
  latest indexed block whose timestamp is ``<= T``.

Beyond the indexed head (a block above the checkpoint, a time after its timestamp), the answer is as of the
head: ``as_of_block`` is the checkpoint and ``beyond_head`` is true (a time is still evaluated at T).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, select
from sqlmodel import Session

from api.status.evaluation import Entry, Views
from api.status.index import BLOCKS, COLUMNS, IN_CHUNK, RECORDS, Checkpoint, read_checkpoint
from api.status.shredded import gone_item, gone_of, shredded_among
from api.status.subjects import Subject
from credtrace.errors import ValidationFailed
from node_bridge.projections import chunks

MAX_TIME = 2**40 - 1


@dataclass(frozen=True, slots=True)
class At:
    """A point to answer as of: a block number or a unix time (exactly one)."""

    block: int | None = None
    time: int | None = None
    text: str = ""


def parse_at(value: str, field: str = "at") -> At:
    """``block:N`` or a bare integer N (a block); ``time:N`` (unix seconds) or an ISO-8601 time (UTC if no zone)."""
    text = value.strip()
    kind, _, rest = text.partition(":")
    try:
        if text.isdigit():
            return At(block=_bounded(int(text), field), text=text)
        if kind == "block":
            if not rest.isdigit():
                raise ValueError
            return At(block=_bounded(int(rest), field), text=text)
        if kind == "time":
            if not rest.isdigit():
                raise ValueError
            return At(time=_bounded(int(rest), field), text=text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(
            field,
            f"{value!r} is not block:<number>, a block number, time:<unix seconds> or an ISO-8601 time "
            "(e.g. 2026-12-04T10:00:00Z)",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return At(time=_bounded(math.floor(moment.timestamp()), field), text=text)


def parse_time(value: str, field: str) -> int:
    """Unix seconds from ``N``, ``time:N`` or an ISO-8601 time (UTC if no zone); :class:`ValidationFailed` if not."""
    point = parse_at(value if not value.strip().isdigit() else f"time:{value.strip()}", field)
    if point.time is None:
        raise ValidationFailed(field, f"{value!r} is a block, not a time")
    return point.time


def _bounded(number: int, field: str) -> int:
    if not 0 <= number <= MAX_TIME:
        raise ValidationFailed(field, f"{number} is out of range (0..{MAX_TIME})")
    return number


@dataclass(frozen=True)
class Cut:
    """Where an as-of answer stands: the blocks and time it covers."""

    head: Checkpoint | None
    block: int | None
    time: int | None
    beyond_head: bool


def resolve(session: Session, at: At, chain_id: int | None) -> Cut:
    """The block and time an ``at`` means in this index (see the module docstring)."""
    head = read_checkpoint(session, chain_id)
    if head is None:
        return Cut(None, None, at.time, False)
    blocks = select(BLOCKS.c.number, BLOCKS.c.timestamp)
    if chain_id is not None:
        blocks = blocks.where(BLOCKS.c.chain_id == chain_id)
    if at.block is not None:
        block = min(at.block, head.number)
        if block == head.number:
            return Cut(head, block, head.timestamp, at.block > head.number)
        row = session.execute(blocks.where(BLOCKS.c.number <= block).order_by(BLOCKS.c.number.desc()).limit(1)).first()
        return Cut(head, block, int(row[1]) if row else None, False)
    assert at.time is not None
    if at.time >= head.timestamp:
        return Cut(head, head.number, at.time, at.time > head.timestamp)
    row = session.execute(blocks.where(BLOCKS.c.timestamp <= at.time).order_by(BLOCKS.c.number.desc()).limit(1)).first()
    return Cut(head, int(row[0]) if row else None, at.time, False)


def rows_as_of(session: Session, subjects: Sequence[str], at: At, cut: Cut) -> list[Sequence[Any]]:
    """The records of ``subjects`` accepted and not closed as of ``cut`` and not expired at its time."""
    if cut.head is None or cut.time is None or cut.block is None:
        return []
    head = cut.head.number
    if at.block is not None:
        accepted = RECORDS.c.block_number <= cut.block
        open_then = or_(RECORDS.c.closed_block.is_(None), RECORDS.c.closed_block > cut.block)
    else:
        accepted = and_(RECORDS.c.block_number <= head, RECORDS.c.block_time <= cut.time)
        open_then = or_(
            RECORDS.c.closed_time.is_(None), RECORDS.c.closed_time > cut.time, RECORDS.c.closed_block > head
        )
    rows: list[Sequence[Any]] = []
    unique = list(dict.fromkeys(subjects))
    for chunk in chunks(unique, IN_CHUNK):
        query = (
            select(*COLUMNS)
            .where(RECORDS.c.subject.in_(chunk), accepted, open_then)
            .where(RECORDS.c.valid_until > cut.time)
            .order_by(RECORDS.c.block_number, RECORDS.c.log_index)
        )
        rows.extend(session.execute(query).all())
    return rows


def status_as_of(
    engine: Engine,
    views: Views,
    subjects: Sequence[Subject],
    at: At,
    chain_id: int | None,
    single: bool,
    full: bool = True,
) -> dict[str, Any]:
    """Statuses from SQL as of ``at``: ``{"meta": ..., "results": [...]}``; a single shredded subject raises 410."""
    with Session(engine) as session:
        results: list[dict[str, Any] | None] = [None] * len(subjects)
        suspects = shredded_among(session, [s.id for s in subjects if s.is_person])
        for index, subject in enumerate(subjects):
            if subject.id in suspects and (gone := gone_of(session, subject)) is not None:
                if single:
                    raise gone
                results[index] = gone_item(subject, gone)
        cut = resolve(session, at, chain_id)
        rows = rows_as_of(session, [s.id for s, r in zip(subjects, results, strict=True) if r is None], at, cut)
    grouped: dict[str, list[Entry]] = {}
    for row in rows:
        grouped.setdefault(row[1], []).append(views.entry(row))
    when = cut.time if cut.time is not None else 0
    for index, subject in enumerate(subjects):
        if results[index] is None:
            results[index] = views.evaluate(subject, grouped.get(subject.id, ()), when, full)
    meta = {
        "as_of_block": cut.block,
        "as_of_time": cut.time,
        "source": "history",
        "at": at.text,
        "beyond_head": cut.beyond_head,
    }
    return {"meta": meta, "results": results}
