"""Signed credit records from ``POST /v1/records`` to confirmed and indexed, beside the node's raw ceiling; gas.

    SOLCX_BINARY_PATH=build/solcx .venv/bin/python -m bench.records [--records 20000] [--post-batch 500]
        [--clients 4] [--api-workers 1] [--database-url postgresql://postgres@127.0.0.1:5432/test]

1. system: a fresh anvil node with the contracts and the demo (as ``make run`` starts it); the API under uvicorn
   (one worker), the relayer and the indexer as their own processes (as ``credtrace up`` runs them). N records
   (ADMINISTRATIVE_PENALTY, fresh subjects, signed beforehand by a demo regulator's key) are POSTed in batches by
   a few concurrent clients; the clock runs from the first POST until the last record is in ``credit_record``.
2. node ceiling: on another fresh node, the same kind of records pre-signed into ``batch`` transactions of 100,
   sent raw until all are mined: what anvil does with no API, database, relayer or indexer.
3. gas per record in a batch of 100, by kind: a penalty (stores its nonce fingerprint), a blacklist record on a
   subject never listed (one fresh list slot), a blacklist record on a subject already listed, and a mix of kinds.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, select

from bench.relayer import Chain, free_port, fresh_chain, send_raw
from credtrace.demo import demo_api_keys
from credtrace.uscc import with_check_characters
from node_bridge import credit
from node_bridge.consortium import member_id
from node_bridge.credit import Kind
from node_bridge.models import CreditRecordRow
from node_bridge.nonces import encode_batch
from node_bridge.relayer import Relayer

console = Console()


def subjects(count: int, salt: int) -> list[bytes]:
    return [credit.subject_id(with_check_characters(f"91{salt:04d}{i:010d}")) for i in range(count)]


def make_records(chain: Chain, kinds: Sequence[Kind], subject_ids: Sequence[bytes], base: int) -> list[dict[str, Any]]:
    from node_bridge.deploy import ConsortiumConfig

    regulator = ConsortiumConfig.read(chain.settings.consortium_config).regulators[0]
    issuer, now = member_id(regulator.uscc), int(time.time())
    return [
        credit.example_record(kind, issuer, base + i)
        | {"subject": subject, "effectiveAt": now - 60, "publicUntil": now + 86400, "validUntil": now + 86400 * 30}
        for i, (kind, subject) in enumerate(zip(kinds, subject_ids, strict=True))
    ]


def signed_bodies(chain: Chain, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    domain = credit.CreditDomain(chain.deployment.chain_id, chain.deployment.contracts[credit.CONTRACT].address)
    return [
        {"type": "CreditRecord", "message": credit.to_json(r),
         "signature": "0x" + domain.sign(chain.regulator, "CreditRecord", r).hex()}
        for r in records
    ]  # fmt: skip


def calls_of(chain: Chain, records: list[dict[str, Any]]) -> list[bytes]:
    domain = credit.CreditDomain(chain.deployment.chain_id, chain.deployment.contracts[credit.CONTRACT].address)
    return [credit.calldata("CreditRecord", r, domain.sign(chain.regulator, "CreditRecord", r)) for r in records]


def _processes(chain: Chain, env: dict[str, str], logs: Path, workers: int) -> list[subprocess.Popen[bytes]]:
    logs.mkdir(parents=True, exist_ok=True)
    commands = {
        "api": [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", env["CREDTRACE_API_PORT"],
                "--log-level", "warning", "--workers", str(workers)],
        "relayer": [sys.executable, "-m", "node_bridge.relayer"],
        "indexer": [sys.executable, "-m", "node_bridge.indexer"],
    }  # fmt: skip
    started = []
    for name, command in commands.items():
        with (logs / f"{name}.log").open("ab") as out:
            started.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))
    return started


def system(
    count: int, post_batch: int, clients: int, database_url: str | None, workers: int = 1
) -> tuple[float, float]:
    """(records/s accepted by the API, records/s from first POST to indexed)."""
    with fresh_chain(200) as chain:
        settings = chain.settings
        env = {
            **os.environ,
            "CREDTRACE_DATA_DIR": str(settings.data_path),
            "CREDTRACE_ANVIL_PORT": str(settings.anvil_port),
            "CREDTRACE_API_PORT": str(free_port()),
            "CREDTRACE_PUBLIC_RATE_LIMIT": "1000000/minute",
        }
        if database_url:
            env["CREDTRACE_DATABASE_URL"] = database_url
        api_key = next(iter(demo_api_keys(settings.model_copy(update={"database_url": database_url})).values()))
        with console.status(f"signing {count} records"):
            bodies = signed_bodies(chain, make_records(chain, [Kind.ADMINISTRATIVE_PENALTY] * count,
                                                       subjects(count, secrets.randbelow(9999)), 1 << 40))  # fmt: skip
        processes = _processes(chain, env, settings.data_path / "logs", workers)
        base = f"http://127.0.0.1:{env['CREDTRACE_API_PORT']}"
        engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://") if database_url
                               else settings.database)  # fmt: skip
        try:
            _wait_up(base)
            with engine.connect() as connection:
                before = connection.execute(select(func.count()).select_from(CreditRecordRow)).scalar_one()
            chunks = [bodies[i : i + post_batch] for i in range(0, count, post_batch)]
            errors: list[str] = []

            def post(mine: list[list[dict[str, Any]]]) -> None:
                with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=120) as c:
                    for chunk in mine:
                        response = c.post("/v1/records", json={"records": chunk})
                        if response.status_code != 202:
                            errors.append(response.text[:300])

            start = time.perf_counter()
            threads = [threading.Thread(target=post, args=(chunks[i::clients],)) for i in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            accepted = time.perf_counter() - start
            if errors:
                raise RuntimeError(f"{len(errors)} batches refused, e.g. {errors[0]}")
            deadline = start + 900
            while True:
                with engine.connect() as connection:
                    indexed = connection.execute(select(func.count()).select_from(CreditRecordRow)).scalar_one()
                if indexed - before >= count:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"only {indexed - before} of {count} records indexed after 900 s")
                time.sleep(0.05)
            total = time.perf_counter() - start
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
            engine.dispose()
        return count / accepted, count / total


def _wait_up(base: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 503):
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not come up")
        time.sleep(0.3)


def ceiling(count: int, size: int = 100) -> float:
    """Records/s of pre-signed ``batch`` transactions of ``size`` records sent raw to a fresh node."""
    with fresh_chain(size) as chain:
        records = make_records(chain, [Kind.ADMINISTRATIVE_PENALTY] * count, subjects(count, 7), 1 << 41)
        calls = calls_of(chain, records)
        address = chain.deployment.contracts[credit.CONTRACT].address
        account = Account.create()
        raws = [
            bytes(account.sign_transaction({
                "to": address, "data": encode_batch(calls[i : i + size]), "value": 0,
                "gas": Relayer.gas_base + Relayer.gas_per_call * size, "gasPrice": 0, "nonce": i // size,
                "chainId": chain.w3.eth.chain_id,
            }).raw_transaction)
            for i in range(0, count, size)
        ]  # fmt: skip
        return count / send_raw(chain.w3, account.address, raws).seconds


def gas(size: int = 100) -> dict[str, float]:
    """Gas per record in a ``batch`` of ``size``, by what the records store."""
    with fresh_chain(size) as chain:
        address = chain.deployment.contracts[credit.CONTRACT].address
        sender = Account.create()
        nonce = 0

        def per_record(records: list[dict[str, Any]]) -> float:
            nonlocal nonce
            tx = {"to": address, "data": encode_batch(calls_of(chain, records)), "value": 0, "gas": 29_000_000,
                  "gasPrice": 0, "nonce": nonce, "chainId": chain.w3.eth.chain_id}  # fmt: skip
            nonce += 1
            tx_hash = chain.w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
            receipt = chain.w3.eth.wait_for_transaction_receipt(tx_hash)
            assert receipt["status"] == 1 and len(receipt["logs"]) == size, "a record of the batch failed"
            return float(receipt["gasUsed"]) / size

        fresh, listed, mixed = subjects(size, 11), subjects(size, 12), subjects(size, 13)
        regulator_kinds = [k for k in Kind if k is not Kind.REAL_NAME_CERTIFICATION]  # that one needs a CERTIFIER
        cycled = [regulator_kinds[i % len(regulator_kinds)] for i in range(size)]
        results = {
            "administrative penalty (stores its nonce fingerprint)": per_record(
                make_records(chain, [Kind.ADMINISTRATIVE_PENALTY] * size, fresh, 1 << 42)
            ),
            "blacklist, subject never listed (one fresh slot)": per_record(
                make_records(chain, [Kind.BLACKLIST] * size, listed, 2 << 42)
            ),
            "blacklist, subject already listed": per_record(
                make_records(chain, [Kind.BLACKLIST] * size, listed, 3 << 42)
            ),
            "every kind a regulator signs, cycled, fresh subjects": per_record(
                make_records(chain, cycled, mixed, 4 << 42)
            ),
        }
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--post-batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes of the API")
    args = parser.parse_args()
    table = Table(title=f"{args.records} signed records (ADMINISTRATIVE_PENALTY), local anvil")
    table.add_column("path")
    table.add_column("records/s", justify="right")
    accepted, indexed = system(args.records, args.post_batch, args.clients, args.database_url, args.api_workers)
    table.add_row("POST /v1/records → accepted (202)", f"{accepted:,.0f}")
    table.add_row("POST /v1/records → confirmed and indexed", f"{indexed:,.0f}")
    table.add_row("node ceiling: raw batch(100) transactions", f"{ceiling(args.records):,.0f}")
    console.print(table)
    gas_table = Table(title="gas per record in a batch of 100")
    gas_table.add_column("records")
    gas_table.add_column("gas/record", justify="right")
    for name, value in gas().items():
        gas_table.add_row(name, f"{value:,.0f}")
    console.print(gas_table)


if __name__ == "__main__":
    main()
