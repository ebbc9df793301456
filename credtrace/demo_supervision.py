"""The demo's supervision cases (``supervision:`` in ``config/demo.yaml``), signed by the departments' own keys.

The joint case runs the whole workflow: open, refer (with a deadline), acknowledge, evidence, finding, a joint
decision co-signed by both departments (active), linked to the case, close. The overdue case is opened and referred
with a deadline already past, and never acknowledged, so the regulators' dashboard shows it overdue. Everything goes
on chain in one ``batch`` transaction; the texts the entries hash go into the store's ``supervision_note`` table
(the API's, not the chain's). Seeding again finds the joint case open on chain and sends nothing.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel
from sqlalchemy import insert, select
from web3 import Web3
from web3.logs import DISCARD

from credtrace.demo import DEMO_CONFIG, DEMO_PASSWORD, all_demo_members
from credtrace.errors import ContractReverted
from credtrace.keys import LIGHT_SCRYPT_N, load_or_create
from credtrace.measures import catalogue
from credtrace.settings import Settings
from node_bridge import credit
from node_bridge.compiler import artifact
from node_bridge.consortium import member_id
from node_bridge.deploy import Deployment
from node_bridge.models import utcnow
from node_bridge.nonces import encode_batch
from node_bridge.projections import table_of
from node_bridge.supervision import CONTRACT, REGISTRY, ZERO32, Action, case_id, note_hash
from node_bridge.supervision_models import SupervisionNote
from node_bridge.transactions import Sender, decode_revert

DEMO_NONCE_BASE = 0x5E7 << 16
DAY = 86400


class Evidence(BaseModel):
    document: str
    description: str


class Decision(BaseModel):
    kind: str
    tier: str
    measures: list[str] = []
    valid_days: int = 730


class JointCase(BaseModel):
    reference: str
    subject: str
    opener: str
    partner: str
    days_ago: int
    referral_days: int
    summary: str
    evidence: Evidence
    finding: str
    decision: Decision
    closing: str


class OverdueCase(BaseModel):
    reference: str
    subject: str
    opener: str
    partner: str
    days_ago: int
    deadline_days_ago: int
    summary: str


class DemoSupervision(BaseModel):
    joint_case: JointCase
    overdue_case: OverdueCase | None = None


def demo_supervision() -> tuple[dict[str, str], DemoSupervision | None]:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    section = data.get("supervision")
    return dict(data.get("merchants", {})), DemoSupervision.model_validate(section) if section else None


class _Builder:
    """Signs the demo's entries in order, each with its department's key and a fixed nonce."""

    def __init__(self, settings: Settings, deployment: Deployment, orgs: dict[str, bytes]) -> None:
        self.settings = settings
        self.domain = REGISTRY.domain(deployment.chain_id, deployment.contracts[CONTRACT].address)
        self.orgs = orgs
        self.calls: list[bytes] = []
        self.notes: dict[bytes, tuple[str, bytes, bytes]] = {}  # hash -> (text, case, department)
        self.nonce = DEMO_NONCE_BASE
        self.keys: dict[str, Any] = {}

    def key(self, name: str) -> Any:
        if name not in self.keys:
            self.keys[name] = load_or_create(self.settings.keys_dir, name, DEMO_PASSWORD, LIGHT_SCRYPT_N)
        return self.keys[name]

    def entry(self, who: str, case: bytes, action: Action, at: int, text: str | None = None, **f: Any) -> bytes:
        hashed = note_hash(text) if text else ZERO32
        if text:
            self.notes[hashed] = (text, case, self.orgs[who])
        message = {
            "department": self.orgs[who], "caseId": case, "action": int(action), "subject": ZERO32,
            "counterpart": ZERO32, "deadline": 0, "documentHash": ZERO32, "noteHash": hashed, "ref": ZERO32,
            "at": at, "nonce": self.nonce,
        }  # fmt: skip
        message.update(f)
        self.nonce += 1
        self.calls.append(
            REGISTRY.calldata("CaseEntry", message, self.domain.sign(self.key(who), "CaseEntry", message))
        )
        return self.domain.digest("CaseEntry", message)

    def cosign(self, who: str, decision: dict[str, Any]) -> None:
        signature = self.domain.sign(self.key(who), "JointDecision", decision)
        self.calls.append(REGISTRY.calldata("JointDecision", decision, signature))


def seed_supervision(settings: Settings, w3: Web3, deployment: Deployment, sender: Sender) -> dict[str, Any]:
    """Put the demo cases on chain unless they are there, and keep their texts; returns what was done."""
    merchants, demo = demo_supervision()
    if demo is None or CONTRACT not in deployment.contracts:
        return {}
    registry = deployment.contract(w3, CONTRACT)
    orgs = {m.key: member_id(m.uscc) for m in all_demo_members(settings)}
    build = _Builder(settings, deployment, orgs)
    j = demo.joint_case
    case = case_id(j.reference)
    now = int(w3.eth.get_block("latest")["timestamp"])
    start = now - j.days_ago * DAY
    subject = credit.subject_id(merchants.get(j.subject, j.subject))
    build.entry(j.opener, case, Action.OPEN, start, j.summary, subject=subject)
    deadline = now + j.referral_days * DAY  # from the first start: acknowledged in time
    referral = build.entry(j.opener, case, Action.REFER, start + 3600, counterpart=orgs[j.partner], deadline=deadline)
    build.entry(j.partner, case, Action.ACKNOWLEDGE, start + DAY, ref=referral)
    document = Web3.keccak(text=j.evidence.document)
    build.entry(j.partner, case, Action.EVIDENCE, start + 2 * DAY, j.evidence.description, documentHash=document)
    build.entry(j.opener, case, Action.FINDING, start + 3 * DAY, j.finding)
    measures = catalogue()
    decision = {
        "caseId": case, "subject": subject, "kind": int(credit.Kind[j.decision.kind.upper()]),
        "tier": int(credit.Tier[j.decision.tier.upper()]),
        "measures": sum(measures.measure(slug).bit for slug in j.decision.measures),
        "documentHash": Web3.keccak(text=f"joint decision {j.reference}"), "effectiveAt": start + 4 * DAY,
        "validUntil": start + (4 + j.decision.valid_days) * DAY, "departments": [orgs[j.opener], orgs[j.partner]],
        "nonce": DEMO_NONCE_BASE + 999,
    }  # fmt: skip
    build.cosign(j.opener, decision)
    build.cosign(j.partner, decision)
    decision_id = build.domain.digest("JointDecision", decision)
    build.entry(j.opener, case, Action.LINK_DECISION, start + 4 * DAY, ref=decision_id)
    build.entry(j.opener, case, Action.CLOSE, start + 5 * DAY, j.closing)
    summary: dict[str, Any] = {"joint_case": "0x" + case.hex(), "joint_decision": "0x" + decision_id.hex()}
    if demo.overdue_case is not None:
        o = demo.overdue_case
        late_case = case_id(o.reference)
        opened = now - o.days_ago * DAY
        late_subject = credit.subject_id(merchants.get(o.subject, o.subject))
        build.entry(o.opener, late_case, Action.OPEN, opened, o.summary, subject=late_subject)
        build.entry(o.opener, late_case, Action.REFER, opened + 3600, counterpart=orgs[o.partner],
                    deadline=now - o.deadline_days_ago * DAY)  # fmt: skip
        summary["overdue_case"] = "0x" + late_case.hex()
    _keep_notes(settings, build.notes)
    if registry.functions.caseState(case).call()[1] != ZERO32:
        return summary | {"sent": 0}
    abi = artifact(CONTRACT).abi
    receipt = sender.transact_raw(registry.address, encode_batch(build.calls), abi, gas=300_000 * len(build.calls))
    failed = registry.events.BatchCallFailed().process_receipt(receipt, errors=DISCARD)
    if failed:
        error, args = decode_revert(abi, failed[0]["args"]["reason"])
        raise ContractReverted(error, (f"demo supervision message {failed[0]['args']['index']}", *args))
    return summary | {"sent": len(build.calls)}


def _keep_notes(settings: Settings, notes: dict[bytes, tuple[str, bytes, bytes]]) -> None:
    """The texts the demo entries hash, in the store (once each)."""
    from node_bridge.store import open_store, session_scope

    table = table_of(SupervisionNote)
    engine = open_store(settings.database)
    try:
        with session_scope(engine) as session:
            keys = ["0x" + h.hex() for h in notes]
            known = set(session.scalars(select(table.c.note_hash).where(table.c.note_hash.in_(keys))))
            rows = [
                {"note_hash": "0x" + h.hex(), "case_id": "0x" + case.hex(), "text": text,
                 "department": "0x" + department.hex(), "created_at": utcnow()}
                for h, (text, case, department) in notes.items()
                if "0x" + h.hex() not in known
            ]  # fmt: skip
            if rows:
                session.execute(insert(table), rows)
    finally:
        engine.dispose()
