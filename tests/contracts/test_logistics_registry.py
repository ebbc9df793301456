"""The LogisticsRegistry contract on the in-process EVM, driven through node_bridge.logistics (the Python mirror).

Every rule the contract checks is triggered on purpose and must revert with its custom error; the EIP-712 digests of
Python, eth-account and the contract agree on random evaluations; every event decodes (with the indexer's decoder)
back to the message that was signed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from node_bridge.compiler import artifact
from node_bridge.consortium import ConsortiumClient, Role
from node_bridge.credit import subject_id
from node_bridge.eip712 import keccak, reference_digest
from node_bridge.events import DecodedEvent, EventDecoder
from node_bridge.logistics import CONTRACT, EVENTS, REGISTRY
from node_bridge.transactions import Sender, decode_revert

from .conftest import Member, SignedContract, admit, reverts

ABI = artifact(CONTRACT).abi
LOGISTICS_USCC = "91370600000000027B"
FIRM_A = "913706000000000356"
FIRM_B = "913706000000000431"


def raw_log(log: Any) -> dict[str, Any]:
    """A receipt's log as ``eth_getLogs`` answers it (hex strings), for the indexer's decoder."""
    return {
        "topics": ["0x" + bytes(t).hex() for t in log["topics"]], "data": "0x" + bytes(log["data"]).hex(),
        "transactionHash": "0x" + bytes(log["transactionHash"]).hex(), "logIndex": hex(log["logIndex"]),
        "blockNumber": hex(log["blockNumber"]), "blockHash": "0x" + bytes(log["blockHash"]).hex(),
        "address": log["address"],
    }  # fmt: skip


@dataclass
class Registry(SignedContract):
    """A deployed LogisticsRegistry with message builders and sends."""

    decoder: EventDecoder = field(init=False, default_factory=lambda: EventDecoder(ABI, CONTRACT))

    def firm(self, registrar: Member, firm: str = FIRM_A, **fields: Any) -> dict[str, Any]:
        return {"registrar": registrar.id, "firm": subject_id(firm), "nonce": self.nonce()} | fields

    def courier(self, registrar: Member, courier: bytes, firm: str = FIRM_A, **fields: Any) -> dict[str, Any]:
        message = {"registrar": registrar.id, "courier": courier, "firm": subject_id(firm), "nonce": self.nonce()}
        return message | fields

    def evaluation(self, evaluator: Member, firm: str = FIRM_A, **fields: Any) -> dict[str, Any]:
        message = {
            "evaluator": evaluator.id, "firm": subject_id(firm), "period": 202611, "parcels": 12_000,
            "onTimeBps": 9650, "lossDamageBps": 25, "complaintsPer10k": 6, "violations": 0, "sanctions": 0,
            "nonce": self.nonce(),
        }  # fmt: skip
        return message | fields

    def rule(self, publisher: Member, version: int, text: bytes = b"rule", **fields: Any) -> dict[str, Any]:
        return {
            "publisher": publisher.id,
            "version": version,
            "ruleHash": keccak(text),
            "nonce": self.nonce(),
        } | (fields)

    def events(self, receipt: TxReceipt) -> list[DecodedEvent]:
        return [self.decoder.decode(raw_log(log)) for log in receipt["logs"]]


@pytest.fixture
def logistics_member(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> Member:
    """An admitted LOGISTICS member with one key."""
    return admit(consortium, regulators, LOGISTICS_USCC, "Express Ltd", Role.LOGISTICS)


@pytest.fixture
def reg(w3: Web3, sender: Sender, deploy: Callable[[str], Contract]) -> Registry:
    return Registry(w3, deploy(CONTRACT), sender, REGISTRY)


@pytest.fixture
def regulator(regulator_members: list[Member]) -> Member:
    return regulator_members[0]


def test_domain_matches_contract(reg: Registry) -> None:
    assert bytes(reg.contract.functions.domainSeparator().call()) == reg.domain.separator


def test_firm_registration_rules(reg: Registry, logistics_member: Member, platform_member: Member) -> None:
    message = reg.firm(logistics_member)
    receipt = reg.send("FirmRegistration", message, logistics_member.key)
    (event,) = reg.events(receipt)
    assert event.name == "FirmRegistered"
    assert event.args["id"] == "0x" + reg.domain.digest("FirmRegistration", message).hex()
    assert REGISTRY.from_event("FirmRegistration", event.args["registration"]) == message
    assert event.args["signer"] == logistics_member.key.address
    assert reg.contract.functions.isFirm(subject_id(FIRM_A)).call()
    assert not reg.contract.functions.isFirm(subject_id(FIRM_B)).call()
    with reverts("FirmAlreadyRegistered"):
        reg.send("FirmRegistration", reg.firm(logistics_member), logistics_member.key)
    with reverts("MissingRole") as info:  # a platform may not register firms
        reg.send("FirmRegistration", reg.firm(platform_member, FIRM_B), platform_member.key)
    assert info.value.args_[1] == int(Role.LOGISTICS)
    with reverts("IssuerMismatch"):  # signs for its own organisation, names another
        reg.send("FirmRegistration", reg.firm(platform_member, FIRM_B), logistics_member.key)
    with reverts("NotActiveSigner"):
        reg.send("FirmRegistration", reg.firm(logistics_member, FIRM_B), Account.create())
    with reverts("InvalidSignature"):
        reg.send("FirmRegistration", reg.firm(logistics_member, FIRM_B), logistics_member.key, b"\x01" * 64)
    with reverts("ZeroSubject"):
        reg.send("FirmRegistration", reg.firm(logistics_member, FIRM_B) | {"firm": bytes(32)}, logistics_member.key)


def test_courier_registration_rules(reg: Registry, logistics_member: Member, platform_member: Member) -> None:
    courier = keccak(b"salt" + b"110101199003071234")
    with reverts("FirmNotRegistered"):
        reg.send("CourierRegistration", reg.courier(logistics_member, courier), logistics_member.key)
    reg.send("FirmRegistration", reg.firm(logistics_member), logistics_member.key)
    reg.send("FirmRegistration", reg.firm(logistics_member, FIRM_B), logistics_member.key)
    first = reg.courier(logistics_member, courier)
    (event,) = reg.events(reg.send("CourierRegistration", first, logistics_member.key))
    assert REGISTRY.from_event("CourierRegistration", event.args["registration"]) == first
    assert event.args["firm"] == "0x" + subject_id(FIRM_A).hex()
    assert bytes(reg.contract.functions.courierFirm(courier).call()) == subject_id(FIRM_A)
    with reverts("CourierAlreadyRegistered"):
        reg.send("CourierRegistration", reg.courier(logistics_member, courier), logistics_member.key)
    with reverts("MissingRole"):
        reg.send("CourierRegistration", reg.courier(platform_member, courier, FIRM_B), platform_member.key)
    with reverts("ZeroSubject"):
        reg.send("CourierRegistration", reg.courier(logistics_member, bytes(32)), logistics_member.key)
    # the courier moves to firm B; the first registration replayed is a replay, whatever the courier's firm now
    reg.send("CourierRegistration", reg.courier(logistics_member, courier, FIRM_B), logistics_member.key)
    with reverts("AlreadyRecorded"):
        reg.send("CourierRegistration", first, logistics_member.key)


def test_evaluation_rules(reg: Registry, logistics_member: Member, platform_member: Member, regulator: Member) -> None:
    with reverts("FirmNotRegistered"):
        reg.send("Evaluation", reg.evaluation(platform_member), platform_member.key)
    reg.send("FirmRegistration", reg.firm(logistics_member), logistics_member.key)
    for period in (202613, 202600, 199912, 300001, 0):
        with reverts("InvalidPeriod") as info:
            reg.send("Evaluation", reg.evaluation(platform_member, period=period), platform_member.key)
        assert info.value.args_ == (period,)
    for name in ("onTimeBps", "lossDamageBps"):
        with reverts("InvalidRate") as info:
            reg.send("Evaluation", reg.evaluation(platform_member) | {name: 10_001}, platform_member.key)
        assert info.value.args_ == (10_001,)
    with reverts("NoParcels"):
        reg.send("Evaluation", reg.evaluation(platform_member, parcels=0), platform_member.key)
    with reverts("MissingRole") as info:  # a logistics member may not evaluate
        reg.send("Evaluation", reg.evaluation(logistics_member), logistics_member.key)
    assert info.value.args_[1] == int(Role.PLATFORM | Role.REGULATOR)
    message = reg.evaluation(platform_member, onTimeBps=10_000, lossDamageBps=10_000)  # the bounds are allowed
    (event,) = reg.events(reg.send("Evaluation", message, platform_member.key))
    assert event.name == "EvaluationRecorded"
    assert REGISTRY.from_event("Evaluation", event.args["evaluation"]) == message
    assert reg.contract.functions.hasEvaluation(platform_member.id, subject_id(FIRM_A), 202611).call()
    with reverts("EvaluationExists"):  # one evaluation per evaluator, firm and month, whatever the nonce
        reg.send("Evaluation", reg.evaluation(platform_member), platform_member.key)
    reg.send("Evaluation", reg.evaluation(regulator), regulator.key)  # another evaluator, same month
    reg.send("Evaluation", reg.evaluation(platform_member, period=202612), platform_member.key)


def test_rule_publication_rules(reg: Registry, regulator: Member, platform_member: Member) -> None:
    assert reg.contract.functions.latestRuleVersion().call() == 0
    with reverts("RuleVersion") as info:
        reg.send("RatingRule", reg.rule(regulator, 2), regulator.key)
    assert info.value.args_ == (2, 1)
    with reverts("MissingRole"):
        reg.send("RatingRule", reg.rule(platform_member, 1), platform_member.key)
    with reverts("ZeroRuleHash"):
        reg.send("RatingRule", reg.rule(regulator, 1, ruleHash=bytes(32)), regulator.key)
    first = reg.rule(regulator, 1, b"v1")
    (event,) = reg.events(reg.send("RatingRule", first, regulator.key))
    assert event.args["version"] == 1
    assert REGISTRY.from_event("RatingRule", event.args["rule"]) == first
    reg.send("RatingRule", reg.rule(regulator, 2, b"v2"), regulator.key)
    assert reg.contract.functions.latestRuleVersion().call() == 2
    assert bytes(reg.contract.functions.ruleHash(1).call()) == keccak(b"v1")
    assert bytes(reg.contract.functions.ruleHash(2).call()) == keccak(b"v2")
    assert bytes(reg.contract.functions.ruleHash(3).call()) == bytes(32)
    with reverts("RuleVersion") as info:
        reg.send("RatingRule", reg.rule(regulator, 2, b"v2 again"), regulator.key)
    assert info.value.args_ == (2, 3)


def test_batch_records_each_call_independently(
    reg: Registry, logistics_member: Member, platform_member: Member
) -> None:
    calls = [
        reg.calldata("FirmRegistration", reg.firm(logistics_member), logistics_member.key),
        reg.calldata("Evaluation", reg.evaluation(platform_member, period=202601), platform_member.key),
        reg.calldata("Evaluation", reg.evaluation(platform_member, period=202613), platform_member.key),
        reg.calldata("Evaluation", reg.evaluation(platform_member, period=202602), platform_member.key),
    ]
    receipt = reg.send_batch(calls)
    failed = reg.contract.events.BatchCallFailed().process_receipt(receipt, errors=DISCARD)
    assert [f["args"]["index"] for f in failed] == [2]
    assert decode_revert(ABI, failed[0]["args"]["reason"]) == ("InvalidPeriod", (202613,))
    names = [reg.decoder.decode(raw_log(log)).name for log in receipt["logs"] if log["address"] == reg.contract.address]
    assert names.count("EvaluationRecorded") == 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    period=st.integers(200001, 299912).filter(lambda p: 1 <= p % 100 <= 12),
    parcels=st.integers(1, 2**32 - 1),
    on_time=st.integers(0, 10_000),
    loss=st.integers(0, 10_000),
    complaints=st.integers(0, 2**32 - 1),
    violations=st.integers(0, 2**16 - 1),
    sanctions=st.integers(0, 2**16 - 1),
    nonce=st.integers(0, 2**256 - 1),
)
def test_evaluation_digests_agree(
    reg: Registry,
    logistics_member: Member,
    platform_member: Member,
    period: int,
    parcels: int,
    on_time: int,
    loss: int,
    complaints: int,
    violations: int,
    sanctions: int,
    nonce: int,
) -> None:
    message = {
        "evaluator": platform_member.id, "firm": subject_id(FIRM_A), "period": period, "parcels": parcels,
        "onTimeBps": on_time, "lossDamageBps": loss, "complaintsPer10k": complaints, "violations": violations,
        "sanctions": sanctions, "nonce": nonce,
    }  # fmt: skip
    ours = reg.domain.digest("Evaluation", message)
    assert ours == reference_digest(reg.domain.typed_data("Evaluation", message))
    normalised = REGISTRY.normalise("Evaluation", {k: "0x" + v.hex() if isinstance(v, bytes) else v
                                                   for k, v in message.items()})  # fmt: skip
    assert normalised == message
    # the contract computes the same id: it emits it
    if not reg.contract.functions.isFirm(subject_id(FIRM_A)).call():
        reg.send("FirmRegistration", reg.firm(logistics_member), logistics_member.key)
    assume(not reg.contract.functions.hasEvaluation(platform_member.id, subject_id(FIRM_A), period).call())
    (event,) = reg.events(reg.send("Evaluation", message, platform_member.key))
    assert event.args["id"] == "0x" + ours.hex()
    assert REGISTRY.from_event("Evaluation", event.args["evaluation"]) == message


def test_every_event_is_described() -> None:
    names = {i["name"] for i in ABI if i.get("type") == "event"}
    assert set(EVENTS) <= names


def test_events_project_into_the_index_and_roll_back(
    reg: Registry, logistics_member: Member, platform_member: Member, regulator: Member, tmp_path: Path
) -> None:
    from sqlalchemy import func, select

    from node_bridge import logistics_index
    from node_bridge.store import open_store

    courier = keccak(b"salt" + b"370602199003071235")
    receipts = [
        reg.send("FirmRegistration", reg.firm(logistics_member), logistics_member.key),
        reg.send("CourierRegistration", reg.courier(logistics_member, courier), logistics_member.key),
        reg.send("Evaluation", reg.evaluation(platform_member), platform_member.key),
        reg.send("RatingRule", reg.rule(regulator, 1), regulator.key),
        reg.send("Evaluation", reg.evaluation(platform_member, period=202612), platform_member.key),
    ]
    events = [e for r in receipts for e in reg.events(r)]
    times = {e.block_number: 1_767_225_600 + e.block_number for e in events}
    engine = open_store(f"sqlite:///{tmp_path / 'index.db'}")
    try:

        def counts() -> list[int]:
            with engine.connect() as connection:
                count = select(func.count())
                return [connection.execute(count.select_from(t)).scalar_one() for t in logistics_index.TABLES]

        with engine.begin() as connection:
            assert logistics_index.project(connection, events, times) == 5
            logistics_index.project(connection, events, times)  # replaying changes nothing
        assert counts() == [1, 1, 2, 1]
        with engine.connect() as connection:
            firm = connection.execute(select(logistics_index.FIRMS)).mappings().one()
            assert firm["code"] == FIRM_A and firm["registrar"] == "0x" + logistics_member.id.hex()
            courier_row = connection.execute(select(logistics_index.COURIERS)).mappings().one()
            assert courier_row["courier"] == "0x" + courier.hex()
            rule = connection.execute(select(logistics_index.RULES)).mappings().one()
            assert (rule["version"], rule["rule_hash"]) == (1, "0x" + keccak(b"rule").hex())
        with engine.begin() as connection:  # a reorg back to the block of the first evaluation
            logistics_index.rollback(connection, events[2].block_number)
        assert counts() == [1, 1, 1, 0]
    finally:
        engine.dispose()
