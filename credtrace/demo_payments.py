"""The demo's online payment management (``payments:`` in ``config/demo.yaml``), signed by Quancheng Pay's own key.

Quancheng Pay binds settlement accounts to merchants: the blacklisted Lanshan Tea House's account reappears under a
new fictional merchant (a ``blacklist_reappearance`` alert, and a ``shared_account`` one), two other new merchants
share one account (``shared_account``), and it files a few monthly refund / chargeback signals and one payment
violation record. The account numbers in the file are hashed here with the demo's account pepper
(``<data dir>/account-pepper``, created 0600 on the first start): only the hashes go on chain. Bindings and signals
go to the PaymentRegistry in one ``batch`` transaction, the violation to the CreditRegistry in another. Nonces are
fixed (``DEMO_NONCE_BASE`` + position), and seeding again finds the first binding on chain and does nothing.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, Field
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from credtrace.demo import DEMO_CONFIG, DEMO_PASSWORD, all_demo_members
from credtrace.errors import ContractReverted
from credtrace.keys import LIGHT_SCRYPT_N, load_or_create
from credtrace.settings import Settings
from node_bridge import credit
from node_bridge.compiler import artifact
from node_bridge.consortium import member_id
from node_bridge.credit import Kind, Relation, Tier
from node_bridge.deploy import Deployment
from node_bridge.nonces import encode_batch
from node_bridge.payments import (
    BINDING,
    CONTRACT,
    REGISTRY,
    SIGNAL,
    account_hash,
    create_account_pepper,
    load_account_pepper,
)
from node_bridge.transactions import Sender, decode_revert

DEMO_NONCE_BASE = 0xDE40 << 8
DAY = 86400


class DemoBinding(BaseModel):
    subject: str
    account: str
    days_ago: int = 30


class DemoSignal(BaseModel):
    merchant: str
    month: int
    orders: int
    refund_bps: int
    chargeback_bps: int


class DemoViolation(BaseModel):
    subject: str
    tier: str = "general"
    legal_basis: str


class DemoPayments(BaseModel):
    signer: str
    merchants: dict[str, str] = Field(default_factory=dict)
    bindings: list[DemoBinding] = Field(default_factory=list)
    signals: list[DemoSignal] = Field(default_factory=list)
    violations: list[DemoViolation] = Field(default_factory=list)


def demo_payments() -> tuple[dict[str, str], DemoPayments | None]:
    """Every demo merchant (the records' and the payments' own) and the ``payments:`` section, if any."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    if not data.get("payments"):
        return dict(data.get("merchants", {})), None
    section = DemoPayments.model_validate(data["payments"])
    return dict(data.get("merchants", {})) | section.merchants, section


def seed_payments(settings: Settings, w3: Web3, deployment: Deployment, sender: Sender) -> dict[str, Any]:
    """Put the demo's bindings, signals and violation records on chain unless they are there."""
    merchants, section = demo_payments()
    if section is None or CONTRACT not in deployment.contracts:
        return {}
    create_account_pepper(settings)
    pepper = load_account_pepper(settings)
    registry = deployment.contract(w3, CONTRACT)
    members = {m.key: m.uscc for m in all_demo_members(settings)}
    payment = member_id(members[section.signer])
    key = load_or_create(settings.keys_dir, section.signer, DEMO_PASSWORD, LIGHT_SCRYPT_N)
    domain = REGISTRY.domain(deployment.chain_id, registry.address)
    now = int(w3.eth.get_block("latest")["timestamp"])
    bindings = [
        {
            "payment": payment, "subject": credit.subject_id(merchants[b.subject]),
            "accountHash": account_hash(pepper, b.account, f"payments.bindings[{i}].account"),
            "boundAt": now - b.days_ago * DAY, "nonce": DEMO_NONCE_BASE + i,
        }
        for i, b in enumerate(section.bindings)
    ]  # fmt: skip
    summary = {"bindings": len(bindings), "signals": len(section.signals), "violations": len(section.violations)}
    done = bool(bindings) and registry.functions.isBound(bindings[0]["subject"], bindings[0]["accountHash"]).call()
    signals = [
        {
            "payment": payment, "merchant": credit.subject_id(merchants[s.merchant]), "month": s.month,
            "orders": s.orders, "refundBps": s.refund_bps, "chargebackBps": s.chargeback_bps,
            "nonce": DEMO_NONCE_BASE + 500 + i,
        }
        for i, s in enumerate(section.signals)
    ]  # fmt: skip
    calls = [REGISTRY.calldata(BINDING.name, m, domain.sign(key, BINDING.name, m)) for m in bindings]
    calls += [REGISTRY.calldata(SIGNAL.name, m, domain.sign(key, SIGNAL.name, m)) for m in signals]
    sent = 0 if done else _send(sender, registry, CONTRACT, calls)
    sent += _violations(w3, deployment, sender, section, merchants, payment, key, now)
    return summary | {"sent": sent}


def _violations(
    w3: Web3, deployment: Deployment, sender: Sender, section: DemoPayments, merchants: dict[str, str],
    payment: bytes, key: Any, now: int,
) -> int:  # fmt: skip
    """The payment violation records, signed by the payment member, on the CreditRegistry."""
    if not section.violations:
        return 0
    registry = deployment.contract(w3, credit.CONTRACT)
    if registry.functions.nonceUsed(payment, DEMO_NONCE_BASE + 900).call():
        return 0
    domain = credit.CreditDomain(deployment.chain_id, registry.address)
    calls = []
    for i, v in enumerate(section.violations):
        start = now - 10 * DAY
        record = {
            "kind": int(Kind.PAYMENT_VIOLATION), "subject": credit.subject_id(merchants[v.subject]), "issuer": payment,
            "legalBasis": v.legal_basis, "tier": int(Tier[v.tier.upper()]), "measures": 0,
            "documentHash": Web3.keccak(text=f"demo payment violation report {i}"), "effectiveAt": start,
            "publicUntil": start + 365 * DAY, "validUntil": start + 3 * 365 * DAY, "relation": int(Relation.NONE),
            "refersTo": credit.ZERO32, "nonce": DEMO_NONCE_BASE + 900 + i,
        }  # fmt: skip
        calls.append(credit.calldata("CreditRecord", record, domain.sign_record(key, record)))
    return _send(sender, registry, credit.CONTRACT, calls)


def _send(sender: Sender, registry: Contract, name: str, calls: list[bytes]) -> int:
    if not calls:
        return 0
    abi = artifact(name).abi
    receipt = sender.transact_raw(registry.address, encode_batch(calls), abi, gas=100_000 + 300_000 * len(calls))
    failed = registry.events.BatchCallFailed().process_receipt(receipt, errors=DISCARD)
    if failed:
        error, args = decode_revert(abi, failed[0]["args"]["reason"])
        raise ContractReverted(error, (f"demo payment message {failed[0]['args']['index']}", *args))
    return len(calls)
