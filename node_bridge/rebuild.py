"""Drop and rebuild the index from the chain, and check the live index against a scratch rebuild.

``credtrace index rebuild`` calls :func:`rebuild`; ``credtrace index check`` calls :func:`check` and exits 1 if
it returns any difference. Stop the running indexer before a rebuild: both would write the same rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, delete, select
from web3 import Web3

from credtrace.settings import Settings
from node_bridge.deploy import Deployment
from node_bridge.indexer import INDEXES, Indexer
from node_bridge.models import INDEX_TABLES
from node_bridge.projections import table_of
from node_bridge.store import open_store

TABLES: tuple[Table, ...] = tuple(
    dict.fromkeys(
        [*(table_of(model) for model in INDEX_TABLES), *(table for index in INDEXES for table in index.TABLES)]
    )
)
"""The indexer's own tables and each registry projection's (:data:`node_bridge.indexer.INDEXES`), once each."""
LABELS = {
    "indexed_block": "block",
    "indexer_checkpoint": "checkpoint of chain",
    "chain_event": "event",
    "member": "member",
    "member_key": "key",
    "proposal": "proposal",
    "proposal_approval": "approval",
    "chain_parameter": "parameter",
    "credit_record": "credit record",
    "enforcement": "enforcement receipt",
    "trace_chain_code_batch": "code batch",
    "trace_chain_anchor": "anchored batch",
}


def clear(engine: Engine) -> None:
    """Delete every row of the index tables, in one transaction."""
    with engine.begin() as connection:
        for table in TABLES:
            connection.execute(delete(table))


def rebuild(engine: Engine, w3: Web3, deployment: Deployment, settings: Settings, until: int | None = None) -> int:
    """Clear the index and index the chain again from the deployment's start block; returns the events indexed."""
    clear(engine)
    indexer = Indexer(engine, w3, deployment, settings)
    total = indexer.step(until)
    return total


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every index table, ordered by primary key (for comparisons)."""
    with engine.connect() as connection:
        return {
            table.name: [
                dict(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns)).mappings()
            ]
            for table in TABLES
        }


def check(engine: Engine, w3: Web3, deployment: Deployment, settings: Settings) -> list[str]:
    """Rebuild into a scratch SQLite database up to the live checkpoint and list every difference.

    An empty list means the live index is exactly what the chain says.
    """
    live_checkpoint = Indexer(engine, w3, deployment, settings).checkpoint()
    with tempfile.TemporaryDirectory(prefix="credtrace-check-") as scratch_dir:
        scratch = open_store(f"sqlite:///{Path(scratch_dir) / 'index.db'}")
        try:
            if live_checkpoint is not None:
                rebuild(scratch, w3, deployment, settings, until=live_checkpoint.number)
            on_chain = dump(scratch)
        finally:
            scratch.dispose()
    return compare(dump(engine), on_chain)


def compare(here: dict[str, list[dict[str, Any]]], on_chain: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Human-readable differences between two dumps: ``here`` (the live index) and ``on_chain`` (a rebuild)."""
    differences: list[str] = []
    for table in TABLES:
        keys = [column.name for column in table.primary_key.columns]
        ours = {_key(row, keys): row for row in here.get(table.name, [])}
        theirs = {_key(row, keys): row for row in on_chain.get(table.name, [])}
        label = LABELS.get(table.name, table.name)
        for key in sorted(ours.keys() | theirs.keys(), key=repr):
            subject = f"{label} {'/'.join(str(k) for k in key)}"
            if key not in ours:
                differences.append(f"{subject}: row missing here (on chain: {_brief(theirs[key], keys)})")
            elif key not in theirs:
                differences.append(f"{subject}: extra row here, not on chain ({_brief(ours[key], keys)})")
            else:
                differences.extend(
                    f"{subject}: {column} {ours[key][column]!r} here, {theirs[key][column]!r} on chain"
                    for column in ours[key]
                    if ours[key][column] != theirs[key].get(column)
                )
    return differences


def _key(row: dict[str, Any], keys: list[str]) -> tuple[Any, ...]:
    return tuple(row[k] for k in keys)


def _brief(row: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in row.items() if k not in keys)
