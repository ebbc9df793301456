"""Events' inclusion proofs.

Events are not sent to the chain one by one: the anchorer (:mod:`node_bridge.anchorer`) batches them into Merkle
trees whose roots it anchors; :func:`proof` answers an event's RFC 6962 inclusion proof once its root is indexed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from sqlalchemy import Table, select
from sqlmodel import Session, SQLModel

from api.trace.sql import EVENTS
from credtrace.errors import Conflict, NotFound
from node_bridge.eip712 import hex32
from node_bridge.merkle import MerkleTree
from node_bridge.models import OutboxEntry
from node_bridge.trace_models import AnchorBatch, TraceEventRow


def chain_anchor_table() -> Table | None:
    """The indexer's ``trace_chain_anchor`` table (node_bridge/models.py), if this build has it."""
    return SQLModel.metadata.tables.get("trace_chain_anchor")


def chain_anchor(session: Session, index: int) -> dict[str, Any] | None:
    table = chain_anchor_table()
    if table is None:
        return None
    row = session.execute(select(table).where(table.c["index"] == index)).mappings().first()
    return dict(row) if row is not None else None


class TreeCache:
    """The most recently used batch trees, keyed by (batch index, root): a proof costs no rebuild while its tree is
    here, and a tree is never served for another batch of the same index (a reset store)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._trees: OrderedDict[tuple[int, str], MerkleTree] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, batch: AnchorBatch) -> MerkleTree:
        key = (batch.index, batch.root)
        with self._lock:
            tree = self._trees.get(key)
            if tree is not None:
                self._trees.move_to_end(key)
                return tree
        ids = session.execute(
            select(EVENTS.c.id).where(EVENTS.c.batch == batch.index).order_by(EVENTS.c.leaf_index)
        ).all()
        tree = MerkleTree([bytes.fromhex(r[0][2:]) for r in ids])
        if tree.size != batch.size or "0x" + tree.root.hex() != batch.root:
            raise Conflict("batch", "BatchMismatch", f"batch {batch.index}'s events do not make its root {batch.root}")
        with self._lock:
            self._trees[key] = tree
            while len(self._trees) > self.size:
                self._trees.popitem(last=False)
        return tree


TREES = TreeCache()


def proof(session: Session, event_id: str, contract: str, trees: TreeCache = TREES) -> dict[str, Any]:
    """An event's RFC 6962 inclusion proof and where its root is anchored; 404 unknown, 409 naming the state."""
    row = session.get(TraceEventRow, event_id.lower())
    if row is None:
        raise NotFound(f"no trace event {event_id} was accepted here")
    if row.batch is None or row.leaf_index is None:
        raise Conflict("event", "NotBatched", f"event {row.id} is waiting for a batch (the anchorer closes one soon)")
    batch = session.get(AnchorBatch, row.batch)
    assert batch is not None
    anchored = chain_anchor(session, row.batch)
    if anchored is None:
        entry = session.get(OutboxEntry, batch.anchor_id)
        status = entry.status if entry is not None else "unknown"
        raise Conflict(
            "event", "NotConfirmed",
            f"event {row.id} is in batch {row.batch}, anchored but not confirmed yet (anchor write {status})",
        )  # fmt: skip
    tree = trees.get(session, batch)
    return {
        "event_id": row.id,
        "leaf_index": row.leaf_index,
        "tree_size": tree.size,
        "leaf_hash": hex32(tree.leaf(row.leaf_index)),
        "audit_path": [hex32(h) for h in tree.audit_path(row.leaf_index)],
        "root": hex32(tree.root),
        "batch": row.batch,
        "anchor": {
            "contract": contract,
            "index": row.batch,
            "tx_hash": anchored.get("tx_hash"),
            "block_number": anchored.get("block_number"),
        },
    }
