"""The relayer on a real anvil node and a real database: batches, idempotence, decoded failures, and recovery
from a lost transaction, a reorg, kill -9 of the node and kill -9 of the relayer process."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy import Engine, event
from sqlmodel import col, select
from web3 import Web3
from web3.contract import Contract

from credtrace.keys import load_key
from credtrace.settings import PROJECT_ROOT, Settings
from credtrace.system import ensure_deployment, operator_account
from node_bridge import outbox
from node_bridge.chain import AnvilNode
from node_bridge.consortium import (
    Action,
    ConsortiumClient,
    digest,
    encode_payload,
    member_id,
    proposal_message,
    sign,
    typed_data,
)
from node_bridge.deploy import Deployment
from node_bridge.models import OutboxEntry, OutboxStatus, RelayTransaction, RelayTxStatus
from node_bridge.relayer import Relayer
from node_bridge.store import session_scope
from tests.conftest import free_port, make_settings

pytestmark = pytest.mark.anvil

MEMBER = member_id("91370100321654988D")  # a demo member (config/demo.yaml)
PROPOSAL_CREATED = "0x" + keccak(text="ProposalCreated(bytes32,uint8,bytes32,bytes32,address,uint64,bytes)").hex()
DEADLINE = 120.0


@dataclass
class Chain:
    settings: Settings
    node: AnvilNode
    w3: Web3
    deployment: Deployment
    contract: Contract
    regulator: LocalAccount


@dataclass(frozen=True)
class Record:
    id: bytes
    calldata: bytes

    @property
    def hex(self) -> str:
        return "0x" + self.id.hex()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """One anvil node with the contracts and the demo consortium, shared by this module's tests."""
    settings = make_settings(tmp_path_factory.mktemp("relayer") / "data", free_port(), relayer_batch_size=10)
    node = AnvilNode.from_settings(settings)
    w3 = node.start()
    try:
        deployment, _ = ensure_deployment(settings, w3)
        node.stop()  # a clean stop writes the state: the deployment survives any later kill -9
        w3 = node.start()
        contract = deployment.contract(w3, "Consortium")
        regulator = load_key(settings.keys_dir, "market-regulation", "demo")
        yield Chain(settings, node, w3, deployment, contract, regulator)
    finally:
        node.stop()


def add_key_proposal(chain: Chain, signer: LocalAccount | None = None, nonce: int | None = None) -> Record:
    """A signed ``propose(ADD_KEY, a fresh key)`` call for the demo member; its record id is the proposal id."""
    nonce = secrets.randbits(256) if nonce is None else nonce
    payload = encode_payload(Action.ADD_KEY, key=Account.create().address)
    message = proposal_message(Action.ADD_KEY, MEMBER, payload, nonce)
    typed = typed_data("Proposal", message, chain.w3.eth.chain_id, chain.contract.address)
    args = [int(Action.ADD_KEY), MEMBER, payload, nonce, sign(signer or chain.regulator, typed)]
    return Record(digest(typed), bytes.fromhex(chain.contract.encode_abi("propose", args=args)[2:]))


def enqueue(engine: Engine, records: list[Record], ids: list[str] | None = None) -> None:
    with session_scope(engine) as session:
        for record, record_id in zip(records, ids or [r.hex for r in records], strict=True):
            outbox.enqueue(session, record_id, "Consortium", "propose", record.calldata)


def relayer(chain: Chain, engine: Engine, **settings: object) -> Relayer:
    configured = chain.settings.model_copy(update=settings)
    return Relayer(engine, chain.w3, chain.deployment, operator_account(chain.settings), configured)


def wait_for(condition: Callable[[], bool], what: str, step: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if step is not None:
            step()
        time.sleep(0.01)


def counts(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return outbox.counts(session)


def settled(engine: Engine, total: int) -> bool:
    found = counts(engine)
    return found.get(OutboxStatus.CONFIRMED, 0) + found.get(OutboxStatus.FAILED, 0) == total


def drain(relay: Relayer, engine: Engine, total: int) -> None:
    """Step until every row is confirmed or failed."""
    wait_for(lambda: settled(engine, total), f"{total} rows to settle", relay.step)


def rows(engine: Engine) -> list[OutboxEntry]:
    with session_scope(engine) as session:
        return list(session.exec(select(OutboxEntry).order_by(col(OutboxEntry.batch_index))).all())


def relay_txs(engine: Engine) -> list[RelayTransaction]:
    with session_scope(engine) as session:
        return list(session.exec(select(RelayTransaction).order_by(col(RelayTransaction.nonce))).all())


def proposals_created(chain: Chain) -> Counter[str]:
    """ProposalCreated events per proposal id on the node's canonical chain."""
    logs = chain.w3.provider.make_request(
        "eth_getLogs",  # type: ignore[arg-type]
        [{"fromBlock": hex(chain.deployment.start_block), "toBlock": "latest", "address": chain.contract.address}],
    )["result"]
    return Counter(log["topics"][1] for log in logs if log["topics"][0] == PROPOSAL_CREATED)


def assert_on_chain_once(chain: Chain, records: list[Record]) -> None:
    created = proposals_created(chain)
    assert [created[r.hex] for r in records] == [1] * len(records)
    client = ConsortiumClient.read_only(chain.w3, chain.contract)
    assert all(client.proposal(r.id).created_at > 0 for r in records)


def test_several_records_ride_one_transaction(chain: Chain, engine: Engine) -> None:
    records = [add_key_proposal(chain) for _ in range(25)]
    enqueue(engine, records)
    drain(relayer(chain, engine), engine, 25)

    assert counts(engine) == {"confirmed": 25}
    txs = relay_txs(engine)
    assert [tx.size for tx in txs] == [10, 10, 5]
    assert all(tx.status == RelayTxStatus.MINED and tx.block_hash for tx in txs)
    by_tx = Counter(row.tx_hash for row in rows(engine))
    assert by_tx == {tx.tx_hash: tx.size for tx in txs}
    assert all(row.block_number and row.attempts == 1 for row in rows(engine))
    assert_on_chain_once(chain, records)


def test_an_idle_round_is_one_node_call_and_one_query_and_new_rows_still_go_out(
    chain: Chain, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = relayer(chain, sqlite_engine)
    relay.step()  # the first round reads the pending transactions (none)
    calls: list[str] = []
    statements: list[str] = []
    real_request = chain.w3.provider.make_request

    def counted(method: Any, params: Any) -> Any:
        calls.append(method)
        return real_request(method, params)

    monkeypatch.setattr(chain.w3.provider, "make_request", counted)
    event.listen(sqlite_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for _ in range(3):
        assert relay.step() == 0
    assert calls == ["eth_getBlockByNumber"] * 3  # the head, for blocks that vanished
    assert len(statements) == 3 and all("FROM outbox" in s for s in statements)  # anything accepted?

    records = [add_key_proposal(chain) for _ in range(3)]
    enqueue(sqlite_engine, records)
    drain(relay, sqlite_engine, 3)  # the same relayer, after idle rounds
    assert counts(sqlite_engine) == {"confirmed": 3}
    assert_on_chain_once(chain, records)


def test_the_same_record_twice_is_one_record(chain: Chain, sqlite_engine: Engine) -> None:
    record = add_key_proposal(chain)
    enqueue(sqlite_engine, [record])
    enqueue(sqlite_engine, [record])
    assert counts(sqlite_engine) == {"accepted": 1}
    drain(relayer(chain, sqlite_engine), sqlite_engine, 1)

    enqueue(sqlite_engine, [record])  # again, once it is on chain
    assert relayer(chain, sqlite_engine).step() == 0
    assert counts(sqlite_engine) == {"confirmed": 1}
    assert len(relay_txs(sqlite_engine)) == 1
    assert_on_chain_once(chain, [record])


def test_a_failing_record_fails_alone_with_its_custom_error(chain: Chain, sqlite_engine: Engine) -> None:
    good = add_key_proposal(chain)
    outsider = Account.create()
    unauthorised = add_key_proposal(chain, signer=outsider)
    duplicate = Record(keccak(text="another record id"), good.calldata)  # the same proposal under another id
    later = add_key_proposal(chain)
    enqueue(
        sqlite_engine, [good, unauthorised, duplicate, later], [good.hex, unauthorised.hex, duplicate.hex, later.hex]
    )
    drain(relayer(chain, sqlite_engine), sqlite_engine, 4)

    status = {row.id: (row.status, row.error) for row in rows(sqlite_engine)}
    assert status[good.hex] == ("confirmed", None)
    assert status[later.hex] == ("confirmed", None)
    assert status[unauthorised.hex] == ("failed", f"NotActiveRegulator({outsider.address})")
    assert status[duplicate.hex] == ("failed", f"ProposalAlreadyExists({good.hex})")
    assert len({row.tx_hash for row in rows(sqlite_engine)}) == 1
    assert_on_chain_once(chain, [good, later])


def test_a_transaction_lost_before_it_was_sent_is_sent_again(chain: Chain, sqlite_engine: Engine) -> None:
    records = [add_key_proposal(chain) for _ in range(3)]
    enqueue(sqlite_engine, records)
    relay = relayer(chain, sqlite_engine)
    relay.broadcaster._send_now = lambda tx_hash, raw: None  # type: ignore[method-assign] # crash between record and send
    relay.step()
    assert counts(sqlite_engine) == {"submitted": 3}

    relay = relayer(chain, sqlite_engine)  # a restarted relayer finds the transaction vanished
    drain(relay, sqlite_engine, 3)
    [tx] = relay_txs(sqlite_engine)
    assert (tx.status, tx.sends) == (RelayTxStatus.MINED, 2)
    assert counts(sqlite_engine) == {"confirmed": 3}
    assert_on_chain_once(chain, records)


def test_rows_whose_nonce_went_to_another_transaction_are_sent_again(chain: Chain, sqlite_engine: Engine) -> None:
    records = [add_key_proposal(chain) for _ in range(3)]
    enqueue(sqlite_engine, records)
    relay = relayer(chain, sqlite_engine)
    relay.broadcaster._send_now = lambda tx_hash, raw: None  # type: ignore[method-assign]
    relay.step()
    [lost] = relay_txs(sqlite_engine)
    operator = operator_account(chain.settings)
    other: dict[str, Any] = {
        "to": operator.address,
        "value": 0,
        "gas": 21_000,
        "gasPrice": 0,
        "nonce": lost.nonce,
        "chainId": 31337,
    }
    chain.w3.eth.wait_for_transaction_receipt(
        chain.w3.eth.send_raw_transaction(operator.sign_transaction(other).raw_transaction)
    )

    drain(relayer(chain, sqlite_engine), sqlite_engine, 3)
    assert [tx.status for tx in relay_txs(sqlite_engine)] == [RelayTxStatus.REPLACED, RelayTxStatus.MINED]
    assert all(row.attempts == 2 and row.status == "confirmed" for row in rows(sqlite_engine))
    assert_on_chain_once(chain, records)


def test_a_batch_dropped_by_a_reorg_is_sent_again(chain: Chain, sqlite_engine: Engine) -> None:
    records = [add_key_proposal(chain) for _ in range(3)]
    enqueue(sqlite_engine, records)
    relay = relayer(chain, sqlite_engine)
    drain(relay, sqlite_engine, 3)
    [before] = relay_txs(sqlite_engine)

    assert chain.w3.eth.block_number == before.block_number  # our batch is in the last block
    chain.w3.provider.make_request("anvil_reorg", [1, []])  # type: ignore[arg-type] # replace it by an empty one
    assert proposals_created(chain)[records[0].hex] == 0
    assert chain.w3.eth.block_number == before.block_number  # same height, other blocks
    wait_for(lambda: relay_txs(sqlite_engine)[0].block_hash not in (None, before.block_hash), "re-mined", relay.step)
    assert counts(sqlite_engine) == {"confirmed": 3}
    assert_on_chain_once(chain, records)


def burst(chain: Chain, engine: Engine, count: int = 200) -> list[Record]:
    chain.node.stop()  # persist what earlier tests did, so the kill below loses only this burst's blocks
    chain.node.start()
    records = [add_key_proposal(chain) for _ in range(count)]
    enqueue(engine, records)
    return records


def test_kill_9_of_anvil_mid_burst_every_write_confirmed_once(chain: Chain, sqlite_engine: Engine) -> None:
    records = burst(chain, sqlite_engine)
    relay = relayer(chain, sqlite_engine, relayer_batch_size=5)
    relay.max_inflight = 4
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: counts(sqlite_engine).get("confirmed", 0) >= 30, "30 confirmed")
        chain.node.kill()
        mid = counts(sqlite_engine)
        chain.node.start()
        wait_for(lambda: settled(sqlite_engine, 200), "200 rows to settle")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert mid.get("confirmed", 0) < 200, "the kill came after the burst"
    assert counts(sqlite_engine) == {"confirmed": 200}
    assert_on_chain_once(chain, records)


def test_kill_9_of_the_relayer_process_mid_burst_every_write_confirmed_once(
    chain: Chain, tmp_path: Path, sqlite_engine: Engine
) -> None:
    records = burst(chain, sqlite_engine)
    env = os.environ | {
        "CREDTRACE_DATA_DIR": str(chain.settings.data_path),
        "CREDTRACE_ANVIL_PORT": str(chain.settings.anvil_port),
        "CREDTRACE_DATABASE_URL": str(sqlite_engine.url),
        "CREDTRACE_RELAYER_BATCH_SIZE": "5",
        "SOLCX_BINARY_PATH": os.environ.get("SOLCX_BINARY_PATH", str(PROJECT_ROOT / "build" / "solcx")),
    }

    def start(log: str) -> subprocess.Popen[bytes]:
        with (tmp_path / log).open("wb") as out:
            command = [sys.executable, "-m", "node_bridge.relayer"]
            return subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)

    first = start("relayer-1.log")
    try:
        wait_for(lambda: counts(sqlite_engine).get("confirmed", 0) >= 20 or first.poll() is not None, "20 confirmed")
        first.kill()  # SIGKILL
        first.wait()
        mid = counts(sqlite_engine)
        assert first.returncode == -signal.SIGKILL, (tmp_path / "relayer-1.log").read_text()
        second = start("relayer-2.log")
        try:
            wait_for(lambda: settled(sqlite_engine, 200) or second.poll() is not None, "200 rows to settle")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0, (tmp_path / "relayer-2.log").read_text()
    finally:
        if first.poll() is None:
            first.kill()
    assert mid.get("confirmed", 0) < 200, "the kill came after the burst"
    assert counts(sqlite_engine) == {"confirmed": 200}
    assert_on_chain_once(chain, records)
