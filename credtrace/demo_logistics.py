"""The demo's logistics credit (``logistics:`` in ``config/demo.yaml``), signed by the demo members' own keys.

Jiaodong Express registers two delivery firms and a courier, the two platforms evaluate both firms month by month,
and a regulator publishes the rating rules: every message signed as its member would sign it (EIP-712, its own key)
and all of them sent in one ``batch`` transaction to the LogisticsRegistry. The courier is a natural person: its
commitment is made as ``POST /v1/persons`` makes it (:func:`credtrace.persons.register_person`: salt and lookup key
in the database, the identity number nowhere), and only the commitment is signed. Nonces are fixed
(``DEMO_NONCE_BASE`` + position), and nothing is sent when the first firm is registered already, so seeding again
does nothing.
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
from credtrace.logistics_rating import file_hash, rule_path
from credtrace.settings import Settings
from node_bridge import logistics
from node_bridge.compiler import artifact
from node_bridge.consortium import member_id
from node_bridge.credit import subject_id
from node_bridge.deploy import Deployment
from node_bridge.nonces import encode_batch
from node_bridge.transactions import Sender, decode_revert

DEMO_NONCE_BASE = 0xDE60 << 8


class DemoFirm(BaseModel):
    key: str
    uscc: str
    name: str
    profile: dict[str, int]
    sanctions_in: list[int] = Field(default_factory=list)


class DemoCourier(BaseModel):
    firm: str
    id_number: str


class LogisticsDemo(BaseModel):
    registrar: str
    evaluators: list[str]
    publisher: str
    rules: list[int]
    months: int = Field(12, ge=1, le=24)
    courier: DemoCourier
    firms: list[DemoFirm] = Field(min_length=1)


def logistics_demo() -> LogisticsDemo | None:
    data = yaml.safe_load(DEMO_CONFIG.read_text()).get("logistics")
    return LogisticsDemo.model_validate(data) if data else None


def month_figures(firm: DemoFirm, month: int, evaluator: int) -> dict[str, int]:
    """The figures of ``firm`` for the ``month``-th month of the window (1 = oldest) by the ``evaluator``-th
    platform: the profile varied a little, deterministically, so the months differ."""
    p = firm.profile
    wobble = (month * 7 + evaluator * 3) % 5 - 2  # -2 .. 2
    return {
        "parcels": p["parcels"] + wobble * p["parcels"] // 20,
        "onTimeBps": min(10_000, max(0, p["onTimeBps"] + wobble * 15)),
        "lossDamageBps": max(0, p["lossDamageBps"] + wobble * 2),
        "complaintsPer10k": max(0, p["complaintsPer10k"] + wobble),
        "violations": p["violations"] if (month + evaluator) % 4 == 0 else 0,
        "sanctions": 1 if evaluator == 0 and month in firm.sanctions_in else p["sanctions"],
    }


def courier_commitment(settings: Settings, id_number: str, registrar: str) -> str:
    """The courier's commitment, registered as ``POST /v1/persons`` registers a natural person (idempotent)."""
    from credtrace.persons import load_pepper, register_person
    from node_bridge.store import open_store, session_scope

    engine = open_store(settings.database)
    try:
        with session_scope(engine) as session:
            return register_person(session, load_pepper(settings), id_number, registrar)
    finally:
        engine.dispose()


def seed_logistics(settings: Settings, w3: Web3, deployment: Deployment, sender: Sender) -> dict[str, Any] | None:
    """Put the demo's logistics credit on chain unless it is there; returns what the demo holds (no identity
    number), kept in ``demo.json`` (``logistics``). None if not configured or not deployed."""
    demo = logistics_demo()
    if demo is None or logistics.CONTRACT not in deployment.contracts:
        return None
    registry = deployment.contract(w3, logistics.CONTRACT)
    abi = artifact(logistics.CONTRACT).abi
    domain = logistics.REGISTRY.domain(deployment.chain_id, registry.address)
    orgs = {m.key: member_id(m.uscc) for m in all_demo_members(settings)}
    firms = {f.key: subject_id(f.uscc) for f in demo.firms}
    courier = courier_commitment(settings, demo.courier.id_number, "0x" + orgs[demo.registrar].hex())
    now = int(w3.eth.get_block("latest")["timestamp"])
    periods = logistics.previous_periods(_month_before(now), demo.months)
    summary: dict[str, Any] = {
        "firms": {f.key: {"uscc": f.uscc, "name": f.name, "subject": "0x" + firms[f.key].hex()} for f in demo.firms},
        "courier": courier,
        "periods": [periods[0], periods[-1]],
        "rules": demo.rules,
        "sent": 0,
    }
    if registry.functions.isFirm(firms[demo.firms[0].key]).call():
        return summary
    names = {demo.registrar, demo.publisher, *demo.evaluators}
    keys = {name: load_or_create(settings.keys_dir, name, DEMO_PASSWORD, LIGHT_SCRYPT_N) for name in names}
    nonce = iter(range(DEMO_NONCE_BASE, DEMO_NONCE_BASE + 10_000))
    calls: list[bytes] = []

    def add(type_name: str, signer: str, message: dict[str, Any]) -> None:
        signature = domain.sign(keys[signer], type_name, message)
        calls.append(logistics.REGISTRY.calldata(type_name, message, signature))

    registrar = orgs[demo.registrar]
    for firm in demo.firms:
        add("FirmRegistration", demo.registrar, {"registrar": registrar, "firm": firms[firm.key], "nonce": next(nonce)})
    add("CourierRegistration", demo.registrar, {"registrar": registrar, "courier": bytes.fromhex(courier[2:]),
                                                 "firm": firms[demo.courier.firm], "nonce": next(nonce)})  # fmt: skip
    for firm in demo.firms:
        for month, period in enumerate(periods, start=1):
            for index, evaluator in enumerate(demo.evaluators):
                figures = month_figures(firm, month, index)
                message = {"evaluator": orgs[evaluator], "firm": firms[firm.key], "period": period, **figures,
                           "nonce": next(nonce)}  # fmt: skip
                add("Evaluation", evaluator, message)
    latest = int(registry.functions.latestRuleVersion().call())
    for version in demo.rules:
        if version > latest:
            rule = {"publisher": orgs[demo.publisher], "version": version,
                    "ruleHash": file_hash(rule_path(version)), "nonce": next(nonce)}  # fmt: skip
            add("RatingRule", demo.publisher, rule)
    receipt = sender.transact_raw(registry.address, encode_batch(calls), abi, gas=200_000 + 150_000 * len(calls))
    failed = registry.events.BatchCallFailed().process_receipt(receipt, errors=DISCARD)
    if failed:
        error, args = decode_revert(abi, failed[0]["args"]["reason"])
        raise ContractReverted(error, (f"demo logistics message {failed[0]['args']['index']}", *args))
    summary["sent"] = len(calls)
    return summary


def _month_before(unix: int) -> int:
    """The month (YYYYMM) before the one ``unix`` falls in (UTC): the last complete month."""
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(unix, UTC)
    year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
    return year * 100 + month
