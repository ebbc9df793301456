"""Benchmark: subject status over HTTP (req/s, p50/p99) against a bare ``async def`` FastAPI endpoint, and a batch.

Seeds ``--records`` (default 100,000) credit records **directly into the index tables** (``credit_record``,
``indexed_block``, ``indexer_checkpoint``, ``member``; no chain, no indexer) of a scratch SQLite database
(``--database-url`` for another, e.g. PostgreSQL), over ``--records / 2`` organisations: blacklist, red list and
other kinds, tiers mixed, some closed, expired or in their notice window. Also creates a platform's API key.

Then starts **one** uvicorn process with one worker serving the credtrace app (``api.app.create_app``) plus one
extra route, ``GET /bench/bare``: ``async def bare(): return {}``. A load generator in another process (raw
HTTP/1.1 keep-alive connections over asyncio, ``--connections`` of them, each sending its next request as soon as
the last answer arrived) drives, in the same run and alternately, the bare route and
``GET /v1/subjects/{id}/status`` (with the API key, half of the subjects with records, half without) for
``--seconds`` each, ``--rounds`` times; it prints req/s and p50/p99 latency of each. Last, it times ``POST
/v1/subjects/status:batch`` with 10,000 subjects (half with records), from sending the request to the last byte of
the answer.

It also shows the latency of ``?at=`` (SQL) answers from one connection, and the API process's resident memory.

Run: ``.venv/bin/python -m bench.status [--records 100000] [--seconds 5] [--connections 4] [--postgres]``.
Targets: status >= 0.5x the bare route's req/s with p99 <= 10 ms; a 10,000-subject batch <= 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, insert
from sqlmodel import Session

from credtrace.settings import PROJECT_ROOT, Settings
from credtrace.uscc import with_check_characters
from node_bridge.consortium import Role, member_id
from node_bridge.models import CreditRecordRow, IndexedBlock, IndexerCheckpoint, Member
from node_bridge.projections import table_of
from node_bridge.store import open_store, scratch_postgres

CHAIN = 31337
PLATFORM = "0x" + member_id("91370100321654988D").hex()
REGULATOR = "0x" + member_id("11370000004123454M").hex()
KINDS = [("blacklist", 40), ("red_list", 20), ("administrative_penalty", 15), ("counterfeit_substandard", 10),
         ("service_default", 10), ("commitment", 5)]  # fmt: skip
TIERS = ["minor", "general", "severe"]
PER_BLOCK = 100
BATCH = 10_000


def subject_code(index: int) -> str:
    return with_check_characters(f"9137{index:012d}")


def subject_id(code: str) -> str:
    return "0x" + code.encode().ljust(32, b"\0").hex()


def seed(engine: Engine, records: int, now: int) -> tuple[list[str], str]:
    """Write ``records`` index rows over ``records // 2`` organisations; returns (subjects with records, API key)."""
    from api.auth import create_api_key

    rng = random.Random(7)
    subjects = [subject_code(i) for i in range(max(1, records // 2))]
    kinds = [k for k, weight in KINDS for _ in range(weight)]
    rows: list[dict[str, Any]] = []
    blocks = records // PER_BLOCK + 1
    for index in range(records):
        code = subjects[index % len(subjects)]
        block = index // PER_BLOCK + 1
        block_time = now - (blocks - block) * 2
        effective = block_time - rng.randrange(0, 86400)
        fate = rng.random()
        if fate < 0.05:
            effective = now + rng.randrange(60, 86400)  # notice
        valid_until = now - 10 if 0.05 <= fate < 0.15 else now + 365 * 86400  # expired or valid for a year
        closed = fate >= 0.9  # revoked or repaired
        rows.append({
            "id": "0x" + index.to_bytes(32, "big").hex(), "kind": rng.choice(kinds), "subject": subject_id(code),
            "subject_code": code, "issuer": REGULATOR, "signer": "0x" + "11" * 20,
            "legal_basis": "E-Commerce Law of the PRC, art. 38", "tier": rng.choice(TIERS),
            "measures": 1 << 13 if rng.random() < 0.1 else 0, "document_hash": "0x" + "22" * 32,
            "effective_at": min(effective, valid_until - 1), "public_until": valid_until, "valid_until": valid_until,
            "relation": "none", "refers_to": None, "nonce": str(index), "block_number": block,
            "block_time": block_time, "tx_hash": "0x" + (index // 100).to_bytes(32, "big").hex(),
            "log_index": index % PER_BLOCK, "closed": rng.choice(["revoked", "repaired"]) if closed else None,
            "closure_id": None, "closed_reason": "review" if closed else None, "closed_by": None,
            "closed_block": blocks if closed else None, "closed_time": now - 1 if closed else None, "closed_tx": None,
        })  # fmt: skip
    block_rows = [
        {"chain_id": CHAIN, "number": b, "hash": "0x" + b.to_bytes(32, "big").hex(), "parent_hash": "0x",
         "timestamp": now - (blocks - b) * 2}
        for b in range(1, blocks + 1)
    ]  # fmt: skip
    with engine.begin() as connection:
        for begin in range(0, len(rows), 5000):
            connection.execute(insert(table_of(CreditRecordRow)), rows[begin : begin + 5000])
        connection.execute(insert(table_of(IndexedBlock)), block_rows)
        connection.execute(
            insert(table_of(IndexerCheckpoint)),
            [{"chain_id": CHAIN, "block_number": blocks, "block_hash": block_rows[-1]["hash"],
              "block_timestamp": block_rows[-1]["timestamp"]}],
        )  # fmt: skip
        connection.execute(
            insert(table_of(Member)),
            [
                {"id": PLATFORM, "name": "Bench Mall", "roles": int(Role.PLATFORM), "status": "active",
                 "admitted_block": 1, "updated_block": 1},
                {"id": REGULATOR, "name": "Bench Regulator", "roles": int(Role.REGULATOR), "status": "active",
                 "admitted_block": 1, "updated_block": 1},
            ],
        )  # fmt: skip
    with Session(engine) as session:
        key, _ = create_api_key(session, PLATFORM, label="bench")
        session.commit()
    return subjects, key


def app_factory() -> FastAPI:
    """The credtrace app from the environment, plus the bare baseline route (for ``uvicorn --factory``)."""
    from api.app import create_app

    app = create_app(Settings())

    @app.get("/bench/bare")
    async def bare() -> dict[str, Any]:
        return {}

    return app


# a lean HTTP/1.1 keep-alive load generator (so that the client is not what is measured)


async def _connection(
    host: str, port: int, requests: list[bytes], start: int, deadline: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    index = start
    try:
        while time.perf_counter() < deadline:
            request = requests[index % len(requests)]
            index += 1
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
    finally:
        writer.close()
    return errors


async def _load(host: str, port: int, requests: list[bytes], seconds: float, connections: int) -> dict[str, Any]:
    latencies: list[float] = []
    warm = time.perf_counter() + min(1.0, seconds / 5)
    await asyncio.gather(*(_connection(host, port, requests, i * 97, warm, []) for i in range(connections)))
    began = time.perf_counter()
    deadline = began + seconds
    errors = await asyncio.gather(
        *(_connection(host, port, requests, i * 97, deadline, latencies) for i in range(connections))
    )
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": sum(errors),
    }


def _load_process(args: tuple[str, int, list[bytes], float, int]) -> dict[str, Any]:
    return asyncio.run(_load(*args))


def _get(path: str, port: int, key: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n".encode()


def _post_once(port: int, path: str, body: bytes, key: str) -> tuple[float, int, bytes]:
    """(seconds from the first byte sent to the last received, status, body)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        began = time.perf_counter()
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        header, _, rest = data.partition(b"\r\n\r\n")
        length = next(int(line[15:]) for line in header.split(b"\r\n") if line[:15].lower() == b"content-length:")
        while len(rest) < length:
            rest += sock.recv(1 << 20)
        elapsed = time.perf_counter() - began
    return elapsed, int(header.split(b" ")[1]), rest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_up(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(_get("/bench/bare", port))
                if sock.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the API did not start on port {port}")


def _line(label: str, figures: dict[str, Any]) -> str:
    return (
        f"{label:<34} {figures['rate']:>8,.0f} req/s   p50 {figures['p50']:6.2f} ms   p99 {figures['p99']:6.2f} ms"
        f"   ({figures['requests']:,} requests, {figures['errors']} errors)"
    )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument(
        "--postgres", action="store_true", help="a scratch PostgreSQL database on CREDTRACE_TEST_POSTGRES_URL"
    )
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="credtrace-bench-status-")))
        if args.postgres:
            server_url = os.environ.get("CREDTRACE_TEST_POSTGRES_URL")
            if not server_url:
                parser.error("--postgres needs CREDTRACE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
            url = stack.enter_context(scratch_postgres(server_url, "credtrace_bench"))
        else:
            url = f"sqlite:///{data_dir / 'bench.db'}"
        engine = open_store(url)
        now = int(time.time())
        began = time.perf_counter()
        subjects, key = seed(engine, args.records, now)
        print(f"seeded {args.records:,} records over {len(subjects):,} organisations straight into the index "
              f"({url.split(':')[0]}) in {time.perf_counter() - began:.1f}s")  # fmt: skip
        engine.dispose()

        port = free_port()
        env = {**os.environ, "CREDTRACE_DATA_DIR": str(data_dir), "CREDTRACE_DATABASE_URL": url,
               "CREDTRACE_ANVIL_PORT": str(free_port())}  # fmt: skip
        command = [sys.executable, "-m", "uvicorn", "--factory", "bench.status:app_factory", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"]  # fmt: skip
        started = time.perf_counter()
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
        try:
            _wait_up(port)
            print(f"uvicorn (1 worker) up with the status cache loaded in {time.perf_counter() - started:.1f}s")
            rng = random.Random(11)
            with_records = [subject_id(c) for c in rng.sample(subjects, min(500, len(subjects)))]
            clean = [subject_code(len(subjects) + i) for i in range(500)]
            paths = [p for pair in zip(with_records, clean, strict=False) for p in pair]
            status_requests = [_get(f"/v1/subjects/{s}/status", port, key) for s in paths]
            bare_requests = [_get("/bench/bare", port)]
            context = multiprocessing.get_context("spawn")
            results: dict[str, list[dict[str, Any]]] = {"bare": [], "status": []}
            with context.Pool(1) as pool:
                for round_number in range(1, args.rounds + 1):
                    for name, requests in (("bare", bare_requests), ("status", status_requests)):
                        job = ("127.0.0.1", port, requests, args.seconds, args.connections)
                        figures = pool.apply(_load_process, (job,))
                        results[name].append(figures)
                        label = "bare async def {}" if name == "bare" else "GET /v1/subjects/{id}/status"
                        print(_line(f"{label} #{round_number}", figures))
                history_requests = [_get(f"/v1/subjects/{s}/status?at=time:{now}", port, key) for s in paths]
                history = pool.apply(_load_process, (("127.0.0.1", port, history_requests, args.seconds / 2, 1),))
                print(_line("GET .../status?at= (SQL, 1 conn.)", history))
            rss = _rss_mb(server.pid)
            print(f"API process resident memory with the cache of {args.records:,} records: {rss:,.0f} MB")
            bare = statistics.median(r["rate"] for r in results["bare"])
            status = statistics.median(r["rate"] for r in results["status"])
            worst_p99 = max(r["p99"] for r in results["status"])
            print(
                f"status/bare {status / bare:.2f}x (target >= 0.5x: {'met' if status >= 0.5 * bare else 'NOT met'}); "
                f"status p99 at worst {worst_p99:.2f} ms (target <= 10 ms: {'met' if worst_p99 <= 10 else 'NOT met'})"
            )

            batch_subjects = [subject_id(c) for c in rng.sample(subjects, min(BATCH // 2, len(subjects)))]
            batch_subjects += [subject_code(len(subjects) + i) for i in range(BATCH - len(batch_subjects))]
            body = json.dumps({"subjects": batch_subjects}).encode()
            times = []
            for _ in range(args.batches):
                elapsed, code, answer = _post_once(port, "/v1/subjects/status:batch", body, key)
                if code != 200:
                    raise RuntimeError(f"batch answered {code}: {answer[:300]!r}")
                times.append(elapsed * 1000)
            listed = sum(r["blacklisted"] or r["red_listed"] for r in json.loads(answer)["results"])
            print(
                f"POST /v1/subjects/status:batch {len(batch_subjects):,} subjects ({listed:,} listed, "
                f"{len(answer) / 1e6:.1f} MB): median {statistics.median(times):.0f} ms, max {max(times):.0f} ms "
                f"(target <= 300 ms: {'met' if max(times) <= 300 else 'NOT met'})"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
