"""Webhooks (C4): a member subscribes an URL to the change feed; the dispatcher (:mod:`credtrace.webhooks`) POSTs.

Any active member's API key may subscribe, list, inspect, reactivate and delete its own webhooks; another member's
webhook answers 404. The secret that signs deliveries is shown once, in the answer to the POST.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, Field

from api.auth import CallerDep
from api.deps import EngineDep, SessionDep, SettingsDep
from api.feed import FeedFilter
from credtrace import webhooks
from credtrace.webhooks import WebhookDelivery, WebhookSubscription

router = APIRouter(prefix="/v1", tags=["webhooks"])
WebhookId = Annotated[str, Path(max_length=32, description="the webhook's id")]


class WebhookFilters(BaseModel):
    kinds: list[str] = Field(default_factory=list, description="record kinds, e.g. blacklist, red_list")
    subjects: list[str] = Field(default_factory=list, description="credit codes or 0x subject ids")
    types: list[str] = Field(
        default_factory=list, description="record_issued, record_revoked, record_repaired, enforcement_filed"
    )


class WebhookCreate(BaseModel):
    url: str = Field(description="http(s) endpoint that receives the POSTs")
    secret: str | None = Field(None, description="HMAC key (16+ characters); made for you if left out")
    filters: WebhookFilters = Field(default_factory=WebhookFilters)
    cursor: str | None = Field(
        "now", description="deliver the items after this feed cursor; 'now' (default): only what comes next"
    )


class WebhookPublic(BaseModel):
    id: str
    url: str
    filters: WebhookFilters
    cursor: str = Field(description="feed cursor after the last item delivered")
    status: str = Field(description="active | disabled (after webhook_max_failures failures in a row)")
    failures: int = Field(description="failed attempts in a row")
    last_error: str | None
    last_delivery_at: datetime | None
    disabled_at: datetime | None
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="signs every delivery (X-Credtrace-Signature); shown only now")


class DeliveryPublic(BaseModel):
    id: str = Field(description="sent as X-Credtrace-Delivery; the same on every retry")
    status: str = Field(description="pending | delivered")
    items: int
    first_cursor: str
    next_cursor: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


class WebhookDetail(WebhookPublic):
    deliveries: list[DeliveryPublic] = Field(description="the most recent deliveries, newest first")


def _public(subscription: WebhookSubscription) -> dict[str, object]:
    return {
        "id": subscription.id,
        "url": subscription.url,
        "filters": WebhookFilters(kinds=subscription.kinds, subjects=subscription.subjects, types=subscription.types),
        "cursor": subscription.cursor,
        "status": subscription.status,
        "failures": subscription.failures,
        "last_error": subscription.last_error,
        "last_delivery_at": subscription.last_delivery_at,
        "disabled_at": subscription.disabled_at,
        "created_at": subscription.created_at,
    }


def _delivery(delivery: WebhookDelivery) -> DeliveryPublic:
    pending = delivery.status == webhooks.DeliveryStatus.PENDING
    return DeliveryPublic(
        id=delivery.id,
        status=delivery.status,
        items=delivery.items,
        first_cursor=delivery.first_cursor,
        next_cursor=delivery.next_cursor,
        attempts=delivery.attempts,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at if pending else None,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


@router.post("/webhooks", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
def create_webhook(
    body: WebhookCreate, caller: CallerDep, session: SessionDep, engine: EngineDep, settings: SettingsDep
) -> WebhookCreated:
    """Subscribe ``url`` to the change feed (filtered); the answer holds the signing secret, once."""
    where = FeedFilter.parse(
        body.filters.subjects,
        body.filters.kinds,
        body.filters.types,
        fields=("filters.subjects", "filters.kinds", "filters.types"),
    )
    subscription = webhooks.create_subscription(
        session,
        engine,
        caller.member_id,
        body.url,
        secret=body.secret,
        where=where,
        cursor=body.cursor,
        max_per_member=settings.webhook_max_per_member,
    )
    session.commit()
    return WebhookCreated(**_public(subscription), secret=subscription.secret)


@router.get("/webhooks", response_model=list[WebhookPublic])
def list_webhooks(caller: CallerDep, session: SessionDep) -> list[WebhookPublic]:
    """The caller's webhooks, oldest first (without their secrets)."""
    return [WebhookPublic(**_public(s)) for s in webhooks.list_subscriptions(session, caller.member_id)]


@router.get("/webhooks/{webhook_id}", response_model=WebhookDetail)
def get_webhook(webhook_id: WebhookId, caller: CallerDep, session: SessionDep) -> WebhookDetail:
    """One of the caller's webhooks with its recent deliveries and their attempts."""
    subscription = webhooks.owned_subscription(session, caller.member_id, webhook_id)
    deliveries = [_delivery(d) for d in webhooks.recent_deliveries(session, subscription.id)]
    return WebhookDetail(**_public(subscription), deliveries=deliveries)


@router.post("/webhooks/{webhook_id}/reactivate", response_model=WebhookPublic)
def reactivate_webhook(webhook_id: WebhookId, caller: CallerDep, session: SessionDep) -> WebhookPublic:
    """Resume a disabled webhook where it stopped (its pending delivery is tried again at once)."""
    subscription = webhooks.reactivate(session, caller.member_id, webhook_id)
    session.commit()
    return WebhookPublic(**_public(subscription))


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: WebhookId, caller: CallerDep, session: SessionDep) -> Response:
    """Stop and forget a webhook and its deliveries."""
    webhooks.delete_subscription(session, caller.member_id, webhook_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
