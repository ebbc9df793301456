"""The PaymentRegistry contract on the in-process EVM, driven through node_bridge.payments (the Python mirror), and the
PAYMENT_VIOLATION credit record kind on the CreditRegistry.

Every rule of ``bindAccount`` and ``fileSignal`` is triggered on purpose (role, signing organisation, duplicates,
period, rates, zero fields); the EIP-712 digests of Python, eth-account and the contract are compared on random
messages; and the transactions of a test are scanned for the plain account number (it must be nowhere on chain).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from credtrace.errors import ValidationFailed
from node_bridge import credit, payments
from node_bridge.compiler import artifact
from node_bridge.consortium import ConsortiumClient, Role
from node_bridge.credit import CreditDomain, Kind, RecordState
from node_bridge.eip712 import reference_digest
from node_bridge.payments import REGISTRY, account_hash, normalise_account
from node_bridge.transactions import Sender

from .conftest import Member, SignedContract, admit, reverts

CREDIT_ABI = artifact("CreditRegistry").abi
PAYMENT_USCC = "91370101456789126G"
PEPPER = bytes.fromhex("5e" * 32)
ACCOUNT = "6222 0212 3456 7890 123"  # a fictional card number, as a clerk would type it
MERCHANT = "91370102765432104K"
OTHER_MERCHANT = "913702023579135748"


@dataclass
class Registry(SignedContract):
    """A deployed PaymentRegistry with message builders and sends (their receipts kept, to scan them)."""

    receipts: list[TxReceipt] = field(init=False, default_factory=list)

    def binding(self, payment: Member | bytes, **fields: Any) -> dict[str, Any]:
        message = {
            "payment": payment.id if isinstance(payment, Member) else payment,
            "subject": credit.subject_id(MERCHANT), "accountHash": account_hash(PEPPER, ACCOUNT),
            "boundAt": 1_767_225_600, "nonce": self.nonce(),
        }  # fmt: skip
        return message | fields

    def signal(self, payment: Member | bytes, **fields: Any) -> dict[str, Any]:
        message = {
            "payment": payment.id if isinstance(payment, Member) else payment,
            "merchant": credit.subject_id(MERCHANT), "month": 202611, "orders": 1200, "refundBps": 350,
            "chargebackBps": 40, "nonce": self.nonce(),
        }  # fmt: skip
        return message | fields

    def send(
        self, type_name: str, message: dict[str, Any], signer: LocalAccount, signature: bytes | None = None
    ) -> TxReceipt:
        receipt = super().send(type_name, message, signer, signature)
        self.receipts.append(receipt)
        return receipt

    def bound(self, message: dict[str, Any]) -> bool:
        return bool(self.contract.functions.isBound(message["subject"], message["accountHash"]).call())


@pytest.fixture
def payment_member(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> Member:
    """An admitted PAYMENT member with two keys."""
    return admit(consortium, regulators, PAYMENT_USCC, "Pay Co", Role.PAYMENT, keys=2)


@pytest.fixture
def reg(w3: Web3, sender: Sender, deploy: Callable[[str], Contract]) -> Registry:
    return Registry(w3, deploy(REGISTRY.contract), sender, REGISTRY)


# the account hash


def test_account_numbers_are_normalised_and_checked_without_echoing_them() -> None:
    assert normalise_account(" 6222-0212 3456 7890 123 ") == "6222021234567890123"
    assert normalise_account("gb82 west 1234 5698 7654 32") == "GB82WEST12345698765432"  # the ISO 13616 example
    assert account_hash(PEPPER, ACCOUNT) == account_hash(PEPPER, "6222021234567890123")
    assert account_hash(PEPPER, ACCOUNT) != account_hash(bytes.fromhex("5f" * 32), ACCOUNT)  # keyed by the pepper
    bad = {
        "": "is empty",
        "1234567": "8 to 34 digits, got 7",
        "1" * 35: "8 to 34 digits, got 35",
        "6222_0212_3456": "may hold only",
        "6222０２１２34567890": "may hold only",  # full-width digits
        "12AB34567890123": "neither",
        "GB83WEST12345698765432": "check digits",
    }
    for value, reason in bad.items():
        with pytest.raises(ValidationFailed) as info:
            normalise_account(value, "settlement_account")
        assert info.value.field == "settlement_account" and reason in info.value.reason, value
        digits = "".join(c for c in value if c.isalnum())
        assert len(digits) < 4 or digits not in str(info.value), "the error repeats the number"
    with pytest.raises(ValidationFailed, match="account_pepper"):
        account_hash(b"short", ACCOUNT)


# deployment, digests, calldata


def test_registry_trusts_the_consortium_and_publishes_its_domain(reg: Registry, consortium: ConsortiumClient) -> None:
    assert reg.contract.functions.consortium().call() == consortium.contract.address
    assert reg.contract.functions.domainSeparator().call() == reg.domain.separator
    _, name, version, chain_id, verifying_contract, _, _ = reg.contract.functions.eip712Domain().call()
    assert (name, version) == ("credtrace PaymentRegistry", "1") == (REGISTRY.domain_name, "1")
    assert (chain_id, verifying_contract) == (reg.w3.eth.chain_id, reg.contract.address)


def test_calldata_is_the_abi_encoding_of_each_function(reg: Registry, payment_member: Member) -> None:
    signature = bytes(65)
    binding = reg.binding(payment_member)
    values = tuple(binding[f["name"]] for f in payments.BINDING.fields)
    expected = reg.contract.functions.bindAccount(values, signature)._encode_transaction_data()
    assert REGISTRY.calldata("AccountBinding", binding, signature) == HexBytes(expected)
    signal = reg.signal(payment_member)
    values = tuple(signal[f["name"]] for f in payments.SIGNAL.fields)
    expected = reg.contract.functions.fileSignal(values, signature)._encode_transaction_data()
    assert REGISTRY.calldata("PaymentSignal", signal, signature) == HexBytes(expected)


words = st.binary(min_size=32, max_size=32)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payment=words, subject=words, account=words, bound_at=st.integers(0, 2**64 - 1),
    nonce=st.integers(0, 2**256 - 1), month=st.integers(0, 2**32 - 1), orders=st.integers(0, 2**32 - 1),
    refund=st.integers(0, 2**16 - 1), chargeback=st.integers(0, 2**16 - 1),
)  # fmt: skip
def test_python_eth_account_and_the_contract_agree_on_digests(
    reg: Registry, payment: bytes, subject: bytes, account: bytes, bound_at: int, nonce: int, month: int,
    orders: int, refund: int, chargeback: int,
) -> None:  # fmt: skip
    binding = {"payment": payment, "subject": subject, "accountHash": account, "boundAt": bound_at, "nonce": nonce}
    digest = reg.domain.digest("AccountBinding", binding)
    assert digest == reference_digest(reg.domain.typed_data("AccountBinding", binding))
    values = tuple(binding[f["name"]] for f in payments.BINDING.fields)
    assert digest == reg.contract.functions.hashBinding(values).call()
    unbinding = {"payment": payment, "subject": subject, "accountHash": account, "unboundAt": bound_at, "nonce": nonce}
    digest = reg.domain.digest("AccountUnbinding", unbinding)
    assert digest == reference_digest(reg.domain.typed_data("AccountUnbinding", unbinding))
    values = tuple(unbinding[f["name"]] for f in payments.UNBINDING.fields)
    assert digest == reg.contract.functions.hashUnbinding(values).call()
    signal = {"payment": payment, "merchant": subject, "month": month, "orders": orders, "refundBps": refund,
              "chargebackBps": chargeback, "nonce": nonce}  # fmt: skip
    digest = reg.domain.digest("PaymentSignal", signal)
    assert digest == reference_digest(reg.domain.typed_data("PaymentSignal", signal))
    values = tuple(signal[f["name"]] for f in payments.SIGNAL.fields)
    assert digest == reg.contract.functions.hashSignal(values).call()


# bindAccount


def test_a_payment_member_binds_an_account_once(reg: Registry, payment_member: Member) -> None:
    binding = reg.binding(payment_member)
    receipt = reg.send("AccountBinding", binding, payment_member.keys[1])
    (event,) = reg.contract.events.AccountBound().process_receipt(receipt, errors=DISCARD)
    args = event["args"]
    assert args["id"] == reg.domain.digest("AccountBinding", binding)
    assert (args["subject"], args["accountHash"]) == (binding["subject"], binding["accountHash"])
    assert dict(args["binding"]) == binding and args["signer"] == payment_member.keys[1].address
    assert reg.contract.functions.isRecorded(args["id"]).call()
    assert reg.bound(binding)
    again = binding | {"nonce": binding["nonce"] + 100, "boundAt": 1_767_300_000}
    with reverts("BindingExists") as info:  # the pair, whatever the nonce or time
        reg.send("AccountBinding", again, payment_member.key)
    assert info.value.args_ == (binding["subject"], binding["accountHash"])
    with reverts("BindingExists"):  # a replay of the same message: the pair is checked first
        reg.send("AccountBinding", binding, payment_member.key)
    other = credit.subject_id(OTHER_MERCHANT)
    reg.send("AccountBinding", reg.binding(payment_member, subject=other), payment_member.key)  # shared: allowed
    second = account_hash(PEPPER, "6222021234567890999")
    reg.send("AccountBinding", reg.binding(payment_member, accountHash=second), payment_member.key)
    print(f"\nbindAccount gas: {receipt['gasUsed']}")


def test_only_a_payment_member_binds_accounts(
    reg: Registry, consortium: ConsortiumClient, regulators: list[LocalAccount], regulator_members: list[Member],
    platform_member: Member, certifier_member: Member, payment_member: Member,
) -> None:  # fmt: skip
    for member in (regulator_members[0], platform_member, certifier_member):
        binding = reg.binding(member)
        with reverts("MissingRole") as info:
            reg.send("AccountBinding", binding, member.key)
        assert info.value.args_ == (member.key.address.lower(), Role.PAYMENT)
        assert not reg.bound(binding)
    consortium.change_roles(payment_member.id, Role.AUDITOR, regulators[:2])  # roles are read when it binds
    with reverts("MissingRole"):
        reg.send("AccountBinding", reg.binding(payment_member), payment_member.key)


def test_the_payment_field_must_be_the_signers_organisation(
    reg: Registry, platform_member: Member, payment_member: Member
) -> None:
    for claimed in (platform_member.id, bytes(32)):
        with reverts("IssuerMismatch") as info:
            reg.send("AccountBinding", reg.binding(claimed), payment_member.key)
        assert info.value.args_ == (claimed, payment_member.id)
    stranger = Account.create()
    with reverts("NotActiveSigner"):
        reg.send("AccountBinding", reg.binding(payment_member), stranger)


def test_a_binding_needs_a_subject_and_an_account(reg: Registry, payment_member: Member) -> None:
    with reverts("InvalidSubject"):
        reg.send("AccountBinding", reg.binding(payment_member, subject=bytes(32)), payment_member.key)
    with reverts("InvalidAccountHash"):
        reg.send("AccountBinding", reg.binding(payment_member, accountHash=bytes(32)), payment_member.key)


# unbindAccount


def unbinding_of(binding: dict[str, Any], **fields: Any) -> dict[str, Any]:
    message = {"payment": binding["payment"], "subject": binding["subject"], "accountHash": binding["accountHash"],
               "unboundAt": binding["boundAt"] + 86400, "nonce": binding["nonce"] + 10_000}  # fmt: skip
    return message | fields


def test_the_binding_member_ends_a_binding_and_the_pair_may_be_bound_again(
    reg: Registry, payment_member: Member
) -> None:
    binding = reg.binding(payment_member)
    with reverts("NotBound") as info:
        reg.send("AccountUnbinding", unbinding_of(binding), payment_member.key)
    assert info.value.args_ == (binding["subject"], binding["accountHash"])
    reg.send("AccountBinding", binding, payment_member.key)
    assert reg.contract.functions.binderOf(binding["subject"], binding["accountHash"]).call() == payment_member.id
    unbinding = unbinding_of(binding)
    receipt = reg.send("AccountUnbinding", unbinding, payment_member.keys[1])
    (event,) = reg.contract.events.AccountUnbound().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["id"] == reg.domain.digest("AccountUnbinding", unbinding)
    assert dict(event["args"]["unbinding"]) == unbinding and event["args"]["accountHash"] == binding["accountHash"]
    assert not reg.bound(binding)
    assert reg.contract.functions.binderOf(binding["subject"], binding["accountHash"]).call() == bytes(32)
    with reverts("NotBound"):  # a second unbinding (or a replay of the first)
        reg.send("AccountUnbinding", unbinding_of(binding, nonce=1), payment_member.key)
    with reverts("NotBound"):
        reg.send("AccountUnbinding", unbinding, payment_member.key)
    again = binding | {"nonce": binding["nonce"] + 1, "boundAt": binding["boundAt"] + 2 * 86400}
    reg.send("AccountBinding", again, payment_member.key)  # bound again: a new binding
    assert reg.bound(again)
    with reverts("AlreadyRecorded"):  # the first unbinding, replayed against the new binding
        reg.send("AccountUnbinding", unbinding, payment_member.key)


def test_only_the_binding_member_ends_a_binding(
    reg: Registry, consortium: ConsortiumClient, regulators: list[LocalAccount], platform_member: Member,
    payment_member: Member,
) -> None:  # fmt: skip
    other = admit(consortium, regulators, "91370102765432104K", "Other Pay", Role.PAYMENT)
    binding = reg.binding(payment_member)
    reg.send("AccountBinding", binding, payment_member.key)
    with reverts("NotBinder") as info:
        reg.send("AccountUnbinding", unbinding_of(binding, payment=other.id), other.key)
    assert info.value.args_ == (other.id, payment_member.id)
    with reverts("IssuerMismatch"):  # naming the binder does not help another member's key
        reg.send("AccountUnbinding", unbinding_of(binding), other.key)
    consortium.change_roles(payment_member.id, Role.PLATFORM, regulators[:2])
    with reverts("MissingRole"):  # nor does having been the binder, once the member is no longer PAYMENT
        reg.send("AccountUnbinding", unbinding_of(binding), payment_member.key)
    assert reg.bound(binding)


# relateSubjects


def test_a_payment_member_or_a_regulator_relates_two_subjects_once(
    reg: Registry, payment_member: Member, regulator_members: list[Member], platform_member: Member
) -> None:
    a, b, c = (credit.subject_id(code) for code in (MERCHANT, OTHER_MERCHANT, "91370103776655442K"))
    relation = {"declarant": payment_member.id, "subject": a, "related": b, "nonce": 1}
    receipt = reg.send("SubjectRelation", relation, payment_member.key)
    (event,) = reg.contract.events.SubjectsRelated().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["id"] == reg.domain.digest("SubjectRelation", relation)
    assert dict(event["args"]["relation"]) == relation
    assert reg.contract.functions.areRelated(a, b).call() and reg.contract.functions.areRelated(b, a).call()
    assert not reg.contract.functions.areRelated(a, c).call()
    regulator = regulator_members[0]
    with reverts("RelationExists") as info:  # in either order, by anyone
        reg.send("SubjectRelation", {"declarant": regulator.id, "subject": b, "related": a, "nonce": 2}, regulator.key)
    assert info.value.args_ == (b, a)
    reg.send("SubjectRelation", {"declarant": regulator.id, "subject": a, "related": c, "nonce": 3}, regulator.key)
    with reverts("MissingRole") as info:
        reg.send("SubjectRelation", {"declarant": platform_member.id, "subject": b, "related": c, "nonce": 4},
                 platform_member.key)  # fmt: skip
    assert info.value.args_ == (platform_member.key.address.lower(), Role.PAYMENT | Role.REGULATOR)
    for same in (
        {"subject": a, "related": a},
        {"subject": bytes(32), "related": b},
        {"subject": b, "related": bytes(32)},
    ):
        with reverts("InvalidSubject"):
            reg.send("SubjectRelation", {"declarant": payment_member.id, "nonce": 5} | same, payment_member.key)
    values = tuple(relation[f["name"]] for f in payments.RELATION.fields)
    assert reg.contract.functions.hashRelation(values).call() == reg.domain.digest("SubjectRelation", relation)
    assert reference_digest(reg.domain.typed_data("SubjectRelation", relation)) == reg.domain.digest(
        "SubjectRelation", relation
    )


# fileSignal


def test_a_payment_member_files_one_signal_per_merchant_and_month(reg: Registry, payment_member: Member) -> None:
    signal = reg.signal(payment_member)
    receipt = reg.send("PaymentSignal", signal, payment_member.key)
    (event,) = reg.contract.events.PaymentSignalFiled().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["id"] == reg.domain.digest("PaymentSignal", signal)
    assert dict(event["args"]["signal"]) == signal and event["args"]["merchant"] == signal["merchant"]
    assert reg.contract.functions.hasSignal(signal["payment"], signal["merchant"], 202611).call()
    with reverts("SignalExists") as info:
        reg.send("PaymentSignal", signal | {"nonce": 999, "orders": 1}, payment_member.key)
    assert info.value.args_ == (payment_member.id, signal["merchant"], 202611)
    reg.send("PaymentSignal", reg.signal(payment_member, month=202612), payment_member.key)
    reg.send(
        "PaymentSignal", reg.signal(payment_member, merchant=credit.subject_id(OTHER_MERCHANT)), payment_member.key
    )


@pytest.mark.parametrize("month", [0, 199912, 300001, 202600, 202613, 20261, 2026110])
def test_a_signal_names_a_real_month(reg: Registry, payment_member: Member, month: int) -> None:
    with reverts("InvalidPeriod") as info:
        reg.send("PaymentSignal", reg.signal(payment_member, month=month), payment_member.key)
    assert info.value.args_ == (month,)
    with pytest.raises(ValidationFailed, match="YYYYMM"):
        payments.check_month(month)


def test_rates_are_at_most_ten_thousand_basis_points(reg: Registry, payment_member: Member) -> None:
    reg.send("PaymentSignal", reg.signal(payment_member, refundBps=10_000, chargebackBps=10_000), payment_member.key)
    for fields in ({"refundBps": 10_001}, {"chargebackBps": 65_535}):
        with reverts("InvalidRate") as info:
            reg.send("PaymentSignal", reg.signal(payment_member, month=202612, **fields), payment_member.key)
        assert info.value.args_ == tuple(fields.values())


def test_only_a_payment_member_files_signals(reg: Registry, platform_member: Member, payment_member: Member) -> None:
    with reverts("MissingRole"):
        reg.send("PaymentSignal", reg.signal(platform_member), platform_member.key)
    with reverts("IssuerMismatch"):
        reg.send("PaymentSignal", reg.signal(platform_member), payment_member.key)


# the account number is nowhere on chain


def test_the_plain_account_number_never_reaches_the_chain(reg: Registry, payment_member: Member) -> None:
    reg.send("AccountBinding", reg.binding(payment_member), payment_member.key)
    reg.send("AccountBinding", reg.binding(payment_member, subject=credit.subject_id(OTHER_MERCHANT)),
             payment_member.key)  # fmt: skip
    normalised = normalise_account(ACCOUNT)
    forms = [normalised.encode(), ACCOUNT.encode(), int(normalised).to_bytes(8, "big"), normalised.encode("utf-16-be")]
    assert len(reg.receipts) == 2
    for receipt in reg.receipts:
        tx = reg.w3.eth.get_transaction(receipt["transactionHash"])
        blobs = [bytes(tx["input"])] + [bytes(log["data"]) + b"".join(log["topics"]) for log in receipt["logs"]]
        for blob in blobs:
            for form in forms:
                assert form not in blob
            assert normalised not in blob.hex()  # nor as the hex of a number-like field


# the PAYMENT_VIOLATION credit record kind


def test_a_payment_violation_record_is_signed_by_a_payment_member_or_a_regulator(
    w3: Web3, sender: Sender, registry: Contract, payment_member: Member, regulator_members: list[Member],
    platform_member: Member, certifier_member: Member,
) -> None:  # fmt: skip
    domain = CreditDomain(w3.eth.chain_id, registry.address)

    def issue(member: Member, nonce: int) -> tuple[dict[str, Any], TxReceipt]:
        record = credit.example_record(Kind.PAYMENT_VIOLATION, member.id, nonce)
        signature = domain.sign_record(member.key, record)
        return record, sender.transact_raw(registry.address, credit.calldata("CreditRecord", record, signature),
                                           CREDIT_ABI)  # fmt: skip

    def state(record: dict[str, Any]) -> RecordState:
        return RecordState(registry.functions.recordState(credit.as_tuple("CreditRecord", record)).call())

    assert credit.REQUIRED_ROLES[Kind.PAYMENT_VIOLATION] == Role.PAYMENT | Role.REGULATOR
    for member in (payment_member, regulator_members[0]):
        record, receipt = issue(member, 1)
        (event,) = registry.events.RecordIssued().process_receipt(receipt, errors=DISCARD)
        assert event["args"]["record"]["kind"] == Kind.PAYMENT_VIOLATION == 11
        assert state(record) is RecordState.ACTIVE
    for member in (platform_member, certifier_member):
        with reverts("RoleNotAllowed") as info:
            issue(member, 1)
        assert info.value.args_ == (member.key.address.lower(), 11, Role.PAYMENT | Role.REGULATOR)
    assert not registry.functions.isBlacklisted(credit.subject_id(credit.EXAMPLE_SUBJECT)).call()  # not a list kind
