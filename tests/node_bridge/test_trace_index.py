"""TraceRegistry on a real anvil node, indexed into a real database (SQLite, and PostgreSQL when available).

Code batches and anchors go on chain both through the relayer (outbox → ``batch`` transactions) and as plain
transactions (``Sender.transact_raw``); the indexer projects them into ``trace_chain_code_batch`` and
``trace_chain_anchor``, a rebuild from the chain alone gives the same rows, and a reorg rolls anchors back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, select
from web3 import Web3

from credtrace.demo import DEMO_PASSWORD, demo_members
from credtrace.keys import load_key
from credtrace.settings import Settings
from credtrace.system import ensure_deployment, operator_account, operator_sender
from node_bridge import outbox
from node_bridge.compiler import artifact
from node_bridge.consortium import member_id
from node_bridge.deploy import Deployment
from node_bridge.indexer import Indexer
from node_bridge.merkle import MerkleTree
from node_bridge.models import TraceChainAnchor, TraceChainCodeBatch
from node_bridge.nonces import encode_batch
from node_bridge.projections import table_of
from node_bridge.rebuild import check, dump, rebuild
from node_bridge.relayer import Relayer
from node_bridge.store import open_store, session_scope
from node_bridge.trace import ZERO32, TraceDomain, calldata, code_id, digital_link
from node_bridge.transactions import Sender
from tests.conftest import relay_all

ANCHORS = table_of(TraceChainAnchor)
BATCHES = table_of(TraceChainCodeBatch)
ABI = artifact("TraceRegistry").abi
GTIN = "09506000134352"
PRODUCER_KEY = "yantai-orchard"
REGULATOR_KEY = "market-regulation"


@dataclass
class TraceChain:
    """The demo system on anvil with what a test needs to commit and anchor."""

    settings: Settings
    w3: Web3
    deployment: Deployment
    engine: Engine
    sender: Sender
    domain: TraceDomain
    producer: bytes
    producer_key: LocalAccount
    regulator_key: LocalAccount
    roots: list[bytes] = field(default_factory=list)
    _serials: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def address(self) -> str:
        return self.deployment.contracts["TraceRegistry"].address

    def indexer(self) -> Indexer:
        return Indexer(self.engine, self.w3, self.deployment, self.settings)

    def code_batch(self, lot: str, count: int) -> dict[str, Any]:
        ids = [code_id(digital_link(GTIN, lot, f"S{next(self._serials):08d}")) for _ in range(count)]
        return {
            "producer": self.producer, "gtin": GTIN, "lot": lot, "count": count, "root": MerkleTree(ids).root,
            "nonce": next(self._serials),
        }  # fmt: skip

    def anchor(self, size: int, index: int | None = None, previous: bytes | None = None) -> dict[str, Any]:
        """The anchor after the last one built here (``roots``), over ``size`` made-up event digests."""
        index = len(self.roots) if index is None else index
        leaves = [bytes([index % 256]) + n.to_bytes(31, "big") for n in range(size)]
        message = {
            "index": index, "root": MerkleTree(leaves).root, "size": size,
            "previousRoot": (self.roots[-1] if self.roots else ZERO32) if previous is None else previous,
            "firstTime": 1_767_225_600 + index, "lastTime": 1_767_225_600 + index + 4,
        }  # fmt: skip
        self.roots.append(message["root"])
        return message

    def call(self, primary: str, message: dict[str, Any]) -> bytes:
        key = self.producer_key if primary == "CodeBatch" else self.regulator_key
        return calldata(primary, message, self.domain.sign(key, primary, message))

    def rows(self, table: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(select(table).order_by(*table.primary_key.columns)).mappings()]


@pytest.fixture
def tc(anvil_settings: Settings, anvil_w3: Web3, engine: Engine) -> TraceChain:
    deployment, _ = ensure_deployment(anvil_settings, anvil_w3)
    producer_uscc = next(m.uscc for m in demo_members() if m.key == PRODUCER_KEY)
    address = deployment.contracts["TraceRegistry"].address
    return TraceChain(
        anvil_settings, anvil_w3, deployment, engine, operator_sender(anvil_settings, anvil_w3),
        TraceDomain(anvil_w3.eth.chain_id, address), member_id(producer_uscc),
        load_key(anvil_settings.keys_dir, PRODUCER_KEY, DEMO_PASSWORD),
        load_key(anvil_settings.keys_dir, REGULATOR_KEY, DEMO_PASSWORD),
    )  # fmt: skip


def scratch_dump(tc: TraceChain, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    engine = open_store(f"sqlite:///{tmp_path / 'scratch.db'}")
    try:
        rebuild(engine, tc.w3, tc.deployment, tc.settings)
        return dump(engine)
    finally:
        engine.dispose()


def test_commits_and_anchors_are_indexed_and_rebuilt(tc: TraceChain, tmp_path: Path) -> None:
    batch = tc.code_batch("LOT-1", 1000)
    commit = tc.sender.transact_raw(tc.address, tc.call("CodeBatch", batch), ABI)
    first, second = tc.anchor(1), tc.anchor(1000)
    receipts = [tc.sender.transact_raw(tc.address, tc.call("Anchor", m), ABI) for m in (first, second)]
    third, fourth = tc.anchor(7), tc.anchor(8)
    both = tc.sender.transact_raw(
        tc.address, encode_batch([tc.call("Anchor", third), tc.call("Anchor", fourth)]), ABI, gas=500_000
    )
    gas = [r["gasUsed"] for r in receipts]
    print(f"\nanvil gas: commitCodes {commit['gasUsed']}, anchor first {gas[0]}, anchor of 1,000 events {gas[1]} "
          f"({gas[1] / 1000:.1f}/event), two anchors in one batch {both['gasUsed']}")  # fmt: skip

    indexer = tc.indexer()
    indexer.step()
    (row,) = tc.rows(BATCHES)
    assert row == {
        "id": "0x" + tc.domain.digest("CodeBatch", batch).hex(), "producer": "0x" + tc.producer.hex(),
        "gtin": GTIN, "lot": "LOT-1", "count": 1000, "root": "0x" + batch["root"].hex(),
        "signer": tc.producer_key.address, "block_number": commit["blockNumber"],
        "block_time": tc.w3.eth.get_block(commit["blockNumber"])["timestamp"],
        "tx_hash": commit["transactionHash"].to_0x_hex(), "log_index": row["log_index"],
    }  # fmt: skip
    anchors = tc.rows(ANCHORS)
    assert [a["index"] for a in anchors] == [0, 1, 2, 3]
    for row, message, receipt in zip(anchors, (first, second, third, fourth), [*receipts, both, both], strict=True):
        assert row["root"] == "0x" + message["root"].hex()
        assert row["previous_root"] == "0x" + message["previousRoot"].hex()
        assert (row["size"], row["first_time"], row["last_time"]) == (
            message["size"], message["firstTime"], message["lastTime"],
        )  # fmt: skip
        assert (row["signer"], row["block_number"], row["tx_hash"]) == (
            tc.regulator_key.address, receipt["blockNumber"], receipt["transactionHash"].to_0x_hex(),
        )  # fmt: skip
        assert row["block_hash"] == receipt["blockHash"].to_0x_hex()
    contract = tc.deployment.contract(tc.w3, "TraceRegistry")
    assert anchors[-1]["root"] == "0x" + bytes(contract.functions.lastRoot().call()).hex()
    assert contract.functions.anchoredCount().call() == len(anchors)

    indexer.step()  # nothing new: nothing changes
    assert tc.rows(ANCHORS) == anchors
    assert check(tc.engine, tc.w3, tc.deployment, tc.settings) == []
    live, rebuilt = dump(tc.engine), scratch_dump(tc, tmp_path)
    assert live["trace_chain_anchor"] == rebuilt["trace_chain_anchor"] == anchors
    assert live["trace_chain_code_batch"] == rebuilt["trace_chain_code_batch"]


def test_writes_through_the_relayer(tc: TraceChain) -> None:
    """The data path: signed writes accepted into the outbox, batched by the relayer, indexed."""
    relayer = Relayer(tc.engine, tc.w3, tc.deployment, operator_account(tc.settings), tc.settings)
    batch = tc.code_batch("LOT-R", 10)
    first, second = tc.anchor(100), tc.anchor(200)
    with session_scope(tc.engine) as session:
        outbox.enqueue(session, tc.domain.digest("CodeBatch", batch), "TraceRegistry", "commitCodes",
                       tc.call("CodeBatch", batch))  # fmt: skip
        for message in (first, second):
            outbox.enqueue(session, tc.domain.digest("Anchor", message), "TraceRegistry", "anchor",
                           tc.call("Anchor", message))  # fmt: skip
    relay_all(relayer)
    relayer.close()
    tc.indexer().step()
    assert [r["id"] for r in tc.rows(BATCHES)] == ["0x" + tc.domain.digest("CodeBatch", batch).hex()]
    assert [(a["index"], a["size"]) for a in tc.rows(ANCHORS)] == [(0, 100), (1, 200)]
    with session_scope(tc.engine) as session:
        statuses = {outbox.get(session, tc.domain.digest("Anchor", m)).status for m in (first, second)}  # type: ignore[union-attr]
    assert statuses == {"confirmed"}


def test_a_reorg_rolls_anchors_back(tc: TraceChain, anvil_settings: Settings) -> None:
    first = tc.anchor(5)
    tc.sender.transact_raw(tc.address, tc.call("Anchor", first), ABI)
    snapshot = tc.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    lost = tc.anchor(6)
    tc.sender.transact_raw(tc.address, tc.call("Anchor", lost), ABI)
    lost_batch = tc.code_batch("LOT-LOST", 3)
    tc.sender.transact_raw(tc.address, tc.call("CodeBatch", lost_batch), ABI)
    indexer = tc.indexer()
    indexer.step()
    assert [a["root"] for a in tc.rows(ANCHORS)] == ["0x" + first["root"].hex(), "0x" + lost["root"].hex()]
    assert len(tc.rows(BATCHES)) == 1

    assert tc.w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    tc.roots.pop()
    sender = Sender(tc.w3, tc.sender.account, anvil_settings.gas_price)  # the operator's nonce went back
    kept = tc.anchor(9, index=1)
    sender.transact_raw(tc.address, tc.call("Anchor", kept), ABI)
    for _ in range(2):  # the new chain is longer than the old one
        tc.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    indexer.step()
    anchors = tc.rows(ANCHORS)
    assert [(a["index"], a["root"], a["size"]) for a in anchors] == [
        (0, "0x" + first["root"].hex(), 5),
        (1, "0x" + kept["root"].hex(), 9),
    ]
    assert tc.rows(BATCHES) == []
    assert check(tc.engine, tc.w3, tc.deployment, tc.settings) == []
