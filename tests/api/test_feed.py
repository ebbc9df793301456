"""The change feed: cursors, filters, reorgs (on an index written as the indexer writes it), and the whole path
from a signed decision through anvil, the relayer and the indexer to ``/v1/feed``, the SSE stream and a webhook."""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from eth_abi import encode as abi_encode
from eth_utils.crypto import keccak
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete
from sqlmodel import Session

from api.app import create_app
from api.auth import create_api_key
from api.feed import START, Position, parse_cursor, read_page
from credtrace.errors import ValidationFailed
from credtrace.settings import Settings
from credtrace.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, Dispatcher, verify
from node_bridge import credit, credit_index, projections
from node_bridge.compiler import artifact
from node_bridge.consortium import Role, member_id
from node_bridge.credit import Kind
from node_bridge.events import DecodedEvent, EventDecoder
from node_bridge.models import ChainEvent, IndexedBlock, IndexerCheckpoint, Member
from node_bridge.rpc import Header
from tests.conftest import free_port

from .conftest import CreditWorld, fresh_subject

EVENTS = projections.table_of(ChainEvent)
BLOCKS = projections.table_of(IndexedBlock)
CHECKPOINTS = projections.table_of(IndexerCheckpoint)
RECORD_TYPE = "(uint8,bytes32,bytes32,string,uint8,uint32,bytes32,uint64,uint64,uint64,uint8,bytes32,uint256)"
ORG = "91370100MA3C8L4H91"
OTHER_ORG = "913701001630411228"
PERSON = credit.person_commitment(b"salt" * 8, "370102199001011234")
SIGNER = "0x" + "11" * 20
REGISTRY = "0x" + "ab" * 20


# an index written the way the indexer writes it, without a node


@dataclass
class IndexedChain:
    """Blocks of CreditRegistry events written into the index as :class:`node_bridge.indexer.Indexer` does
    (``chain_event`` rows, the credit projection, ``indexed_block`` and the checkpoint in one transaction)."""

    engine: Engine
    chain_id: int = 31337
    number: int = 10
    fork: int = 0
    decoder: EventDecoder = field(
        default_factory=lambda: EventDecoder(artifact("CreditRegistry").abi, "CreditRegistry")
    )
    hashes: dict[int, str] = field(default_factory=dict)
    _pending: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    def _hash(self, number: int) -> str:
        return "0x" + keccak(f"{self.fork}:{number}".encode()).hex()

    def issue(self, kind: Kind, subject: str | bytes = ORG, tier: int = 2) -> str:
        record = credit.example_record(kind, member_id("913700007294518801"), secrets.randbits(64))
        record.update(subject=credit.subject_id(subject), tier=tier)
        record_id = "0x" + secrets.token_bytes(32).hex()
        topics = [record_id, "0x" + record["subject"].hex(), "0x" + record["issuer"].hex()]
        data = abi_encode(["address", RECORD_TYPE], [SIGNER, credit.as_tuple("CreditRecord", record)])
        self._pending.append(("RecordIssued", topics, data))
        return record_id

    def close(self, record_id: str, repaired: bool = False, reason: str = "annulled") -> str:
        closure_id = "0x" + secrets.token_bytes(32).hex()
        name = "RecordRepaired" if repaired else "RecordRevoked"
        data = abi_encode(["address", "string"], [SIGNER, reason])
        self._pending.append((name, [record_id, closure_id, "0x" + "22" * 32], data))
        return closure_id

    def enforce(self, record_id: str, subject: str = ORG) -> str:
        receipt_id = "0x" + secrets.token_bytes(32).hex()
        data = abi_encode(
            ["bytes32", "uint16", "uint64", "address"], [bytes.fromhex(record_id[2:]), 3, 1_700_000_000, SIGNER]
        )
        topics = [receipt_id, "0x" + "33" * 32, "0x" + credit.subject_id(subject).hex()]
        self._pending.append(("EnforcementFiled", topics, data))
        return receipt_id

    def mine(self) -> int:
        """One block holding the events queued since the last one; returns its number."""
        self.number += 1
        number, block_hash = self.number, self._hash(self.number)
        self.hashes[number] = block_hash
        events: list[DecodedEvent] = []
        for log_index, (name, topics, data) in enumerate(self._pending):
            entry = {
                "address": REGISTRY, "topics": [self.decoder.topic0(name), *topics], "data": "0x" + data.hex(),
                "blockNumber": hex(number), "blockHash": block_hash, "logIndex": hex(log_index),
                "transactionHash": "0x" + keccak(f"{block_hash}{log_index}".encode()).hex(),
            }  # fmt: skip
            events.append(self.decoder.decode(entry))
        self._pending.clear()
        header = Header(number, block_hash, self._hash(number - 1), 1_700_000_000 + number)
        with self.engine.begin() as connection:
            rows = [(self.chain_id, *e[:7], projections.to_json(e.args)) for e in events]
            projections.upsert_values(connection, EVENTS, rows, update=False)
            credit_index.project(connection, events, {number: header.timestamp})
            projections.upsert(connection, BLOCKS, [header.row(self.chain_id)])
            checkpoint = {"chain_id": self.chain_id, "block_number": number, "block_hash": block_hash,
                          "block_timestamp": header.timestamp}  # fmt: skip
            projections.upsert(connection, CHECKPOINTS, [checkpoint])
        return number

    def reorg(self, ancestor: int) -> None:
        """Roll the index back to block ``ancestor`` as the indexer does; later blocks get new hashes."""
        with self.engine.begin() as connection:
            connection.execute(delete(EVENTS).where(EVENTS.c.block_number > ancestor))
            connection.execute(delete(BLOCKS).where(BLOCKS.c.number > ancestor))
            credit_index.rollback(connection, ancestor)
            checkpoint = {"chain_id": self.chain_id, "block_number": ancestor, "block_hash": self.hashes[ancestor],
                          "block_timestamp": 1_700_000_000 + ancestor}  # fmt: skip
            projections.upsert(connection, CHECKPOINTS, [checkpoint])
        self.number, self.fork = ancestor, self.fork + 1


def add_member(engine: Engine, uscc: str, name: str, roles: Role) -> str:
    """An active member in the index with a new API key; returns the key."""
    with Session(engine) as session:
        mid = "0x" + member_id(uscc).hex()
        session.add(Member(id=mid, name=name, roles=int(roles), status="active", admitted_block=1, updated_block=1))
        key, _ = create_api_key(session, mid)
        session.commit()
    return key


@dataclass
class FeedWorld:
    engine: Engine
    chain: IndexedChain
    client: TestClient
    settings: Settings
    headers: dict[str, str]
    other_headers: dict[str, str]

    def page(self, **params: Any) -> dict[str, Any]:
        response = self.client.get("/v1/feed", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


def feed_settings(tmp_path: Path, store_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "database_url": store_url, "reorg_window": 4}
    return Settings(**(values | overrides))


@pytest.fixture
def feed_world(tmp_path: Path, store_url: str) -> Iterator[FeedWorld]:
    settings = feed_settings(tmp_path, store_url, feed_heartbeat_seconds=1.0)
    app = create_app(settings)
    engine: Engine = app.state.engine
    key = add_member(engine, "913700007294518801", "Qilu Mall", Role.PLATFORM)
    other = add_member(engine, "91370000MA3C8L4H9X", "Haibin", Role.PLATFORM)
    with TestClient(app) as client:
        yield FeedWorld(
            engine,
            IndexedChain(engine),
            client,
            settings,
            {"Authorization": f"Bearer {key}"},
            {"Authorization": f"Bearer {other}"},
        )
    engine.dispose()


def test_cursors_are_opaque_round_trips_and_bad_ones_are_named(feed_world: FeedWorld) -> None:
    position = Position.at(123456, 7, "0x" + "ab" * 32)
    assert parse_cursor(position.token) == position
    assert parse_cursor(None) == START and parse_cursor("") == START and parse_cursor("now") is None
    for bad in ("garbage!", "AAAA", position.token[:-2], "Ag" + position.token[2:]):
        with pytest.raises(ValidationFailed) as error:
            parse_cursor(bad)
        assert error.value.field == "cursor"
    response = feed_world.client.get("/v1/feed", params={"cursor": "not-a-cursor"}, headers=feed_world.headers)
    assert response.status_code == 422 and response.json()["detail"]["field"] == "cursor"
    stream = feed_world.client.get("/v1/feed/stream", headers={**feed_world.headers, "Last-Event-ID": "nope"})
    assert stream.status_code == 422 and stream.json()["detail"]["field"] == "Last-Event-ID"
    bad_kind = feed_world.client.get("/v1/feed", params={"kind": "grey_list"}, headers=feed_world.headers)
    assert bad_kind.status_code == 422 and bad_kind.json()["detail"]["field"] == "kind"
    assert feed_world.client.get("/v1/feed").status_code == 401
    assert feed_world.client.get("/v1/feed/stream").status_code == 401


def test_items_come_in_chain_order_with_their_subject_and_kind(feed_world: FeedWorld) -> None:
    chain = feed_world.chain
    black = chain.issue(Kind.BLACKLIST, ORG)
    red = chain.issue(Kind.RED_LIST, OTHER_ORG, tier=0)
    chain.mine()
    person = chain.issue(Kind.SERVICE_DEFAULT, PERSON)
    chain.mine()
    closure = chain.close(black)
    receipt = chain.enforce(red, OTHER_ORG)
    repair = chain.close(person, repaired=True, reason="credit repaired")
    last_block = chain.mine()

    everything = feed_world.page()
    assert [i["type"] for i in everything["items"]] == [
        "record_issued", "record_issued", "record_issued", "record_revoked", "enforcement_filed", "record_repaired",
    ]  # fmt: skip
    assert everything["has_more"] is False and everything["rewound_to_block"] is None
    issued = everything["items"][0]
    assert issued["id"] == issued["record_id"] == black
    assert issued["subject"] == "0x" + credit.subject_id(ORG).hex() and issued["subject_code"] == ORG
    assert issued["kind"] == "blacklist" and issued["tier"] == "severe" and issued["block_time"] == 1_700_000_011
    assert issued["effective_at"] < issued["valid_until"] and issued["signer"].lower() == SIGNER
    assert everything["items"][2]["subject_code"] is None  # a natural person: only the commitment
    revoked = everything["items"][3]
    assert revoked["id"] == closure and revoked["record_id"] == black and revoked["reason"] == "annulled"
    assert revoked["kind"] == "blacklist" and revoked["subject_code"] == ORG  # from the record it closes
    filed = everything["items"][4]
    assert filed["id"] == receipt and filed["record_id"] == red and filed["kind"] == "red_list"
    assert filed["measure"] == 3 and filed["subject_code"] == OTHER_ORG
    assert everything["items"][5]["id"] == repair and everything["items"][5]["subject_code"] is None
    assert everything["next_cursor"] == everything["items"][-1]["cursor"]
    assert parse_cursor(everything["next_cursor"]) == Position.at(last_block, 2, chain.hashes[last_block])

    # paging: two at a time gives the same items, and the last page is empty with the same cursor
    seen, cursor = [], ""
    while True:
        page = feed_world.page(cursor=cursor, limit=2)
        seen += page["items"]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == everything["items"]
    tail = feed_world.page(cursor=everything["next_cursor"])
    assert tail["items"] == [] and tail["next_cursor"] == everything["next_cursor"] and not tail["has_more"]

    # filters: by subject (credit code or 0x id), kind and type; several values by repetition or comma
    by_org = feed_world.page(subject=ORG)
    assert [i["id"] for i in by_org["items"]] == [black, closure]
    assert feed_world.page(subject="0x" + PERSON.hex())["items"][1]["type"] == "record_repaired"
    assert [i["id"] for i in feed_world.page(kind="red_list")["items"]] == [red, receipt]
    assert [i["id"] for i in feed_world.page(kind=["blacklist", "service_default"], type="record_issued")["items"]] == [
        black,
        person,
    ]
    assert len(feed_world.page(type="record_revoked,record_repaired")["items"]) == 2
    # a filtered page that scans past rows it does not want still moves its cursor on
    scanned = read_page(feed_world.engine, START, limit=5, where=None, scan=2)
    assert len(scanned.items) == 2 and scanned.has_more


def test_cursor_now_and_a_rebuilt_index(feed_world: FeedWorld) -> None:
    chain = feed_world.chain
    chain.issue(Kind.BLACKLIST)
    chain.mine()
    now = feed_world.page(cursor="now")
    assert now["items"] == [] and now["next_cursor"]
    fresh = chain.issue(Kind.RED_LIST)
    chain.mine()
    after = feed_world.page(cursor=now["next_cursor"])
    assert [i["id"] for i in after["items"]] == [fresh]

    # the index is dropped and rebuilt from the same chain: the cursor goes on where it was, no rewind
    with feed_world.engine.begin() as connection:
        for table in (EVENTS, BLOCKS, CHECKPOINTS):
            connection.execute(delete(table))
    replay = IndexedChain(feed_world.engine)
    replay.issue(Kind.BLACKLIST)
    replay.mine()
    replay.issue(Kind.RED_LIST)
    replay.mine()
    again = feed_world.page(cursor=now["next_cursor"])
    assert again["rewound_to_block"] is None and len(again["items"]) == 1


def test_a_reorg_under_the_cursor_rewinds_and_says_so(feed_world: FeedWorld) -> None:
    chain = feed_world.chain  # reorg_window is 4 here
    kept = chain.issue(Kind.BLACKLIST)
    chain.mine()  # 11
    for _ in range(4):
        chain.mine()  # 12-15, empty
    chain.issue(Kind.RED_LIST)
    chain.mine()  # 16: will be replaced
    before = feed_world.page()
    assert len(before["items"]) == 2
    cursor = before["next_cursor"]

    chain.reorg(14)
    replacement = chain.issue(Kind.COMMITMENT)
    chain.mine()  # 15 on the new chain
    page = feed_world.page(cursor=cursor)
    assert page["rewound_to_block"] == 12  # 16 - window
    assert [i["id"] for i in page["items"]] == [replacement]
    settled = feed_world.page(cursor=page["next_cursor"])
    assert settled["items"] == [] and settled["rewound_to_block"] is None
    # a cursor below the window's reach is final: no rewind for it
    first = before["items"][0]["cursor"]
    assert feed_world.page(cursor=first)["rewound_to_block"] is None
    assert kept == before["items"][0]["id"]

    # a rollback that leaves the cursor above the checkpoint also rewinds (the new chain is shorter)
    chain.reorg(13)
    page = feed_world.page(cursor=settled["next_cursor"])
    assert page["rewound_to_block"] == 11 and [i["id"] for i in page["items"]] == [kept]


# the whole path: anvil, relayer, indexer, API, SSE, webhook


class Receiver:
    """A webhook endpoint on a real socket: checks every signature, answers with the statuses it is given."""

    def __init__(self, secret: str, statuses: list[int] | None = None) -> None:
        self.secret = secret
        self.statuses = list(statuses or [])
        self.calls: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.arrived: queue.Queue[dict[str, Any]] = queue.Queue()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = verify(receiver.secret, body, self.headers.get(SIGNATURE_HEADER, ""))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if not signed:
                    receiver.bad_signatures += 1
                    status = 400
                call = {"at": time.time(), "status": status, "delivery": self.headers.get(DELIVERY_HEADER),
                        "body": json.loads(body), "signed": signed}  # fmt: skip
                receiver.calls.append(call)
                if 200 <= status < 300:
                    receiver.arrived.put(call)
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def items(self) -> list[dict[str, Any]]:
        return [item for call in self.calls if 200 <= call["status"] < 300 for item in call["body"]["items"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SSEClient(threading.Thread):
    """Reads ``GET /v1/feed/stream`` on a real connection; each event goes to ``events`` with its arrival time."""

    def __init__(self, url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.params = url, headers, params or {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: int | None = None
        self.pings = 0
        self.stop = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(5, read=None)) as client,
            client.stream("GET", self.url, headers=self.headers, params=self.params) as response,
        ):
            self.status = response.status_code
            self.connected.set()
            event: dict[str, Any] = {}
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if not line:
                    if event:
                        event["at"] = time.time()
                        self.events.put(event)
                        event = {}
                elif line.startswith(":"):
                    self.pings += 1
                else:
                    name, _, value = line.partition(":")
                    event[name] = value.removeprefix(" ")

    def next(self, timeout: float = 10) -> dict[str, Any]:
        return self.events.get(timeout=timeout)


@dataclass
class Server:
    """The API under uvicorn in a thread (a real socket: SSE needs one)."""

    app: FastAPI
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.mark.anvil
def test_a_decision_reaches_the_feed_the_stream_and_a_webhook(credit_world: CreditWorld) -> None:
    w = credit_world
    settings = w.settings.model_copy(update={"feed_heartbeat_seconds": 1.0, "webhook_backoff_base": 0.2})
    server = Server(create_app(settings))
    platform = w.headers("qilu-mall")
    stop = threading.Event()
    dispatcher = threading.Thread(target=Dispatcher(server.app.state.engine, settings).run, args=(stop,), daemon=True)
    receiver = Receiver("")
    now = w.client.get("/v1/feed", params={"cursor": "now"}, headers=platform).json()["next_cursor"]
    sse = SSEClient(f"{server.url}/v1/feed/stream", platform, {"cursor": now})
    try:
        created = httpx.post(
            f"{server.url}/v1/webhooks",
            json={"url": receiver.url, "filters": {"kinds": ["blacklist"]}},
            headers=platform,
        )
        assert created.status_code == 201, created.text
        receiver.secret = created.json()["secret"]
        assert receiver.secret.startswith("whsec_")
        dispatcher.start()
        sse.start()
        assert sse.connected.wait(10) and sse.status == 200

        subject = fresh_subject()
        body = w.signed("market-regulation", "CreditRecord", w.record("market-regulation", Kind.BLACKLIST, subject))
        accepted = w.submit("qilu-mall", body)
        assert accepted.status_code == 202, accepted.text
        record_id = accepted.json()["id"]
        w.settle()
        indexed_at = time.time()

        page = w.client.get("/v1/feed", params={"subject": subject}, headers=platform).json()
        assert [(i["type"], i["record_id"]) for i in page["items"]] == [("record_issued", record_id)]
        item = page["items"][0]
        assert item["subject_code"] == subject and item["kind"] == "blacklist" and item["block_time"] is not None
        assert w.client.get("/v1/feed", params={"subject": subject}).status_code == 401

        event = sse.next()
        assert json.loads(event["data"])["record_id"] == record_id and event["id"] == item["cursor"]
        call = receiver.arrived.get(timeout=10)
        assert call["signed"] and [i["record_id"] for i in call["body"]["items"]] == [record_id]
        assert call["body"]["next_cursor"] == item["cursor"]
        assert event["at"] - indexed_at < 2 and call["at"] - indexed_at < 2  # seconds, as the issue asks

        # a revocation follows on both; a new stream resumes after the first item by Last-Event-ID
        revocation = w.signed("market-regulation", "Revocation", w.closure("market-regulation", record_id))
        assert w.submit("market-regulation", {"records": [revocation]}).status_code == 202
        w.settle()
        revoked = json.loads(sse.next()["data"])
        assert revoked["type"] == "record_revoked" and revoked["record_id"] == record_id
        assert revoked["kind"] == "blacklist" and revoked["subject_code"] == subject
        assert receiver.arrived.get(timeout=10)["body"]["items"][0]["type"] == "record_revoked"
        resumed = SSEClient(f"{server.url}/v1/feed/stream", {**platform, "Last-Event-ID": item["cursor"]})
        resumed.start()
        assert json.loads(resumed.next()["data"])["id"] == revoked["id"]
        resumed.stop.set()
        assert receiver.bad_signatures == 0
        hooks = httpx.get(f"{server.url}/v1/webhooks", headers=platform).json()
        assert hooks[0]["cursor"] == revoked["cursor"] and "secret" not in hooks[0]
    finally:
        sse.stop.set()
        stop.set()
        dispatcher.join(10)
        receiver.close()
        server.stop()
