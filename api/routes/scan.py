"""The consumer scan (C5): ``GET /v1/trace/01/{gtin}/10/{lot}/21/{serial}`` (JSON) and ``GET /t/01/…`` (the page a
phone opens from the QR code). Public and rate-limited; each answer records one scan (no personal data: the page
may pass ``region`` and a coarse ``geo``, rounded to 1 decimal). The verdict and its reasons: :mod:`api.scan`.

The page is rendered here, server side, every value escaped, with its CSS inline and no script or external asset:
a few kilobytes that a phone on a slow network shows at once. It shows what the JSON says, nothing else.
"""

from __future__ import annotations

import time
from html import escape
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from api.chain_view import ChainView
from api.lifespan import extend_lifespan
from api.ratelimit import public_rate_limit
from api.scan import ScanService, parse_geo, parse_region
from credtrace.errors import CredtraceError
from node_bridge.trace import TraceDomain

router = APIRouter(tags=["traceability"], dependencies=[Depends(public_rate_limit)])
DOMAIN_RETRY_SECONDS = 30.0
JSON = "application/json"

Region = Annotated[
    str | None, Query(max_length=64, description="coarse place the phone reports, e.g. a city (optional)")
]
Geo = Annotated[
    str | None, Query(max_length=40, description="'lat,lon' (optional); stored rounded to 1 decimal (~10 km)")
]


def install(app: FastAPI) -> ScanService:
    """The scan service of this API process (``app.state.scan``), and the routes."""
    service = ScanService(app.state.engine, app.state.settings, getattr(app.state, "status_cache", None))
    app.state.scan = service
    app.state.scan_domain_tried = -DOMAIN_RETRY_SECONDS
    app.include_router(router)
    # first in the routing table: a phone's scan is the busiest public route (paths no other route starts with)
    mine = [r for r in app.router.routes if getattr(r, "path", "").startswith(("/v1/trace/01/", "/t/01/"))]
    app.router.routes[:] = mine + [r for r in app.router.routes if r not in mine]
    extend_lifespan(app, stop=lambda: run_in_threadpool(service.recorder.flush))  # the scans still buffered
    return service


def _ensure_domain(request: Request, service: ScanService) -> None:
    """Find the TraceRegistry's EIP-712 domain (once; retried every 30 s while it is not deployed)."""
    state = request.app.state
    if service.domain is not None or time.monotonic() - state.scan_domain_tried < DOMAIN_RETRY_SECONDS:
        return
    state.scan_domain_tried = time.monotonic()
    chain: ChainView = state.chain
    try:
        deployment = chain.deployment()
    except CredtraceError:
        return
    contract = deployment.contracts.get("TraceRegistry")
    if contract is not None:
        service.domain = TraceDomain(deployment.chain_id, contract.address)


async def _scan(request: Request, rest: str, region: str | None, geo: str | None) -> dict[str, Any]:
    service: ScanService = request.app.state.scan
    where, place = parse_region(region), parse_geo(geo)
    if service.domain is None and time.monotonic() - request.app.state.scan_domain_tried >= DOMAIN_RETRY_SECONDS:
        await run_in_threadpool(_ensure_domain, request, service)
    if service.status is not None:
        await service.status.ensure_fresh()
    return service.scan("/01/" + rest, where, place)  # sub-millisecond, indexed: cheaper than a thread hop


@router.get("/v1/trace/01/{rest:path}", response_class=Response, responses={200: {"content": {JSON: {}}}})
async def trace_json(request: Request, rest: str, region: Region = None, geo: Geo = None) -> Response:
    """A trace code's story and verdict: product, producer, lot, custody timeline (each event's signature and
    Merkle proof checked), ``verdict`` (``genuine``, ``suspicious``, ``unknown``) with ``reasons``, and the scan
    count. The path is the code's GS1 Digital Link: ``/v1/trace/01/{gtin14}/10/{lot}/21/{serial}``."""
    return Response(orjson.dumps(await _scan(request, rest, region, geo)), media_type=JSON)


@router.get("/t/01/{rest:path}", response_class=HTMLResponse)
async def trace_page(request: Request, rest: str, region: Region = None, geo: Geo = None) -> HTMLResponse:
    """The page a phone opens from the code's QR: the same facts as ``GET /v1/trace/01/…``, as light HTML."""
    try:
        answer = await _scan(request, rest, region, geo)
    except CredtraceError as exc:
        from api.errors import status_for

        return HTMLResponse(render_error("/01/" + rest, str(exc)), status_code=status_for(exc))
    return HTMLResponse(render_page(answer))


# the page

_CSS = """
*{box-sizing:border-box}body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1d2327;background:#f4f5f7}main{max-width:40rem;margin:0 auto;padding:1rem}
.verdict{border-radius:.8rem;padding:1rem 1.1rem;color:#fff;margin-bottom:1rem}
.verdict h1{margin:0;font-size:1.6rem;letter-spacing:.02em}.verdict p{margin:.3rem 0 0}
.genuine{background:#1e7e34}.suspicious{background:#c0392b}.unknown{background:#6c757d}
section{background:#fff;border-radius:.8rem;padding:.9rem 1.1rem;margin-bottom:1rem;box-shadow:0 1px 2px #0001}
h2{font-size:1.05rem;margin:0 0 .5rem}dl{margin:0;display:grid;grid-template-columns:auto 1fr;gap:.2rem .8rem}
dt{color:#5f6b76}dd{margin:0;overflow-wrap:anywhere}ul.reasons{margin:0;padding-left:1.1rem}
ol.timeline{list-style:none;margin:0;padding:0}ol.timeline li{border-left:3px solid #c8ced3;padding:.1rem 0 .8rem .8rem;
position:relative}ol.timeline li:before{content:"";position:absolute;left:-.45rem;top:.35rem;width:.6rem;height:.6rem;
border-radius:50%;background:#1d2327}.step{font-weight:600;text-transform:capitalize}.meta{color:#5f6b76;font-size:.9rem}
.tick{display:inline-block;font-size:.8rem;border-radius:.3rem;padding:0 .35rem;margin:.2rem .3rem 0 0}
.ok{background:#d4edda;color:#155724}.bad{background:#f8d7da;color:#721c24}.wait{background:#fff3cd;color:#856404}
code{font-size:.8rem;overflow-wrap:anywhere}footer{color:#5f6b76;font-size:.8rem;text-align:center}
"""

_TICK = {"valid": ("ok", "✓"), "invalid": ("bad", "✗"), "pending": ("wait", "…"), "unchecked": ("wait", "?")}


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{escape(title)}</title><style>{_CSS}</style></head>'
        f"<body><main>{body}</main></body></html>"
    )


def _tick(kind: str, check: dict[str, Any]) -> str:
    css, mark = _TICK.get(check["status"], ("wait", "?"))
    title = escape(check.get("reason") or "", quote=True)
    return f'<span class="tick {css}" data-check="{kind}" data-status="{escape(check["status"])}" title="{title}">' \
        f"{mark} {kind} {escape(check['status'])}</span>"  # fmt: skip


def render_page(answer: dict[str, Any]) -> str:
    """The scan page for a :meth:`ScanService.scan` answer (every value escaped)."""
    e = escape
    verdict = answer["verdict"]
    code = answer["code"]
    parts = [
        f'<div class="verdict {e(verdict)}" id="verdict" data-verdict="{e(verdict)}">'
        f"<h1>{e(verdict.capitalize())}</h1><p>{e(answer['verdict_text'])}</p></div>"
    ]
    if answer["reasons"]:
        items = "".join(f'<li data-reason="{e(r["code"])}">{e(r["text"])}</li>' for r in answer["reasons"])
        parts.append(f'<section id="reasons"><h2>Why</h2><ul class="reasons">{items}</ul></section>')
    rows = []
    product, producer, lot = answer.get("product"), answer.get("producer"), answer.get("lot")
    if product:
        rows.append(("Product", product["name"]))
        if product.get("description"):
            rows.append(("", product["description"]))
    if producer:
        rows.append(("Producer", producer["name"] or producer["id"]))
    rows.append(("GTIN", code["gtin"]))
    rows.append(("Lot", code["lot"]))
    if lot:
        if lot.get("produced_on"):
            rows.append(("Produced", lot["produced_on"]))
        if lot.get("best_before"):
            rows.append(("Best before", lot["best_before"]))
    rows.append(("Serial", code["serial"]))
    if answer.get("state"):
        rows.append(("Status", answer["state"].replace("_", " ")))
    scans = answer["scans"]
    rows.append(("Scans", f"{scans['count']} (this one included)"))
    facts = "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in rows)
    parts.append(f'<section id="product"><h2>Item</h2><dl>{facts}</dl></section>')
    events = []
    for event in answer.get("timeline", []):
        actor = event["actor"]["name"] or event["actor"]["id"] if event["actor"] else "?"
        where = event["location"] + (f" ({event['geo']})" if event.get("geo") else "")
        extra = ""
        if event.get("corrects"):
            extra += f'<div class="meta">corrects event <code>{e(event["corrects"][:18])}…</code></div>'
        if event.get("corrected_by"):
            extra += f'<div class="meta">corrected by <code>{e(event["corrected_by"][0][:18])}…</code></div>'
        events.append(
            f'<li data-event="{e(event["id"])}" data-step="{e(event["step"])}"><div class="step">{e(event["step"])}'
            f'</div><div class="meta">{e(event["time_iso"].replace("T", " ").replace("Z", " UTC"))} · '
            f'{e(event["disposition"].replace("_", " "))}</div><div>{e(actor)}</div><div class="meta">{e(where)}'
            f"</div>{extra}<div>{_tick('signature', event['signature'])}{_tick('proof', event['proof'])}</div></li>"
        )
    if events:
        parts.append(f'<section><h2>Custody</h2><ol class="timeline" id="timeline">{"".join(events)}</ol></section>')
    elif verdict != "unknown":
        parts.append('<section><h2>Custody</h2><p id="timeline">No checkpoint recorded yet.</p></section>')
    checks = answer.get("checks")
    if checks:
        summary = (
            f"{checks['events']} events; signatures {'all valid' if checks['signatures_valid'] else 'NOT all valid'}; "
            f"proofs {'all valid' if checks['proofs_valid'] else 'NOT all valid'}"
            + (f", {checks['proofs_pending']} awaiting anchoring" if checks["proofs_pending"] else "")
        )
        parts.append(f'<section id="checks"><h2>Checks</h2><p>{e(summary)}</p></section>')
    parts.append(
        f"<footer>code <code>{e(code['path'])}</code><br>JSON: <code>/v1/trace{e(code['path'])}</code><br>"
        "credtrace · Shandong e-commerce credit consortium</footer>"
    )
    title = f"{verdict.capitalize()}: {product['name'] if product else code['path']}"
    return _page(title, "".join(parts))


def render_error(path: str, message: str) -> str:
    body = (
        '<div class="verdict unknown" id="verdict" data-verdict="invalid"><h1>Not a trace code</h1>'
        f"<p>{escape(message)}</p></div><footer><code>{escape(path)}</code></footer>"
    )
    return _page("Not a trace code", body)
