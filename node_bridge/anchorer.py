"""The anchorer: closes batches of accepted trace events into RFC 6962 trees and queues one anchor per batch.

Every ``anchor_interval`` seconds (or at once when ``anchor_max_batch`` events wait, or when ``anchor_min_batch``
or more wait and no more arrived since the last look, as at the end of a burst), :meth:`Anchorer.close_batch`
takes the events no batch holds yet in (accepted_at, id) order, up to ``anchor_max_batch``; builds the tree over
their ids (each id is the event's EIP-712 digest: the leaf data); signs an ``Anchor`` (index = the next batch
index, previous root = the last batch's root, zero for the first; the events' time range) with the anchor key (a
REGULATOR's keystore, ``anchor_key``); and in ONE SQL transaction stores the :class:`AnchorBatch`, sets each
event's batch and leaf index, and puts the ``anchor`` call in the outbox under the Anchor's digest. The relayer
sends it like any write; the indexer records ``BatchAnchored`` in ``trace_chain_anchor``, after which
``GET /v1/trace/events/{id}/proof`` answers.

Restart-safe: a crash before the commit leaves nothing (the events are still unbatched), after it everything; two
anchorers cannot both close batch N (primary key) nor batch one event twice (the update is conditional).
Run it with ``python -m node_bridge.anchorer`` (``credtrace up`` does, see :mod:`credtrace.supervisor`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import Connection, Engine, func, insert, literal_column, select
from sqlalchemy.exc import IntegrityError

from credtrace.errors import CredtraceError
from credtrace.settings import Settings
from node_bridge import outbox, trace
from node_bridge.merkle import MerkleTree
from node_bridge.models import utcnow
from node_bridge.projections import table_of
from node_bridge.store import session_scope
from node_bridge.trace import ZERO32, TraceDomain
from node_bridge.trace_models import AnchorBatch, TraceEventRow

log = logging.getLogger("node_bridge.anchorer")
EVENTS = table_of(TraceEventRow)
ANCHORS = table_of(AnchorBatch)
MAX_BACKOFF = 5.0


class BatchClash(Exception):
    """Another anchorer batched some of the same events meanwhile (this transaction is rolled back)."""


@dataclass(frozen=True)
class Closed:
    """A batch the anchorer closed: its index, tree and the id (Anchor digest) of its outbox write."""

    index: int
    tree: MerkleTree
    anchor_id: str
    event_ids: list[str]


class Anchorer:
    """Batches the unbatched trace events of one store; see the module docstring."""

    def __init__(self, engine: Engine, domain: TraceDomain, account: LocalAccount, settings: Settings) -> None:
        self.engine = engine
        self.domain = domain
        self.account = account
        self.settings = settings
        self.max_batch = settings.anchor_max_batch
        self.min_batch = settings.anchor_min_batch
        self._seen: int | None = None  # events waiting at the last step

    def waiting(self) -> int:
        """Events no batch holds yet (counted up to ``max_batch``)."""
        with session_scope(self.engine) as session:
            # only the batch column: the count stays in its index, without reading the rows
            inner = select(EVENTS.c.batch).where(EVENTS.c.batch.is_(None)).limit(self.max_batch).subquery()
            return int(session.execute(select(func.count()).select_from(inner)).scalar_one())

    def close_batch(self, limit: int | None = None) -> Closed | None:
        """Close one batch of up to ``limit`` (default ``max_batch``) waiting events; None if none wait."""
        limit = limit or self.max_batch
        self._seen = None  # the next step looks afresh
        with session_scope(self.engine) as session:
            last = session.execute(
                select(ANCHORS.c.index, ANCHORS.c.root).order_by(ANCHORS.c.index.desc()).limit(1)
            ).first()
            sqlite = session.connection().dialect.name == "sqlite"
            key = literal_column("rowid") if sqlite else EVENTS.c.id  # how _place finds each row again
            rows = session.execute(
                select(EVENTS.c.id, EVENTS.c.time, key)
                .where(EVENTS.c.batch.is_(None))
                .order_by(EVENTS.c.accepted_at, EVENTS.c.id)
                .limit(limit)
            ).all()
            if not rows:
                return None
            index = 0 if last is None else int(last[0]) + 1
            previous = ZERO32 if last is None else bytes.fromhex(last[1][2:])
            ids = [r[0] for r in rows]
            times = [int(r[1]) for r in rows]
            tree = MerkleTree([bytes.fromhex(i[2:]) for i in ids])
            message = {
                "index": index,
                "root": tree.root,
                "size": tree.size,
                "previousRoot": previous,
                "firstTime": min(times),
                "lastTime": max(times),
            }
            digest = self.domain.digest("Anchor", message)
            signature = self.domain.sign(self.account, "Anchor", message)
            anchor_id = "0x" + digest.hex()
            session.execute(
                insert(ANCHORS),
                [{"index": index, "root": "0x" + tree.root.hex(), "size": tree.size,
                  "previous_root": "0x" + previous.hex(), "first_time": message["firstTime"],
                  "last_time": message["lastTime"], "anchor_id": anchor_id, "closed_at": utcnow()}],
            )  # fmt: skip
            placed = _place(session.connection(), index, [r[2] for r in rows])
            if 0 <= placed < len(ids):
                raise BatchClash(f"another anchorer batched some of the events of batch {index}")
            outbox.enqueue(session, anchor_id, trace.CONTRACT, "anchor", trace.calldata("Anchor", message, signature))
        log.info("batch closed index=%d size=%d root=0x%s anchor=%s", index, tree.size, tree.root.hex(), anchor_id)
        return Closed(index, tree, anchor_id, ids)

    def step(self, force: bool = False) -> Closed | None:
        """Close a batch if ``max_batch`` events wait, or at least ``min_batch`` and none arrived since the last
        step (a burst has ended: its last events need not wait for the interval), or any wait and ``force``."""
        waiting = self.waiting()
        quiet = self.min_batch <= waiting == self._seen
        self._seen = waiting
        if waiting and (force or quiet or waiting >= self.max_batch):
            return self.close_batch()
        return None

    def run(self, stop: threading.Event) -> None:
        """Close a batch every ``anchor_interval`` seconds, or sooner as :meth:`step` says."""
        interval = self.settings.anchor_interval
        poll = min(self.settings.poll_interval, interval)
        last_close = time.monotonic()
        backoff = 0.0
        while not stop.is_set():
            try:
                due = time.monotonic() - last_close >= interval
                closed = self.close_batch() if due else self.step()
            except (IntegrityError, BatchClash) as exc:  # another anchorer closed the same batch: look again
                log.warning("batch clash, retrying: %s", exc)
                stop.wait(poll)
                continue
            except Exception:
                backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF)
                log.exception("anchor round failed retry_in=%.1fs", backoff)
                stop.wait(backoff)
                continue
            backoff = 0.0
            if closed is not None or due:
                last_close = time.monotonic()
            if closed is None or closed.tree.size < self.max_batch:
                stop.wait(poll)


def _place(connection: Connection, index: int, keys: list[Any]) -> int:
    """Set batch ``index`` and each event's leaf index, for events still unbatched; returns the rows placed.
    ``keys``: the events' ids in leaf order (SQLite: their rowids, which skip the lookup in the id index)."""
    if connection.dialect.name == "postgresql":
        result = connection.exec_driver_sql(
            "UPDATE trace_event AS e SET batch = %s, leaf_index = v.leaf "
            "FROM unnest(%s::text[], %s::int[]) AS v(id, leaf) WHERE e.id = v.id AND e.batch IS NULL",
            (index, keys, list(range(len(keys)))),
        )
    else:
        result = connection.exec_driver_sql(
            "UPDATE trace_event SET batch = ?, leaf_index = ? WHERE rowid = ? AND batch IS NULL",
            [(index, n, rowid) for n, rowid in enumerate(keys)],
        )
    return int(result.rowcount)


def main() -> None:
    """Anchor until SIGTERM or SIGINT, with settings from ``CREDTRACE_*``."""
    from credtrace.keys import load_key
    from credtrace.service import start_service
    from node_bridge import nonces
    from node_bridge.deploy import load_deployment
    from node_bridge.store import open_store

    settings, stop = start_service(log.name)
    w3 = nonces.connect_when_up(settings, stop, MAX_BACKOFF)
    if w3 is None:
        return
    deployment = load_deployment(w3, settings.deployments_dir)
    if deployment is None or trace.CONTRACT not in deployment.contracts:
        raise SystemExit(
            f"no {trace.CONTRACT} deployed on this chain ({settings.deployments_dir}): run `credtrace deploy`"
        )
    domain = TraceDomain(deployment.chain_id, deployment.contracts[trace.CONTRACT].address)
    try:
        account = load_key(settings.keys_dir, settings.anchor_key, settings.anchor_password.get_secret_value())
    except CredtraceError as exc:  # no anchor key here: say so once and idle (a restart loop would not help)
        log.error("no anchor key %r in %s (%s): set CREDTRACE_ANCHOR_KEY and _PASSWORD to a REGULATOR keystore; "
                  "idle until stopped", settings.anchor_key, settings.keys_dir, exc)  # fmt: skip
        stop.wait()
        return
    anchorer = Anchorer(open_store(settings.database), domain, account, settings)
    log.info("anchorer started key=%s interval=%.1fs max_batch=%d", account.address, settings.anchor_interval,
             settings.anchor_max_batch)  # fmt: skip
    anchorer.run(stop)
    log.info("anchorer stopped")


if __name__ == "__main__":
    main()
