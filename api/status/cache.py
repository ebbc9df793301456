"""The answers *now* (no ``at``): :class:`StatusCache`, one per API process, and :func:`install`, which runs it.

It holds, grouped by subject, every indexed record that still matters (not closed, ``valid_until`` in the future,
notice windows included), loaded when the app starts and refreshed every ``status_refresh_seconds`` (0.2 s) by a
background task: it reads the indexer checkpoint, then the ``credit_record`` rows accepted or closed in blocks after
the last checkpoint it saw, up to the new one (the indexer commits rows and checkpoint together, so reading the
checkpoint first gives a consistent cut). If the block it last saw was replaced (a reorg), it reloads everything.
The answer is evaluated at the wall clock's ``now`` over the index as of ``as_of_block`` (the checkpoint of the last
refresh); no SQL is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Connection, Engine, or_, select
from sqlmodel import Session

from api.lifespan import extend_lifespan
from api.status.evaluation import Entry, Views
from api.status.index import BLOCKS, COLUMNS, PERSONS, RECORDS, Checkpoint, read_checkpoint
from api.status.shredded import gone_item, gone_of
from api.status.subjects import Subject
from credtrace.errors import Gone
from credtrace.measures import Catalogue, load_catalogue
from credtrace.settings import Settings

log = logging.getLogger("api.status")  # the package's logger, the name it had before the split

SHREDDED_POLL_SECONDS = 1.0
FREEZE_AT = 10_000


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
            return {s.id: gone for s in subjects if (gone := gone_of(session, s)) is not None}

    def refuse_shredded(self, subject: Subject) -> None:
        """410 for a shredded natural person (SQL, only when the in-memory set says it may be one)."""
        with Session(self.engine) as session:
            if (gone := gone_of(session, subject)) is not None:
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
            for row in session.execute(select(*COLUMNS).where(changed)):
                if row[13] is not None and row[13] <= head.number:
                    closed.append((row[0], row[1]))
                elif row[9] > now:
                    opened.append(self.views.entry(row))
            return _Delta(head, closed, opened)

    def _read_all(self, session: Connection, head: Checkpoint | None) -> _Reload:
        if head is None:
            return _Reload(None, {}, {}, [])
        now = int(self.clock())
        query = select(*COLUMNS).where(
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


# wiring


def install(app: FastAPI, settings: Settings) -> StatusCache:
    """Load the catalogue (fails loudly if invalid), create the status cache, and run its refresher with the app."""
    catalogue = load_catalogue(settings.measures_config)
    chain_id = settings.anvil_chain_id if settings.chain == "anvil" else None
    cache = StatusCache(app.state.engine, catalogue, chain_id, settings.status_refresh_seconds)
    app.state.catalogue = catalogue
    app.state.status_cache = cache
    extend_lifespan(app, start=cache.start, stop=cache.stop)
    return cache
