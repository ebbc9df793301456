"""The change feed (C4): ``GET /v1/feed`` (pages behind a cursor) and ``GET /v1/feed/stream`` (server-sent events).

Both serve the CreditRegistry's events from the index (:mod:`api.feed`) to any active member's API key. The
stream replays from its cursor (or ``Last-Event-ID``, which wins: it is what a reconnecting client sends), then
follows: every connection waits on the process's one :class:`api.feed.FeedHub`, which watches the indexer
checkpoint, and reads what is new when it moves. Each item is one SSE message whose ``id`` is its cursor and whose
data is the item's JSON; a reorg under the cursor is announced by an ``event: rewind`` message first. See
``docs/feed.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.auth import CallerDep
from api.deps import EngineDep, SettingsDep
from api.feed import FeedFilter, FeedHub, FeedPage, Position, parse_cursor, read_page

router = APIRouter(prefix="/v1", tags=["change feed"])
MAX_LIMIT = 1000
STREAM_BATCH = 200

CursorQuery = Annotated[
    str | None,
    Query(description="resume after this cursor (a next_cursor or an item's cursor); empty: from the start; 'now'"),
]
SubjectQuery = Annotated[
    list[str] | None, Query(description="only items about these subjects (credit code or 0x id); repeat or comma")
]
KindQuery = Annotated[list[str] | None, Query(description="only items about records of these kinds, e.g. blacklist")]
TypeQuery = Annotated[
    list[str] | None,
    Query(description="only these item types: record_issued, record_revoked, record_repaired, enforcement_filed"),
]


@router.get("/feed", response_model=FeedPage)
def feed(
    caller: CallerDep,
    engine: EngineDep,
    settings: SettingsDep,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    subject: SubjectQuery = None,
    kind: KindQuery = None,
    type: TypeQuery = None,
) -> FeedPage:
    """Status changes after ``cursor``, in chain order, at most ``limit``; read on with ``next_cursor``."""
    where = FeedFilter.parse(subject, kind, type)
    page = read_page(
        engine, parse_cursor(cursor), limit=limit, where=where, reorg_window=settings.reorg_window, roles=caller.roles
    )
    return FeedPage(
        items=page.items, next_cursor=page.next_cursor, has_more=page.has_more, rewound_to_block=page.rewound_to_block
    )


def feed_hub(request: Request) -> FeedHub:
    """The process's shared poller (made on first use)."""
    hub: FeedHub | None = getattr(request.app.state, "feed_hub", None)
    if hub is None:
        hub = FeedHub(request.app.state.engine, request.app.state.settings.feed_poll_interval)
        request.app.state.feed_hub = hub
    return hub


@router.get(
    "/feed/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events, one per item"}},
)
async def feed_stream(
    request: Request,
    caller: CallerDep,
    engine: EngineDep,
    settings: SettingsDep,
    cursor: CursorQuery = None,
    subject: SubjectQuery = None,
    kind: KindQuery = None,
    type: TypeQuery = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="the id of the last event received; wins over cursor")
    ] = None,
) -> EventSourceResponse:
    """Server-sent events: the items after the cursor, then each new one as the index takes it in."""
    where = FeedFilter.parse(subject, kind, type)
    start = parse_cursor(last_event_id, "Last-Event-ID") if last_event_id else parse_cursor(cursor)
    hub = feed_hub(request)
    window = settings.reorg_window
    roles = int(caller.roles)

    async def events() -> AsyncIterator[ServerSentEvent]:
        position: Position | None = start
        async with hub.subscription():
            while True:
                changed = hub.changed()  # before reading: a move while we read still wakes us
                page = await run_in_threadpool(
                    read_page, engine, position, limit=STREAM_BATCH, where=where, reorg_window=window, roles=roles
                )
                if page.rewound_to_block is not None:
                    data = json.dumps({"rewound_to_block": page.rewound_to_block, "cursor": page.next_cursor})
                    yield ServerSentEvent(data=data, event="rewind")
                for item in page.items:
                    yield ServerSentEvent(data=item.model_dump_json(), id=item.cursor)
                position = parse_cursor(page.next_cursor)
                if not page.has_more:
                    await _wait(changed, settings.feed_heartbeat_seconds)

    return EventSourceResponse(events(), ping=settings.feed_heartbeat_seconds)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Until ``event`` is set, at most ``seconds`` (then the stream reads anyway: a safety net)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
