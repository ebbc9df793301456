"""The SQL store: SQLite (WAL) by default, PostgreSQL by URL; schema migrations with alembic.

``open_store(url)`` returns an engine whose schema is at the latest migration.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlmodel import Session

log = logging.getLogger("node_bridge.store")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_CACHE_KIB = 65_536
"""Page cache per SQLite connection (taken as pages are read): inserts into big indexes with random keys, such as
a lot of 100,000 trace codes, run about a third faster than in SQLite's default 2 MiB."""


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, full sync (an accepted write survives a crash) and a busy wait."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest migration (idempotent)."""
    command.upgrade(alembic_config(engine), "head")


def open_store(url: str) -> Engine:
    """An engine for ``url`` with its schema migrated."""
    engine = make_engine(url)
    migrate(engine)
    return engine


class WalCheckpoints:
    """Checkpoints of an SQLite store's write-ahead log from a thread of their own, every ``interval`` seconds.

    By default SQLite copies the log into the database in the commit that fills 1,000 pages, while that commit
    holds the only write lock: a busy writer (the API taking batches of trace events) pays for it on every few
    requests. Once started, this engine's connections leave it to the thread, whose PASSIVE checkpoints wait on
    no reader or writer; other processes' connections keep SQLite's default.
    """

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.engine.dialect.name != "sqlite" or self._thread is not None:
            return
        event.listen(self.engine, "connect", _no_checkpoint_on_commit)
        self.engine.dispose()  # pooled connections were opened with SQLite's default
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.checkpoint()

    def checkpoint(self) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.checkpoint()
            except Exception:  # a locked or missing file now and then: the next round tries again
                log.exception("WAL checkpoint failed")


def _no_checkpoint_on_commit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def scratch_postgres(server_url: str, prefix: str = "credtrace_scratch") -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of ``server_url``, dropped on exit; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
