"""Relayer throughput: outbox → confirmed on a local anvil, against the same records sent without the relayer.

    SOLCX_BINARY_PATH=build/solcx .venv/bin/python -m bench.relayer [--records 5000] [--batch-sizes 50,100,200]

For each batch size, each on a fresh anvil node (``AnvilNode``, as ``make run`` starts it) and deployment:

- relayer: N records enqueued in the outbox, then :class:`node_bridge.relayer.Relayer` runs (in a thread, as
  in production) until every row is confirmed: records/s from its start to the last confirmation;
- node ceiling: N records pre-signed into ``batch(calls)`` transactions of that size and sent raw until all
  are mined: what the node does with no relayer, database or outbox.

Then the baseline: N records as pre-signed raw transactions of one ``propose`` each, sent as fast as the node
takes them until all are mined. Every run gets its own node: anvil slows down as blocks accumulate, so sharing
one would rank the runs by their order. Records are ``propose(ADD_KEY ...)`` calls signed by a demo regulator
(~240k gas each in a batch).
"""

from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from rich.console import Console
from rich.table import Table
from sqlalchemy import func
from sqlmodel import select
from web3 import Web3
from web3.contract import Contract
from web3.types import RPCEndpoint

from credtrace.keys import load_key
from credtrace.settings import Settings
from credtrace.system import ensure_deployment, operator_account
from node_bridge import outbox
from node_bridge.chain import AnvilNode
from node_bridge.consortium import Action, digest, encode_payload, member_id, proposal_message, sign, typed_data
from node_bridge.deploy import Deployment
from node_bridge.models import RelayTransaction
from node_bridge.nonces import encode_batch
from node_bridge.relayer import Relayer
from node_bridge.store import open_store, session_scope

console = Console()
MEMBER_USCC = "91370100321654988D"  # a demo member (config/demo.yaml)
REGULATOR_KEY = "market-regulation"


@dataclass
class Chain:
    settings: Settings
    w3: Web3
    deployment: Deployment
    contract: Contract
    regulator: LocalAccount


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fresh_chain(batch_size: int) -> Iterator[Chain]:
    """A new anvil node in a scratch directory with the contracts and the demo consortium deployed."""
    scratch = Path(tempfile.mkdtemp(prefix="credtrace-bench-"))
    settings = Settings(data_dir=scratch / "data", anvil_port=free_port(), relayer_batch_size=batch_size)
    node = AnvilNode.from_settings(settings)
    try:
        w3 = node.start()
        deployment, _ = ensure_deployment(settings, w3)
        regulator = load_key(settings.keys_dir, REGULATOR_KEY, "demo")
        yield Chain(settings, w3, deployment, deployment.contract(w3, "Consortium"), regulator)
    finally:
        node.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def make_records(chain: Chain, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` new ADD_KEY proposals: (record id = proposal id, full calldata of ``propose``)."""
    member, chain_id, address = member_id(MEMBER_USCC), chain.w3.eth.chain_id, chain.contract.address
    records = []
    for _ in range(count):
        payload = encode_payload(Action.ADD_KEY, key=Account.create().address)
        nonce = secrets.randbits(256)
        typed = typed_data("Proposal", proposal_message(Action.ADD_KEY, member, payload, nonce), chain_id, address)
        args = [int(Action.ADD_KEY), member, payload, nonce, sign(chain.regulator, typed)]
        records.append((digest(typed), bytes.fromhex(chain.contract.encode_abi("propose", args=args)[2:])))
    return records


@dataclass
class Sent:
    seconds: float
    blocks: int
    nudges: int
    """``evm_mine`` calls needed: anvil's automine sometimes stops with transactions pending (see ARCHITECTURE)."""


def send_raw(w3: Web3, sender: ChecksumAddress, raws: list[bytes], window: int = 256) -> Sent:
    """Send pre-signed transactions (nonces 0..n-1 of ``sender``) as fast as the node takes them, until all are
    mined. At most ``window`` wait unmined: anvil drops transactions from a pool of a thousand or more."""
    first_block, start = w3.eth.block_number, time.perf_counter()
    sent = mined = nudges = 0
    head, moved = first_block, start
    while mined < len(raws):
        while sent < len(raws) and sent - mined < window:
            last = w3.eth.send_raw_transaction(raws[sent])
            sent += 1
        mined = w3.eth.get_transaction_count(sender)
        if w3.eth.block_number != head:
            head, moved = w3.eth.block_number, time.perf_counter()
        elif time.perf_counter() - moved > 2:  # automine stalled with transactions pending (see ARCHITECTURE)
            w3.provider.make_request(RPCEndpoint("evm_mine"), [])
            nudges += 1
        if time.perf_counter() - start > 900:
            raise RuntimeError(f"{len(raws) - mined} transactions not mined after 900 s")
    elapsed = time.perf_counter() - start
    if w3.eth.wait_for_transaction_receipt(last, timeout=60)["status"] != 1:  # the nonce shows before the receipt
        raise RuntimeError(f"last transaction {last.to_0x_hex()} reverted")
    return Sent(elapsed, w3.eth.block_number - first_block, nudges)


def node_ceiling(chain: Chain, count: int, size: int) -> Sent:
    """Records/s of pre-signed ``batch`` transactions of ``size`` records, sent raw."""
    calls = [calldata for _, calldata in make_records(chain, count)]
    account = Account.create()  # gas is free on this node: an empty account can send
    raws = [
        bytes(
            account.sign_transaction(
                {
                    "to": chain.contract.address,
                    "data": encode_batch(calls[i : i + size]),
                    "value": 0,
                    "gas": Relayer.gas_base + Relayer.gas_per_call * len(calls[i : i + size]),
                    "gasPrice": 0,
                    "nonce": i // size,
                    "chainId": chain.w3.eth.chain_id,
                }
            ).raw_transaction
        )
        for i in range(0, count, size)
    ]
    return send_raw(chain.w3, account.address, raws)


def one_per_transaction(chain: Chain, count: int) -> Sent:
    """Records/s of pre-signed raw transactions carrying one ``propose`` each: the baseline."""
    account = Account.create()
    raws = [
        bytes(
            account.sign_transaction(
                {
                    "to": chain.contract.address,
                    "data": calldata,
                    "value": 0,
                    "gas": 500_000,
                    "gasPrice": 0,
                    "nonce": nonce,
                    "chainId": chain.w3.eth.chain_id,
                }
            ).raw_transaction
        )
        for nonce, (_, calldata) in enumerate(make_records(chain, count))
    ]
    return send_raw(chain.w3, account.address, raws)


def relayed(chain: Chain, count: int) -> tuple[float, float, int]:
    """(records/s outbox → confirmed, enqueue records/s, transactions) through the relayer."""
    records = make_records(chain, count)
    engine = open_store(chain.settings.database)
    start = time.perf_counter()
    with session_scope(engine) as session:
        for record_id, calldata in records:
            outbox.enqueue(session, record_id, "Consortium", "propose", calldata)
    enqueue_rate = count / (time.perf_counter() - start)
    relayer = Relayer(engine, chain.w3, chain.deployment, operator_account(chain.settings), chain.settings)
    stop = threading.Event()
    thread = threading.Thread(target=relayer.run, args=(stop,), daemon=True)
    start = time.perf_counter()
    thread.start()
    deadline = start + 600
    while True:
        with session_scope(engine) as session:
            counts = outbox.counts(session)
        if counts.get("confirmed", 0) + counts.get("failed", 0) >= count or time.perf_counter() > deadline:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    if counts.get("confirmed", 0) != count:
        raise RuntimeError(f"not every record confirmed: {counts}")
    with session_scope(engine) as session:
        transactions = int(session.exec(select(func.count()).select_from(RelayTransaction)).one())
    engine.dispose()
    return count / elapsed, enqueue_rate, transactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--batch-sizes", default="50,100,200")
    parser.add_argument("--baseline-records", type=int, default=None, help="default: --records")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    table = Table(title=f"Relayer: {args.records:,} records (propose ADD_KEY), anvil automine, a fresh node per run")
    for column in ("batch size", "relayer rec/s", "txs", "node ceiling rec/s", "relayer / ceiling", "enqueue rec/s"):
        table.add_column(column, justify="right")
    for size in sizes:
        with fresh_chain(size) as chain:
            rate, enqueue_rate, txs = relayed(chain, args.records)
        with fresh_chain(size) as chain:
            ceiling = args.records / node_ceiling(chain, args.records, size).seconds
        console.print(f"relayer: {rate:,.0f} records/s with batch size {size} (node ceiling {ceiling:,.0f})")
        row = (f"{rate:,.0f}", str(txs), f"{ceiling:,.0f}", f"{rate / ceiling:.0%}", f"{enqueue_rate:,.0f}")
        table.add_row(str(size), *row)
    with fresh_chain(sizes[0]) as chain:
        count = args.baseline_records or args.records
        baseline = one_per_transaction(chain, count)
    console.print(table)
    console.print(
        f"baseline: {count / baseline.seconds:,.0f} records/s, {count:,} records as pre-signed raw transactions of"
        f" one propose each, {baseline.blocks:,} blocks, {baseline.nudges} evm_mine nudges for a stalled automine"
    )


if __name__ == "__main__":
    main()
