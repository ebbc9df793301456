"""The trace tables and bulk SQL through the driver: SQLAlchemy's per-row parameter processing costs more than the
database does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from node_bridge.models import OutboxEntry
from node_bridge.projections import table_of
from node_bridge.trace_models import AnchorBatch, CodeBatch, Lot, TraceCode, TraceEventCode, TraceEventRow

CODES = table_of(TraceCode)
BATCHES = table_of(CodeBatch)
EVENTS = table_of(TraceEventRow)
EVENT_CODES = table_of(TraceEventCode)
LOTS = table_of(Lot)
ANCHORS = table_of(AnchorBatch)
OUTBOX = table_of(OutboxEntry)
COPY_FROM = 2000
"""Rows from which a PostgreSQL bulk insert goes through COPY (several times executemany's speed)."""


def db_time(connection: Connection, value: datetime) -> Any:
    """A UTC datetime as SQLAlchemy would bind it for this database (SQLite: its text form)."""
    if connection.dialect.name == "sqlite":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def bulk_insert(connection: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows given as tuples in the table's column order (JSON columns as JSON text) with executemany."""
    if not rows:
        return
    if connection.dialect.name == "postgresql" and len(rows) >= COPY_FROM:
        names = ", ".join(f'"{c.name}"' for c in table.columns)
        raw = connection.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
        return
    connection.exec_driver_sql(_insert_sql(connection.dialect.name, table), list(rows))


@cache
def _insert_sql(dialect: str, table: Table) -> str:
    marker = "?" if dialect == "sqlite" else "%s"
    columns = list(table.columns)
    quote = (sqlite.dialect if dialect == "sqlite" else postgresql.dialect)().identifier_preparer.quote
    values = [
        f"CAST({marker} AS JSON)" if isinstance(c.type, JSON) and dialect != "sqlite" else marker for c in columns
    ]
    return f"INSERT INTO {table.name} ({', '.join(quote(c.name) for c in columns)}) VALUES ({', '.join(values)})"
