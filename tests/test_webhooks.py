"""Webhooks: HMAC signatures, backoff, and the dispatcher delivering the feed to a real HTTP receiver (real DB)."""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.app import create_app
from api.feed import FeedFilter, parse_cursor
from credtrace import webhooks
from credtrace.settings import Settings
from credtrace.webhooks import Dispatcher, WebhookDelivery, WebhookSubscription
from node_bridge.consortium import Role, member_id
from node_bridge.credit import Kind
from node_bridge.store import open_store
from tests.api import test_feed as feed

OWNER = "0x" + member_id("913700007294518801").hex()


def wait_for(predicate: Callable[[], object], timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def dispatching(engine: Engine, settings: Settings) -> Iterator[Dispatcher]:
    dispatcher = Dispatcher(engine, settings, rng=random.Random(7))
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield dispatcher
    finally:
        stop.set()
        thread.join(15)
        assert not thread.is_alive()


@pytest.fixture
def store(store_url: str) -> Iterator[Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def settings_for(tmp_path: Path, store_url: str, **overrides: object) -> Settings:
    values = {"webhook_backoff_base": 0.2, "webhook_backoff_cap": 1.0, "feed_poll_interval": 0.05} | overrides
    return feed.feed_settings(tmp_path, store_url, **values)


def subscribe(engine: Engine, url: str, secret: str, where: FeedFilter | None = None, cursor: str = "now") -> str:
    with Session(engine) as session:
        subscription = webhooks.create_subscription(
            session, engine, OWNER, url, secret=secret, where=where, cursor=cursor
        )
        session.commit()
        return subscription.id


def subscription(engine: Engine, subscription_id: str) -> WebhookSubscription:
    with Session(engine) as session:
        found = session.get(WebhookSubscription, subscription_id)
        assert found is not None
        return found


def deliveries(engine: Engine, subscription_id: str) -> list[WebhookDelivery]:
    with Session(engine) as session:
        query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
        return list(session.exec(query).all())


# signing and backoff


def test_signatures_verify_and_every_mismatch_is_caught() -> None:
    secret, body = "whsec_test-secret-of-some-length", b'{"items":[]}'
    header = webhooks.signature(secret, body, timestamp=1_700_000_000)
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    assert v1 == hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()  # as docs/feed.md
    assert webhooks.verify(secret, body, header, now=1_700_000_100)
    assert not webhooks.verify("whsec_another-secret-entirely", body, header, now=1_700_000_100)
    assert not webhooks.verify(secret, body + b" ", header, now=1_700_000_100)
    assert not webhooks.verify(secret, body, header, now=1_700_001_000)  # replayed too late
    assert not webhooks.verify(secret, body, header.replace("t=1700000000", "t=1700000001"), now=1_700_000_100)
    assert not webhooks.verify(secret, body, "garbage", now=1_700_000_100)
    assert not webhooks.verify(secret, body, "t=1700000000", now=1_700_000_100)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    delays = [webhooks.backoff(attempt, 1.0, 600, rng) for attempt in range(1, 15)]
    for attempt, delay in enumerate(delays, start=1):
        full = min(600, 2 ** (attempt - 1))
        assert full / 2 <= delay <= full
    assert max(delays) <= 600 and delays[-1] >= 300


# the dispatcher against a real receiver


def test_a_failing_receiver_gets_retries_then_everything_in_order(
    tmp_path: Path, store_url: str, store: Engine
) -> None:
    settings = settings_for(tmp_path, store_url)
    chain = feed.IndexedChain(store)
    chain.issue(Kind.RED_LIST)
    chain.mine()  # before the subscription: not delivered ("now" is the default cursor)
    receiver = feed.Receiver("whsec_receiver-secret-0001", statuses=[500, 503])
    try:
        hook = subscribe(store, receiver.url, receiver.secret)
        first = [chain.issue(Kind.BLACKLIST), chain.issue(Kind.COMMITMENT)]
        chain.mine()
        with dispatching(store, settings):
            call = receiver.arrived.get(timeout=15)
            assert [c["status"] for c in receiver.calls] == [500, 503, 200]
            assert len({c["delivery"] for c in receiver.calls}) == 1  # one delivery, retried under its id
            assert all(c["signed"] for c in receiver.calls)
            assert [i["record_id"] for i in call["body"]["items"]] == first
            gaps = [b["at"] - a["at"] for a, b in zip(receiver.calls, receiver.calls[1:], strict=False)]
            assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # backoff: base 0.2 s, doubling, upper half jittered
            wait_for(lambda: subscription(store, hook).cursor == call["body"]["next_cursor"], what="cursor")

            more = chain.issue(Kind.SERVICE_DEFAULT)
            closure = chain.close(first[0])
            chain.mine()
            second = receiver.arrived.get(timeout=15)
            assert [i["id"] for i in second["body"]["items"]] == [more, closure]
            assert second["delivery"] != call["delivery"]
        state = subscription(store, hook)
        assert state.failures == 0 and state.status == "active" and state.last_error is None
        assert state.cursor == second["body"]["items"][-1]["cursor"]
        rows = sorted(deliveries(store, hook), key=lambda d: d.created_at)
        assert [(d.status, d.attempts, d.items) for d in rows] == [("delivered", 3, 2), ("delivered", 1, 2)]
        assert rows[0].last_status == 200 and rows[0].id == call["delivery"]
    finally:
        receiver.close()


def test_a_receiver_with_the_wrong_secret_refuses_and_nothing_moves(
    tmp_path: Path, store_url: str, store: Engine
) -> None:
    settings = settings_for(tmp_path, store_url, webhook_max_failures=3)
    chain = feed.IndexedChain(store)
    receiver = feed.Receiver("whsec_what-the-receiver-expects")
    try:
        hook = subscribe(store, receiver.url, "whsec_what-the-dispatcher-signs-with")
        start = subscription(store, hook).cursor
        chain.issue(Kind.BLACKLIST)
        chain.mine()
        with dispatching(store, settings):
            wait_for(lambda: subscription(store, hook).status == "disabled", what="the webhook to be disabled")
        assert receiver.bad_signatures == 3 and receiver.arrived.empty()
        state = subscription(store, hook)
        assert state.cursor == start and state.failures == 3 and state.last_error is not None
        assert state.last_error.startswith("HTTP 400")
        (pending,) = deliveries(store, hook)
        assert pending.status == "pending" and pending.attempts == 3 and pending.last_status == 400

        # the member fixes its receiver and reactivates: the same delivery goes through, under the same id
        receiver.secret = "whsec_what-the-dispatcher-signs-with"
        with Session(store) as session:
            webhooks.reactivate(session, OWNER, hook)
            session.commit()
        with dispatching(store, settings):
            call = receiver.arrived.get(timeout=15)
        assert call["delivery"] == pending.id and subscription(store, hook).status == "active"
    finally:
        receiver.close()


def test_filters_batches_and_an_unreachable_receiver(tmp_path: Path, store_url: str, store: Engine) -> None:
    settings = settings_for(tmp_path, store_url, webhook_batch_size=2)
    chain = feed.IndexedChain(store)
    receiver = feed.Receiver("whsec_receiver-secret-0002")
    try:
        start = parse_cursor(None)
        assert start is not None
        subscribe(store, receiver.url, receiver.secret, FeedFilter(kinds=frozenset({"blacklist"})), start.token)
        black = [chain.issue(Kind.BLACKLIST) for _ in range(3)]
        chain.issue(Kind.RED_LIST)
        chain.mine()
        closure = chain.close(black[1])
        chain.mine()
        dead = subscribe(store, "http://127.0.0.1:9/nobody-listens", "whsec_receiver-secret-0003", cursor=start.token)
        with dispatching(store, settings):
            wait_for(lambda: len(receiver.items()) == 4, what="four items")
            wait_for(lambda: subscription(store, dead).failures >= 2, what="two failed attempts")
        assert [i["id"] for i in receiver.items()] == [*black, closure]  # the red-list record is filtered out
        assert [len(c["body"]["items"]) for c in receiver.calls] == [2, 2]
        failed = subscription(store, dead)
        assert failed.status == "active" and failed.last_error is not None and "Connect" in failed.last_error
    finally:
        receiver.close()


# the routes


def test_webhook_routes_belong_to_their_member(tmp_path: Path, store_url: str) -> None:
    app = create_app(feed.feed_settings(tmp_path, store_url))
    engine: Engine = app.state.engine
    mine = {"Authorization": f"Bearer {feed.add_member(engine, '913700007294518801', 'Qilu', Role.PLATFORM)}"}
    theirs = {"Authorization": f"Bearer {feed.add_member(engine, '91370000MA3C8L4H9X', 'Haibin', Role.PLATFORM)}"}
    with TestClient(app) as client:
        body = {"url": "https://platform.example/hooks/credtrace", "filters": {"kinds": ["blacklist", "RED_LIST"]}}
        created = client.post("/v1/webhooks", json=body, headers=mine)
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 30
        assert hook["filters"] == {"kinds": ["blacklist", "red_list"], "subjects": [], "types": []}
        assert hook["status"] == "active" and parse_cursor(hook["cursor"]) is not None
        chosen = client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:8080/x", "secret": "my-own-secret-123", "cursor": "",
                  "filters": {"subjects": [feed.ORG], "types": ["record_revoked"]}},
            headers=mine,
        )  # fmt: skip
        assert chosen.status_code == 201 and chosen.json()["secret"] == "my-own-secret-123"
        assert chosen.json()["filters"]["subjects"] == ["0x" + feed.credit.subject_id(feed.ORG).hex()]

        for bad, field in [
            ({"url": "ftp://example.org/x"}, "url"),
            ({"url": "not a url at all"}, "url"),
            ({"url": "https://example.org/x", "secret": "short"}, "secret"),
            ({"url": "https://example.org/x", "filters": {"kinds": ["grey_list"]}}, "filters.kinds"),
            ({"url": "https://example.org/x", "filters": {"subjects": ["123"]}}, "filters.subjects"),
            ({"url": "https://example.org/x", "cursor": "bogus"}, "cursor"),
        ]:
            response = client.post("/v1/webhooks", json=bad, headers=mine)
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["detail"]["field"] == field
        assert client.post("/v1/webhooks", json=body).status_code == 401

        listed = client.get("/v1/webhooks", headers=mine).json()
        assert [h["id"] for h in listed] == [hook["id"], chosen.json()["id"]]
        assert all("secret" not in h for h in listed)
        assert client.get("/v1/webhooks", headers=theirs).json() == []
        detail = client.get(f"/v1/webhooks/{hook['id']}", headers=mine).json()
        assert detail["deliveries"] == [] and detail["failures"] == 0
        assert client.get(f"/v1/webhooks/{hook['id']}", headers=theirs).status_code == 404
        assert client.delete(f"/v1/webhooks/{hook['id']}", headers=theirs).status_code == 404
        assert client.post(f"/v1/webhooks/{hook['id']}/reactivate", headers=mine).json()["status"] == "active"
        assert client.delete(f"/v1/webhooks/{hook['id']}", headers=mine).status_code == 204
        assert client.get(f"/v1/webhooks/{hook['id']}", headers=mine).status_code == 404
        assert [h["id"] for h in client.get("/v1/webhooks", headers=mine).json()] == [chosen.json()["id"]]
    engine.dispose()
