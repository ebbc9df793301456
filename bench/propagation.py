"""Benchmark: how fast a confirmed decision reaches a platform, over SSE and over a webhook (target p99 <= 2 s).

Brings a system up as ``credtrace up`` does, in a scratch directory: anvil (127.0.0.1, state file), the contracts
and the demo consortium, the API under uvicorn in its own process, and the relayer, the indexer and the webhook
dispatcher as the :class:`credtrace.supervisor.Supervisor`'s child processes. In this process: an SSE client on
``/v1/feed/stream``, a webhook receiver (``http.server``, checking every HMAC signature) subscribed through
``POST /v1/webhooks``, and the baseline: a loop that polls ``chain_event`` every 5 ms for each record, i.e. the
moment the indexer alone has made the event visible in SQL.

``--decisions`` blacklist decisions, signed by a demo regulator, are posted to ``POST /v1/records`` one at a
time, ``--interval`` seconds apart (each one relayed in its own transaction, as decisions come in practice). For
each, the clock starts when the relayer saw its receipt (``relay_tx.mined_at``: the decision is confirmed) and
stops when the item arrives at the SQL poller (baseline), the SSE client, and the webhook receiver.

Run: ``SOLCX_BINARY_PATH=build/solcx .venv/bin/python -m bench.propagation [--decisions 200] [--interval 0.25]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select

from credtrace.demo import DEMO_PASSWORD, demo_api_keys
from credtrace.keys import load_key
from credtrace.settings import Settings
from credtrace.supervisor import Supervisor
from credtrace.system import ensure_deployment
from credtrace.uscc import with_check_characters
from credtrace.webhooks import SIGNATURE_HEADER, verify
from node_bridge import credit
from node_bridge.chain import AnvilNode
from node_bridge.consortium import member_id
from node_bridge.deploy import ConsortiumConfig
from node_bridge.models import ChainEvent, OutboxEntry, RelayTransaction
from node_bridge.projections import table_of
from node_bridge.store import open_store

TARGET_P99 = 2.0
EVENTS = table_of(ChainEvent)
OUTBOX = table_of(OutboxEntry)
RELAY_TX = table_of(RelayTransaction)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Arrivals:
    """Arrival times by record id, from several threads."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.lock = threading.Lock()

    def saw(self, record_id: str, at: float) -> None:
        with self.lock:
            self.times.setdefault(record_id, at)

    def count(self) -> int:
        with self.lock:
            return len(self.times)


def start_receiver(secret: list[str], arrivals: Arrivals, bad: list[int]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            at = time.time()
            if not verify(secret[0], body, self.headers.get(SIGNATURE_HEADER, "")):
                bad[0] += 1
                self.send_response(400)
                self.end_headers()
                return
            for item in json.loads(body)["items"]:
                arrivals.saw(item["record_id"], at)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def follow_stream(url: str, headers: dict[str, str], cursor: str, arrivals: Arrivals, stop: threading.Event) -> None:
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", url, headers=headers, params={"cursor": cursor}) as response,
    ):
        response.raise_for_status()
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("data:"):
                arrivals.saw(json.loads(line[5:])["record_id"], time.time())


def poll_index(engine: Engine, arrivals: Arrivals, stop: threading.Event) -> None:
    """Baseline: the moment each RecordIssued row is visible in SQL (polled every 5 ms)."""
    seen_block = 0
    while not stop.is_set():
        with engine.connect() as connection:
            rows = connection.execute(
                select(EVENTS.c.block_number, EVENTS.c.args).where(
                    EVENTS.c.name == "RecordIssued", EVENTS.c.block_number > seen_block
                )
            ).all()
        at = time.time()
        for row in rows:
            arrivals.saw(row.args["id"], at)
            seen_block = max(seen_block, row.block_number)
        stop.wait(0.005)


@contextmanager
def api_process(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    code = f"import uvicorn; from api.app import create_app; uvicorn.run(create_app(), host='127.0.0.1', port={port})"
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"the API did not start; see {log}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(15)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if len(ordered) < 2:
        return (ordered[0],) * 3 if ordered else (float("nan"),) * 3
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return statistics.median(ordered), cuts[98], ordered[-1]


def report(label: str, values: list[float], expected: int) -> float:
    p50, p99, worst = percentiles(values)
    missing = f"  ({expected - len(values)} never arrived)" if len(values) < expected else ""
    figures = f"p50 {p50 * 1000:7.0f} ms  p99 {p99 * 1000:7.0f} ms  max {worst * 1000:7.0f} ms"
    print(f"{label:<44} {len(values):>5}  {figures}{missing}")
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=200, help="decisions to post, one at a time")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between two decisions")
    parser.add_argument("--postgres", action="store_true", help="use CREDTRACE_TEST_POSTGRES_URL (a scratch db)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="credtrace-bench-") as scratch:
        root = Path(scratch)
        settings = Settings(data_dir=root / "data", anvil_port=free_port(), api_port=free_port())
        env = os.environ | {
            "CREDTRACE_DATA_DIR": str(settings.data_path),
            "CREDTRACE_ANVIL_PORT": str(settings.anvil_port),
            "CREDTRACE_API_PORT": str(settings.api_port),
        }
        if options.postgres:
            from node_bridge.store import scratch_postgres

            server_url = os.environ["CREDTRACE_TEST_POSTGRES_URL"]
            database = scratch_postgres(server_url, "credtrace_bench")
            url = database.__enter__()
            settings = settings.model_copy(update={"database_url": url})
            env["CREDTRACE_DATABASE_URL"] = url
        node = AnvilNode.from_settings(settings)
        w3 = node.start()
        supervisor = Supervisor(settings.data_path / "logs")
        stop = threading.Event()
        try:
            deployment, _ = ensure_deployment(settings, w3)
            engine = open_store(settings.database)
            os.environ.update(env)  # the supervisor's children inherit it, as under `credtrace up`
            supervisor.start()
            keys = demo_api_keys(settings)
            regulators = ConsortiumConfig.read(settings.consortium_config).regulators
            regulator = load_key(settings.keys_dir, regulators[0].key, DEMO_PASSWORD)
            issuer = member_id(regulators[0].uscc)
            platform = {"Authorization": f"Bearer {keys['Qilu Mall E-commerce Co., Ltd.']}"}
            domain = credit.CreditDomain(deployment.chain_id, deployment.contracts["CreditRegistry"].address)
            with api_process(env, settings.api_port, settings.data_path / "logs" / "api.log") as api:
                now = httpx.get(f"{api}/v1/feed", params={"cursor": "now"}, headers=platform).json()["next_cursor"]
                sse, hook, index = Arrivals(), Arrivals(), Arrivals()
                secret, bad = [""], [0]
                receiver = start_receiver(secret, hook, bad)
                created = httpx.post(
                    f"{api}/v1/webhooks",
                    json={"url": f"http://127.0.0.1:{receiver.server_address[1]}/hook"},
                    headers=platform,
                )
                created.raise_for_status()
                secret[0] = created.json()["secret"]
                threads = [
                    threading.Thread(
                        target=follow_stream, args=(f"{api}/v1/feed/stream", platform, now, sse, stop), daemon=True
                    ),
                    threading.Thread(target=poll_index, args=(engine, index, stop), daemon=True),
                ]
                for thread in threads:
                    thread.start()
                time.sleep(2)  # the dispatcher picks the subscription up, the stream connects

                print(f"posting {options.decisions} decisions, one every {options.interval}s ...")
                ids: list[str] = []
                started = time.time()
                for n in range(options.decisions):
                    record = credit.example_record(credit.Kind.BLACKLIST, issuer, 10_000 + n)
                    record.update(
                        subject=credit.subject_id(with_check_characters(f"9137{n + 1:012d}")),
                        effectiveAt=int(time.time()) - 60,
                        publicUntil=int(time.time()) + 86400,
                        validUntil=int(time.time()) + 2 * 86400,
                    )
                    body = {
                        "type": "CreditRecord",
                        "message": credit.to_json(record),
                        "signature": "0x" + domain.sign(regulator, "CreditRecord", record).hex(),
                    }
                    answer = httpx.post(f"{api}/v1/records", json=body, headers=platform, timeout=10)
                    answer.raise_for_status()
                    ids.append(answer.json()["id"])
                    time.sleep(max(0.0, started + (n + 1) * options.interval - time.time()))
                deadline = time.time() + 30
                while time.time() < deadline and min(sse.count(), hook.count(), index.count()) < len(ids):
                    time.sleep(0.1)
                stop.set()
                receiver.shutdown()

            confirmed = confirmations(engine, ids)
            print(
                f"chain: anvil automine; confirmations={settings.confirmations}; poll interval "
                f"{settings.poll_interval}s (relayer, indexer), feed {settings.feed_poll_interval}s (SSE hub, "
                f"dispatcher); {len(confirmed)}/{len(ids)} decisions confirmed; bad signatures: {bad[0]}"
            )
            print("from confirmation (the relayer sees the receipt) to ...")
            report("baseline: the indexer writes it to SQL", delays(confirmed, index), len(confirmed))
            p99_sse = report("a platform's SSE client (/v1/feed/stream)", delays(confirmed, sse), len(confirmed))
            p99_hook = report("a platform's webhook receiver (HMAC checked)", delays(confirmed, hook), len(confirmed))
            for label, p99 in (("SSE", p99_sse), ("webhook", p99_hook)):
                verdict = "meets" if p99 <= TARGET_P99 else "MISSES"
                print(f"{label}: p99 {p99:.2f}s {verdict} the {TARGET_P99:.0f} s target")
            engine.dispose()
        finally:
            stop.set()
            supervisor.stop()
            node.stop()
            if options.postgres:
                database.__exit__(None, None, None)


def confirmations(engine: Engine, ids: list[str]) -> dict[str, float]:
    """Record id → unix time the relayer saw the receipt of the transaction that carried it."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(OUTBOX.c.id, RELAY_TX.c.mined_at)
            .join(RELAY_TX, RELAY_TX.c.tx_hash == OUTBOX.c.tx_hash)
            .where(OUTBOX.c.id.in_(ids), OUTBOX.c.status == "confirmed")
        ).all()
    return {row.id: _unix(row.mined_at) for row in rows if row.mined_at is not None}


def _unix(value: Any) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def delays(confirmed: dict[str, float], arrivals: Arrivals) -> list[float]:
    return [arrivals.times[i] - at for i, at in confirmed.items() if i in arrivals.times]


if __name__ == "__main__":
    main()
