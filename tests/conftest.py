"""Shared fixtures: a real anvil node per test session, settings on a scratch data directory."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from credtrace.settings import Settings
from node_bridge.chain import AnvilNode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
