"""Shared fixtures: a real anvil node per test session, settings on a scratch data directory."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from web3 import Web3

from credtrace.settings import Settings
from node_bridge import outbox
from node_bridge.chain import AnvilNode
from node_bridge.relayer import Relayer
from node_bridge.store import open_store, scratch_postgres, session_scope

POSTGRES_URL = os.environ.get("CREDTRACE_TEST_POSTGRES_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def relay_all(relayer: Relayer, timeout: float = 60) -> None:
    """Step the relayer until every write in its outbox is confirmed or failed. (It sends from a thread of its own:
    a fixed number of steps raced that thread on a loaded machine.)"""
    deadline = time.monotonic() + timeout
    while True:
        relayer.step()
        with session_scope(relayer.engine) as session:
            waiting = outbox.depth(session)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{waiting} writes still unconfirmed after {timeout} s")
        time.sleep(0.01)


def make_settings(data_dir: Path, port: int, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, anvil_port=port, api_port=free_port(), **overrides)  # type: ignore[arg-type]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def anvil_settings(data_dir: Path) -> Iterator[Settings]:
    """Settings with their own anvil node (started by the test, stopped afterwards)."""
    settings = make_settings(data_dir, free_port())
    yield settings
    AnvilNode.from_settings(settings).stop()


@pytest.fixture
def anvil_node(anvil_settings: Settings) -> AnvilNode:
    return AnvilNode.from_settings(anvil_settings)


@pytest.fixture
def anvil_w3(anvil_node: AnvilNode) -> Web3:
    return anvil_node.start()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite in a scratch file, and PostgreSQL (a scratch database) when
    ``CREDTRACE_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it); otherwise the PostgreSQL case is skipped."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need CREDTRACE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
    with scratch_postgres(POSTGRES_URL, "credtrace_test") as url:
        yield url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A migrated store on a fresh database (SQLite, and PostgreSQL when available)."""
    store = open_store(store_url)
    yield store
    store.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite store, for tests whose subject is not the database."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.dispose()
