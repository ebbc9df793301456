"""The demo's consumer protection (``protection:`` in ``config/demo.yaml``), signed by the demo platform's own key.

After the demo members, records and traceability: the index is brought up to date (the case links name a credit
record against the merchant and the demo's delivered bottle, found there), then Qilu Mall's fund declaration and its
update, and every step of its advance-compensation cases, are signed exactly as the platform would sign them and go
on chain in one ``batch`` transaction. Consumers appear only as salted commitments (the salt is random and not
kept: nobody, the demo included, can tie them back). Idempotent: nothing is sent when the fund is declared on chain
already. Returns what it made, kept in ``demo.json`` (``protection``).
"""

from __future__ import annotations

import secrets
from typing import Any

import yaml
from pydantic import BaseModel, Field
from sqlmodel import Session, select
from web3 import Web3
from web3.logs import DISCARD

from credtrace.demo import DEMO_CONFIG, DEMO_PASSWORD, all_demo_members
from credtrace.errors import ContractReverted
from credtrace.keys import LIGHT_SCRYPT_N, load_or_create
from credtrace.settings import Settings
from node_bridge import protection
from node_bridge.compiler import artifact
from node_bridge.consortium import member_id
from node_bridge.credit import subject_id
from node_bridge.deploy import Deployment
from node_bridge.nonces import encode_batch
from node_bridge.protection import REGISTRY, ZERO32, Step, case_id, consumer_commitment, fund_id
from node_bridge.transactions import Sender, decode_revert

DEMO_NONCE_BASE = 0xC7DE30 << 8
DAY = 86400


class DemoFund(BaseModel):
    ref: str
    currency: str
    custodian: str
    days: int
    versions: list[int] = Field(min_length=1)


class DemoStep(BaseModel):
    step: str
    days: float
    amount: int = 0


class DemoCase(BaseModel):
    ref: str
    merchant: str
    consumer: str
    claimed: int
    due_days: float
    trace: str | None = Field(None, pattern="^delivered$")
    decision: str | None = None
    steps: list[DemoStep] = Field(min_length=1)


class ProtectionDemo(BaseModel):
    platform: str
    fund: DemoFund
    cases: list[DemoCase]


def protection_demo() -> tuple[dict[str, str], ProtectionDemo | None]:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    section = data.get("protection")
    return dict(data.get("merchants", {})), ProtectionDemo.model_validate(section) if section else None


def seed_protection(settings: Settings, w3: Web3, deployment: Deployment, sender: Sender) -> dict[str, Any] | None:
    """Put the demo fund and cases on chain unless the fund is there (see the module docstring)."""
    merchants, demo = protection_demo()
    if demo is None or protection.CONTRACT not in deployment.contracts:
        return None
    registry = deployment.contract(w3, protection.CONTRACT)
    domain = REGISTRY.domain(deployment.chain_id, registry.address)
    members = {m.key: m.uscc for m in all_demo_members(settings)}
    platform = member_id(members[demo.platform])
    fund = fund_id(platform, demo.fund.ref)
    made = {
        "platform": "0x" + platform.hex(), "fund": "0x" + fund.hex(),
        "cases": {c.ref: "0x" + case_id(platform, c.ref).hex() for c in demo.cases},
    }  # fmt: skip
    if registry.functions.fundOf(fund).call()[0] != 0:
        return made | {"sent": 0}
    key = load_or_create(settings.keys_dir, demo.platform, DEMO_PASSWORD, LIGHT_SCRYPT_N)
    now = int(w3.eth.get_block("latest")["timestamp"])
    links = _links(settings, w3, deployment, merchants, demo)
    nonce = iter(range(DEMO_NONCE_BASE, DEMO_NONCE_BASE + 10_000))
    calls: list[bytes] = []
    start = now - 30 * DAY
    for version, amount in enumerate(demo.fund.versions, start=1):
        declaration = {
            "platform": platform, "fundId": fund, "version": version, "amount": amount,
            "currency": demo.fund.currency, "custodian": demo.fund.custodian, "periodStart": start,
            "periodEnd": start + demo.fund.days * DAY, "nonce": next(nonce),
        }  # fmt: skip
        calls.append(
            REGISTRY.calldata("FundDeclaration", declaration, domain.sign(key, "FundDeclaration", declaration))
        )
    for item in demo.cases:
        merchant = subject_id(merchants[item.merchant])
        consumer = consumer_commitment(secrets.token_bytes(32), item.consumer)
        opened = now - int(item.steps[0].days * DAY)
        trace_code, decision = links.get((item.ref, "trace"), ZERO32), links.get((item.ref, "decision"), ZERO32)
        for step in item.steps:
            kind = Step[step.step.upper()]
            message = {
                "platform": platform, "caseId": case_id(platform, item.ref), "step": int(kind), "merchant": merchant,
                "consumer": consumer, "amount": item.claimed if kind is Step.COMPLAINT else step.amount,
                "dueBy": opened + int(item.due_days * DAY) if kind is Step.COMPLAINT else 0,
                "traceCode": trace_code if kind is Step.COMPLAINT else ZERO32,
                "decision": decision if kind is Step.COMPENSATED else ZERO32,
                "at": now - int(step.days * DAY), "nonce": next(nonce),
            }  # fmt: skip
            calls.append(REGISTRY.calldata("CaseStep", message, domain.sign(key, "CaseStep", message)))
    abi = artifact(protection.CONTRACT).abi
    receipt = sender.transact_raw(registry.address, encode_batch(calls), abi, gas=200_000 + 150_000 * len(calls))
    failed = registry.events.BatchCallFailed().process_receipt(receipt, errors=DISCARD)
    if failed:
        error, args = decode_revert(abi, failed[0]["args"]["reason"])
        raise ContractReverted(error, (f"demo protection message {failed[0]['args']['index']}", *args))
    return made | {"sent": len(calls)}


def _links(
    settings: Settings, w3: Web3, deployment: Deployment, merchants: dict[str, str], demo: ProtectionDemo
) -> dict[tuple[str, str], bytes]:
    """The trace code and credit record each case links to, from the index (brought up to date first)."""
    from credtrace.demo_trace import trace_demo
    from node_bridge.indexer import Indexer
    from node_bridge.models import CreditRecordRow
    from node_bridge.store import open_store
    from node_bridge.trace import normalise_gtin
    from node_bridge.trace_models import TraceCode

    links: dict[tuple[str, str], bytes] = {}
    engine = open_store(settings.database)
    try:
        Indexer(engine, w3, deployment, settings).step()
        with Session(engine) as session:
            trace = trace_demo()
            delivered: list[str] = []
            if trace is not None:
                lot = f"{normalise_gtin(trace.product['gtin'])}/{trace.lot['lot']}"
                query = select(TraceCode.path, TraceCode.id).where(
                    TraceCode.lot_id == lot, TraceCode.state == "delivered"
                )
                delivered = [code for _, code in sorted(session.exec(query).all())]  # the bottle `up` shows first
            for item in demo.cases:
                if item.trace and delivered:
                    links[(item.ref, "trace")] = bytes.fromhex(delivered[0][2:])
                if item.decision:
                    subject = "0x" + subject_id(merchants[item.merchant]).hex()
                    record = session.exec(
                        select(CreditRecordRow.id).where(
                            CreditRecordRow.subject == subject, CreditRecordRow.kind == item.decision
                        )
                    ).first()
                    if record is not None:
                        links[(item.ref, "decision")] = bytes.fromhex(record[2:])
    finally:
        engine.dispose()
    return links
