"""The indexer: contract events → SQL index, with confirmations, reorg rollback and the checkpoint in one transaction.

Each :meth:`Indexer.step` indexes what is new up to ``head - confirmations``, range by range. Per range:

1. the header of the range's last block is read *before* the logs (a reorg during the read then leaves a stale
   checkpoint hash, which the next step detects; never logs of an older chain under a newer hash);
2. raw ``eth_getLogs`` of our contracts' addresses, in adaptive ranges (start 2,000 blocks, halve on an error or a
   "too many results" answer, double while empty, capped, bounded retries), decoded by :mod:`node_bridge.events`;
3. the headers of every block with events and of the last ``reorg_window + 1`` blocks of the range, in one JSON-RPC
   batch; each log's block hash, the last block's hash and the tail's parent links must agree, else the range is
   dropped and read again;
4. one SQL transaction: ``chain_event`` rows (upsert on the natural key ``(chain_id, tx_hash, log_index)``), the
   projections of the events new to the index (:mod:`node_bridge.projections` for the Consortium,
   :data:`INDEXES` for the registries: :mod:`node_bridge.credit_index`, :mod:`node_bridge.trace_index`...),
   ``indexed_block`` rows, and the checkpoint. Non-event blocks older than the window are pruned: ``indexed_block``
   keeps every block with events plus the last ``reorg_window + 1`` blocks below the checkpoint, whether indexed
   live or rebuilt.

Before indexing, the checkpoint block's stored hash is compared with the node's. On a mismatch the indexer walks
down the stored blocks of the window, comparing hashes with the node's, to the highest that still matches (the
common ancestor); in one SQL transaction it deletes events and blocks above it, recomputes the entities those
events touched and moves the checkpoint back; then it indexes the new chain. No match within ``reorg_window``
blocks raises :class:`ReorgTooDeep`, which stops :meth:`Indexer.run`.

``python -m node_bridge.indexer`` runs it from the settings (``CREDTRACE_*``) until SIGTERM or SIGINT.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import SQLAlchemyError
from web3 import Web3

from credtrace.errors import ChainUnavailable, CredtraceError
from credtrace.settings import Settings
from node_bridge import (
    credit_index,
    logistics_index,
    payment_index,
    projections,
    protection_index,
    supervision_index,
    trace_index,
)
from node_bridge.compiler import artifact
from node_bridge.deploy import Deployment
from node_bridge.events import DecodedEvent, EventDecoder
from node_bridge.models import ChainEvent, IndexedBlock, IndexerCheckpoint
from node_bridge.rpc import HEADER_BATCH, Header, Rpc, RpcError

log = logging.getLogger("node_bridge.indexer")  # the same name when run with -m

BLOCKS = projections.table_of(IndexedBlock)
CHECKPOINTS = projections.table_of(IndexerCheckpoint)
EVENTS = projections.table_of(ChainEvent)
INDEXES = (credit_index, trace_index, logistics_index, protection_index, payment_index, supervision_index)
"""The registries' projections: each has ``project(connection, events, block_times)``, ``rollback(connection,
above)`` and ``TABLES`` (its index tables, cleared and compared by :mod:`node_bridge.rebuild`)."""
MAX_BACKOFF = 30.0


class ReorgTooDeep(CredtraceError):
    """The chain replaced indexed blocks deeper than ``reorg_window``: the index cannot follow by itself."""


class ChainMoved(ChainUnavailable):
    """The chain changed while a range was read (a reorg in progress); the range is read again."""


@dataclass(frozen=True)
class Checkpoint:
    number: int
    hash: str
    timestamp: int


class Indexer:
    """Indexes the events of a deployment's contracts into the SQL store behind ``engine``."""

    def __init__(
        self,
        engine: Engine,
        w3: Web3,
        deployment: Deployment,
        settings: Settings,
        *,
        initial_range: int = 2_000,
        max_range: int = 10_000,
        max_retries: int = 8,
    ) -> None:
        self.engine = engine
        self.rpc = Rpc(w3)
        self.deployment = deployment
        self.chain_id = deployment.chain_id
        self.start_block = deployment.start_block
        self.confirmations = settings.confirmations
        self.window = settings.reorg_window
        self.poll_interval = settings.poll_interval
        self.range_size = initial_range
        self.max_range = max_range
        self.max_retries = max_retries
        self.decoders = {
            Web3.to_checksum_address(c.address).lower(): EventDecoder(artifact(name).abi, name)
            for name, c in deployment.contracts.items()
        }
        self.addresses = [Web3.to_checksum_address(a) for a in self.decoders]
        self._settled: tuple[Header, Checkpoint | None] | None = None  # head and checkpoint after the last full step

    # public API

    def checkpoint(self) -> Checkpoint | None:
        """The last indexed block of this chain, None before the first step."""
        with self.engine.connect() as connection:
            row = connection.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.chain_id == self.chain_id)).first()
        return Checkpoint(row.block_number, row.block_hash, row.block_timestamp) if row else None

    def step(self, until: int | None = None) -> int:
        """Index what is new up to ``head - confirmations`` (and at most ``until``); returns the events indexed."""
        head = self.rpc.header("latest")
        if head is None:
            raise ChainUnavailable("the node has no latest block")
        target = head.number - self.confirmations
        if until is not None:
            target = min(target, until)
        checkpoint = self.checkpoint()
        if until is None and (head, checkpoint) == self._settled:
            return 0  # nothing moved since a step that indexed up to this head: its hash vouches for every block
        if checkpoint is not None:
            checkpoint = self._follow_reorg(checkpoint)
        start = checkpoint.number + 1 if checkpoint else self.start_block
        parent = checkpoint.hash if checkpoint else None
        indexed = 0
        while start <= target:
            count, last = self._index_range(start, target, parent)
            indexed += count
            start, parent = last.number + 1, last.hash
        if until is None:
            self._settled = head, self.checkpoint()
        return indexed

    def lag(self) -> tuple[int, int]:
        """(blocks, seconds) the index is behind the node's head."""
        head = self.rpc.header("latest")
        if head is None:
            raise ChainUnavailable("the node has no latest block")
        checkpoint = self.checkpoint()
        if checkpoint is None:
            first = self.rpc.header(self.start_block)
            return head.number - self.start_block + 1, head.timestamp - (first.timestamp if first else head.timestamp)
        return max(0, head.number - checkpoint.number), max(0, head.timestamp - checkpoint.timestamp)

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set; survive node and database outages (log, back off, retry)."""
        failures = 0
        log.info("indexer started: chain %s from block %s", self.chain_id, self.start_block)
        while not stop.is_set():
            try:
                count = self.step()
            except ReorgTooDeep:
                log.exception("indexer stopped")
                raise
            except (CredtraceError, SQLAlchemyError) as exc:
                failures += 1
                delay = min(MAX_BACKOFF, self.poll_interval * 2**failures)
                log.warning("indexer step failed (%s); retrying in %.1fs", exc, delay)
                stop.wait(delay)
                continue
            if failures:
                log.info("indexer recovered after %d failed steps", failures)
            failures = 0
            if count:
                checkpoint = self.checkpoint()
                log.info("indexed %d events up to block %s", count, checkpoint.number if checkpoint else None)
            else:
                stop.wait(self.poll_interval)

    # one range

    def _index_range(self, start: int, target: int, parent: str | None) -> tuple[int, Header]:
        with _no_cyclic_gc():
            return self._index_range_now(start, target, parent)

    def _index_range_now(self, start: int, target: int, parent: str | None) -> tuple[int, Header]:
        end, last, logs = self._fetch_logs(start, target)
        logs = [entry for entry in logs if not entry.get("removed")]
        event_blocks = {int(number, 16): block_hash for number, block_hash in _block_hashes(logs)}
        tail = range(max(start, end - self.window), end + 1)
        headers = self.rpc.headers([*tail, *event_blocks])
        self._check_consistent(start, last, parent, tail, headers, event_blocks)
        blocks = [h for h in headers.values() if h is not None]
        events = self._decode(logs)
        with self.engine.begin() as connection:
            return self._write(connection, start, end, events, blocks), last

    def _fetch_logs(self, start: int, target: int) -> tuple[int, Header, list[dict[str, Any]]]:
        """(end, end's header read before the logs, logs) for the largest range the node answers."""
        for _attempt in range(self.max_retries):
            end = min(target, start + self.range_size - 1)
            last = self.rpc.header(end)
            if last is None:
                raise ChainMoved(f"block {end} vanished from the node while indexing")
            query = {"fromBlock": hex(start), "toBlock": hex(end), "address": self.addresses}
            try:
                logs: list[dict[str, Any]] = self.rpc.call("eth_getLogs", [query])
            except ChainUnavailable as exc:
                if not isinstance(exc, RpcError) and not isinstance(exc.__cause__, requests.Timeout):
                    raise
                self.range_size = max(1, self.range_size // 2)
                log.info("eth_getLogs %s-%s failed (%s); range now %d blocks", start, end, exc, self.range_size)
                continue
            if not logs and end < target:
                self.range_size = min(self.max_range, self.range_size * 2)
            return end, last, logs
        raise ChainUnavailable(f"eth_getLogs from block {start} failed {self.max_retries} times; giving up this step")

    def _decode(self, logs: list[dict[str, Any]]) -> list[DecodedEvent]:
        """Decode logs in the node's order, which is chain order (block, then log index)."""
        decoders = self.decoders
        return [decoders[entry["address"].lower()].decode(entry) for entry in logs]

    def _check_consistent(
        self,
        start: int,
        last: Header,
        parent: str | None,
        tail: range,
        headers: dict[int, Header | None],
        event_blocks: dict[int, str],
    ) -> None:
        """Raise ChainMoved unless logs, headers and the last block all come from one chain."""
        again = headers.get(last.number)
        if again is None or again.hash != last.hash:
            raise ChainMoved(f"block {last.number} changed while its range was read")
        for number, block_hash in event_blocks.items():
            header = headers[number]
            if header is None or header.hash != block_hash:
                raise ChainMoved(f"block {number} changed while its logs were read")
        previous = parent if tail.start == start else None
        for number in tail:
            header = headers[number]
            if header is None or (previous is not None and header.parent_hash != previous):
                raise ChainMoved(f"block {number} does not follow block {number - 1} as indexed")
            previous = header.hash

    def _write(
        self, connection: Connection, start: int, end: int, events: list[DecodedEvent], blocks: list[Header]
    ) -> int:
        """Rows, projections, blocks and checkpoint of one range, in the caller's transaction."""
        known = {
            (tx_hash, log_index)
            for tx_hash, log_index in connection.execute(
                select(EVENTS.c.tx_hash, EVENTS.c.log_index).where(
                    EVENTS.c.chain_id == self.chain_id, EVENTS.c.block_number.between(start, end)
                )
            )
        }
        new = [e for e in events if e.key not in known]
        chain_id, to_json = self.chain_id, projections.to_json
        rows = [(chain_id, *e[:7], to_json(e.args)) for e in new]  # DecodedEvent follows chain_event's columns
        projections.upsert_values(connection, EVENTS, rows, update=False)
        projections.project(connection, new)
        block_times = {b.number: b.timestamp for b in blocks}
        for index in INDEXES:
            index.project(connection, new, block_times)
        projections.upsert(connection, BLOCKS, [b.row(self.chain_id) for b in blocks])
        self._prune(connection, start, end)
        last = max(blocks, key=lambda b: b.number)
        checkpoint = {
            "chain_id": self.chain_id, "block_number": last.number, "block_hash": last.hash,
            "block_timestamp": last.timestamp,
        }  # fmt: skip
        projections.upsert(connection, CHECKPOINTS, [checkpoint])
        return len(new)

    def _prune(self, connection: Connection, start: int, end: int) -> None:
        """Drop blocks without events that fell out of the window (those this range could have kept)."""
        has_events = (
            select(EVENTS.c.block_number)
            .where(EVENTS.c.chain_id == self.chain_id, EVENTS.c.block_number == BLOCKS.c.number)
            .exists()
        )
        connection.execute(
            delete(BLOCKS).where(
                BLOCKS.c.chain_id == self.chain_id,
                BLOCKS.c.number >= start - self.window - 1,
                BLOCKS.c.number < end - self.window,
                ~has_events,
            )
        )

    # reorgs

    def _follow_reorg(self, checkpoint: Checkpoint) -> Checkpoint | None:
        """The checkpoint if the node still has its block; else roll back to the common ancestor and return it."""
        node = self.rpc.header(checkpoint.number)
        if node is not None and node.hash == checkpoint.hash:
            return checkpoint
        ancestor = self._common_ancestor(checkpoint)
        depth = checkpoint.number - (ancestor.number if ancestor else self.start_block - 1)
        log.warning(
            "reorg: block %s is now %s, not %s; rolling back %d blocks to %s",
            checkpoint.number, node.hash if node else None, checkpoint.hash, depth,
            ancestor.number if ancestor else "the start",
        )  # fmt: skip
        self._rollback(ancestor)
        return ancestor

    def _common_ancestor(self, checkpoint: Checkpoint) -> Checkpoint | None:
        """The highest stored block within the window that the node still has; None: roll back everything."""
        lowest = checkpoint.number - self.window
        with self.engine.connect() as connection:
            stored = connection.execute(
                select(BLOCKS.c.number, BLOCKS.c.hash, BLOCKS.c.timestamp)
                .where(BLOCKS.c.chain_id == self.chain_id, BLOCKS.c.number.between(lowest, checkpoint.number))
                .order_by(BLOCKS.c.number.desc())
            ).all()
        for begin in range(0, len(stored), HEADER_BATCH):
            chunk = stored[begin : begin + HEADER_BATCH]
            node = self.rpc.headers(row.number for row in chunk)
            for row in chunk:
                header = node.get(row.number)
                if header is not None and header.hash == row.hash:
                    return Checkpoint(row.number, row.hash, row.timestamp)
        if lowest < self.start_block:
            return None
        raise ReorgTooDeep(
            f"chain {self.chain_id}: indexed block {checkpoint.number} ({checkpoint.hash}) was replaced and no "
            f"indexed block from {lowest} up is on the chain any more: the reorg is deeper than reorg_window="
            f"{self.window}. Rebuild the index (`credtrace index rebuild`) or raise CREDTRACE_REORG_WINDOW."
        )

    def _rollback(self, ancestor: Checkpoint | None) -> None:
        """Delete everything above ``ancestor`` and recompute what it touched, in one SQL transaction."""
        above = self.start_block - 1 if ancestor is None else ancestor.number
        with self.engine.begin() as connection:
            removed = connection.execute(
                select(EVENTS.c.name, EVENTS.c.args).where(
                    EVENTS.c.chain_id == self.chain_id, EVENTS.c.block_number > above
                )
            ).all()
            connection.execute(delete(EVENTS).where(EVENTS.c.chain_id == self.chain_id, EVENTS.c.block_number > above))
            connection.execute(delete(BLOCKS).where(BLOCKS.c.chain_id == self.chain_id, BLOCKS.c.number > above))
            projections.recompute(connection, self.chain_id, projections.touched((r.name, r.args) for r in removed))
            for index in INDEXES:
                index.rollback(connection, above)
            connection.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.chain_id == self.chain_id))
            if ancestor is not None:
                checkpoint = {
                    "chain_id": self.chain_id, "block_number": ancestor.number, "block_hash": ancestor.hash,
                    "block_timestamp": ancestor.timestamp,
                }  # fmt: skip
                connection.execute(CHECKPOINTS.insert(), checkpoint)


def _block_hashes(logs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (hex number, hash) of the blocks the logs are in; two hashes for one number: the chain moved."""
    pairs = {(entry["blockNumber"], entry["blockHash"].lower()) for entry in logs}
    if len({number for number, _ in pairs}) != len(pairs):
        raise ChainMoved("the logs of one range name two different hashes for the same block")
    return pairs


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: a range allocates tens of thousands of acyclic dicts and tuples, and
    the collections they trigger cost a third of a backfill. Reference counting still frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def main() -> None:
    """Run the indexer from ``CREDTRACE_*`` settings until SIGTERM or SIGINT."""
    from credtrace.service import start_service
    from node_bridge.chain import connect
    from node_bridge.deploy import load_deployment
    from node_bridge.store import open_store

    settings, stop = start_service(log.name)
    w3 = connect(settings)
    deployment = load_deployment(w3, settings.deployments_dir)
    if deployment is None:
        raise SystemExit(f"no deployment for this chain in {settings.deployments_dir}: run `credtrace deploy` first")
    Indexer(open_store(settings.database), w3, deployment, settings).run(stop)


if __name__ == "__main__":
    main()
