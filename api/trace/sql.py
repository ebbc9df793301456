"""The trace tables and bulk SQL through the driver: SQLAlchemy's per-row parameter processing costs more than the
database does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, Column, Connection, Table
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


IN_CHUNK = 500
"""Keys per ``IN (...)`` query."""


def select_in(
    connection: Connection, columns: Sequence[Column[Any]], key: Column[Any], values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The rows (plain tuples) of ``columns`` whose ``key`` is one of ``values``, :data:`IN_CHUNK` keys a query,
    through the driver's cursor: for columns the driver returns as they are (text, numbers)."""
    rows: list[tuple[Any, ...]] = []
    if not values:
        return rows
    cursor = connection.connection.cursor()
    try:
        for start in range(0, len(values), IN_CHUNK):
            chunk = list(values[start : start + IN_CHUNK])
            cursor.execute(_select_sql(connection.dialect.name, tuple(columns), key, len(chunk)), chunk)
            rows.extend(cursor.fetchall())
    finally:
        cursor.close()
    return rows


@cache
def _select_sql(dialect: str, columns: tuple[Column[Any], ...], key: Column[Any], count: int) -> str:
    marker, quote = _marker(dialect), _quote(dialect)
    names = ", ".join(quote(c.name) for c in columns)
    return f"SELECT {names} FROM {key.table.name} WHERE {quote(key.name)} IN ({', '.join([marker] * count)})"


def _marker(dialect: str) -> str:
    return "?" if dialect == "sqlite" else "%s"


def _quote(dialect: str) -> Any:
    return (sqlite.dialect if dialect == "sqlite" else postgresql.dialect)().identifier_preparer.quote


@cache
def _insert_sql(dialect: str, table: Table) -> str:
    marker, quote = _marker(dialect), _quote(dialect)
    columns = list(table.columns)
    values = [
        f"CAST({marker} AS JSON)" if isinstance(c.type, JSON) and dialect != "sqlite" else marker for c in columns
    ]
    return f"INSERT INTO {table.name} ({', '.join(quote(c.name) for c in columns)}) VALUES ({', '.join(values)})"
