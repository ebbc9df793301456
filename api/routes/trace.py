"""Traceability (C5), producers' and actors' side: products, lots, trace codes and their QR images, signed code
batches, signed checkpoint events, and events' inclusion proofs.

Producers register a product and a lot, ask for codes (``POST /v1/trace/lots/{gtin}/{lot}/codes``: the codes and
the ``CodeBatch`` typed data to sign come back), and sign the batch (``POST /v1/trace/code-batches/{id}/signature``),
which queues its root for the TraceRegistry. Actors (producers, logistics, platforms, regulators) sign checkpoint
events and post them (``POST /v1/trace/events``, one or up to 5,000); the anchorer puts them into Merkle batches
whose roots go on chain, and ``GET /v1/trace/events/{id}/proof`` answers an RFC 6962 proof anyone can check.
"""

from __future__ import annotations

import contextlib
import io
import threading
from typing import Annotated, Any, NoReturn

import orjson
import segno
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api import trace as trace_writes
from api.auth import Caller, require_roles
from api.deps import ChainDep, SessionDep, SettingsDep
from api.lifespan import extend_lifespan
from api.ratelimit import public_rate_limit
from api.schemas import HEX, HEX32
from api.signed_writes import deployed_domain
from credtrace.errors import NotFound, ValidationFailed
from node_bridge import outbox, trace
from node_bridge.consortium import Role
from node_bridge.trace import TraceDomain
from node_bridge.trace_models import TraceEventRow

router = APIRouter(prefix="/v1/trace", tags=["traceability"])
ProducerDep = Annotated[Caller, Depends(require_roles(Role.PRODUCER))]
ActorDep = Annotated[Caller, Depends(require_roles(Role.PRODUCER, Role.LOGISTICS, Role.PLATFORM, Role.REGULATOR))]
QR_SCALE = 8


def install(app: FastAPI) -> None:
    """The routes, and the worker processes that check big batches of events' signatures (started at the first
    big batch, stopped with the app)."""
    settings = app.state.settings
    verifier = trace_writes.Verifier(settings.trace_verify_workers, niceness=settings.trace_verify_niceness)
    app.state.trace_verifier = verifier
    # SQLite has one writer at a time, and a writer that finds it busy sleeps in steps of up to 100 ms: this
    # process's requests queue here instead, each writing as soon as the one before commits
    sqlite = app.state.engine.dialect.name == "sqlite"
    app.state.trace_write_lock = threading.Lock() if sqlite else contextlib.nullcontext()
    app.include_router(router)
    extend_lifespan(app, stop=lambda: run_in_threadpool(verifier.close))


def trace_domain(chain: ChainDep) -> TraceDomain:
    """The EIP-712 domain of the deployed TraceRegistry."""
    return deployed_domain(chain.deployment(), trace.CONTRACT, TraceDomain)


DomainDep = Annotated[TraceDomain, Depends(trace_domain)]


# products, lots, codes


class ProductIn(BaseModel):
    gtin: str = Field(description="GTIN-8, -12, -13 or -14 with its check digit; stored as GTIN-14")
    name: str
    description: str = ""


class ProductOut(BaseModel):
    gtin: str
    producer: str
    name: str
    description: str


class LotIn(BaseModel):
    gtin: str
    lot: str = Field(description="GS1 AI 10: up to 20 characters, no '/'")
    produced_on: str | None = Field(None, description="YYYY-MM-DD")
    best_before: str | None = Field(None, description="YYYY-MM-DD")


class LotOut(BaseModel):
    id: str
    gtin: str
    lot: str
    producer: str
    produced_on: str | None
    best_before: str | None
    recalled_at: str | None = None


class CodesIn(BaseModel):
    count: int = Field(ge=1, le=trace_writes.MAX_CODES)


class CodeBatchOut(BaseModel):
    id: str = Field(description="the batch id: EIP-712 digest of its CodeBatch")
    lot_id: str
    count: int
    root: str = Field(description="RFC 6962 root over the code ids (keccak256 of each path), in leaf order")
    status: str = Field(description="unsigned → accepted → submitted → confirmed (outbox), or failed")
    typed_data: dict[str, Any] = Field(description="standard EIP-712 typed data the producer signs")
    codes_url: str
    signature_url: str


class SignatureIn(BaseModel):
    signature: str = Field(pattern=HEX, description="0x-hex r ‖ s ‖ v over the batch's typed data")


class CodePage(BaseModel):
    batch_id: str
    total: int
    limit: int
    offset: int
    paths: list[str]


class CodeOut(BaseModel):
    id: str
    path: str
    url: str = Field(description="what the QR code encodes")
    lot_id: str
    batch_id: str
    leaf_index: int
    state: str
    holder: str | None
    parent: str | None
    last_event: str | None


@router.post("/products", status_code=status.HTTP_201_CREATED, response_model=ProductOut)
def create_product(session: SessionDep, caller: ProducerDep, body: ProductIn) -> ProductOut:
    """Register a trade item (PRODUCER); 409 if its GTIN is taken."""
    product = trace_writes.register_product(session, caller.member_id, body.gtin, body.name, body.description)
    session.commit()
    return ProductOut(gtin=product.gtin, producer=product.producer, name=product.name, description=product.description)


@router.post("/lots", status_code=status.HTTP_201_CREATED, response_model=LotOut)
def create_lot(session: SessionDep, caller: ProducerDep, body: LotIn) -> LotOut:
    """Register a lot of one of your products."""
    lot = trace_writes.register_lot(session, caller.member_id, body.gtin, body.lot, body.produced_on, body.best_before)
    session.commit()
    return LotOut(id=lot.id, gtin=lot.gtin, lot=lot.lot, producer=lot.producer, produced_on=lot.produced_on,
                  best_before=lot.best_before)  # fmt: skip


def _batch_out(
    request: Request, session: SessionDep, domain: TraceDomain, producer: str, batch_id: str
) -> CodeBatchOut:
    batch, lot = trace_writes.own_batch(session, producer, batch_id)
    message = trace_writes.code_batch_message(batch, lot)
    entry = outbox.get(session, batch.id)
    return CodeBatchOut(
        id=batch.id,
        lot_id=batch.lot_id,
        count=batch.count,
        root=batch.root,
        status=entry.status if entry is not None else "unsigned",
        typed_data=domain.typed_data("CodeBatch", trace_writes.to_json(message)),
        codes_url=str(request.url_for("list_batch_codes", batch_id=batch.id)),
        signature_url=str(request.url_for("sign_code_batch", batch_id=batch.id)),
    )


@router.post("/lots/{gtin}/{lot}/codes", status_code=status.HTTP_201_CREATED, response_model=CodeBatchOut)
def issue_codes(
    request: Request, session: SessionDep, domain: DomainDep, caller: ProducerDep, gtin: str, lot: str, body: CodesIn
) -> CodeBatchOut:
    """Issue up to 100,000 serialized codes of a lot of yours; sign the returned ``typed_data`` next."""
    row = trace_writes.own_lot(session, caller.member_id, gtin, lot)
    issued = trace_writes.issue_codes(session, domain, caller.member_id, row, body.count)
    session.commit()
    return _batch_out(request, session, domain, caller.member_id, issued.batch.id)


@router.get("/code-batches/{batch_id}", response_model=CodeBatchOut)
def get_code_batch(
    request: Request,
    session: SessionDep,
    domain: DomainDep,
    caller: ProducerDep,
    batch_id: Annotated[str, Path(pattern=HEX32)],
) -> CodeBatchOut:
    """One of your code batches: its root, typed data and commit status."""
    return _batch_out(request, session, domain, caller.member_id, batch_id)


@router.post(
    "/code-batches/{batch_id}/signature",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CodeBatchOut,
    name="sign_code_batch",
)
def sign_code_batch(
    request: Request,
    session: SessionDep,
    domain: DomainDep,
    caller: ProducerDep,
    batch_id: Annotated[str, Path(pattern=HEX32)],
    body: SignatureIn,
) -> CodeBatchOut:
    """The producer's signature of a batch's ``CodeBatch``: checked, then queued for ``commitCodes`` (202)."""
    trace_writes.sign_code_batch(session, domain, caller.member_id, batch_id, body.signature)
    session.commit()
    return _batch_out(request, session, domain, caller.member_id, batch_id)


@router.get("/code-batches/{batch_id}/codes", response_model=CodePage, name="list_batch_codes")
def list_batch_codes(
    session: SessionDep,
    caller: ProducerDep,
    batch_id: Annotated[str, Path(pattern=HEX32)],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CodePage:
    """The Digital Link paths of a batch of yours, in leaf order."""
    batch, _ = trace_writes.own_batch(session, caller.member_id, batch_id)
    paths = trace_writes.batch_paths(session, batch.id, limit, offset)
    return CodePage(batch_id=batch.id, total=batch.count, limit=limit, offset=offset, paths=paths)


def code_url(settings: SettingsDep, path: str) -> str:
    """What a code's QR image encodes: ``{public_base_url}/t{path}``."""
    return settings.public_base_url.rstrip("/") + "/t" + path


@router.get(
    "/codes/{path:path}",
    response_model=None,
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}, "application/json": {}}}},
)
def get_code(session: SessionDep, settings: SettingsDep, caller: ProducerDep, path: str) -> Response | CodeOut:
    """A code of yours by its Digital Link path: ``…/codes/01/{gtin}/10/{lot}/21/{serial}`` gives its custody
    (JSON); with ``.png`` or ``.svg`` appended, its QR image (rendered on demand)."""
    kind = None
    for suffix in (".png", ".svg"):
        if path.endswith(suffix):
            kind, path = suffix[1:], path.removesuffix(suffix)
    path = "/" + path.lstrip("/")
    code = trace_writes.code_by_path(session, path)
    batch, _ = trace_writes.own_batch(session, caller.member_id, code.batch_id)
    url = code_url(settings, code.path)
    if kind is None:
        return CodeOut(id=code.id, path=code.path, url=url, lot_id=code.lot_id, batch_id=batch.id,
                       leaf_index=code.leaf_index, state=code.state, holder=code.holder, parent=code.parent,
                       last_event=code.last_event)  # fmt: skip
    qr = segno.make(url, error="m", micro=False)
    out = io.BytesIO()
    if kind == "png":
        qr.save(out, kind="png", scale=QR_SCALE, border=4)
        media = "image/png"
    else:
        qr.save(out, kind="svg", scale=QR_SCALE, border=4, xmldecl=False)
        media = "image/svg+xml"
    return Response(out.getvalue(), media_type=media, headers={"Cache-Control": "private, max-age=86400"})


# checkpoint events


class SignedEventIn(BaseModel):
    """A TraceEvent as signed: the EIP-712 message (JSON values) and the 65-byte signature."""

    type: str = Field("TraceEvent", pattern="^TraceEvent$")
    message: dict[str, Any] = Field(
        description="actor, step, codes (0x ids or Digital Link paths), parent, time, location, geo, disposition, "
        "corrects, nonce"
    )
    signature: str = Field(pattern=HEX)


class EventAccepted(BaseModel):
    id: str = Field(description="the event's EIP-712 digest: its Merkle leaf data")
    signer: str
    status: str = Field(description="accepted → batched → anchored")
    proof_url: str


class EventsAccepted(BaseModel):
    accepted: list[EventAccepted]


class EventView(BaseModel):
    id: str
    status: str = Field(description="accepted (waiting for a batch) | batched (root sent) | anchored (root indexed)")
    actor: str
    signer: str
    step: str
    disposition: str
    time: int
    location: str
    geo: str
    parent: str | None
    corrects: str | None
    codes: list[str] = Field(description="codes the event reached, with those packed in a named case or pallet")
    message: dict[str, Any]
    signature: str
    typed_data: dict[str, Any]
    batch: int | None
    leaf_index: int | None


_ONE_EVENT = SignedEventIn.model_json_schema()
EVENTS_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [_ONE_EVENT, {
        "type": "object", "required": ["events"],
        "properties": {"events": {"type": "array", "items": _ONE_EVENT, "minItems": 1,
                                  "maxItems": trace_writes.MAX_EVENTS}},
    }]}}},
}  # fmt: skip
"""The body as OpenAPI shows it; the route reads it itself (see :func:`signed_events`)."""


def signed_events(raw: bytes) -> tuple[list[trace_writes.SignedEvent], bool]:
    """The events of a body (``{"events": [...]}`` or one event) and whether it held one; ValidationFailed naming
    the field. Thousands of events: parsed once by orjson, each field then checked where it is used, rather than
    validated twice (a model here, the signed message in :mod:`api.trace.verify`)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed("body", f"is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ValidationFailed("body", 'must be an object: one signed event, or {"events": [...]}')
    single = "events" not in body
    items = [body] if single else body["events"]
    if not isinstance(items, list) or not 1 <= len(items) <= trace_writes.MAX_EVENTS:
        raise ValidationFailed("events", f"must be a list of 1 to {trace_writes.MAX_EVENTS:,} signed events")
    out = []
    for index, item in enumerate(items):  # thousands: the common case costs a few type checks
        message, signature = (item.get("message"), item.get("signature")) if type(item) is dict else (None, None)
        if (
            type(message) is not dict
            or type(signature) is not str
            or not item.keys() <= _SIGNED_EVENT_FIELDS
            or item.get("type", "TraceEvent") != "TraceEvent"
        ):
            _bad_signed_event(item, "" if single else f"events[{index}]")
        out.append(trace_writes.SignedEvent(message, signature))
    return out, single


_SIGNED_EVENT_FIELDS = frozenset({"type", "message", "signature"})


def _bad_signed_event(item: Any, where: str) -> NoReturn:
    """What is wrong with one item of the body, named (``events[3].signature``)."""
    prefix = where + "." if where else ""
    if not isinstance(item, dict):
        raise ValidationFailed(where or "body", "must be an object with message and signature")
    if unknown := sorted(set(item) - _SIGNED_EVENT_FIELDS):
        raise ValidationFailed(prefix + unknown[0], "is not a field of a signed event")
    if item.get("type", "TraceEvent") != "TraceEvent":
        raise ValidationFailed(prefix + "type", "must be TraceEvent")
    if not isinstance(item.get("message"), dict):
        raise ValidationFailed(prefix + "message", "must be an object (the signed TraceEvent)")
    raise ValidationFailed(prefix + "signature", "must be 0x-hex text (65 bytes)")


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventAccepted | EventsAccepted,
    openapi_extra={"requestBody": EVENTS_BODY},
)
async def submit_events(
    request: Request, session: SessionDep, domain: DomainDep, settings: SettingsDep, _caller: ActorDep
) -> Response:
    """Signed checkpoint events (one, or ``{"events": [...]}`` up to 5,000), all or none; the signature says who
    acted. Errors name the event and field: 403 standing or role, 404 unknown code, 409 state, 422 shape."""
    items, single = signed_events(await request.body())
    base = str(request.url_for("get_event_proof", event_id="0x"))[:-2]

    prefix = None if single else "events"

    def accept() -> list[trace_writes.AcceptedEvent]:
        verifier = request.app.state.trace_verifier  # worker processes, while other requests write
        verified = trace_writes.check_events(domain, items, field_prefix=prefix, verifier=verifier)
        with request.app.state.trace_write_lock:
            accepted = trace_writes.accept_checked(
                session, domain, verified, field_prefix=prefix, clock_skew=settings.trace_clock_skew
            )
            session.commit()  # durable before the 202
        return accepted

    accepted = await run_in_threadpool(accept)
    answer = [{"id": a.id, "signer": a.signer, "status": a.status, "proof_url": base + a.id} for a in accepted]
    content = answer[0] if single else {"accepted": answer}  # thousands of rows: serialised once, by orjson
    return Response(orjson.dumps(content), status_code=status.HTTP_202_ACCEPTED, media_type="application/json")


@router.get("/events/{event_id}", response_model=EventView, dependencies=[Depends(public_rate_limit)])
def get_event(session: SessionDep, domain: DomainDep, event_id: Annotated[str, Path(pattern=HEX32)]) -> EventView:
    """A signed checkpoint event as signed (re-verifiable from ``typed_data`` and ``signature``) and its state."""
    row = session.get(TraceEventRow, event_id.lower())
    if row is None:
        raise NotFound(f"no trace event {event_id} was accepted here")
    codes = trace_writes.event_codes(session, row.id)
    return EventView(
        id=row.id, status=trace_writes.event_status(row, session), actor=row.actor, signer=row.signer, step=row.step,
        disposition=row.disposition, time=row.time, location=row.location, geo=row.geo, parent=row.parent,
        corrects=row.corrects, codes=codes, message=row.message, signature=row.signature,
        typed_data=domain.typed_data("TraceEvent", row.message), batch=row.batch, leaf_index=row.leaf_index,
    )  # fmt: skip


@router.get("/events/{event_id}/proof", name="get_event_proof", dependencies=[Depends(public_rate_limit)])
def get_event_proof(
    chain: ChainDep, session: SessionDep, event_id: Annotated[str, Path(pattern=HEX32)]
) -> dict[str, Any]:
    """The event's RFC 6962 inclusion proof: ``leaf_index``, ``tree_size``, ``leaf_hash`` (SHA-256(0x00 ‖ event id)),
    ``audit_path``, ``root``, and where the root is anchored; 409 naming the state until the root is indexed."""
    deployment = chain.deployment()
    contract = deployment.contracts[trace.CONTRACT].address if trace.CONTRACT in deployment.contracts else ""
    return trace_writes.proof(session, event_id, contract)
