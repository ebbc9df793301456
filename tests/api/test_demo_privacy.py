"""No personal data on chain: every transaction input and every event of the demo chain is scanned for the demo's
couriers', consumers' and settlement accounts' identifiers (and the supervision cases' texts, which stay off chain)
in plain text. They may only appear as salted commitments or keyed hashes."""

from __future__ import annotations

import re
from typing import Any

import yaml

from credtrace.demo import DEMO_CONFIG
from tests.api.conftest import CreditWorld


def _identifiers() -> dict[str, str]:
    """Each plain-text identifier of the demo file, by where it comes from."""
    demo: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
    found = {"logistics.courier.id_number": demo["logistics"]["courier"]["id_number"]}
    for i, case in enumerate(demo["protection"]["cases"]):
        found[f"protection.cases[{i}].consumer"] = case["consumer"]
    for i, binding in enumerate(demo["payments"]["bindings"]):
        found[f"payments.bindings[{i}].account"] = binding["account"]
    case = demo["supervision"]["joint_case"]
    for name in ("summary", "finding", "closing"):
        found[f"supervision.joint_case.{name}"] = case[name]
    found["supervision.joint_case.evidence.description"] = case["evidence"]["description"]
    return found


def _forms(identifier: str) -> set[bytes]:
    """The ways an identifier could sit in calldata or a log: as written, and without separators or a prefix."""
    forms = {identifier.encode()}
    digits = re.sub(r"[\s\-]", "", identifier)
    forms.add(digits.encode())
    if ":" in identifier:
        forms.add(identifier.split(":", 1)[1].encode())
    return {form for form in forms if len(form) >= 8}


def test_no_personal_data_in_any_transaction_or_event_of_the_demo(credit_world: CreditWorld) -> None:
    w3 = credit_world.w3
    identifiers = _identifiers()
    assert len(identifiers) >= 10  # the courier, three consumers, five accounts, the case texts
    blobs: list[tuple[str, bytes]] = []
    for number in range(w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            assert not isinstance(tx, bytes)
            blobs.append((f"input of {tx['hash'].to_0x_hex()}", bytes(tx["input"])))
    for log in w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest"}):
        where = f"log {log['logIndex']} of {log['transactionHash'].to_0x_hex()}"
        blobs.append((where, bytes(log["data"]) + b"".join(bytes(t) for t in log["topics"])))
    deployed = credit_world.deployment.contracts
    assert {"LogisticsRegistry", "ProtectionRegistry", "PaymentRegistry", "SupervisionRegistry"} <= set(deployed)
    logged = {log["address"] for log in w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest"})}
    for name in ("LogisticsRegistry", "ProtectionRegistry", "PaymentRegistry", "SupervisionRegistry"):
        assert deployed[name].address in logged, f"the demo wrote nothing to {name}: the scan would prove nothing"
    leaks = [
        f"{source} in {where}"
        for source, identifier in identifiers.items()
        for form in _forms(identifier)
        for where, blob in blobs
        if form in blob
    ]
    assert leaks == []
