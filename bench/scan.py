"""Benchmark: the consumer scan under load (``GET /v1/trace/01/…``) beside a bare ``async def`` FastAPI endpoint.

Seeds **directly into the tables** (no chain, no API writes) of a scratch SQLite database (``--postgres`` for a
scratch PostgreSQL on ``CREDTRACE_TEST_POSTGRES_URL``): three members and their keys, a product and a lot,
``--codes`` (default 5,000) trace codes, and a custody chain for each with real EIP-712 signatures: commission,
ship and receive events naming 50 codes each (as a producer or a warehouse signs them), sell and deliver one per
code. All events are put in one anchored batch (its RFC 6962 root written where the indexer would put the chain's),
so every scan checks signatures and Merkle proofs.

Then starts **one** uvicorn process with one worker serving the credtrace app plus ``GET /bench/bare`` (``async def
bare(): return {}``), with the public rate limit raised out of the way. A load generator in another process (raw
HTTP/1.1 keep-alive connections, ``--connections`` of them; :mod:`bench.status`) drives, alternately, the bare
route and the scan of random codes (half with a coarse ``geo``) for ``--seconds`` each, ``--rounds`` times, after
a warm-up pass that scans every code once (the first scan of a code checks its events' signatures; later ones
find them in memory). Every scan is recorded (one insert), as in production.

Run: ``.venv/bin/python -m bench.scan [--codes 5000] [--seconds 5] [--connections 8] [--postgres]``.
Target (2-core machine): scans >= 1,000/s with p99 <= 30 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from fastapi import FastAPI
from sqlalchemy import Engine, insert

from bench.status import _get, _line, _load_process, _rss_mb, _wait_up, free_port
from credtrace.settings import PROJECT_ROOT, Settings
from node_bridge.consortium import Role, member_id
from node_bridge.merkle import MerkleTree
from node_bridge.models import Member, MemberKey, TraceChainAnchor
from node_bridge.projections import table_of
from node_bridge.store import open_store, scratch_postgres
from node_bridge.trace import Disposition, Step, TraceDomain, code_id, digital_link
from node_bridge.trace_models import AnchorBatch, Lot, Product, TraceCode, TraceEventCode, TraceEventRow

CHAIN = 31337
CONTRACT = "0x" + "7a" * 20
GTIN = "06901234567892"
LOT = "BENCH-1"
GROUP = 50
MEMBERS = {"producer": ("91370602987123462D", "Yantai Orchard Apple Cooperative", Role.PRODUCER),
           "carrier": ("913706007891234538", "Jiaodong Express Logistics Co., Ltd.", Role.LOGISTICS),
           "seller": ("91370100321654988D", "Qilu Mall E-commerce Co., Ltd.", Role.PLATFORM)}  # fmt: skip
ZERO = "0x" + "00" * 32


def hex32(raw: bytes) -> str:
    return "0x" + raw.hex()


def seed(engine: Engine, codes: int, now: int) -> list[str]:
    """Members, product, lot, ``codes`` codes and their signed, anchored custody chains; returns the paths."""
    domain = TraceDomain(CHAIN, CONTRACT)
    accounts = {role: Account.create() for role in MEMBERS}
    ids = {role: hex32(member_id(uscc)) for role, (uscc, _, _) in MEMBERS.items()}
    rng = random.Random(5)
    paths = [digital_link(GTIN, LOT, "".join(rng.choices("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", k=16)))
             for _ in range(codes)]  # fmt: skip
    code_ids = [hex32(code_id(p)) for p in paths]
    events: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    nonce = 0

    def event(role: str, step: Step, disposition: Disposition, members: list[str], at: int, geo: str) -> None:
        nonlocal nonce
        nonce += 1
        message = {"actor": ids[role], "step": int(step), "codes": members, "parent": ZERO, "time": at,
                   "location": f"{role}-site", "geo": geo, "disposition": int(disposition), "corrects": ZERO,
                   "nonce": nonce}  # fmt: skip
        digest = domain.digest("TraceEvent", message)
        signature = domain.sign(accounts[role], "TraceEvent", message)
        event_id = hex32(digest)
        events.append({"id": event_id, "actor": ids[role], "signer": accounts[role].address, "step": step.slug,
                       "time": at, "location": message["location"], "geo": geo,
                       "disposition": disposition.name.lower(), "parent": None, "corrects": None, "nonce": str(nonce),
                       "message": message, "signature": "0x" + signature.hex(), "batch": 0,
                       "leaf_index": len(events)})  # fmt: skip
        links.extend({"code_id": c, "event_id": event_id, "time": at} for c in members)

    start = now - 3 * 86400
    for begin in range(0, codes, GROUP):
        group = code_ids[begin : begin + GROUP]
        event("producer", Step.COMMISSION, Disposition.ACTIVE, group, start, "37.30,120.83")
        event("carrier", Step.SHIP, Disposition.IN_TRANSIT, group, start + 3600, "37.46,121.45")
        event("seller", Step.RECEIVE, Disposition.SELLABLE, group, start + 7200, "36.67,117.02")
    for index, cid in enumerate(code_ids):
        event("seller", Step.SELL, Disposition.SOLD, [cid], start + 86400 + index, "")
        event("carrier", Step.DELIVER, Disposition.DELIVERED, [cid], start + 2 * 86400 + index, "36.68,117.06")
    tree = MerkleTree([bytes.fromhex(e["id"][2:]) for e in events])
    code_rows = [{"id": cid, "path": p, "lot_id": f"{GTIN}/{LOT}", "batch_id": ZERO, "leaf_index": i,
                  "state": "delivered", "holder": None, "parent": None, "last_event": None}
                 for i, (cid, p) in enumerate(zip(code_ids, paths, strict=True))]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(table_of(Member)), [
            {"id": ids[r], "name": name, "roles": int(role), "status": "active", "admitted_block": 1,
             "updated_block": 1} for r, (_, name, role) in MEMBERS.items()])  # fmt: skip
        connection.execute(insert(table_of(MemberKey)), [
            {"address": accounts[r].address, "member_id": ids[r], "active": True, "added_block": 1}
            for r in MEMBERS])  # fmt: skip
        connection.execute(insert(table_of(Product)).values(
            gtin=GTIN, producer=ids["producer"], name="Yantai Fuji apple juice 1 L"))  # fmt: skip
        connection.execute(insert(table_of(Lot)).values(
            id=f"{GTIN}/{LOT}", gtin=GTIN, lot=LOT, producer=ids["producer"]))  # fmt: skip
        for begin in range(0, len(code_rows), 5000):
            connection.execute(insert(table_of(TraceCode)), code_rows[begin : begin + 5000])
        for begin in range(0, len(events), 5000):
            connection.execute(insert(table_of(TraceEventRow)), events[begin : begin + 5000])
        for begin in range(0, len(links), 5000):
            connection.execute(insert(table_of(TraceEventCode)), links[begin : begin + 5000])
        connection.execute(insert(table_of(AnchorBatch)).values(
            index=0, root=hex32(tree.root), size=tree.size, previous_root=ZERO, first_time=start,
            last_time=now, anchor_id=ZERO))  # fmt: skip
        connection.execute(insert(table_of(TraceChainAnchor)).values(
            index=0, root=hex32(tree.root), size=tree.size, previous_root=ZERO, first_time=start, last_time=now,
            signer="0x" + "11" * 20, block_number=1, block_hash=ZERO, block_time=now, tx_hash="0x" + "ab" * 32,
            log_index=0))  # fmt: skip
    print(f"seeded {codes:,} codes, {len(events):,} signed events ({len(links):,} code links), one anchored batch")
    return paths


def _warm_up(port: int, paths: list[str]) -> None:
    """Scan every code once, from one keep-alive connection."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for path in paths:
            connection.request("GET", "/v1/trace" + path)
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"scan answered {answer.status}")
    finally:
        connection.close()


def app_factory() -> FastAPI:
    """The credtrace app from the environment (its scan service knowing the bench's TraceRegistry domain), plus
    the bare baseline route (for ``uvicorn --factory``)."""
    from api.app import create_app

    app = create_app(Settings())
    app.state.scan.domain = TraceDomain(CHAIN, CONTRACT)

    @app.get("/bench/bare")
    async def bare() -> dict[str, Any]:
        return {}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--postgres", action="store_true", help="scratch PostgreSQL on CREDTRACE_TEST_POSTGRES_URL")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="credtrace-bench-scan-")))
        if args.postgres:
            server_url = os.environ.get("CREDTRACE_TEST_POSTGRES_URL")
            if not server_url:
                parser.error("--postgres needs CREDTRACE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
            url = stack.enter_context(scratch_postgres(server_url, "credtrace_bench"))
        else:
            url = f"sqlite:///{data_dir / 'bench.db'}"
        engine = open_store(url)
        began = time.perf_counter()
        paths = seed(engine, args.codes, int(time.time()))
        print(f"  ({url.split(':')[0]}, {time.perf_counter() - began:.1f}s)")
        engine.dispose()

        port = free_port()
        env = {**os.environ, "CREDTRACE_DATA_DIR": str(data_dir), "CREDTRACE_DATABASE_URL": url,
               "CREDTRACE_ANVIL_PORT": str(free_port()), "CREDTRACE_PUBLIC_RATE_LIMIT": "100000000/minute",
               "CREDTRACE_SCAN_MAX_COUNT": "1000000"}  # fmt: skip
        command = [sys.executable, "-m", "uvicorn", "--factory", "bench.scan:app_factory", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"]  # fmt: skip
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
        try:
            _wait_up(port)
            rng = random.Random(13)
            geos = ["36.7,117.0", "37.5,121.4", "36.1,120.4"]
            scans = [
                _get(f"/v1/trace{p}" + (f"?geo={rng.choice(geos)}" if rng.random() < 0.5 else ""), port)
                for p in rng.sample(paths, len(paths))
            ]
            context = multiprocessing.get_context("spawn")
            results: dict[str, list[dict[str, Any]]] = {"bare": [], "scan": []}
            with context.Pool(1) as pool:
                warm = time.perf_counter()
                _warm_up(port, paths)  # the first scan of every code: signatures recovered, the batch's tree built
                print(f"warm-up scans in {time.perf_counter() - warm:.1f}s")
                for round_number in range(1, args.rounds + 1):
                    for name, requests in (("bare", [_get("/bench/bare", port)]), ("scan", scans)):
                        job = ("127.0.0.1", port, requests, args.seconds, args.connections)
                        figures = pool.apply(_load_process, (job,))
                        results[name].append(figures)
                        label = "bare async def {}" if name == "bare" else "GET /v1/trace/01/… (scan)"
                        print(_line(f"{label} #{round_number}", figures))
            print(f"API process resident memory: {_rss_mb(server.pid):,.0f} MB")
            bare = statistics.median(r["rate"] for r in results["bare"])
            rate = statistics.median(r["rate"] for r in results["scan"])
            worst = max(r["p99"] for r in results["scan"])
            print(
                f"scan {rate:,.0f}/s = {rate / bare:.2f}x bare (target >= 1,000/s: "
                f"{'met' if rate >= 1000 else 'NOT met'}); scan p99 at worst {worst:.2f} ms "
                f"(target <= 30 ms: {'met' if worst <= 30 else 'NOT met'})"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
