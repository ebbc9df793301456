"""The indexer against a real anvil node and a real database (SQLite, and PostgreSQL when available).

Replays, reorgs (``anvil_reorg``), a reorg deeper than the window, a node outage, adaptive ranges, and the tables
the API reads compared field by field with what the contract itself answers.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, event, select, text, update
from web3 import Web3

from credtrace.demo import DEMO_PASSWORD, demo_members
from credtrace.errors import ChainUnavailable
from credtrace.keys import load_key
from credtrace.settings import Settings
from credtrace.system import ensure_deployment, operator_sender
from node_bridge.chain import AnvilNode
from node_bridge.compiler import artifact
from node_bridge.consortium import (
    Action,
    ConsortiumClient,
    MemberStatus,
    encode_payload,
    member_id,
    proposal_message,
    sign,
    typed_data,
)
from node_bridge.deploy import Deployment
from node_bridge.events import DecodedEvent, EventDecoder, UndecodableLog
from node_bridge.indexer import CHECKPOINTS, EVENTS, Indexer, ReorgTooDeep
from node_bridge.models import ChainEvent
from node_bridge.projections import table_of
from node_bridge.rebuild import check, dump, rebuild
from node_bridge.rpc import RpcError
from node_bridge.store import open_store
from node_bridge.transactions import Sender

REGULATORS = ("market-regulation", "credit-office")


@dataclass
class Chain:
    """A node with the demo consortium deployed, and what a test needs to act on it."""

    settings: Settings
    w3: Web3
    node: AnvilNode
    deployment: Deployment
    client: ConsortiumClient
    regulators: list[LocalAccount]

    def indexer(self, engine: Engine, **overrides: Any) -> Indexer:
        settings = self.settings.model_copy(update=overrides)
        return Indexer(engine, self.w3, self.deployment, settings)

    def member(self, key: str) -> tuple[bytes, LocalAccount]:
        uscc = next(m.uscc for m in demo_members() if m.key == key)
        return member_id(uscc), load_key(self.settings.keys_dir, key, DEMO_PASSWORD)


@pytest.fixture
def chain(anvil_settings: Settings, anvil_w3: Web3, anvil_node: AnvilNode) -> Chain:
    deployment, _ = ensure_deployment(anvil_settings, anvil_w3)
    client = ConsortiumClient(
        anvil_w3, deployment.contract(anvil_w3, "Consortium"), operator_sender(anvil_settings, anvil_w3)
    )
    regulators = [load_key(anvil_settings.keys_dir, name, DEMO_PASSWORD) for name in REGULATORS]
    return Chain(anvil_settings, anvil_w3, anvil_node, deployment, client, regulators)


def govern(chain: Chain) -> dict[str, bytes]:
    """Suspend a member, add a key, revoke it by the member itself, leave one proposal open and one approved."""
    client, signers = chain.client, chain.regulators
    qilu, _ = chain.member("qilu-mall")
    haibin, haibin_key = chain.member("haibin-marketplace")
    jiaodong, _ = chain.member("jiaodong-express")
    extra = Account.create()
    client.suspend(qilu, signers)
    client.add_key(haibin, extra.address, signers)
    client.revoke_own_key(haibin_key, haibin, extra.address)
    open_one = client.propose(signers[0], Action.CHANGE_ROLES, jiaodong, encode_payload(Action.CHANGE_ROLES, roles=6))
    approved = client.propose(signers[0], Action.REMOVE, jiaodong, b"")
    client.approve(signers[1], approved)
    return {
        "qilu": qilu,
        "haibin": haibin,
        "open": open_one,
        "approved": approved,
        "extra": bytes.fromhex(extra.address[2:]),
    }


def reorg(chain: Chain, depth: int, proposals: int) -> list[bytes]:
    """``anvil_reorg`` of the last ``depth`` blocks; the new blocks carry ``proposals`` new proposals (one each)."""
    w3, contract = chain.w3, chain.client.contract
    operator = chain.client.sender.account
    nonce = w3.eth.get_transaction_count(operator.address, w3.eth.block_number - depth)
    jiaodong, _ = chain.member("jiaodong-express")
    raw, ids = [], []
    for offset in range(proposals):
        message = proposal_message(Action.SUSPEND, jiaodong, b"", secrets.randbits(64))
        typed = typed_data("Proposal", message, w3.eth.chain_id, contract.address)
        call = contract.functions.propose(
            int(Action.SUSPEND), jiaodong, b"", message["nonce"], sign(chain.regulators[0], typed)
        )
        tx = {"to": contract.address, "data": call._encode_transaction_data(), "value": 0, "gas": 1_000_000}
        tx.update(gasPrice=0, nonce=nonce + offset, chainId=w3.eth.chain_id)
        raw.append(["0x" + operator.sign_transaction(tx).raw_transaction.hex(), offset])
        ids.append(contract.functions.hashProposal(int(Action.SUSPEND), jiaodong, b"", message["nonce"]).call())
    answer = w3.provider.make_request("anvil_reorg", [depth, raw])  # type: ignore[arg-type]
    assert "error" not in answer, answer
    chain.client.sender = Sender(w3, operator, 0)  # the operator's nonce went back with the reorg
    return [bytes(i) for i in ids]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def at_head(indexer: Indexer, w3: Web3) -> bool:
    checkpoint = indexer.checkpoint()
    return checkpoint is not None and checkpoint.hash == w3.eth.get_block("latest")["hash"].to_0x_hex()


def orphans(engine: Engine, w3: Web3) -> list[str]:
    """Rows naming a block hash the node no longer has at that height."""
    found = []
    columns = [
        ("chain_event", "block_number", "block_hash"),
        ("indexed_block", "number", "hash"),
        ("indexer_checkpoint", "block_number", "block_hash"),
    ]
    for table, number, block_hash in columns:
        with engine.connect() as connection:
            rows = connection.execute(text(f"SELECT DISTINCT {number}, {block_hash} FROM {table}")).all()
        for n, h in rows:
            if w3.eth.get_block(n)["hash"].to_0x_hex() != h:
                found.append(f"{table}: block {n} {h}")
    return found


def scratch_dump(chain: Chain, tmp_path: Any, until: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """A fresh rebuild into a scratch SQLite database, dumped."""
    engine = open_store(f"sqlite:///{tmp_path / f'scratch-{secrets.token_hex(4)}.db'}")
    try:
        rebuild(engine, chain.w3, chain.deployment, chain.settings, until=until)
        return dump(engine)
    finally:
        engine.dispose()


# the decoder


def test_the_lean_decoder_agrees_with_web3(chain: Chain) -> None:
    contract = chain.client.contract
    govern(chain)
    logs = chain.w3.provider.make_request("eth_getLogs", [{"fromBlock": "0x0", "address": contract.address}])["result"]  # type: ignore[arg-type]
    decoder = EventDecoder(artifact("Consortium").abi, "Consortium")
    names = set()
    for raw, log in zip(logs, chain.w3.eth.get_logs({"fromBlock": 0, "address": contract.address}), strict=True):
        event = decoder.decode(raw)
        reference = contract.get_event_by_topic(log["topics"][0].to_0x_hex()).process_log(log)
        expected = {k: (v.to_0x_hex() if hasattr(v, "to_0x_hex") else "0x" + v.hex() if isinstance(v, bytes) else v)
                    for k, v in reference["args"].items()}  # fmt: skip
        assert event.args == expected
        assert (event.name, event.tx_hash, event.log_index) == (
            reference["event"],
            log["transactionHash"].to_0x_hex(),
            log["logIndex"],
        )
        names.add(event.name)
    assert {
        "MemberAdmitted",
        "KeyAdded",
        "KeyRevoked",
        "MemberSuspended",
        "ProposalCreated",
        "ThresholdChanged",
    } <= names


def test_decoded_values_are_json_safe_and_unknown_topics_are_refused() -> None:
    inputs = [
        ("id", "uint256", True),
        ("amount", "uint256", False),
        ("delta", "int64", False),
        ("who", "address[]", False),
    ]
    abi = [
        {
            "type": "event",
            "name": "Big",
            "anonymous": False,
            "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
        }
    ]
    decoder = EventDecoder(abi, "Test")
    data = (2**200).to_bytes(32, "big") + (2**256 - 5).to_bytes(32, "big") + (96).to_bytes(32, "big")
    data += (1).to_bytes(32, "big") + bytes(12) + bytes.fromhex("ab" * 20)
    log = {
        "address": "0x" + "11" * 20,
        "topics": [decoder.topic0("Big"), "0x" + "00" * 31 + "07"],
        "data": "0x" + data.hex(),
        "blockNumber": "0x5",
        "blockHash": "0x" + "22" * 32,
        "transactionHash": "0x" + "33" * 32,
        "logIndex": "0x1",
    }
    event = decoder.decode(log)
    assert event.args == {
        "id": 7,
        "amount": str(2**200),
        "delta": -5,
        "who": [Web3.to_checksum_address("0x" + "ab" * 20)],
    }
    assert (event.block_number, event.log_index, event.key) == (5, 1, ("0x" + "33" * 32, 1))
    with pytest.raises(UndecodableLog, match="no event of Test"):
        decoder.decode({**log, "topics": ["0x" + "44" * 32]})
    assert [c.name for c in table_of(ChainEvent).columns] == ["chain_id", *DecodedEvent._fields]


# the index


def test_the_index_is_what_the_contract_says(chain: Chain, engine: Engine) -> None:
    indexer = chain.indexer(engine)
    addresses = [c.address for c in chain.deployment.contracts.values()]
    demo = chain.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": addresses})
    assert len(demo) > 37 + 15 + 2 + 1  # consortium, credit records, closures, a receipt, the other registries
    assert indexer.step() == len(demo)  # every event of our contracts, once
    ids = govern(chain)
    assert indexer.step() > 0
    assert indexer.lag() == (0, 0)
    tables = dump(engine)
    client = chain.client
    members = {row["id"]: row for row in tables["member"]}
    assert len(members) == 9
    for mid, row in members.items():
        info = client.member(bytes.fromhex(mid[2:]))
        assert (row["name"], row["roles"], row["status"]) == (info.name, int(info.roles), info.status.name.lower())
    assert members["0x" + ids["qilu"].hex()]["status"] == MemberStatus.SUSPENDED.name.lower()
    keys = {row["address"]: row for row in tables["member_key"]}
    for mid in members:
        for key in client.keys_of(bytes.fromhex(mid[2:])):
            assert keys[key]["member_id"] == mid and keys[key]["active"] == client.is_key_active(key)
    revoked = keys[Web3.to_checksum_address(ids["extra"])]
    assert (revoked["active"], revoked["revoked_by_self"]) == (False, True)
    proposals = {row["id"]: row for row in tables["proposal"]}
    assert len(proposals) == 6 + 2 + 2  # demo admissions, suspend + add key, the open and the approved one
    for pid, row in proposals.items():
        proposal = client.proposal(bytes.fromhex(pid[2:]))
        assert (row["action"], row["approvals"], row["executed"], row["expires_at"], row["proposer_id"]) == (
            proposal.action.name,
            proposal.approvals,
            proposal.executed,
            proposal.expires_at,
            "0x" + proposal.proposer.hex(),
        )
    assert proposals["0x" + ids["open"].hex()]["approvals"] == 1
    assert proposals["0x" + ids["approved"].hex()]["approvals"] == 2
    approvals = {(a["proposal_id"], a["member_id"]) for a in tables["proposal_approval"]}
    assert len(approvals) == sum(p["approvals"] for p in proposals.values())
    assert all(client.has_approved(bytes.fromhex(p[2:]), bytes.fromhex(m[2:])) for p, m in approvals)
    threshold = {"name": "threshold", "value": str(client.threshold()), "updated_block": chain.deployment.start_block}
    assert tables["chain_parameter"] == [threshold]


def test_replaying_any_range_twice_leaves_the_index_identical(chain: Chain, engine: Engine) -> None:
    govern(chain)
    indexer = chain.indexer(engine)
    indexer.step()
    before = dump(engine)
    head = chain.w3.eth.block_number
    for first, last in ((1, head), (2, 9), (12, 13), (head, head), (5, head - 2)):
        parent = chain.w3.eth.get_block(first - 1)
        with engine.begin() as connection:  # move the checkpoint back, as a crash before the next commit would
            connection.execute(
                update(CHECKPOINTS).values(block_number=first - 1, block_hash=parent["hash"].to_0x_hex())
            )
        indexer.step(until=last)
        indexer.step()
        assert dump(engine) == before, f"replaying blocks {first}-{last} changed the index"
    assert check(engine, chain.w3, chain.deployment, chain.settings) == []


def test_a_reorg_of_depth_3_while_indexing_ends_equal_to_a_fresh_rebuild(
    chain: Chain, engine: Engine, tmp_path: Any
) -> None:
    indexer = chain.indexer(engine, poll_interval=0.05)
    stop = threading.Event()
    runner = threading.Thread(target=indexer.run, args=(stop,), daemon=True)
    runner.start()
    try:
        ids = govern(chain)
        wait_until(lambda: at_head(indexer, chain.w3), what="the indexer to reach the head")
        head = chain.w3.eth.block_number
        orphaned = chain.w3.eth.get_block(head)["hash"].to_0x_hex()
        new_ids = reorg(chain, depth=3, proposals=2)
        chain.client.propose(chain.regulators[1], Action.SUSPEND, chain.member("yantai-orchard")[0], b"")
        wait_until(lambda: at_head(indexer, chain.w3), what="the indexer to follow the new chain")
    finally:
        stop.set()
        runner.join(timeout=10)
    assert not runner.is_alive()
    assert dump(engine) == scratch_dump(chain, tmp_path)
    assert orphans(engine, chain.w3) == []
    with engine.connect() as connection:
        assert connection.execute(select(EVENTS).where(EVENTS.c.block_hash == orphaned)).first() is None
        proposals = {row[0] for row in connection.execute(text("SELECT id FROM proposal"))}
    assert {"0x" + pid.hex() for pid in new_ids} <= proposals
    assert "0x" + ids["approved"].hex() not in proposals  # its blocks were replaced
    assert check(engine, chain.w3, chain.deployment, chain.settings) == []


def test_a_reorg_into_blocks_without_events_removes_their_rows(chain: Chain, engine: Engine, tmp_path: Any) -> None:
    indexer = chain.indexer(engine)
    indexer.step()
    govern(chain)
    indexer.step()
    reorg(chain, depth=3, proposals=0)
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    indexer.step()
    assert dump(engine) == scratch_dump(chain, tmp_path)
    assert orphans(engine, chain.w3) == []


def test_a_reorg_deeper_than_the_window_stops_the_indexer(chain: Chain, engine: Engine) -> None:
    indexer = chain.indexer(engine, reorg_window=2)
    govern(chain)
    indexer.step()
    before = dump(engine)
    reorg(chain, depth=3, proposals=1)
    with pytest.raises(ReorgTooDeep, match="deeper than reorg_window=2"):
        indexer.step()
    with pytest.raises(ReorgTooDeep):
        indexer.run(threading.Event())
    assert dump(engine) == before  # nothing rolled back: the index waits for a rebuild


def test_the_indexer_survives_the_node_going_away(
    chain: Chain, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="node_bridge.indexer")
    indexer = chain.indexer(sqlite_engine, poll_interval=0.05)
    indexer.step()
    chain.node.stop()
    with pytest.raises(ChainUnavailable):
        indexer.step()
    stop = threading.Event()
    runner = threading.Thread(target=indexer.run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_until(lambda: caplog.text.count("indexer step failed") >= 2, what="steps to fail while the node is down")
        chain.node.start()
        qilu, _ = chain.member("qilu-mall")
        chain.client.suspend(qilu, chain.regulators)
        wait_until(lambda: at_head(indexer, chain.w3), what="the indexer to resume")
    finally:
        stop.set()
        runner.join(timeout=10)
    with sqlite_engine.connect() as connection:
        status = connection.execute(
            text("SELECT status FROM member WHERE id = :id"), {"id": "0x" + qilu.hex()}
        ).scalar()
    assert status == "suspended"


def test_ranges_halve_on_errors_and_grow_when_empty(chain: Chain, sqlite_engine: Engine, tmp_path: Any) -> None:
    govern(chain)
    for _ in range(40):
        chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    indexer = chain.indexer(sqlite_engine)
    indexer.range_size = 64
    real_call = indexer.rpc.call
    spans: list[int] = []

    def limited(method: str, params: Any) -> Any:  # a node that refuses more than 4 blocks per eth_getLogs
        if method == "eth_getLogs":
            span = int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16) + 1
            spans.append(span)
            if span > 4:
                raise RpcError(method, {"code": -32005, "message": "query returned more than 10000 results"})
        return real_call(method, params)

    indexer.rpc.call = limited  # type: ignore[method-assign]
    indexer.step()
    assert spans[:5] == [64, 32, 16, 8, 4]
    assert 8 in spans[5:]  # it grew again after an empty range, and halved back
    assert dump(sqlite_engine) == scratch_dump(chain, tmp_path)


def test_an_idle_step_is_one_node_call_and_one_query(chain: Chain, sqlite_engine: Engine, tmp_path: Any) -> None:
    indexer = chain.indexer(sqlite_engine)
    indexer.step()
    calls: list[str] = []
    statements: list[str] = []
    real_call = indexer.rpc.call

    def counted(method: str, params: Any) -> Any:
        calls.append(method)
        return real_call(method, params)

    indexer.rpc.call = counted  # type: ignore[method-assign]
    event.listen(sqlite_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert indexer.step() == 0
    assert calls == ["eth_getBlockByNumber"]  # the head is the one it indexed up to: no header, no logs
    assert len(statements) == 1 and "FROM indexer_checkpoint" in statements[0]  # nor moved by another process

    qilu, _ = chain.member("qilu-mall")
    chain.client.suspend(qilu, chain.regulators)  # new blocks, with events
    assert indexer.step() > 0
    assert at_head(indexer, chain.w3) and statements
    assert dump(sqlite_engine) == scratch_dump(chain, tmp_path)


def test_confirmations_hold_back_the_newest_blocks(chain: Chain, sqlite_engine: Engine) -> None:
    indexer = chain.indexer(sqlite_engine, confirmations=3)
    indexer.step()
    head = chain.w3.eth.block_number
    checkpoint = indexer.checkpoint()
    assert checkpoint is not None and checkpoint.number == head - 3
    assert indexer.lag()[0] == 3
