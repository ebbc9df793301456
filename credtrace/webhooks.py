"""Webhooks (C4): the change feed pushed to members' endpoints, signed with HMAC, retried with backoff.

A member subscribes an URL with optional filters (kinds, subjects, types) and a starting cursor (default: now).
The dispatcher (``python -m credtrace.webhooks``, the third service of ``credtrace up``) keeps one worker per
active subscription. A worker reads the feed after the subscription's cursor (:func:`api.feed.read_page`) and
POSTs up to ``webhook_batch_size`` items as one JSON body::

    {"subscription": "…", "delivery": "…", "items": [<feed items>], "next_cursor": "…", "rewound_to_block": null}

with the headers ``X-Credtrace-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``,
``X-Credtrace-Delivery: <delivery id>`` and ``X-Credtrace-Subscription: <id>``. A 2xx answer moves the cursor to
``next_cursor``; anything else (another status, a timeout, a refused connection) is retried with exponential
backoff and jitter (``webhook_backoff_base`` doubling up to ``webhook_backoff_cap`` seconds), the same body under
the same delivery id each time, newly signed. After ``webhook_max_failures`` failures in a row the subscription is
disabled (``POST /v1/webhooks/{id}/reactivate`` resumes it where it stopped).

Delivery is at least once and in order per subscription: the delivery row (with its body) is written before the
first POST and the cursor moves only after a 2xx, so a crash of the dispatcher re-sends the delivery under the
same id. Receivers deduplicate by delivery id (or by item ``id``). Run one dispatcher per database.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import JSON, Column, Engine, Text, delete
from sqlmodel import Field, Session, SQLModel, col, select

from api.feed import FeedFilter, head_cursor, parse_cursor, read_page
from credtrace import __version__
from credtrace.errors import NotFound, ValidationFailed
from credtrace.settings import Settings
from node_bridge.models import IndexerCheckpoint, Member, utcnow

if __name__ == "__main__":
    # `python -m credtrace.webhooks` runs this file as __main__; its tables must be defined once, by the importable
    # module (the migrations import it too), so hand over to that module's main() before defining anything.
    from credtrace.webhooks import main as _main

    _main()
    raise SystemExit(0)

log = logging.getLogger("credtrace.webhooks")

SIGNATURE_HEADER = "X-Credtrace-Signature"
DELIVERY_HEADER = "X-Credtrace-Delivery"
SUBSCRIPTION_HEADER = "X-Credtrace-Subscription"
SECRET_PREFIX = "whsec_"
MIN_SECRET = 16
MAX_URL = 2048
SYNC_EVERY = 1.0
"""Seconds between looks for new, deleted, disabled or reactivated subscriptions."""
IDLE_RECHECK = 5.0
"""An idle worker reads its feed at least this often, even if no checkpoint move woke it."""
PRUNE_EVERY = 600.0


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"


class WebhookSubscription(SQLModel, table=True):
    """A member's endpoint and where it is in the feed. The secret is kept as given: it signs every delivery."""

    __tablename__ = "webhook_subscription"

    id: str = Field(primary_key=True, max_length=32)
    member_id: str = Field(max_length=66, index=True, description="owner: 0x-hex member id")
    url: str = Field(max_length=MAX_URL)
    secret: str = Field(max_length=200)
    kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    subjects: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cursor: str = Field(max_length=64, description="feed cursor after the last item delivered (or skipped)")
    status: str = Field(default=SubscriptionStatus.ACTIVE, max_length=16, index=True)
    failures: int = Field(default=0, description="failed attempts in a row")
    last_error: str | None = None
    last_delivery_at: datetime | None = None
    disabled_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def where(self) -> FeedFilter:
        return FeedFilter(frozenset(self.subjects), frozenset(self.kinds), frozenset(self.types))


def _member_roles(session: Session, member_id: str) -> int:
    """The roles the chain gives a subscription's owner now (none if it is no longer an active member): the feed
    sources it may receive, as for its API key."""
    member = session.get(Member, member_id)
    return member.roles if member is not None and member.status == "active" else 0


class WebhookDelivery(SQLModel, table=True):
    """One POST (a batch of items) to a subscription's URL, with its attempts; kept as sent, for retries."""

    __tablename__ = "webhook_delivery"

    id: str = Field(primary_key=True, max_length=32)
    subscription_id: str = Field(max_length=32, index=True)
    status: str = Field(default=DeliveryStatus.PENDING, max_length=16, index=True)
    items: int
    first_cursor: str = Field(max_length=64)
    next_cursor: str = Field(max_length=64, description="the subscription's cursor once this is delivered")
    body: str = Field(sa_column=Column(Text, nullable=False))
    attempts: int = 0
    last_status: int | None = Field(default=None, description="HTTP status of the last attempt, if any")
    last_error: str | None = None
    next_attempt_at: datetime = Field(default_factory=utcnow)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None


WEBHOOK_TABLES: tuple[type[SQLModel], ...] = (WebhookSubscription, WebhookDelivery)


# signing


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Credtrace-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance: float = 300, now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance`` seconds."""
    try:
        parts = dict(part.strip().split("=", 1) for part in header.split(","))
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt`` (1, 2, ...): ``base·2^(attempt-1)`` capped, the upper half jittered."""
    delay = min(cap, base * 2 ** min(attempt - 1, 60))
    return delay / 2 + (rng or random).random() * delay / 2


# subscriptions


def check_url(url: str) -> str:
    """An http(s) URL with a host; :class:`ValidationFailed` on ``url`` otherwise."""
    if len(url) > MAX_URL:
        raise ValidationFailed("url", f"is {len(url)} characters; at most {MAX_URL}")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValidationFailed("url", f"{url!r} is not a URL ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationFailed("url", f"{url!r} must be an http:// or https:// URL with a host")
    return str(parsed)


def create_subscription(
    session: Session,
    engine: Engine,
    member_id: str,
    url: str,
    *,
    secret: str | None = None,
    where: FeedFilter | None = None,
    cursor: str | None = "now",
    max_per_member: int = 20,
) -> WebhookSubscription:
    """A new active subscription (not committed); ``cursor`` "now" or None starts after what is indexed now."""
    url = check_url(url)
    if secret is not None and len(secret) < MIN_SECRET:
        raise ValidationFailed("secret", f"must be at least {MIN_SECRET} characters (or leave it out: one is made)")
    if cursor is None or cursor.strip().lower() == "now":
        start = head_cursor(engine)
    else:
        position = parse_cursor(cursor)
        assert position is not None
        start = position.token
    owned = session.exec(select(WebhookSubscription.id).where(WebhookSubscription.member_id == member_id)).all()
    if len(owned) >= max_per_member:
        raise ValidationFailed("url", f"member already has {len(owned)} webhooks; at most {max_per_member}")
    where = where or FeedFilter()
    subscription = WebhookSubscription(
        id=uuid.uuid4().hex,
        member_id=member_id,
        url=url,
        secret=secret or new_secret(),
        kinds=sorted(where.kinds),
        subjects=sorted(where.subjects),
        types=sorted(where.types),
        cursor=start,
    )
    session.add(subscription)
    session.flush()
    return subscription


def owned_subscription(session: Session, member_id: str, subscription_id: str) -> WebhookSubscription:
    """The member's subscription; :class:`NotFound` if there is none (or it is another member's)."""
    subscription = session.get(WebhookSubscription, subscription_id)
    if subscription is None or subscription.member_id != member_id:
        raise NotFound(f"no webhook {subscription_id!r} of this member (see GET /v1/webhooks)")
    return subscription


def list_subscriptions(session: Session, member_id: str) -> list[WebhookSubscription]:
    query = select(WebhookSubscription).where(WebhookSubscription.member_id == member_id)
    return list(session.exec(query.order_by(col(WebhookSubscription.created_at))).all())


def recent_deliveries(session: Session, subscription_id: str, limit: int = 20) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    query = query.order_by(col(WebhookDelivery.created_at).desc()).limit(limit)
    return list(session.exec(query).all())


def delete_subscription(session: Session, member_id: str, subscription_id: str) -> None:
    """Delete a subscription and its deliveries (not committed)."""
    subscription = owned_subscription(session, member_id, subscription_id)
    session.exec(delete(WebhookDelivery).where(col(WebhookDelivery.subscription_id) == subscription.id))
    session.delete(subscription)
    session.flush()


def reactivate(session: Session, member_id: str, subscription_id: str) -> WebhookSubscription:
    """Resume a (disabled) subscription where it stopped: its pending delivery is tried again at once."""
    subscription = owned_subscription(session, member_id, subscription_id)
    now = utcnow()
    subscription.status, subscription.failures, subscription.disabled_at = SubscriptionStatus.ACTIVE, 0, None
    subscription.updated_at = now
    for delivery in session.exec(
        select(WebhookDelivery).where(
            WebhookDelivery.subscription_id == subscription.id, WebhookDelivery.status == DeliveryStatus.PENDING
        )
    ).all():
        delivery.next_attempt_at = now
        session.add(delivery)
    session.add(subscription)
    session.flush()
    return subscription


# the dispatcher


@dataclass(frozen=True)
class _Due:
    """What a worker does next: deliver ``delivery`` now, wait ``seconds``, or stop (``gone``)."""

    delivery: dict[str, Any] | None = None
    seconds: float = 0.0
    gone: bool = False
    idle: bool = False


class Dispatcher:
    """Delivers the feed to every active subscription; see the module docstring."""

    def __init__(self, engine: Engine, settings: Settings, *, rng: random.Random | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.rng = rng or random.Random()
        self._changed: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._signal: tuple[Any, ...] | None = None

    # the loop

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set (blocking; runs its own event loop)."""
        asyncio.run(self.serve(stop))

    async def serve(self, stop: threading.Event) -> None:
        self._changed, self._stopping = asyncio.Event(), asyncio.Event()
        workers: dict[str, asyncio.Task[None]] = {}
        timeout = httpx.Timeout(self.settings.webhook_timeout)
        headers = {"User-Agent": f"credtrace-webhooks/{__version__}", "Content-Type": "application/json"}
        log.info("webhook dispatcher started")
        async with httpx.AsyncClient(timeout=timeout, headers=headers, follow_redirects=False) as client:
            synced = pruned = 0.0
            while not stop.is_set():
                now = time.monotonic()
                try:
                    if now - synced >= SYNC_EVERY:
                        synced = now
                        active = set(await asyncio.to_thread(self._active_ids))
                        for subscription_id in active - set(workers):
                            workers[subscription_id] = asyncio.create_task(
                                self._worker(subscription_id, client), name=f"webhook-{subscription_id}"
                            )
                        for subscription_id, task in list(workers.items()):
                            if task.done() or subscription_id not in active:
                                task.cancel()
                                del workers[subscription_id]
                    if now - pruned >= PRUNE_EVERY:
                        pruned = now
                        await asyncio.to_thread(self.prune)
                    signal_ = await asyncio.to_thread(self._read_signal)
                    if signal_ != self._signal:
                        self._signal = signal_
                        self._notify()
                except Exception as exc:  # the database is down: keep the workers, try again
                    log.warning("webhook dispatcher poll failed: %s", exc)
                await asyncio.sleep(self.settings.feed_poll_interval)
            self._stopping.set()
            for task in workers.values():
                task.cancel()
            await asyncio.gather(*workers.values(), return_exceptions=True)
        log.info("webhook dispatcher stopped")

    def _notify(self) -> None:
        assert self._changed is not None
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _active_ids(self) -> list[str]:
        with Session(self.engine) as session:
            query = select(WebhookSubscription.id).where(WebhookSubscription.status == SubscriptionStatus.ACTIVE)
            return list(session.exec(query).all())

    def _read_signal(self) -> tuple[Any, ...]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(IndexerCheckpoint.chain_id, IndexerCheckpoint.block_number, IndexerCheckpoint.block_hash)
            ).all()
        return tuple(sorted(tuple(row) for row in rows))

    async def _worker(self, subscription_id: str, client: httpx.AsyncClient) -> None:
        failures = 0
        while True:
            assert self._changed is not None
            changed = self._changed  # taken before reading: a move while we read still wakes us
            try:
                due = await asyncio.to_thread(self._next, subscription_id)
                if due.gone:
                    return
                if due.delivery is not None:
                    await self._deliver(client, due.delivery)
                    continue
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database outage: back off, never die
                failures += 1
                due = _Due(seconds=min(self.settings.webhook_backoff_cap, 0.5 * 2**failures))
                log.warning("webhook %s: %s; retrying in %.1fs", subscription_id, exc, due.seconds)
            if due.idle:
                await _wait(changed, IDLE_RECHECK)
            elif due.seconds > 0:
                await asyncio.sleep(min(due.seconds, IDLE_RECHECK))  # a retry waits its turn; then look again

    def _next(self, subscription_id: str) -> _Due:
        """The worker's next step for one subscription, from the database (and the feed)."""
        with Session(self.engine, expire_on_commit=False) as session:
            subscription = session.get(WebhookSubscription, subscription_id)
            if subscription is None or subscription.status != SubscriptionStatus.ACTIVE:
                return _Due(gone=True)
            pending = session.exec(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.subscription_id == subscription_id,
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                )
                .order_by(col(WebhookDelivery.created_at))
                .limit(1)
            ).first()
            now = utcnow()
            if pending is not None:
                wait = (pending.next_attempt_at - now).total_seconds()
                if wait > 0:
                    return _Due(seconds=wait)
                return _Due(delivery=self._snapshot(subscription, pending))
            page = read_page(
                self.engine,
                parse_cursor(subscription.cursor),
                limit=self.settings.webhook_batch_size,
                where=subscription.where,
                reorg_window=self.settings.reorg_window,
                roles=_member_roles(session, subscription.member_id),
            )
            if not page.items:
                if page.next_cursor != subscription.cursor:  # skipped rows the filters refuse, or a rewind
                    subscription.cursor, subscription.updated_at = page.next_cursor, now
                    session.add(subscription)
                    session.commit()
                return _Due(idle=not page.has_more)
            delivery_id = uuid.uuid4().hex
            body = {
                "subscription": subscription.id,
                "delivery": delivery_id,
                "items": [item.model_dump(mode="json") for item in page.items],
                "next_cursor": page.next_cursor,
                "rewound_to_block": page.rewound_to_block,
            }
            delivery = WebhookDelivery(
                id=delivery_id,
                subscription_id=subscription.id,
                items=len(page.items),
                first_cursor=page.items[0].cursor,
                next_cursor=page.next_cursor,
                body=json.dumps(body, separators=(",", ":")),
                next_attempt_at=now,
            )
            session.add(delivery)
            session.commit()
            return _Due(delivery=self._snapshot(subscription, delivery))

    @staticmethod
    def _snapshot(subscription: WebhookSubscription, delivery: WebhookDelivery) -> dict[str, Any]:
        return {
            "id": delivery.id,
            "subscription_id": subscription.id,
            "url": subscription.url,
            "secret": subscription.secret,
            "body": delivery.body,
        }

    async def _deliver(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> None:
        body = delivery["body"].encode()
        headers = {
            SIGNATURE_HEADER: signature(delivery["secret"], body),
            DELIVERY_HEADER: delivery["id"],
            SUBSCRIPTION_HEADER: delivery["subscription_id"],
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await client.post(delivery["url"], content=body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        await asyncio.to_thread(self._record, delivery["id"], delivery["subscription_id"], status, error)

    def _record(self, delivery_id: str, subscription_id: str, status: int | None, error: str | None) -> None:
        """The outcome of one attempt: move the cursor, or schedule the retry (and maybe disable)."""
        settings = self.settings
        with Session(self.engine) as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            subscription = session.get(WebhookSubscription, subscription_id)
            if delivery is None or subscription is None:
                return  # deleted meanwhile
            now = utcnow()
            delivery.attempts += 1
            delivery.last_status, delivery.last_error = status, error
            subscription.updated_at = now
            if error is None:
                delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
                subscription.cursor, subscription.failures = delivery.next_cursor, 0
                subscription.last_delivery_at, subscription.last_error = now, None
                log.info("webhook %s: delivery %s of %d items done", subscription_id, delivery_id, delivery.items)
            else:
                delay = backoff(
                    delivery.attempts, settings.webhook_backoff_base, settings.webhook_backoff_cap, self.rng
                )
                delivery.next_attempt_at = now + timedelta(seconds=delay)
                subscription.failures += 1
                subscription.last_error = error
                if subscription.failures >= settings.webhook_max_failures:
                    subscription.status, subscription.disabled_at = SubscriptionStatus.DISABLED, now
                    log.warning(
                        "webhook %s disabled after %d failures: %s", subscription_id, subscription.failures, error
                    )
                else:
                    log.info("webhook %s: attempt %d failed (%s); retry in %.1fs", subscription_id,
                             delivery.attempts, error, delay)  # fmt: skip
            session.add(delivery)
            session.add(subscription)
            session.commit()

    def prune(self) -> int:
        """Forget delivered deliveries older than ``webhook_retention_days``; returns how many."""
        before = utcnow() - timedelta(days=self.settings.webhook_retention_days)
        with Session(self.engine) as session:
            result = session.exec(
                delete(WebhookDelivery).where(
                    col(WebhookDelivery.status) == DeliveryStatus.DELIVERED, col(WebhookDelivery.delivered_at) < before
                )
            )
            session.commit()
            return int(result.rowcount)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


def main() -> None:
    """Run the dispatcher from ``CREDTRACE_*`` settings until SIGTERM or SIGINT."""
    from credtrace.service import start_service
    from node_bridge.store import open_store

    settings, stop = start_service(log.name)
    Dispatcher(open_store(settings.database), settings).run(stop)
