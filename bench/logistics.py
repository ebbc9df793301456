"""Benchmark: logistics credit (C6) grading from the index, from the chain alone, and access checks in a batch.

Three measurements, each beside a baseline taken in the same run:

1. **Grading from the index**: ``--firms`` (default 1,000) firms × 12 months of evaluations written straight into
   ``logistics_evaluation`` of a scratch SQLite database (``--database-url`` for another); every firm graded under
   rule v1 (:func:`api.logistics.grades_by_firm`: read the rows, group them, grade each firm). Baseline: the same
   rows read with a bare ``SELECT``. Target: ≤ 5 s.
2. **One firm from the chain alone**: a fresh anvil node with the contracts and the demo (as ``make run`` starts
   it), ``--chain-firms`` (default 200) more firms with 12 months of evaluations each sent through the
   LogisticsRegistry in ``batch`` transactions; then :func:`credtrace.cli_logistics.score_from_chain` (what
   ``credtrace logistics score`` runs: connect, find the deployment, three ``eth_getLogs`` filtered by topic in one
   JSON-RPC batch, decode, check the rule file against its published hash, grade). Baseline: one raw
   ``eth_getLogs`` of that firm's evaluations. Target: ≤ 1 s.
3. **Access checks for 10,000 firms in one call**: 10,000 firms × 12 months in the index, the API under uvicorn
   (one worker), ``POST /v1/logistics/access:batch`` with 10,000 firms (a tenth of them D), timed from the first
   byte sent to the last received, after one warm-up call (the grade cache loads at start-up). Baseline: a bare
   ``async def`` FastAPI endpoint taking and echoing the same 10,000 ids, served by the same process. Target:
   ≤ 300 ms.

Run: ``SOLCX_BINARY_PATH=build/solcx .venv/bin/python -m bench.logistics [--firms 1000] [--chain-firms 200]
[--access-firms 10000] [--skip-chain]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Engine, insert, select
from sqlmodel import Session

from bench.status import _post_once, _wait_up, free_port
from credtrace.logistics_rating import file_hash, load_rule, rule_path
from credtrace.settings import PROJECT_ROOT, Settings
from credtrace.uscc import with_check_characters
from node_bridge.consortium import Role, member_id
from node_bridge.logistics_index import EVALUATIONS, FIRMS, RULES
from node_bridge.models import IndexedBlock, IndexerCheckpoint, Member
from node_bridge.projections import table_of
from node_bridge.store import open_store

CHAIN = 31337
PLATFORM = "0x" + member_id("91370100321654988D").hex()
REGULATOR = "0x" + member_id("11370000004123454M").hex()
MONTHS = [202601 + i for i in range(12)]
PER_BLOCK = 100


def firm_code(index: int) -> str:
    return with_check_characters(f"9237{index:012d}")


def firm_id(code: str) -> str:
    return "0x" + code.encode().ljust(32, b"\0").hex()


def evaluation_rows(firms: int, rng: random.Random) -> list[dict[str, Any]]:
    """12 months of evaluations per firm; one firm in ten with a loss rate that makes it D."""
    rows = []
    for index in range(firms):
        firm = firm_id(firm_code(index))
        bad = index % 10 == 0
        for month, period in enumerate(MONTHS):
            n = index * 12 + month
            rows.append({
                "id": "0x" + n.to_bytes(32, "big").hex(), "evaluator": PLATFORM, "firm": firm, "period": period,
                "parcels": rng.randrange(1000, 50_000), "on_time_bps": rng.randrange(9200, 9900),
                "loss_damage_bps": rng.randrange(310, 500) if bad else rng.randrange(0, 80),
                "complaints_per_10k": rng.randrange(0, 15), "violations": int(rng.random() < 0.05), "sanctions": 0,
                "signer": "0x" + "11" * 20, "block_number": n // PER_BLOCK + 1, "block_time": 1_767_225_600,
                "tx_hash": "0x" + (n // PER_BLOCK).to_bytes(32, "big").hex(), "log_index": n % PER_BLOCK,
            })  # fmt: skip
    return rows


def seed(engine: Engine, firms: int, with_api_key: bool) -> str | None:
    """Firms, their evaluations, rules v1 and v2, a checkpoint, members and (optionally) a platform's API key."""
    rows = evaluation_rows(firms, random.Random(7))
    blocks = rows[-1]["block_number"] + 1
    firm_rows = [
        {"firm": firm_id(firm_code(i)), "code": firm_code(i), "id": "0x" + (10**9 + i).to_bytes(32, "big").hex(),
         "registrar": PLATFORM, "signer": "0x" + "11" * 20, "block_number": 1, "block_time": 1_767_225_600,
         "tx_hash": "0x" + "33" * 32, "log_index": i}
        for i in range(firms)
    ]  # fmt: skip
    rule_rows = [
        {"version": v, "rule_hash": "0x" + file_hash(rule_path(v)).hex(), "id": "0x" + f"{v:064x}",
         "publisher": REGULATOR, "signer": "0x" + "11" * 20, "block_number": blocks, "block_time": 1_767_225_600,
         "tx_hash": "0x" + "44" * 32, "log_index": v}
        for v in (1, 2)
    ]  # fmt: skip
    with engine.begin() as connection:
        for begin in range(0, len(rows), 5000):
            connection.execute(insert(EVALUATIONS), rows[begin : begin + 5000])
        for begin in range(0, len(firm_rows), 5000):
            connection.execute(insert(FIRMS), firm_rows[begin : begin + 5000])
        connection.execute(insert(RULES), rule_rows)
        if not with_api_key:
            return None
        connection.execute(
            insert(table_of(IndexedBlock)),
            [{"chain_id": CHAIN, "number": blocks, "hash": "0x" + blocks.to_bytes(32, "big").hex(),
              "parent_hash": "0x", "timestamp": int(time.time())}],
        )  # fmt: skip
        connection.execute(
            insert(table_of(IndexerCheckpoint)),
            [{"chain_id": CHAIN, "block_number": blocks, "block_hash": "0x" + blocks.to_bytes(32, "big").hex(),
              "block_timestamp": int(time.time())}],
        )  # fmt: skip
        connection.execute(
            insert(table_of(Member)),
            [{"id": PLATFORM, "name": "Bench Mall", "roles": int(Role.PLATFORM), "status": "active",
              "admitted_block": 1, "updated_block": 1}],
        )  # fmt: skip
    from api.auth import create_api_key

    with Session(engine) as session:
        key, _ = create_api_key(session, PLATFORM, label="bench")
        session.commit()
    return key


class Echo(BaseModel):
    firms: list[str]


def app_factory() -> FastAPI:
    """The credtrace app from the environment, plus the bare routes (for ``uvicorn --factory``)."""
    from api.app import create_app

    app = create_app(Settings())

    @app.get("/bench/bare")
    async def bare() -> dict[str, Any]:
        return {}

    @app.post("/bench/echo")
    async def echo(body: Echo) -> dict[str, Any]:
        return {"count": len(body.firms), "firms": body.firms}

    return app


# 1. grading from the index


def from_index(firms: int, database_url: str | None) -> None:
    from api.logistics import EVALUATION_COLUMNS, grades_by_firm

    with tempfile.TemporaryDirectory(prefix="credtrace-bench-logistics-") as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / 'bench.db'}"
        engine = open_store(url)
        seed(engine, firms, with_api_key=False)
        rule = load_rule(1)
        selects, gradings = [], []
        for _ in range(3):
            with engine.connect() as connection:
                began = time.perf_counter()
                rows = connection.execute(select(*EVALUATION_COLUMNS)).all()
                selects.append(time.perf_counter() - began)
                began = time.perf_counter()
                grades = grades_by_firm(connection, rule)
                gradings.append(time.perf_counter() - began)
        engine.dispose()
    d_count = sum(1 for g in grades.values() if g.grade == "D")
    best = min(gradings)
    print(f"1. grading {len(grades):,} firms × 12 months ({len(rows):,} evaluations, {d_count} graded D) from the "
          f"index: best {best:.2f} s, median {statistics.median(gradings):.2f} s (target ≤ 5 s: "
          f"{'met' if best <= 5 else 'NOT met'}); baseline bare SELECT of the same rows: "
          f"{min(selects):.2f} s")  # fmt: skip


# 2. one firm from the chain alone


def from_chain(chain_firms: int) -> None:
    from bench.relayer import fresh_chain
    from credtrace.cli_logistics import score_from_chain
    from credtrace.demo import DEMO_PASSWORD
    from credtrace.keys import load_key
    from credtrace.system import operator_sender
    from node_bridge import logistics
    from node_bridge.compiler import artifact
    from node_bridge.nonces import encode_batch
    from node_bridge.rpc import Rpc

    with fresh_chain(100) as chain:
        settings, w3 = chain.settings, chain.w3
        registry = chain.deployment.contracts[logistics.CONTRACT]
        domain = logistics.REGISTRY.domain(chain.deployment.chain_id, registry.address)
        abi = artifact(logistics.CONTRACT).abi
        carrier = load_key(settings.keys_dir, "jiaodong-express", DEMO_PASSWORD)
        platform = load_key(settings.keys_dir, "qilu-mall", DEMO_PASSWORD)
        carrier_id, platform_id = member_id("913706007891234538"), member_id("91370100321654988D")
        sender = operator_sender(settings, w3)
        rng = random.Random(5)
        calls: list[bytes] = []
        nonce = iter(range(1 << 40, 1 << 41))
        began = time.perf_counter()
        for index in range(chain_firms):
            firm = bytes.fromhex(firm_id(firm_code(index))[2:])
            message: dict[str, Any] = {"registrar": carrier_id, "firm": firm, "nonce": next(nonce)}
            calls.append(logistics.REGISTRY.calldata("FirmRegistration", message,
                                                     domain.sign(carrier, "FirmRegistration", message)))  # fmt: skip
            for period in MONTHS:
                message = {"evaluator": platform_id, "firm": firm, "period": period,
                           "parcels": rng.randrange(1000, 50_000), "onTimeBps": rng.randrange(8600, 9900),
                           "lossDamageBps": rng.randrange(0, 400), "complaintsPer10k": rng.randrange(0, 40),
                           "violations": rng.randrange(0, 2), "sanctions": 0, "nonce": next(nonce)}  # fmt: skip
                calls.append(logistics.REGISTRY.calldata("Evaluation", message,
                                                         domain.sign(platform, "Evaluation", message)))  # fmt: skip
        for begin in range(0, len(calls), 100):
            chunk = calls[begin : begin + 100]
            sender.transact_raw(registry.address, encode_batch(chunk), abi, gas=300_000 + 120_000 * len(chunk))
        print(f"   (sent {chain_firms:,} firms × 12 evaluations on chain in {time.perf_counter() - began:.0f} s; "
              f"head block {w3.eth.block_number:,})")  # fmt: skip
        target = firm_code(chain_firms // 2)
        rpc = Rpc(w3)
        topic = logistics._decoder().topic0("EvaluationRecorded")
        query = {"address": registry.address, "fromBlock": hex(registry.block_number), "toBlock": "latest",
                 "topics": [topic, None, firm_id(target)]}  # fmt: skip
        raw, full = [], []
        for _ in range(5):
            began = time.perf_counter()
            logs = rpc.call("eth_getLogs", [query])
            raw.append(time.perf_counter() - began)
            began = time.perf_counter()
            result = score_from_chain(settings.rpc_url, target, 1, settings)
            full.append(time.perf_counter() - began)
        print(f"2. recomputing one firm from the chain alone ({len(logs)} evaluations among "
              f"{chain_firms * 12 + 48:,}; grade {result.grade}, score {result.score}): median "
              f"{statistics.median(full) * 1000:.0f} ms, max {max(full) * 1000:.0f} ms (target ≤ 1 s: "
              f"{'met' if max(full) <= 1 else 'NOT met'}); baseline one raw eth_getLogs: "
              f"{statistics.median(raw) * 1000:.1f} ms")  # fmt: skip


# 3. access checks for 10,000 firms in one call


def access_batch(firms: int, database_url: str | None, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="credtrace-bench-logistics-") as scratch:
        data_dir = Path(scratch)
        url = database_url or f"sqlite:///{data_dir / 'bench.db'}"
        engine = open_store(url)
        key = seed(engine, firms, with_api_key=True)
        engine.dispose()
        assert key is not None
        port = free_port()
        env = {**os.environ, "CREDTRACE_DATA_DIR": str(data_dir), "CREDTRACE_DATABASE_URL": url,
               "CREDTRACE_ANVIL_PORT": str(free_port())}  # fmt: skip
        command = [sys.executable, "-m", "uvicorn", "--factory", "bench.logistics:app_factory", "--host",
                   "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning",
                   "--no-access-log"]  # fmt: skip
        started = time.perf_counter()
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
        try:
            _wait_up(port)
            up = time.perf_counter() - started
            codes = [firm_code(i) for i in range(firms)]
            body = json.dumps({"firms": codes}).encode()
            warm, status, answer = _post_once(port, "/v1/logistics/access:batch", body, key)
            if status != 200:
                raise RuntimeError(f"access:batch answered {status}: {answer[:300]!r}")
            times, echoes = [], []
            for _ in range(rounds):
                elapsed, status, answer = _post_once(port, "/v1/logistics/access:batch", body, key)
                times.append(elapsed * 1000)
                elapsed, status, _ = _post_once(port, "/bench/echo", body, key)
                echoes.append(elapsed * 1000)
            refused = json.loads(answer)["refused"]
            print(f"3. POST /v1/logistics/access:batch, {firms:,} firms ({refused:,} refused, "
                  f"{len(answer) / 1e6:.1f} MB): median {statistics.median(times):.0f} ms, max {max(times):.0f} ms "
                  f"(target ≤ 300 ms: {'met' if max(times) <= 300 else 'NOT met'}); baseline bare echo of the same "
                  f"ids: median {statistics.median(echoes):.0f} ms; API up, {firms * 12:,} evaluations graded into the "
                  f"cache, in {up:.1f} s; first call {warm * 1000:.0f} ms")  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firms", type=int, default=1000)
    parser.add_argument("--chain-firms", type=int, default=200)
    parser.add_argument("--access-firms", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--skip-chain", action="store_true", help="skip measurement 2 (no anvil needed)")
    args = parser.parse_args()
    from_index(args.firms, args.database_url)
    if not args.skip_chain:
        from_chain(args.chain_firms)
    access_batch(args.access_firms, args.database_url, args.rounds)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
