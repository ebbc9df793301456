"""Benchmark: indexer backfill (events decoded and written to SQL per second) against bare ``eth_getLogs``.

Starts anvil in a scratch directory, deploys the demo consortium, creates ``--events`` ProposalCreated events
(``propose`` calls packed into ``batch`` transactions of ``--per-tx`` calls, signed by a demo regulator), then
times, in the same run:

- baseline: one raw ``eth_getLogs`` over the whole range (JSON-RPC and JSON parsing only, nothing decoded);
- the indexer: a full backfill (fetch, decode, project, write, checkpoint) into a fresh SQLite database, and
  into a scratch PostgreSQL database when ``CREDTRACE_TEST_POSTGRES_URL`` is set.

Run: ``SOLCX_BINARY_PATH=build/solcx .venv/bin/python bench/indexer.py [--events 20000]``. Target: ≥ 20,000 events/s.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from credtrace.demo import DEMO_PASSWORD
from credtrace.keys import load_key
from credtrace.settings import Settings
from credtrace.system import ensure_deployment, operator_account
from node_bridge.chain import AnvilNode
from node_bridge.consortium import Action, member_id, proposal_id
from node_bridge.deploy import Deployment
from node_bridge.indexer import Indexer
from node_bridge.store import open_store, scratch_postgres

PROPOSAL_TYPEHASH = keccak(text="Proposal(uint8 action,bytes32 member,bytes payload,uint256 nonce)")
TARGET = 20_000
GAS_PER_CALL = 250_000  # a propose in a batch uses about 200k


class BenchAnvil(AnvilNode):
    """anvil without ``--state``: its once-a-second state dump stalls every JSON-RPC answer for seconds once the
    state is large (seen here: 6-8 s pauses with 21,000 proposals), which would time anvil, not the indexer."""

    def command(self) -> list[str]:
        command = super().command()
        for flag, values in (("--state", 1), ("--state-interval", 1), ("--preserve-historical-states", 0)):
            at = command.index(flag)
            del command[at : at + 1 + values]
        return command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def propose_calls(contract: Contract, signer: LocalAccount, count: int, chain_id: int) -> list[bytes]:
    """``count`` encoded ``propose(SUSPEND, member, "", nonce, signature)`` calls with random nonces."""
    domain_separator = bytes(contract.functions.domainSeparator().call())
    member = member_id("91370100321654988D")
    calls = []
    for index in range(count):
        nonce = secrets.randbits(256)
        struct = keccak(
            abi_encode(
                ["bytes32", "uint8", "bytes32", "bytes32", "uint256"],
                [PROPOSAL_TYPEHASH, int(Action.SUSPEND), member, keccak(b""), nonce],
            )
        )
        digest = keccak(b"\x19\x01" + domain_separator + struct)
        if index == 0:  # the shortcut computes the same id as the reference EIP-712 encoding
            assert digest == proposal_id(Action.SUSPEND, member, b"", nonce, chain_id, contract.address)
        signature = bytes(signer.unsafe_sign_hash(Hash32(digest)).signature)
        call = contract.functions.propose(int(Action.SUSPEND), member, b"", nonce, signature)
        calls.append(bytes.fromhex(call._encode_transaction_data()[2:]))
    return calls


def generate(w3: Web3, settings: Settings, deployment: Deployment, events: int, per_tx: int) -> None:
    contract = deployment.contract(w3, "Consortium")
    regulator = load_key(settings.keys_dir, "market-regulation", DEMO_PASSWORD)
    operator = operator_account(settings)
    started = time.perf_counter()
    calls = propose_calls(contract, regulator, events, w3.eth.chain_id)
    signed_at = time.perf_counter()
    nonce = int(w3.eth.get_transaction_count(operator.address, "pending"))
    hashes = []
    for begin in range(0, len(calls), per_tx):
        data = contract.functions.batch(calls[begin : begin + per_tx])._encode_transaction_data()
        tx: dict[str, Any] = {"to": contract.address, "data": data, "value": 0, "gasPrice": 0, "nonce": nonce}
        tx.update(gas=GAS_PER_CALL * per_tx + 100_000, chainId=w3.eth.chain_id)
        hashes.append(w3.eth.send_raw_transaction(operator.sign_transaction(tx).raw_transaction))
        nonce += 1
    gas = 0
    for tx_hash in hashes:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        assert receipt["status"] == 1, receipt
        gas += receipt["gasUsed"]
    failed = contract.events.BatchCallFailed().get_logs(from_block=deployment.start_block)
    assert not failed, f"{len(failed)} propose calls failed, e.g. {failed[0]}"
    print(
        f"generated {events} ProposalCreated in {len(hashes)} transactions: signing {signed_at - started:.1f}s, "
        f"sending {time.perf_counter() - signed_at:.1f}s; {gas // events:,} gas per call; "
        f"head block {w3.eth.block_number}"
    )


def best_of(runs: int, measure: Callable[[], tuple[int, float]]) -> tuple[int, float]:
    """(count, median seconds) over ``runs`` runs."""
    results = [measure() for _ in range(runs)]
    return results[0][0], statistics.median(seconds for _, seconds in results)


def bare_get_logs(w3: Web3, deployment: Deployment) -> tuple[int, float]:
    query = {
        "fromBlock": hex(deployment.start_block),
        "toBlock": hex(w3.eth.block_number),
        "address": [Web3.to_checksum_address(c.address) for c in deployment.contracts.values()],
    }
    started = time.perf_counter()
    logs = w3.provider.make_request("eth_getLogs", [query])["result"]  # type: ignore[arg-type]
    return len(logs), time.perf_counter() - started


@contextmanager
def postgres_database() -> Iterator[str | None]:
    url = os.environ.get("CREDTRACE_TEST_POSTGRES_URL")
    if not url:
        yield None
        return
    with scratch_postgres(url, "credtrace_bench") as scratch:
        yield scratch


def backfill(url: str, w3: Web3, deployment: Deployment, settings: Settings) -> tuple[int, float]:
    """Full backfill into a fresh database at ``url`` (the schema is created before the clock starts)."""
    engine = open_store(url)
    try:
        indexer = Indexer(engine, w3, deployment, settings)
        started = time.perf_counter()
        count = indexer.step()
        return count, time.perf_counter() - started
    finally:
        engine.dispose()


def report(label: str, count: int, seconds: float) -> float:
    rate = count / seconds
    print(f"{label:<34} {count:>7} events in {seconds:6.3f}s = {rate:>9,.0f} events/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=21_000, help="ProposalCreated events to create")
    parser.add_argument("--per-tx", type=int, default=200, help="propose calls per batch transaction")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median reported)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="credtrace-bench-") as scratch:
        root = Path(scratch)
        settings = Settings(data_dir=root / "data", anvil_port=free_port())
        node = BenchAnvil.from_settings(settings)
        w3 = node.start()
        try:
            deployment, _ = ensure_deployment(settings, w3)
            generate(w3, settings, deployment, options.events, options.per_tx)
            count, seconds = best_of(options.runs, lambda: bare_get_logs(w3, deployment))
            baseline = report("baseline: bare eth_getLogs", count, seconds)
            counter = iter(range(options.runs))
            count, seconds = best_of(
                options.runs,
                lambda: backfill(f"sqlite:///{root / f'bench-{next(counter)}.db'}", w3, deployment, settings),
            )
            rate = report("indexer backfill, SQLite", count, seconds)
            with postgres_database() as pg_url:
                if pg_url is not None:
                    pg_count, pg_seconds = backfill(pg_url, w3, deployment, settings)
                    report("indexer backfill, PostgreSQL", pg_count, pg_seconds)
            verdict = "meets" if rate >= TARGET else "MISSES"
            print(f"indexer/baseline {rate / baseline:.0%}; SQLite {verdict} the {TARGET:,} events/s target")
        finally:
            node.stop()


if __name__ == "__main__":
    main()
