"""Trace checkpoint events from ``POST /v1/trace/events`` to anchored with a proof available; code issuance; gas.

    SOLCX_BINARY_PATH=build/solcx .venv/bin/python -m bench.trace [--events 100000] [--post-batch 5000]
        [--clients 3] [--codes 100000] [--api-workers 1]
        [--database-url postgresql://postgres@127.0.0.1:5432/test (a scratch db there)]

1. system: a fresh anvil node with the contracts and the demo (as ``make run`` starts it); the API under uvicorn
   (one worker, with its signature-checking processes), the relayer, the indexer and the anchorer as their own
   processes (as ``credtrace up`` runs them). The demo producer registers a product and lots and issues and signs
   the codes; N ``commission`` events (one code each, signed beforehand by the producer's key) are POSTed in
   batches by a few clients, after one warm-up batch; the clock runs from the first POST until every event's batch
   root is indexed from the chain (its proof is then available; one is fetched and checked). Beside it, in the
   same run: the same event digests hashed into RFC 6962 trees with plain hashlib (no API, database or chain),
   and the gas of the anchor transactions per anchored event. While the clock runs, each process's CPU time is
   read (psutil) and printed per event, by part: where the time goes, in a unit that a faster or slower day of
   the shared machine changes less than events/s (beside it, one leaf of the hashlib tree, in µs).
2. issuance: ``POST /v1/trace/lots/{gtin}/{lot}/codes`` of ``--codes`` codes (serials, ids, root, rows stored),
   beside plain hashlib over the same data (keccak of each path, then the RFC 6962 tree with hashlib's SHA-256).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, select

from bench.records import _wait_up
from bench.relayer import Chain, free_port, fresh_chain
from credtrace.demo import DEMO_PASSWORD, demo_api_keys, demo_members
from credtrace.keys import load_key
from node_bridge import trace
from node_bridge.consortium import member_id
from node_bridge.eip712 import keccak
from node_bridge.models import TraceChainAnchor
from node_bridge.store import scratch_postgres
from node_bridge.trace import ZERO32, Disposition, Step, TraceDomain
from node_bridge.trace_models import TraceEventRow

console = Console()
PRODUCER = "yantai-orchard"
WARM_UP = 1_000
"""Events posted before the clock starts (the first big batch starts the API's signature workers)."""


def plain_tree_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 root with plain hashlib, level by level (the baseline)."""
    sha = hashlib.sha256
    level = [sha(b"\x00" + d).digest() for d in leaves]
    while len(level) > 1:
        paired = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _processes(env: dict[str, str], logs: Path, workers: int) -> list[subprocess.Popen[bytes]]:
    logs.mkdir(parents=True, exist_ok=True)
    commands = {
        "api": [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", env["CREDTRACE_API_PORT"],
                "--log-level", "warning", "--workers", str(workers)],
        "relayer": [sys.executable, "-m", "node_bridge.relayer"],
        "indexer": [sys.executable, "-m", "node_bridge.indexer"],
        "anchorer": [sys.executable, "-m", "node_bridge.anchorer"],
    }  # fmt: skip
    started = []
    for name, command in commands.items():
        with (logs / f"{name}.log").open("ab") as out:
            started.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))
    return started


PARTS = {
    "uvicorn": "API process: HTTP, JSON, checks, SQL",
    "multiprocessing": "API signature workers",
    "node_bridge.anchorer": "anchorer",
    "node_bridge.relayer": "relayer",
    "node_bridge.indexer": "indexer",
    "anvil": "anvil",
}
CLIENTS = "load clients and the anchored check (this process)"


class CpuMeter:
    """CPU seconds (user + system) of this process and every process under it, by part, from :meth:`start`."""

    def __init__(self) -> None:
        self._start: dict[int, tuple[str, psutil.Process, float]] = {}
        self._machine = 0.0
        self._wall = 0.0

    @staticmethod
    def _part(process: psutil.Process) -> str:
        command = " ".join(process.cmdline())
        return next((part for key, part in PARTS.items() if key in command), "other (resource tracker, …)")

    @staticmethod
    def _busy() -> float:
        """The machine's CPU seconds at work so far (not idle, waiting for disk or stolen by the host; guest time is
        already in user time)."""
        times = psutil.cpu_times()
        return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))

    def start(self) -> None:
        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                part = CLIENTS if process.pid == me.pid else self._part(process)
                self._start[process.pid] = (part, process, sum(process.cpu_times()[:2]))
        self._machine, self._wall = self._busy(), time.perf_counter()

    def stop(self) -> tuple[dict[str, float], float, float]:
        """(CPU seconds by part, the whole machine's busy CPU seconds, wall seconds) since :meth:`start`."""
        parts: dict[str, float] = {}
        for part, process, before in self._start.values():
            with contextlib.suppress(psutil.Error):  # a process gone meanwhile (a worker replaced) is left out
                parts[part] = parts.get(part, 0.0) + sum(process.cpu_times()[:2]) - before
        return parts, self._busy() - self._machine, time.perf_counter() - self._wall


def _producer(chain: Chain) -> tuple[str, str]:
    member = next(m for m in demo_members() if m.key == PRODUCER)
    return member.name, "0x" + member_id(member.uscc).hex()


def _gtin() -> str:
    body = f"690{int(time.time()) % 10**9:09d}"
    return body + trace.gtin_check_digit(body)


def run(
    events: int, post_batch: int, clients: int, codes: int, database_url: str | None, workers: int = 1
) -> dict[str, Any]:
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
        name, producer = _producer(chain)
        api_key = demo_api_keys(settings.model_copy(update={"database_url": database_url}))[name]
        account = load_key(settings.keys_dir, PRODUCER, DEMO_PASSWORD)
        domain = TraceDomain(chain.deployment.chain_id, chain.deployment.contracts[trace.CONTRACT].address)
        processes = _processes(env, settings.data_path / "logs", workers)
        base = f"http://127.0.0.1:{env['CREDTRACE_API_PORT']}"
        engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://") if database_url
                               else settings.database)  # fmt: skip
        out: dict[str, Any] = {}
        try:
            _wait_up(base)
            headers = {"Authorization": f"Bearer {api_key}"}
            with httpx.Client(base_url=base, headers=headers, timeout=300) as c:
                gtin = _gtin()
                assert c.post("/v1/trace/products", json={"gtin": gtin, "name": "bench"}).status_code == 201
                for lot in ("W", "E", "BIG"):
                    assert c.post("/v1/trace/lots", json={"gtin": gtin, "lot": lot}).status_code == 201
                # issuance of a big lot, beside plain hashlib over the same data
                start = time.perf_counter()
                big = c.post(f"/v1/trace/lots/{gtin}/BIG/codes", json={"count": codes})
                out["issue_s"] = time.perf_counter() - start
                assert big.status_code == 201, big.text
                paths = _paths(c, big.json()["id"], codes)
                start = time.perf_counter()
                plain = plain_tree_root([keccak(p.encode()) for p in paths])
                out["issue_plain_s"] = time.perf_counter() - start
                assert "0x" + plain.hex() == big.json()["root"]
                # the codes the events commission: WARM_UP for the warm-up batch (lot W), then the timed ones
                event_codes = []
                for lot, count in (("W", WARM_UP), ("E", events)):
                    batch = c.post(f"/v1/trace/lots/{gtin}/{lot}/codes", json={"count": count}).json()
                    signature = domain.sign(account, "CodeBatch", _values(batch["typed_data"]["message"]))
                    signed_batch = c.post(batch["signature_url"], json={"signature": "0x" + signature.hex()})
                    assert signed_batch.status_code == 202, signed_batch.text
                    event_codes += _paths(c, batch["id"], count)
            with console.status(f"signing {events + WARM_UP} events"):
                now = int(time.time())
                bodies = []
                for n, path in enumerate(event_codes):
                    message = {"actor": bytes.fromhex(producer[2:]), "step": int(Step.COMMISSION),
                               "codes": [trace.code_id(path)], "parent": ZERO32, "time": now, "location": "site-1",
                               "geo": "", "disposition": int(Disposition.ACTIVE), "corrects": ZERO32,
                               "nonce": n + 1}  # fmt: skip
                    signed = domain.sign(account, "TraceEvent", message)
                    bodies.append({"message": _json(message), "signature": "0x" + signed.hex()})
            gc.freeze()  # the pre-signed bodies (a big heap) out of the collector's view while the clients run
            json_headers = {**headers, "Content-Type": "application/json"}
            # one batch first: the API starts its signature workers (once per process, about a second)
            warm = httpx.post(f"{base}/v1/trace/events", headers=json_headers, content=orjson.dumps(
                {"events": bodies[:WARM_UP]}), timeout=300)  # fmt: skip
            assert warm.status_code == 202, warm.text[:300]
            bodies = bodies[WARM_UP:]
            ids: list[str] = []
            chunks = [bodies[i : i + post_batch] for i in range(0, events, post_batch)]
            errors: list[str] = []

            def post(mine: list[list[dict[str, Any]]]) -> None:
                with httpx.Client(base_url=base, headers=json_headers, timeout=300) as c:
                    for chunk in mine:
                        response = c.post("/v1/trace/events", content=orjson.dumps({"events": chunk}))
                        if response.status_code != 202:
                            errors.append(response.text[:300])
                        else:
                            ids.extend(a["id"] for a in response.json()["accepted"])

            meter = CpuMeter()
            meter.start()
            start = time.perf_counter()
            threads = [threading.Thread(target=post, args=(chunks[i::clients],)) for i in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            out["accepted_per_s"] = events / (time.perf_counter() - start)
            console.print(f"accepted: {out['accepted_per_s']:,.0f} events/s; waiting for the anchors")
            if errors:
                raise RuntimeError(f"{len(errors)} batches refused, e.g. {errors[0]}")
            deadline = start + 900
            events_table, anchors = TraceEventRow.__table__, TraceChainAnchor.__table__  # type: ignore[attr-defined]
            # anchors go on chain in index order (each names the root before it): every event is anchored once
            # none waits for a batch and the last batch's anchor is indexed (two queries within indexes)
            unbatched = select(func.count()).select_from(events_table).where(events_table.c.batch.is_(None))
            last_batch = select(func.max(events_table.c.batch))
            while True:
                with engine.connect() as connection:
                    last = connection.execute(last_batch).scalar_one()
                    waiting = connection.execute(unbatched).scalar_one()
                    indexed = last is not None and connection.execute(
                        select(anchors.c["index"]).where(anchors.c["index"] == last)).first() is not None  # fmt: skip
                if waiting == 0 and indexed:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{waiting} events still unbatched, last batch {last} indexed: {indexed}")
                time.sleep(0.02)
            out["proved_per_s"] = events / (time.perf_counter() - start)
            out["cpu"] = meter.stop()
            proved = select(func.count()).select_from(
                events_table.join(anchors, anchors.c["index"] == events_table.c.batch)
            )
            every = select(func.count()).select_from(events_table)  # the demo's own events too
            with engine.connect() as connection:  # and the rule above held: each event's batch is indexed
                assert connection.execute(proved).scalar_one() == connection.execute(every).scalar_one()
            proof = httpx.get(f"{base}/v1/trace/events/{ids[-1]}/proof", timeout=30)
            assert proof.status_code == 200, proof.text
            # baseline: the same digests into trees with plain hashlib
            leaves = [bytes.fromhex(i[2:]) for i in ids]
            start = time.perf_counter()
            plain_tree_root(leaves)
            out["plain_per_s"] = events / (time.perf_counter() - start)
            with engine.connect() as connection:
                rows = connection.execute(select(anchors.c.tx_hash, anchors.c.size)).all()
            gas = sum(chain.w3.eth.get_transaction_receipt(tx)["gasUsed"] for tx in {r[0] for r in rows})
            out["gas_per_event"] = gas / sum(r[1] for r in rows)
            out["anchors"] = len(rows)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
            engine.dispose()
        return out


def _paths(c: httpx.Client, batch_id: str, count: int) -> list[str]:
    paths: list[str] = []
    while len(paths) < count:
        page = c.get(f"/v1/trace/code-batches/{batch_id}/codes", params={"limit": 10_000, "offset": len(paths)})
        paths += page.json()["paths"]
    return paths


def _values(message: dict[str, Any]) -> dict[str, Any]:
    return {k: bytes.fromhex(v[2:]) if isinstance(v, str) and v.startswith("0x") else v for k, v in message.items()}


def _json(message: dict[str, Any]) -> dict[str, Any]:
    return {
        k: "0x" + v.hex() if isinstance(v, bytes) else ["0x" + c.hex() for c in v] if isinstance(v, list) else v
        for k, v in message.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="at most 100,000 (one lot of codes)")
    parser.add_argument("--post-batch", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--codes", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes of the API")
    args = parser.parse_args()
    if args.database_url:  # a scratch database on that server, dropped afterwards
        with scratch_postgres(args.database_url, "credtrace_bench") as url:
            out = run(args.events, args.post_batch, args.clients, args.codes, url, args.api_workers)
    else:
        out = run(args.events, args.post_batch, args.clients, args.codes, None, args.api_workers)
    table = Table(title=f"{args.events} signed commission events, local anvil ({out['anchors']} anchors)")
    table.add_column("path")
    table.add_column("figure", justify="right")
    table.add_row("POST /v1/trace/events → accepted (202), events/s", f"{out['accepted_per_s']:,.0f}")
    table.add_row("POST /v1/trace/events → anchored, proof available, events/s", f"{out['proved_per_s']:,.0f}")
    table.add_row(
        "baseline: the same digests into an RFC 6962 tree, plain hashlib, events/s", f"{out['plain_per_s']:,.0f}"
    )
    table.add_row("gas per anchored event", f"{out['gas_per_event']:,.2f}")
    table.add_row(f"issue a lot of {args.codes:,} codes with its root (POST), s", f"{out['issue_s']:.2f}")
    table.add_row("baseline: keccak ids + RFC 6962 root, plain hashlib, s", f"{out['issue_plain_s']:.2f}")
    console.print(table)
    console.print(_cpu_table(out, args.events))


def _cpu_table(out: dict[str, Any], events: int) -> Table:
    parts, machine, wall = out["cpu"]
    cores = psutil.cpu_count() or 1
    table = Table(title=f"CPU per event while the clock ran ({wall:.1f} s on {cores} cores)")
    table.add_column("part")
    table.add_column("µs an event", justify="right")
    for part, seconds in sorted(parts.items(), key=lambda item: -item[1]):
        table.add_row(part, f"{seconds / events * 1e6:,.1f}")
    ours = sum(parts.values())
    table.add_row("all of the above", f"{ours / events * 1e6:,.1f}")
    table.add_row("the machine's other processes", f"{max(0.0, machine - ours) / events * 1e6:,.1f}")
    table.add_row("machine busy, % of its cores", f"{machine / (wall * cores) * 100:.0f} %")
    table.add_row("baseline: one leaf of the hashlib RFC 6962 tree, µs", f"{1e6 / out['plain_per_s']:.2f}")
    return table


if __name__ == "__main__":
    main()
