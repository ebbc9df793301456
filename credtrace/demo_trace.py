"""The demo's traceability data (``trace:`` in ``config/demo.yaml``), written through the API's own functions.

On the first start, after the demo members and records: the index is brought up to date (the write checks read
members and keys from it), then Yantai Orchard registers the product and its case, a lot, issues the codes and signs
their batch (queued for the chain's TraceRegistry), and a few bottles are packed into a case that goes through the
custody chain of ``steps``, each event signed by its actor's own demo key and accepted by
:func:`api.trace.accept_events`, exactly as ``POST /v1/trace/events`` accepts them. The anchorer (started by
``credtrace up``) then batches the events and anchors their Merkle root. Idempotent: nothing is done when the
product is registered already. Returns what it made, kept in ``demo.json`` (``trace``) for ``credtrace up`` to
print the scan page of a delivered bottle.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

import yaml
from pydantic import BaseModel
from sqlmodel import Session
from web3 import Web3

from credtrace.demo import DEMO_CONFIG, DEMO_PASSWORD, all_demo_members
from credtrace.keys import load_key
from credtrace.settings import Settings
from node_bridge.consortium import member_id
from node_bridge.deploy import Deployment
from node_bridge.trace import Disposition, Step, TraceDomain, code_id, normalise_gtin
from node_bridge.trace_models import Product

DISPOSITIONS = {
    Step.COMMISSION: Disposition.ACTIVE, Step.PACK: Disposition.IN_PROGRESS, Step.UNPACK: Disposition.SELLABLE,
    Step.SHIP: Disposition.IN_TRANSIT, Step.RECEIVE: Disposition.IN_PROGRESS, Step.SELL: Disposition.SOLD,
    Step.DELIVER: Disposition.DELIVERED,
}  # fmt: skip


class TraceStep(BaseModel):
    step: str
    what: str
    actor: str
    location: str
    geo: str = ""
    hours: float


class TraceDemo(BaseModel):
    product: dict[str, str]
    case: dict[str, str]
    producer: str
    lot: dict[str, str]
    codes: int
    chains: int
    steps: list[TraceStep]


def trace_demo() -> TraceDemo | None:
    data = yaml.safe_load(DEMO_CONFIG.read_text()).get("trace")
    return TraceDemo.model_validate(data) if data else None


def seed_trace(settings: Settings, w3: Web3, deployment: Deployment) -> dict[str, Any] | None:
    """Seed the demo's product, lot, codes and custody chain (see the module docstring); None if not configured."""
    from api import trace as tw
    from node_bridge.indexer import Indexer
    from node_bridge.store import open_store, session_scope

    demo = trace_demo()
    if demo is None or "TraceRegistry" not in deployment.contracts:
        return None
    domain = TraceDomain(deployment.chain_id, deployment.contracts["TraceRegistry"].address)
    members = {m.key: "0x" + member_id(m.uscc).hex() for m in all_demo_members(settings)}
    names = {demo.producer, *(s.actor for s in demo.steps)}
    keys = {name: load_key(settings.keys_dir, name, DEMO_PASSWORD) for name in names}
    producer = members[demo.producer]
    engine = open_store(settings.database)
    try:
        Indexer(engine, w3, deployment, settings).step()  # members and their keys, which the write checks read
        with Session(engine) as session:
            if session.get(Product, normalise_gtin(demo.product["gtin"])) is not None:
                return _existing(session, demo)
        with session_scope(engine) as session:
            lots = []
            for item, count in ((demo.product, demo.codes), (demo.case, 1)):
                tw.register_product(session, producer, item["gtin"], item["name"], item.get("description", ""))
                lot = tw.register_lot(
                    session, producer, item["gtin"], demo.lot["lot"], demo.lot.get("produced_on"),
                    demo.lot.get("best_before"),
                )  # fmt: skip
                issued = tw.issue_codes(session, domain, producer, lot, count)
                signature = domain.sign(keys[demo.producer], "CodeBatch", issued.message)
                tw.sign_code_batch(session, domain, producer, issued.batch.id, "0x" + signature.hex())
                lots.append(sorted(issued.paths))
            bottles, case = lots[0][: demo.chains], lots[1][0]
        now = int(time.time())
        nonces = itertools.count(secrets.randbelow(2**48))
        for step in demo.steps:
            kind = Step[step.step.upper()]
            groups = {"bottles": [bottles], "case": [[case]], "bottle": [[b] for b in bottles]}[step.what]
            items = []
            for index, codes in enumerate(groups):
                message = {
                    "actor": members[step.actor], "step": int(kind), "codes": [tw.hex32(code_id(p)) for p in codes],
                    "parent": tw.hex32(code_id(case)) if kind in (Step.PACK, Step.UNPACK) else "0x" + "00" * 32,
                    "time": now - int(step.hours * 3600) + index * 60, "location": f"{step.actor}:{step.location}",
                    "geo": step.geo, "disposition": int(DISPOSITIONS[kind]), "corrects": "0x" + "00" * 32,
                    "nonce": next(nonces),
                }  # fmt: skip
                signed = domain.sign(keys[step.actor], "TraceEvent", tw.normalise_event(message))
                items.append(tw.SignedEvent(message, "0x" + signed.hex()))
            with session_scope(engine) as session:
                tw.accept_events(session, domain, items)
    finally:
        engine.dispose()
    return {"gtin": normalise_gtin(demo.product["gtin"]), "lot": demo.lot["lot"], "delivered": bottles,
            "case": case, "scan": "/t" + bottles[0]}  # fmt: skip


def _existing(session: Session, demo: TraceDemo) -> dict[str, Any] | None:
    """What an earlier seeding made (a restart of an interrupted demo seeding)."""
    from sqlmodel import select

    from node_bridge.trace_models import TraceCode

    gtin = normalise_gtin(demo.product["gtin"])
    delivered = session.exec(
        select(TraceCode.path).where(TraceCode.lot_id == f"{gtin}/{demo.lot['lot']}", TraceCode.state == "delivered")
    ).all()
    if not delivered:
        return None
    paths = sorted(delivered)
    return {"gtin": gtin, "lot": demo.lot["lot"], "delivered": paths, "scan": "/t" + paths[0]}
