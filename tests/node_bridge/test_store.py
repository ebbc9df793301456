"""The store on SQLite and PostgreSQL: migrations, and the outbox's accept-once rule."""

from __future__ import annotations

import os
import time
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import Session, SQLModel

import api.models  # noqa: F401  (every module defining tables, as node_bridge/migrations/env.py imports them)
import credtrace.webhooks  # noqa: F401
from node_bridge import (  # noqa: F401
    logistics_models,
    outbox,
    payment_models,
    protection_models,
    supervision_models,
    trace_models,
)
from node_bridge.models import INDEX_TABLES, OutboxStatus
from node_bridge.store import WalCheckpoints, migrate, open_store, session_scope


def test_migrations_create_every_table_and_are_idempotent(engine: Engine) -> None:
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"outbox", "relay_tx", "alembic_version"} <= tables
    assert {model.__tablename__ for model in INDEX_TABLES} <= tables  # type: ignore[attr-defined]


def test_the_migrations_build_exactly_the_tables_and_indexes_the_models_declare(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def test_the_same_record_is_accepted_once(engine: Engine) -> None:
    record = bytes(range(32))
    with session_scope(engine) as session:
        first = outbox.enqueue(session, record, "Consortium", "approve", b"\x01\x02")
    with session_scope(engine) as session:
        again = outbox.enqueue(session, "0x" + record.hex().upper(), "Consortium", "approve", b"other")
        assert again.id == first.id
        assert again.calldata == b"\x01\x02"
    with Session(engine) as session:
        assert outbox.counts(session) == {OutboxStatus.ACCEPTED: 1}
        assert outbox.depth(session) == 1


def test_an_uncommitted_write_is_not_accepted(engine: Engine) -> None:
    try:
        with session_scope(engine) as session:
            outbox.enqueue(session, b"\x11" * 32, "Consortium", "approve", b"")
            raise RuntimeError("validation failed after enqueue")
    except RuntimeError:
        pass
    with Session(engine) as session:
        assert outbox.get(session, b"\x11" * 32) is None


def test_wal_checkpoints_run_in_their_own_thread_not_in_commits(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    engine = open_store(f"sqlite:///{path}")
    checkpoints = WalCheckpoints(engine, interval=0.1)
    checkpoints.start()
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        before = path.stat().st_size
        with engine.begin() as connection:  # ~3,000 pages: SQLite's own rule would checkpoint in this commit
            connection.exec_driver_sql("CREATE TABLE filler (blob BLOB)")
            connection.exec_driver_sql("INSERT INTO filler VALUES (?)", [(os.urandom(4000),) for _ in range(3000)])
        assert path.stat().st_size == before  # the commit left the pages in the log
        deadline = time.monotonic() + 5
        while path.stat().st_size < before + 3000 * 4000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= before + 3000 * 4000  # the thread copied them into the database
    finally:
        checkpoints.stop()
        engine.dispose()
