"""The change feed (C4): the registries' events, as the index holds them, in chain order behind a cursor.

An item is one row of ``chain_event``, ordered by (block number, log index): a credit record issued, revoked or
repaired, an enforcement receipt, or an event of another registry that lists it in its index module's ``FEED``
(logistics evaluations, compensation cases, account bindings, supervision cases...; see :func:`sources`). A
registry's ``FEED_ROLES`` says who may read its items: a caller sees only the sources its roles allow (supervision
cases are for regulators and auditors, not platforms). Its cursor is an opaque token of that position and of the
first 8 bytes of its block's hash: a fact of the chain, so it survives ``credtrace index rebuild`` and means the
same on every API process. Reading "after" a cursor:

- if the cursor's block is still the indexed block at that height (``indexed_block``), or is older than
  ``reorg_window`` blocks below the checkpoint (final: no reorg can reach it), reading resumes right after it;
- otherwise the chain was reorganised under the reader: reading resumes ``reorg_window`` blocks below the
  cursor's block (the deepest the indexer follows), and the page says so (``rewound_to_block``). Items may then
  come again (deduplicate by ``id``), and items that were seen may never come again (they left the chain).

Filters (subjects, kinds, types) are applied while scanning; a page scans a bounded number of rows, so a
filtered page may be empty with a ``next_cursor`` past the rows it skipped (``has_more`` tells whether to read on).

:class:`FeedHub` is the per-process poller the SSE stream waits on: it reads the indexer checkpoint every
``feed_poll_interval`` seconds while anyone listens and wakes every listener when it moves.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, and_, or_, select
from starlette.concurrency import run_in_threadpool

from credtrace.errors import ValidationFailed
from node_bridge import credit
from node_bridge.credit import Kind, Tier, record_from_event, subject_code
from node_bridge.models import ChainEvent, CreditRecordRow, IndexedBlock, IndexerCheckpoint
from node_bridge.projections import chunks, table_of

log = logging.getLogger(__name__)

EVENTS = table_of(ChainEvent)
BLOCKS = table_of(IndexedBlock)
CHECKPOINTS = table_of(IndexerCheckpoint)
RECORDS = table_of(CreditRecordRow)

TYPES: dict[str, str] = {
    "RecordIssued": "record_issued",
    "RecordRevoked": "record_revoked",
    "RecordRepaired": "record_repaired",
    "EnforcementFiled": "enforcement_filed",
}
MAX_LOG_INDEX = 2**31 - 1  # log_index is a signed 32-bit column
_CURSOR_VERSION = 1
_CURSOR_BYTES = 1 + 8 + 4 + 8
_HASH_PREFIX = 8
_NO_HASH = bytes(_HASH_PREFIX)
SCAN_FACTOR = 20
"""A filtered page scans at most this many rows per item asked for (at least 2,000) before it answers."""
IN_CHUNK = 500


# cursors


@dataclass(frozen=True)
class Position:
    """A place in the feed: after log ``log_index`` of block ``block``; ``block_hash`` (8 bytes) when known."""

    block: int
    log_index: int
    block_hash: bytes | None = None

    @property
    def token(self) -> str:
        """The opaque cursor: base64url of version, block, log index and hash prefix."""
        raw = bytes([_CURSOR_VERSION]) + self.block.to_bytes(8, "big") + self.log_index.to_bytes(4, "big")
        raw += self.block_hash or _NO_HASH
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def at(cls, block: int, log_index: int, block_hash: str) -> Position:
        return cls(block, log_index, _prefix(block_hash))


START = Position(0, MAX_LOG_INDEX)
"""Before every item (the genesis block holds no events)."""


def _prefix(block_hash: str) -> bytes:
    return bytes.fromhex(block_hash.removeprefix("0x")[: 2 * _HASH_PREFIX])


def parse_cursor(token: str | None, field: str = "cursor") -> Position | None:
    """A cursor token as a :class:`Position`; None for "now" (the caller resolves it); START if empty.

    :class:`ValidationFailed` naming ``field`` if the token is not one this feed gave out.
    """
    if token is None or not token.strip():
        return START
    token = token.strip()
    if token.lower() == "now":
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _CURSOR_BYTES or raw[0] != _CURSOR_VERSION:
        raise ValidationFailed(field, f"{token[:80]!r} is not a feed cursor (use a next_cursor or an item's cursor)")
    block, log_index, block_hash = int.from_bytes(raw[1:9], "big"), int.from_bytes(raw[9:13], "big"), raw[13:]
    return Position(block, log_index, None if block_hash == _NO_HASH else block_hash)


# sources


@dataclass(frozen=True)
class FeedSource:
    """One contract's events in the feed: event name → item type, and the roles that may read them (None: all)."""

    contract: str
    types: dict[str, str]
    roles: int | None = None


@cache
def sources() -> tuple[FeedSource, ...]:
    """The CreditRegistry's items, then each registry projection's ``FEED`` (:data:`node_bridge.indexer.INDEXES`)."""
    from node_bridge.indexer import INDEXES

    found = [FeedSource(credit.CONTRACT, TYPES)]
    for index in INDEXES:
        feed = getattr(index, "FEED", None)
        if feed:
            found.append(FeedSource(index.CONTRACT, dict(feed), getattr(index, "FEED_ROLES", None)))
    return tuple(found)


def item_types() -> list[str]:
    return [t for source in sources() for t in source.types.values()]


def visible_sources(roles: int | None) -> list[FeedSource]:
    """The sources a reader holding ``roles`` may read; ``roles`` None: every source (the system itself)."""
    return [s for s in sources() if roles is None or s.roles is None or roles & s.roles]


@cache
def _struct_names(contract: str, event: str) -> dict[str, list[str]]:
    """For each struct argument of ``contract``'s ``event``: its field names, from the ABI."""
    from node_bridge.compiler import artifact

    for entry in artifact(contract).abi:
        if entry.get("type") == "event" and entry["name"] == event:
            return {i["name"]: [c["name"] for c in i["components"]] for i in entry["inputs"] if i["type"] == "tuple"}
    return {}


def named_args(contract: str, event: str, args: dict[str, Any]) -> dict[str, Any]:
    """An event's arguments with each struct (stored as a list) as an object keyed by its field names."""
    structs = _struct_names(contract, event)
    return {
        name: dict(zip(structs[name], value, strict=False)) if name in structs and isinstance(value, list) else value
        for name, value in args.items()
    }


SUBJECT_ARGS = ("subject", "merchant", "firm")
"""Where a registry's item names its subject (first found, in its arguments or their structs)."""


def _subject_in(data: dict[str, Any]) -> str | None:
    for scope in (data, *(v for v in data.values() if isinstance(v, dict))):
        for name in SUBJECT_ARGS:
            value = scope.get(name)
            if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
                return value
    return None


# filters


class FeedItem(BaseModel):
    """One change: a record issued, revoked or repaired, an enforcement receipt filed, or another registry's event."""

    cursor: str = Field(description="resume after this item: pass it as ?cursor= or Last-Event-ID")
    type: str = Field(description="item type: record_issued, record_revoked, record_repaired, enforcement_filed, …")
    contract: str = Field(credit.CONTRACT, description="the registry that emitted it")
    id: str = Field(description="EIP-712 id of the signed message: the record, the closure, the receipt, …")
    record_id: str | None = Field(None, description="the credit record concerned (credit items)")
    subject: str | None = Field(description="0x-hex subject id (an organisation's code, padded, or a commitment)")
    subject_code: str | None = Field(description="the organisation's credit code; null for a natural person")
    kind: str | None = Field(description="kind of the record concerned, e.g. blacklist")
    tier: str | None = Field(None, description="record_issued: minor | general | severe")
    measures: int | None = Field(None, description="record_issued: bits of the measure catalogue")
    effective_at: int | None = Field(None, description="record_issued: unix seconds; before it, the notice window")
    public_until: int | None = Field(None, description="record_issued: end of the publication window")
    valid_until: int | None = Field(None, description="record_issued: end of validity")
    issuer: str | None = Field(None, description="issuing organisation (member id) of a record or closure")
    signer: str | None = Field(description="address that signed the message")
    reason: str | None = Field(None, description="record_revoked / record_repaired: the reason given")
    platform: str | None = Field(None, description="enforcement_filed: the platform (member id)")
    measure: int | None = Field(None, description="enforcement_filed: the catalogue measure applied")
    applied_at: int | None = Field(None, description="enforcement_filed: when it was applied (unix seconds)")
    data: dict[str, Any] | None = Field(None, description="other registries' items: the event's arguments")
    block_number: int
    block_hash: str
    block_time: int | None = Field(description="unix seconds of the block, if the index holds it")
    tx_hash: str
    log_index: int


def parse_kind(value: str, field: str) -> str:
    """A record kind given as its slug (``red_list``), its name or its number, as the slug."""
    text = value.strip()
    if text.isdigit() and int(text) in Kind._value2member_map_:
        return Kind(int(text)).slug
    if text.upper() in Kind.__members__:
        return Kind[text.upper()].slug
    raise ValidationFailed(field, f"{value!r} is not a record kind ({', '.join(k.slug for k in Kind)})")


def parse_subject(value: str, field: str) -> str:
    """A subject given as a credit code or a 0x-hex id, as lowercase 0x-hex."""
    try:
        return "0x" + credit.subject_id(value.strip()).hex()
    except ValidationFailed as exc:
        raise ValidationFailed(field, exc.reason) from exc


def parse_type(value: str, field: str) -> str:
    text = value.strip().lower()
    if text not in item_types():
        raise ValidationFailed(field, f"{value!r} is not an item type ({', '.join(item_types())})")
    return text


def _values(values: Iterable[str] | None) -> list[str]:
    """Repeated and comma-separated query values, flattened."""
    return [part for value in values or () for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class FeedFilter:
    """Which items a reader wants; empty sets mean all."""

    subjects: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    @classmethod
    def parse(
        cls,
        subjects: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        fields: tuple[str, str, str] = ("subject", "kind", "type"),
    ) -> FeedFilter:
        """From user input; errors name ``fields`` (with the position when several values were given)."""

        def each(values: Iterable[str] | None, field: str, parse: Any) -> frozenset[str]:
            flat = _values(values)
            return frozenset(parse(v, f"{field}[{i}]" if len(flat) > 1 else field) for i, v in enumerate(flat))

        return cls(
            subjects=each(subjects, fields[0], parse_subject),
            kinds=each(kinds, fields[1], parse_kind),
            types=each(types, fields[2], parse_type),
        )

    def matches(self, item: FeedItem) -> bool:
        return (
            (not self.types or item.type in self.types)
            and (not self.subjects or item.subject in self.subjects)
            and (not self.kinds or item.kind in self.kinds)
        )

    def as_json(self) -> dict[str, list[str]]:
        return {"subjects": sorted(self.subjects), "kinds": sorted(self.kinds), "types": sorted(self.types)}


# reading


@dataclass(frozen=True)
class Page:
    items: list[FeedItem]
    next_cursor: str
    has_more: bool
    rewound_to_block: int | None = None


class FeedPage(BaseModel):
    """A page of the feed. Pass ``next_cursor`` back to read on; ``has_more`` false: you are at the head."""

    items: list[FeedItem]
    next_cursor: str
    has_more: bool = Field(description="more rows are already indexed after next_cursor")
    rewound_to_block: int | None = Field(
        None, description="set when the chain was reorganised under your cursor: reading resumed at this block"
    )


def chain_id_of(connection: Connection) -> int | None:
    """The chain the index follows (its only checkpoint); None if it holds none or several."""
    rows = connection.execute(select(CHECKPOINTS.c.chain_id)).all()
    return int(rows[0][0]) if len(rows) == 1 else None


def _on_chain(column: Any, chain_id: int | None) -> Any:
    return column == chain_id if chain_id is not None else True


def head(connection: Connection, chain_id: int | None = None) -> Position:
    """The position after everything indexed so far ("now"): the checkpoint block, after its last log."""
    row = connection.execute(
        select(CHECKPOINTS.c.block_number, CHECKPOINTS.c.block_hash)
        .where(_on_chain(CHECKPOINTS.c.chain_id, chain_id))
        .order_by(CHECKPOINTS.c.block_number.desc())
        .limit(1)
    ).first()
    return START if row is None else Position.at(row.block_number, MAX_LOG_INDEX, row.block_hash)


def still_on_chain(connection: Connection, position: Position, chain_id: int | None, window: int) -> bool:
    """Whether the indexed chain still goes through the position's block (see the module docstring)."""
    if position.block_hash is None:
        return True
    stored = connection.execute(
        select(BLOCKS.c.hash).where(_on_chain(BLOCKS.c.chain_id, chain_id), BLOCKS.c.number == position.block)
    ).first()
    if stored is not None:
        return _prefix(stored.hash) == position.block_hash
    checkpoint = connection.execute(
        select(CHECKPOINTS.c.block_number).where(_on_chain(CHECKPOINTS.c.chain_id, chain_id))
    ).first()
    return checkpoint is not None and position.block < checkpoint.block_number - window


def read_page(
    engine: Engine,
    after: Position | None,
    *,
    limit: int = 100,
    where: FeedFilter | None = None,
    reorg_window: int = 64,
    chain_id: int | None = None,
    scan: int | None = None,
    roles: int | None = None,
) -> Page:
    """Items after ``after`` (None: "now"), at most ``limit``, matching ``where``; one consistent snapshot.

    ``roles``: the reader's role bits, which decide the sources it sees (:func:`visible_sources`); None: all.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":  # every query of the page sees the same index state
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            sources_ = visible_sources(roles)
            return _read(connection, after, limit, where or FeedFilter(), reorg_window, chain_id, scan, sources_)


def _read(
    connection: Connection,
    after: Position | None,
    limit: int,
    where: FeedFilter,
    window: int,
    chain_id: int | None,
    scan: int | None,
    sources_: list[FeedSource],
) -> Page:
    if chain_id is None:
        chain_id = chain_id_of(connection)
    if after is None:
        after = head(connection, chain_id)
    rewound: int | None = None
    position = after
    if not still_on_chain(connection, after, chain_id, window):
        rewound = max(0, after.block - window)
        position = Position(rewound - 1, MAX_LOG_INDEX) if rewound > 0 else START
    budget = scan if scan is not None else max(limit * SCAN_FACTOR, 2_000)
    filtered = where != FeedFilter()
    items: list[FeedItem] = []
    last: Position | None = None
    while len(items) < limit and budget > 0:
        wanted = limit - len(items)
        chunk = min(budget, max(wanted, 100) if filtered else wanted)
        rows = _rows(connection, position, chunk, chain_id, sources_)
        budget -= len(rows)
        for item in _items(connection, rows, sources_):
            last = Position.at(item.block_number, item.log_index, item.block_hash)
            if where.matches(item):
                items.append(item)
                if len(items) == limit:
                    break
        if last is not None:
            position = last
        if len(rows) < chunk:
            break
    if last is None:
        next_position = position if rewound is not None else after
        return Page([], next_position.token, has_more=False, rewound_to_block=rewound)
    has_more = bool(_rows(connection, last, 1, chain_id, sources_))
    return Page(items, last.token, has_more=has_more, rewound_to_block=rewound)


def _rows(
    connection: Connection, after: Position, limit: int, chain_id: int | None, sources_: list[FeedSource]
) -> Sequence[Any]:
    e = EVENTS.c
    wanted = or_(*(and_(e.contract == s.contract, e.name.in_(list(s.types))) for s in sources_))
    query = (
        select(
            e.block_number,
            e.log_index,
            e.block_hash,
            e.tx_hash,
            e.contract,
            e.name,
            e.args,
            BLOCKS.c.timestamp.label("block_time"),
        )
        .select_from(EVENTS.outerjoin(BLOCKS, and_(BLOCKS.c.chain_id == e.chain_id, BLOCKS.c.number == e.block_number)))
        .where(
            _on_chain(e.chain_id, chain_id),
            wanted,
            e.block_number >= after.block,
            or_(e.block_number > after.block, e.log_index > after.log_index),
        )
        .order_by(e.block_number, e.log_index)
        .limit(limit)
    )
    return connection.execute(query).all()


def _items(connection: Connection, rows: Sequence[Any], sources_: list[FeedSource]) -> list[FeedItem]:
    """Feed items of ``chain_event`` rows; closures and receipts get their record's subject and kind."""
    others = {s.contract: s.types for s in sources_ if s.contract != credit.CONTRACT}
    credit_rows = [row for row in rows if row.contract == credit.CONTRACT]
    issued = {row.args["id"]: row for row in credit_rows if row.name == "RecordIssued"}
    wanted = sorted(
        {row.args["recordId"] if row.name == "EnforcementFiled" else row.args["id"] for row in credit_rows}
        - set(issued)
    )
    known: dict[str, tuple[str, str | None, str]] = {}  # record id -> (subject, subject code, kind)
    for chunk in chunks(wanted, IN_CHUNK):
        for r in connection.execute(
            select(RECORDS.c.id, RECORDS.c.subject, RECORDS.c.subject_code, RECORDS.c.kind).where(
                RECORDS.c.id.in_(chunk)
            )
        ):
            known[r.id] = (r.subject, r.subject_code, r.kind)
    items = []
    for row in rows:
        a: dict[str, Any] = row.args
        common: dict[str, Any] = {
            "cursor": Position.at(row.block_number, row.log_index, row.block_hash).token,
            "type": TYPES[row.name] if row.contract == credit.CONTRACT else others[row.contract][row.name],
            "signer": a.get("signer"),
            "block_number": row.block_number,
            "block_hash": row.block_hash,
            "block_time": row.block_time,
            "tx_hash": row.tx_hash,
            "log_index": row.log_index,
        }
        if row.contract != credit.CONTRACT:
            data = named_args(row.contract, row.name, a)
            subject = _subject_in(data)
            items.append(
                FeedItem(
                    **common,
                    contract=row.contract,
                    id=str(a.get("id") or f"{row.tx_hash}:{row.log_index}"),
                    subject=subject,
                    subject_code=subject_code(bytes.fromhex(subject[2:])) if subject else None,
                    kind=None,
                    data=data,
                )
            )
            continue
        if row.name == "RecordIssued":
            record = record_from_event(a["record"])
            known[a["id"]] = (a["subject"], subject_code(record["subject"]), Kind(record["kind"]).slug)
            items.append(
                FeedItem(
                    **common,
                    id=a["id"],
                    record_id=a["id"],
                    subject=a["subject"],
                    subject_code=subject_code(record["subject"]),
                    kind=Kind(record["kind"]).slug,
                    tier=Tier(record["tier"]).name.lower(),
                    measures=record["measures"],
                    effective_at=record["effectiveAt"],
                    public_until=record["publicUntil"],
                    valid_until=record["validUntil"],
                    issuer=a["issuer"],
                )
            )
            continue
        record_id = a["recordId"] if row.name == "EnforcementFiled" else a["id"]
        subject, code, kind = known.get(record_id, (None, None, None))
        extra: dict[str, Any]
        if row.name == "EnforcementFiled":
            subject = a["subject"]
            code = subject_code(bytes.fromhex(subject[2:]))
            extra = {"id": a["id"], "platform": a["platform"], "measure": a["measure"], "applied_at": a["appliedAt"]}
        else:
            extra = {"id": a["closureId"], "issuer": a["issuer"], "reason": a["reason"]}
        items.append(FeedItem(**common, **extra, record_id=record_id, subject=subject, subject_code=code, kind=kind))
    return items


def head_cursor(engine: Engine) -> str:
    """The cursor of "now": after everything indexed so far."""
    with engine.connect() as connection:
        return head(connection, chain_id_of(connection)).token


# the shared poller


class FeedHub:
    """One poller per API process: it watches the indexer checkpoint while anyone listens and wakes them all.

    A listener takes :meth:`changed` *before* it reads the feed, then awaits it: a checkpoint that moves while it
    reads still wakes it. The poll runs only while there are subscribers (started by the first, ended after the
    last), so it needs no start or stop hook.
    """

    def __init__(self, engine: Engine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscribers = 0
        self._signal: tuple[Any, ...] | None = None

    def changed(self) -> asyncio.Event:
        """The event set at the next move of the checkpoint."""
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    @asynccontextmanager
    async def subscription(self) -> AsyncIterator[FeedHub]:
        self._subscribers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="feed-hub")
        try:
            yield self
        finally:
            self._subscribers -= 1

    def _read_signal(self) -> tuple[Any, ...]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(CHECKPOINTS.c.chain_id, CHECKPOINTS.c.block_number, CHECKPOINTS.c.block_hash).order_by(
                    CHECKPOINTS.c.chain_id
                )
            ).all()
        return tuple(tuple(row) for row in rows)

    async def _poll(self) -> None:
        while self._subscribers > 0:
            try:
                signal = await run_in_threadpool(self._read_signal)
            except Exception as exc:  # the database is down: listeners keep waiting, we keep trying
                log.warning("feed poll failed: %s", exc)
            else:
                if signal != self._signal:
                    self._signal = signal
                    self.notify()
            await asyncio.sleep(self.interval)

    def notify(self) -> None:
        """Wake every listener now."""
        event, self._event = self.changed(), asyncio.Event()
        event.set()
