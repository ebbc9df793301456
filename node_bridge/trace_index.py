"""TraceRegistry events → ``trace_chain_code_batch`` and ``trace_chain_anchor``.

Both are append-only on chain, so the projection needs no working set:

- ``CodesCommitted`` inserts a ``trace_chain_code_batch`` row (id = the batch's EIP-712 digest);
- ``BatchAnchored`` inserts a ``trace_chain_anchor`` row (key = the anchor's index; the contract accepts index n
  only after n - 1, so the rows form the chain of roots without gaps, each naming its ``previous_root``).

Replaying a range changes nothing (inserts ignore existing keys). A reorg rollback to block N deletes the rows of
blocks above N (:func:`rollback`); the anchors the new chain carries are indexed again with their new blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, delete

from node_bridge.events import DecodedEvent
from node_bridge.models import TraceChainAnchor, TraceChainCodeBatch
from node_bridge.projections import table_of, upsert
from node_bridge.trace import CONTRACT

CODE_BATCHES = table_of(TraceChainCodeBatch)
ANCHORS = table_of(TraceChainAnchor)
TABLES = (CODE_BATCHES, ANCHORS)


def project(connection: Connection, events: Iterable[DecodedEvent], block_times: Mapping[int, int]) -> int:
    """Apply new TraceRegistry events (chain order); ``block_times`` maps their blocks to timestamps."""
    batches: list[dict[str, Any]] = []
    anchors: list[dict[str, Any]] = []
    for event in events:
        if event.contract != CONTRACT:
            continue
        if event.name == "CodesCommitted":
            batches.append(code_batch_row(event, block_times[event.block_number]))
        elif event.name == "BatchAnchored":
            anchors.append(anchor_row(event, block_times[event.block_number]))
    upsert(connection, CODE_BATCHES, batches, update=False)
    upsert(connection, ANCHORS, anchors, update=False)
    return len(batches) + len(anchors)


def code_batch_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    """The ``trace_chain_code_batch`` row of a ``CodesCommitted`` event."""
    a = event.args
    return {
        "id": a["id"], "producer": a["producer"], "gtin": a["gtin"], "lot": a["lot"], "count": int(a["count"]),
        "root": a["root"], "signer": a["signer"], "block_number": event.block_number, "block_time": block_time,
        "tx_hash": event.tx_hash, "log_index": event.log_index,
    }  # fmt: skip


def anchor_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    """The ``trace_chain_anchor`` row of a ``BatchAnchored`` event."""
    a = event.args
    return {
        "index": int(a["index"]), "root": a["root"], "size": int(a["size"]), "previous_root": a["previousRoot"],
        "first_time": int(a["firstTime"]), "last_time": int(a["lastTime"]), "signer": a["signer"],
        "block_number": event.block_number, "block_hash": event.block_hash, "block_time": block_time,
        "tx_hash": event.tx_hash, "log_index": event.log_index,
    }  # fmt: skip


def rollback(connection: Connection, above: int) -> None:
    """Forget what blocks above ``above`` did: the code batches they committed and the roots they anchored."""
    connection.execute(delete(CODE_BATCHES).where(CODE_BATCHES.c.block_number > above))
    connection.execute(delete(ANCHORS).where(ANCHORS.c.block_number > above))
