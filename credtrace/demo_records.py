"""The demo's credit records (``records:`` in ``config/demo.yaml``), signed by the demo members' own keys.

Each record is signed exactly as a department would sign it (EIP-712, its organisation's key) and all of them go
on chain in one ``batch`` transaction, followed by the revocations, repairs and an enforcement receipt the file
asks for. Nonces are fixed (``DEMO_NONCE_BASE`` + position), so seeding again finds them used and does nothing.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, Field
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
from node_bridge.credit import Kind, Relation, Tier
from node_bridge.deploy import Deployment
from node_bridge.nonces import encode_batch
from node_bridge.transactions import Sender, decode_revert

DEMO_NONCE_BASE = 0xDE30 << 8
DAY = 86400


class DemoRecord(BaseModel):
    kind: str
    signer: str
    subject: str
    tier: str = "general"
    legal_basis: str
    measures: list[str] = Field(default_factory=list)
    ref: str | None = None
    breaches: str | None = None
    notice_days: int = 0
    close: str | None = Field(None, pattern="^(revoke|repair)$")
    reason: str | None = None


def demo_records() -> tuple[dict[str, str], list[DemoRecord]]:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    return dict(data.get("merchants", {})), [DemoRecord.model_validate(r) for r in data.get("records", [])]


def seed_records(settings: Settings, w3: Web3, deployment: Deployment, sender: Sender) -> int:
    """Put the demo records on chain unless they are there; returns how many messages were sent."""
    merchants, records = demo_records()
    if not records:
        return 0
    registry = deployment.contract(w3, credit.CONTRACT)
    abi = artifact(credit.CONTRACT).abi
    domain = credit.CreditDomain(deployment.chain_id, registry.address)
    members = {m.key: m.uscc for m in all_demo_members(settings)}
    orgs = {key: member_id(code) for key, code in members.items()}
    first = records[0]
    if registry.functions.nonceUsed(orgs[first.signer], DEMO_NONCE_BASE).call():
        return 0
    now = int(w3.eth.get_block("latest")["timestamp"])
    measures = catalogue()
    keys = {r.signer: load_or_create(settings.keys_dir, r.signer, DEMO_PASSWORD, LIGHT_SCRYPT_N) for r in records}
    issued: dict[str, bytes] = {}
    messages: dict[int, tuple[dict[str, Any], bytes]] = {}
    calls: list[bytes] = []
    for index, item in enumerate(records):
        start = now - 30 * DAY if not item.notice_days else now + item.notice_days * DAY
        message = {
            "kind": int(Kind[item.kind.upper()]),
            "subject": credit.subject_id(merchants.get(item.subject) or members[item.subject]),
            "issuer": orgs[item.signer],
            "legalBasis": item.legal_basis,
            "tier": int(Tier[item.tier.upper()]),
            "measures": sum(measures.measure(slug).bit for slug in item.measures),
            "documentHash": Web3.keccak(text=f"demo decision document {index}"),
            "effectiveAt": start,
            "publicUntil": start + 365 * DAY,
            "validUntil": start + 3 * 365 * DAY,
            "relation": int(Relation.BREACHES_COMMITMENT if item.breaches else Relation.NONE),
            "refersTo": issued[item.breaches] if item.breaches else credit.ZERO32,
            "nonce": DEMO_NONCE_BASE + index,
        }
        record_id = domain.digest("CreditRecord", message)
        if item.ref:
            issued[item.ref] = record_id
        messages[index] = (message, record_id)
        calls.append(credit.calldata("CreditRecord", message, domain.sign(keys[item.signer], "CreditRecord", message)))
    for index, item in enumerate(records):
        if item.close:
            message, record_id = messages[index]
            primary = "Revocation" if item.close == "revoke" else "Repair"
            closure = {"recordId": record_id, "issuer": orgs[item.signer], "reason": item.reason or item.close,
                       "nonce": DEMO_NONCE_BASE + len(records) + index}  # fmt: skip
            signature = domain.sign(keys[item.signer], primary, closure)
            calls.append(credit.calldata(primary, closure, signature, message))
    calls.extend(_enforcement(settings, domain, orgs, records, messages, now))
    receipt = sender.transact_raw(registry.address, encode_batch(calls), abi, gas=100_000 + 400_000 * len(calls))
    failed = registry.events.BatchCallFailed().process_receipt(receipt, errors=DISCARD)
    if failed:
        error, args = decode_revert(abi, failed[0]["args"]["reason"])
        raise ContractReverted(error, (f"demo message {failed[0]['args']['index']}", *args))
    return len(calls)


def _enforcement(
    settings: Settings,
    domain: credit.CreditDomain,
    orgs: dict[str, bytes],
    records: list[DemoRecord],
    messages: dict[int, tuple[dict[str, Any], bytes]],
    now: int,
) -> list[bytes]:
    """Qilu Mall's receipt that it blocked the shop of the first blacklisted merchant."""
    index = next((i for i, r in enumerate(records) if r.kind == "blacklist" and "block_shop" in r.measures), None)
    if index is None:
        return []
    message, record_id = messages[index]
    platform = load_or_create(settings.keys_dir, "qilu-mall", DEMO_PASSWORD, LIGHT_SCRYPT_N)
    receipt = {
        "platform": orgs["qilu-mall"], "subject": message["subject"], "recordId": record_id,
        "measure": catalogue().measure("block_shop").code, "appliedAt": now, "nonce": DEMO_NONCE_BASE + 1000,
    }  # fmt: skip
    return [credit.calldata("Enforcement", receipt, domain.sign(platform, "Enforcement", receipt))]
