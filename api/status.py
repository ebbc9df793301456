"""Subject status (C4, C9): red list, blacklist, active records and the measures due, now or as of a block or time.

Semantics (the same as the CreditRegistry's ``isRedListed`` / ``isBlacklisted`` / ``recordState`` views): a record
is *active* at unix time ``t`` when ``effective_at <= t < valid_until`` and it was not revoked or repaired by then;
it is in its *notice* window while ``t < effective_at``. A subject is red-listed when it has an active ``red_list``
record, blacklisted when it has an active ``blacklist`` record. ``measures_due`` is, over the active records, the
union of the catalogue's rule measures for each record's (kind, tier) and the measures its own ``measures`` bits
name (:mod:`credtrace.measures`).

Two ways to answer:

- **Now** (no ``at``): from :class:`StatusCache`, one per API process. It holds, grouped by subject, every indexed
  record that still matters (not closed, ``valid_until`` in the future, notice windows included), loaded when the
  app starts and refreshed every ``status_refresh_seconds`` (0.2 s) by a background task: it reads the indexer
  checkpoint, then the ``credit_record`` rows accepted or closed in blocks after the last checkpoint it saw, up to
  the new one (the indexer commits rows and checkpoint together, so reading the checkpoint first gives a consistent
  cut). If the block it last saw was replaced (a reorg), it reloads everything. The answer is evaluated at the wall
  clock's ``now`` over the index as of ``as_of_block`` (the checkpoint of the last refresh); no SQL is involved.
- **As of** ``at`` (:func:`parse_at`): from SQL.

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

Subjects are an organisation's unified social credit code (checked, GB 32100) or a 0x-hex 32-byte subject id (a
natural person's commitment, or an organisation's code zero-padded). A natural person whose salt was shredded gets
410 (:class:`Gone`, via :func:`credtrace.persons.ensure_not_shredded`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from fastapi import FastAPI
from sqlalchemy import Connection, Engine, and_, func, or_, select
from sqlmodel import Session

from api.models import Person
from credtrace import persons, uscc
from credtrace.errors import Gone, ValidationFailed
from credtrace.measures import Catalogue, load_catalogue
from credtrace.settings import Settings
from node_bridge.consortium import Role
from node_bridge.credit import subject_code
from node_bridge.models import CreditRecordRow, EnforcementRow, IndexedBlock, IndexerCheckpoint, Member
from node_bridge.projections import table_of

log = logging.getLogger(__name__)

RECORDS = table_of(CreditRecordRow)
RECEIPTS = table_of(EnforcementRow)
BLOCKS = table_of(IndexedBlock)
CHECKPOINTS = table_of(IndexerCheckpoint)
MEMBERS = table_of(Member)
PERSONS = table_of(Person)
LIST_FLAGS = {"red_list": 1, "blacklist": 2}
RED, BLACK = 1, 2
IN_CHUNK = 500
MAX_TIME = 2**40 - 1
SHREDDED_POLL_SECONDS = 1.0
FREEZE_AT = 10_000
_HEX32 = re.compile(r"^0[xX][0-9a-fA-F]{64}$")
_ZERO = "0x" + "00" * 32
_COLUMNS = (
    RECORDS.c.id, RECORDS.c.subject, RECORDS.c.kind, RECORDS.c.tier, RECORDS.c.issuer, RECORDS.c.legal_basis,
    RECORDS.c.measures, RECORDS.c.effective_at, RECORDS.c.public_until, RECORDS.c.valid_until,
    RECORDS.c.block_number, RECORDS.c.tx_hash, RECORDS.c.log_index, RECORDS.c.closed_block,
)  # fmt: skip


# input


class Subject(NamedTuple):
    """A subject id (0x + 64 lower-case hex) and, for an organisation, its credit code."""

    id: str
    code: str | None

    @property
    def is_person(self) -> bool:
        return self.code is None


_CHECK_TABLES = [{c: v * pow(3, i, 31) for v, c in enumerate(uscc.ALPHABET)} for i in range(17)]
"""Per position, each character's weighted GB 32100 value: the check character in one C-level pass."""


def _code_ok(code: str) -> bool:
    """Whether an 18-character code's final check character is right (uscc.validate says what is wrong if not)."""
    try:
        total = sum(map(dict.__getitem__, _CHECK_TABLES, code))
    except KeyError:
        return False
    return uscc.ALPHABET[(31 - total % 31) % 31] == code[17]


_PADDING = "00" * 14


def _code_in(subject: str) -> str | None:
    """:func:`node_bridge.credit.subject_code` of a 0x-hex subject id, with a quick exit for commitments."""
    return subject_code(bytes.fromhex(subject[2:])) if subject.endswith(_PADDING) else None


def parse_subject(value: str, field: str = "subject") -> Subject:
    """A credit code (validated) or a 0x-hex 32-byte subject id; :class:`ValidationFailed` on ``field`` if neither."""
    if value[:2] in ("0x", "0X"):
        if not _HEX32.match(value):
            raise ValidationFailed(field, "a 0x-hex subject id must have 64 hex digits (32 bytes)")
        subject = "0x" + value[2:].lower()
        if subject == _ZERO:
            raise ValidationFailed(field, "must not be zero")
        return Subject(subject, _code_in(subject))
    if len(value) != 18:
        raise ValidationFailed(
            field, f"must be a unified social credit code (18 characters) or a 0x-hex 32-byte id, got {len(value)}"
        )
    # the common case quickly; anything wrong goes through uscc.validate for the message naming the position
    if not _code_ok(value):
        uscc.validate(value, field=field)
    return Subject("0x" + value.encode().ljust(32, b"\0").hex(), value)


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


# records and their evaluation


class Entry(NamedTuple):
    """A record as status answers show it, prepared once: its JSON is serialised when it is loaded."""

    id: str
    subject: str
    flag: int
    effective_at: int
    valid_until: int
    mask: int
    order: tuple[int, int]
    view: orjson.Fragment
    """Every field shown in a status answer (the list it is in, ``records`` or ``notice``, says its state)."""
    ref: orjson.Fragment
    """``{id, kind, tier, block_number, log_index, tx_hash}``: the record and the transaction that carried it."""


def _fragment(value: Any) -> orjson.Fragment:
    """Pre-serialised JSON, copied to its exact size (``orjson.dumps`` keeps a buffer of several KB)."""
    return orjson.Fragment(bytes(memoryview(orjson.dumps(value))))


class Views:
    """Builds answers: memoised JSON pieces of the catalogue, entries from rows, and the evaluation itself."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._slugs: dict[int, list[str]] = {}
        self._slug_json: dict[int, orjson.Fragment] = {}
        self._measures: dict[int, dict[str, Any]] = {}

    def slugs(self, mask: int) -> list[str]:
        found = self._slugs.get(mask)
        if found is None:
            found = self._slugs[mask] = [m.slug for m in self.catalogue.describe(mask)]
        return found

    def slug_json(self, mask: int) -> orjson.Fragment:
        found = self._slug_json.get(mask)
        if found is None:
            found = _fragment(self.slugs(mask))
            if len(self._slug_json) < 65536:
                self._slug_json[mask] = found
        return found

    def measure(self, code: int) -> dict[str, Any]:
        found = self._measures.get(code)
        if found is None:
            found = self._measures[code] = self.catalogue.by_code(code).model_dump(exclude={"description"})
        return found

    def entry(self, row: Sequence[Any]) -> Entry:
        """An :class:`Entry` from a row of :data:`_COLUMNS`."""
        (record_id, subject, kind, tier, issuer, legal_basis, measures, effective_at, public_until, valid_until,
         block_number, tx_hash, log_index, _closed_block) = row  # fmt: skip
        mask = self.catalogue.due_mask(kind, tier, measures)
        ref = {"id": record_id, "kind": kind, "tier": tier, "block_number": block_number, "log_index": log_index,
               "tx_hash": tx_hash}  # fmt: skip
        view = {
            **ref, "issuer": issuer, "legal_basis": legal_basis, "measures": self.slugs(mask),
            "effective_at": effective_at, "public_until": public_until, "valid_until": valid_until,
        }  # fmt: skip
        return Entry(
            record_id, subject, LIST_FLAGS.get(kind, 0), effective_at, valid_until, mask, (block_number, log_index),
            _fragment(view), _fragment(ref),
        )  # fmt: skip

    def _clear(self, subject: Subject, full: bool) -> dict[str, Any]:
        """The status of a subject without open records."""
        answer: dict[str, Any] = {"subject": subject.id, "subject_code": subject.code, "red_listed": False,
                  "blacklisted": False, "records": [], "notice": [], "measures_due": []}  # fmt: skip
        if full:
            answer["proof"] = {"red_list": [], "blacklist": []}
        return answer

    def evaluate(self, subject: Subject, entries: Sequence[Entry], now: int, full: bool = True) -> dict[str, Any]:
        """The status of ``subject`` at unix time ``now`` from its open records (closed ones must be left out).

        ``full``: records with every field, measures_due with names and the records behind each, and the proof;
        otherwise (batch, compact) records as references and measures_due as slugs.
        """
        if not entries:
            return self._clear(subject, full)
        active: list[Entry] = []
        notice: list[Entry] = []
        red = black = False
        union = 0
        for entry in entries:
            if entry.valid_until <= now:
                continue
            if entry.effective_at > now:
                notice.append(entry)
                continue
            active.append(entry)
            if entry.flag == RED:
                red = True
            elif entry.flag == BLACK:
                black = True
            union |= entry.mask
        if not full:
            return {
                "subject": subject.id, "subject_code": subject.code, "red_listed": red, "blacklisted": black,
                "records": [e.ref for e in active], "notice": [e.ref for e in notice],
                "measures_due": self.slug_json(union),
            }  # fmt: skip
        due = []
        code = 0
        while union >> code:
            if union >> code & 1:
                due.append({**self.measure(code), "records": [e.id for e in active if e.mask >> code & 1]})
            code += 1
        return {
            "subject": subject.id,
            "subject_code": subject.code,
            "red_listed": red,
            "blacklisted": black,
            "records": [e.view for e in active],
            "notice": [e.view for e in notice],
            "measures_due": due,
            "proof": {
                "red_list": [e.ref for e in active if e.flag == RED],
                "blacklist": [e.ref for e in active if e.flag == BLACK],
            },
        }


def _gone(session: Session, subject: Subject) -> Gone | None:
    """The one place that asks :mod:`credtrace.persons` whether a natural person was shredded (410)."""
    if not subject.is_person:
        return None
    try:
        persons.ensure_not_shredded(session, subject.id)
    except Gone as exc:
        return exc
    return None


def _shredded_among(session: Session | Connection, commitments: Sequence[str]) -> set[str]:
    """Which of ``commitments`` the ``person`` table marks shredded (one query per 500, not one per subject)."""
    found: set[str] = set()
    unique = list(dict.fromkeys(commitments))
    for begin in range(0, len(unique), IN_CHUNK):
        query = select(PERSONS.c.commitment).where(
            PERSONS.c.commitment.in_(unique[begin : begin + IN_CHUNK]), PERSONS.c.shredded_at.is_not(None)
        )
        found.update(str(c).lower() for c in session.execute(query).scalars())
    return found


def gone_item(subject: Subject, exc: Gone) -> dict[str, Any]:
    """A batch result for a shredded subject (the batch goes on; a single request answers 410)."""
    return {"subject": subject.id, "subject_code": None, "error": "Gone", "message": str(exc)}


# the index


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
    for begin in range(0, len(unique), IN_CHUNK):
        query = (
            select(*_COLUMNS)
            .where(RECORDS.c.subject.in_(unique[begin : begin + IN_CHUNK]), accepted, open_then)
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
        suspects = _shredded_among(session, [s.id for s in subjects if s.is_person])
        for index, subject in enumerate(subjects):
            if subject.id in suspects and (gone := _gone(session, subject)) is not None:
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


# the cache of what matters now


@dataclass
class _Delta:
    head: Checkpoint
    closed: list[tuple[str, str]]
    """(record id, subject) of records closed since the last refresh."""
    opened: list[Entry]
    """Records accepted since (and not closed by the new checkpoint), prepared in the worker thread."""


@dataclass
class _Reload:
    head: Checkpoint | None
    by_id: dict[str, Entry]
    by_subject: dict[str, tuple[Entry, ...]]
    expiry: list[tuple[int, str]]


@dataclass
class StatusCache:
    """Open records grouped by subject, in memory, for the current-time answers (see the module docstring).

    Mutations happen on the event loop (SQL runs in a worker thread and hands rows back), so a request never
    sees a half-applied refresh.
    """

    engine: Engine
    catalogue: Catalogue
    chain_id: int | None = None
    interval: float = 0.2
    clock: Callable[[], float] = time.time
    shredded_interval: float = SHREDDED_POLL_SECONDS
    views: Views = field(init=False)
    by_id: dict[str, Entry] = field(default_factory=dict)
    by_subject: dict[str, tuple[Entry, ...]] = field(default_factory=dict)
    shredded: frozenset[str] = frozenset()
    head: Checkpoint | None = None
    loaded: bool = False
    refreshed_at: float = 0.0
    _lock: asyncio.Lock | None = None
    _task: asyncio.Task[None] | None = None
    _expiry: list[tuple[int, str]] = field(default_factory=list)
    _shredded_at: float = 0.0

    def __post_init__(self) -> None:
        self.views = Views(self.catalogue)

    # answers

    @property
    def as_of_block(self) -> int | None:
        return self.head.number if self.head else None

    def answer(self, subject: Subject) -> dict[str, Any]:
        """The current status of ``subject`` with its ``as_of_block``; call :meth:`ensure_fresh` first."""
        now = int(self.clock())
        result = self.views.evaluate(subject, self.by_subject.get(subject.id, ()), now)
        result["as_of_block"] = self.as_of_block
        result["as_of_time"] = now
        result["source"] = "live"
        return result

    def answer_many(self, subjects: Sequence[Subject], full: bool = False) -> dict[str, Any]:
        """Current statuses of ``subjects`` (compact unless ``full``); the shredded ones flagged ``Gone``."""
        now = int(self.clock())
        evaluate, by_subject, shredded = self.views.evaluate, self.by_subject, self.shredded
        results: list[dict[str, Any]] = []
        for subject in subjects:
            if subject.code is None and subject.id in shredded:
                results.append(gone_item(subject, Gone(subject.id, "this natural person's data was erased")))
            else:
                results.append(evaluate(subject, by_subject.get(subject.id, ()), now, full))
        meta = {"as_of_block": self.as_of_block, "as_of_time": now, "source": "live"}
        return {"meta": meta, "results": results}

    def gone_among(self, subjects: Sequence[Subject]) -> dict[str, Gone]:
        """Which of ``subjects`` were shredded, as :mod:`credtrace.persons` says (SQL; for the few the set flags)."""
        with Session(self.engine) as session:
            return {s.id: gone for s in subjects if (gone := _gone(session, s)) is not None}

    def refuse_shredded(self, subject: Subject) -> None:
        """410 for a shredded natural person (SQL, only when the in-memory set says it may be one)."""
        with Session(self.engine) as session:
            if (gone := _gone(session, subject)) is not None:
                raise gone

    # loading and refreshing

    async def ensure_fresh(self) -> None:
        """Load on first use; refresh when no background task keeps the cache fresh (e.g. lifespan not run)."""
        if not self.loaded or (self._task is None and time.monotonic() - self.refreshed_at >= self.interval):
            await self.refresh()

    async def refresh(self) -> int:
        """Fold what the indexer wrote since the last refresh into memory; returns the records changed."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            now = time.monotonic()
            changed = await asyncio.to_thread(self._read_changes)
            if now - self._shredded_at >= self.shredded_interval or not self.loaded:
                self.shredded = await asyncio.to_thread(self._read_shredded)
                self._shredded_at = now
            count = self._apply(changed)
            self._prune()
            self.loaded = True
            self.refreshed_at = now
            return count

    def _read_changes(self) -> _Delta | _Reload | None:
        with self.engine.connect() as session:  # Core, not the ORM: this runs five times a second
            head = read_checkpoint(session, self.chain_id)
            last = self.head
            if not self.loaded or head is None or last is None or head.number < last.number:
                return self._read_all(session, head)
            if head == last:
                return None
            query = select(BLOCKS.c.hash).where(BLOCKS.c.number == last.number)
            if self.chain_id is not None:
                query = query.where(BLOCKS.c.chain_id == self.chain_id)
            if session.execute(query).scalar() != last.hash:  # the block we stood on was replaced: reorg
                log.info("status cache: block %s was replaced; reloading", last.number)
                return self._read_all(session, head)
            changed = or_(
                RECORDS.c.block_number.between(last.number + 1, head.number),
                RECORDS.c.closed_block.between(last.number + 1, head.number),
            )
            closed: list[tuple[str, str]] = []
            opened: list[Entry] = []
            now = int(self.clock())
            for row in session.execute(select(*_COLUMNS).where(changed)):
                if row[13] is not None and row[13] <= head.number:
                    closed.append((row[0], row[1]))
                elif row[9] > now:
                    opened.append(self.views.entry(row))
            return _Delta(head, closed, opened)

    def _read_all(self, session: Connection, head: Checkpoint | None) -> _Reload:
        if head is None:
            return _Reload(None, {}, {}, [])
        now = int(self.clock())
        query = select(*_COLUMNS).where(
            RECORDS.c.block_number <= head.number,
            or_(RECORDS.c.closed_block.is_(None), RECORDS.c.closed_block > head.number),
            RECORDS.c.valid_until > now,
        )
        by_id: dict[str, Entry] = {}
        grouped: dict[str, list[Entry]] = {}
        entry = self.views.entry
        for row in session.execute(query.order_by(RECORDS.c.block_number, RECORDS.c.log_index)):
            item = by_id[row[0]] = entry(row)
            grouped.setdefault(item.subject, []).append(item)
        expiry = [(e.valid_until, e.id) for e in by_id.values()]
        heapq.heapify(expiry)
        return _Reload(head, by_id, {subject: tuple(items) for subject, items in grouped.items()}, expiry)

    def _read_shredded(self) -> frozenset[str]:
        with self.engine.connect() as session:
            query = select(PERSONS.c.commitment).where(PERSONS.c.shredded_at.is_not(None))
            return frozenset(str(c).lower() for c in session.execute(query).scalars())

    def _apply(self, change: _Delta | _Reload | None) -> int:
        if change is None:
            return 0
        if isinstance(change, _Reload):
            self.by_id, self.by_subject, self.head = change.by_id, change.by_subject, change.head
            self._expiry = change.expiry
            if len(change.by_id) >= FREEZE_AT:
                # Keep the long-lived cache out of the cyclic garbage collector's full passes, which would
                # otherwise scan it again and again while requests allocate (a 10,000-subject batch ran 5x slower).
                gc.collect()
                gc.freeze()
            return len(change.by_id)
        added: dict[str, list[Entry]] = {}
        touched: set[str] = set()
        for record_id, subject in change.closed:
            if self.by_id.pop(record_id, None) is not None:
                touched.add(subject)
        for entry in change.opened:
            self.by_id[entry.id] = entry
            heapq.heappush(self._expiry, (entry.valid_until, entry.id))
            added.setdefault(entry.subject, []).append(entry)
            touched.add(entry.subject)
        for subject in touched:
            merged = {e.id: e for e in self.by_subject.get(subject, ())}
            merged.update((e.id, e) for e in added.get(subject, ()))
            kept = sorted((e for e in merged.values() if self.by_id.get(e.id) is e), key=lambda e: e.order)
            if kept:
                self.by_subject[subject] = tuple(kept)
            else:
                self.by_subject.pop(subject, None)
        self.head = change.head
        return len(change.closed) + len(change.opened)

    def _prune(self) -> None:
        """Drop records whose validity ended (they can never be active again): a heap by ``valid_until``."""
        now = int(self.clock())
        expiry, by_id = self._expiry, self.by_id
        subjects = set()
        while expiry and expiry[0][0] <= now:
            valid_until, record_id = heapq.heappop(expiry)
            entry = by_id.get(record_id)
            if entry is not None and entry.valid_until == valid_until:
                del by_id[record_id]
                subjects.add(entry.subject)
        for subject in subjects:
            kept = tuple(e for e in self.by_subject.get(subject, ()) if e.id in by_id)
            if kept:
                self.by_subject[subject] = kept
            else:
                self.by_subject.pop(subject, None)

    # the background task

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="status-cache")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self.refresh()
                failures = 0
                delay = self.interval
            except Exception as exc:  # the database may be briefly away: keep serving what we have
                failures += 1
                delay = min(30.0, self.interval * 2**failures)
                log.warning("status cache refresh failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)


# compliance


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


# public lists


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


# wiring


def install(app: FastAPI, settings: Settings) -> StatusCache:
    """Load the catalogue (fails loudly if invalid), create the status cache, and run its refresher with the app."""
    catalogue = load_catalogue(settings.measures_config)
    chain_id = settings.anvil_chain_id if settings.chain == "anvil" else None
    cache = StatusCache(app.state.engine, catalogue, chain_id, settings.status_refresh_seconds)
    app.state.catalogue = catalogue
    app.state.status_cache = cache
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        await cache.start()
        try:
            async with previous(application) as state:
                yield state
        finally:
            await cache.stop()

    app.router.lifespan_context = lifespan
    return cache
