"""The ProtectionRegistry contract on the in-process EVM, driven through node_bridge.protection (the Python mirror).

Every rule of ``declareFund`` and ``recordCaseStep`` is triggered on purpose, and each message is first run through
the Python rules (:func:`node_bridge.protection.advance`, :func:`next_fund_version`) the write API uses: the test
asserts that both refuse with the same custom error, or both accept. EIP-712 digests of Python, eth-account and the
contract are compared on random messages (unicode custodians included).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from credtrace.errors import ContractReverted
from node_bridge.consortium import ConsortiumClient, Role
from node_bridge.credit import subject_id
from node_bridge.eip712 import reference_digest
from node_bridge.protection import (
    MAX_AMOUNT,
    REGISTRY,
    ZERO32,
    CaseState,
    FundState,
    RuleBroken,
    Step,
    advance,
    consumer_commitment,
    next_fund_version,
)
from node_bridge.transactions import Sender

from .conftest import Member, SignedContract, admit, reverts

OTHER_PLATFORM_USCC = "91330100000000020B"
MERCHANT = subject_id("91370102765432104K")
OTHER_MERCHANT = subject_id("913702023579135748")
T0 = 1_767_225_600
DAY = 86400


@dataclass
class Registry(SignedContract):
    """A deployed ProtectionRegistry with message builders and sends that check the Python mirror agrees."""

    _cases: Iterator[int] = field(init=False, default_factory=lambda: itertools.count(1))
    funds: dict[bytes, FundState] = field(init=False, default_factory=dict)
    cases: dict[bytes, CaseState] = field(init=False, default_factory=dict)

    def fund(self, platform: Member, fund_id: bytes, version: int = 1, **fields: Any) -> dict[str, Any]:
        message = {
            "platform": platform.id, "fundId": fund_id, "version": version, "amount": 50_000_000_00,
            "currency": "CNY", "custodian": "Bank of Qingdao, escrow account", "periodStart": T0,
            "periodEnd": T0 + 365 * DAY, "nonce": self.nonce(),
        }  # fmt: skip
        return message | fields

    def new_case(self) -> bytes:
        return Web3.keccak(text=f"case {next(self._cases)}")

    def step(self, platform: Member, case_id: bytes, step: Step, amount: int = 0, **fields: Any) -> dict[str, Any]:
        message = {
            "platform": platform.id, "caseId": case_id, "step": int(step), "merchant": MERCHANT,
            "consumer": consumer_commitment(b"s" * 16, "buyer-8812"), "amount": amount,
            "dueBy": T0 + 7 * DAY if step is Step.COMPLAINT else 0, "traceCode": ZERO32, "decision": ZERO32,
            "at": T0 + int(step) * DAY, "nonce": self.nonce(),
        }  # fmt: skip
        return message | fields

    def send(
        self, kind: str, message: dict[str, Any], signer: LocalAccount, signature: bytes | None = None
    ) -> TxReceipt:
        """Send a signed message; the Python rules must predict the contract's answer (accepted or which error)."""
        expected: str | None = None
        if kind == "FundDeclaration":
            key = message["fundId"]
            try:
                after_fund = next_fund_version(self.funds.get(key, FundState()), message)
            except RuleBroken as exc:
                expected = exc.error
        else:
            key = message["caseId"]
            try:
                after_case = advance(self.cases.get(key, CaseState()), message)
            except RuleBroken as exc:
                expected = exc.error
        try:
            receipt = super().send(kind, message, signer, signature)
        except ContractReverted as exc:
            if exc.error in ("MissingRole", "IssuerMismatch", "NotActiveSigner", "AlreadyRecorded"):
                raise  # the signer's standing: the API checks it before the rules
            assert exc.error == expected, f"contract says {exc.error}, Python rules said {expected}"
            raise
        assert expected is None, f"contract accepted what the Python rules refuse ({expected})"
        if kind == "FundDeclaration":
            self.funds[key] = after_fund
        else:
            self.cases[key] = after_case
        return receipt

    def case_of(self, case_id: bytes) -> tuple[Any, ...]:
        return tuple(self.contract.functions.caseOf(case_id).call())


@pytest.fixture
def reg(w3: Web3, sender: Sender, deploy: Callable[[str], Contract]) -> Registry:
    return Registry(w3, deploy(REGISTRY.contract), sender, REGISTRY)


@pytest.fixture
def other_platform(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> Member:
    return admit(consortium, regulators, OTHER_PLATFORM_USCC, "Other Shop Ltd", Role.PLATFORM)


# funds


def test_declare_and_update_a_fund(reg: Registry, platform_member: Member) -> None:
    fund_id = Web3.keccak(text="fund 2027")
    first = reg.fund(platform_member, fund_id, custodian="青岛银行 escrow")
    receipt = reg.send("FundDeclaration", first, platform_member.key)
    print(f"gas of a fund declaration: {receipt['gasUsed']}")  # shown with -s
    (event,) = reg.contract.events.FundDeclared().process_receipt(receipt)
    assert event["args"]["id"] == reg.domain.digest("FundDeclaration", first)
    assert event["args"]["declaration"]["custodian"] == "青岛银行 escrow"
    assert event["args"]["signer"] == platform_member.key.address
    reg.send("FundDeclaration", reg.fund(platform_member, fund_id, 2, amount=80_000_000_00), platform_member.keys[1])
    assert tuple(reg.contract.functions.fundOf(fund_id).call()) == (2, platform_member.id)


def test_fund_versions_are_consecutive_and_the_platforms_own(
    reg: Registry, platform_member: Member, other_platform: Member
) -> None:
    fund_id = Web3.keccak(text="fund A")
    with reverts("FundVersion"):  # an update of a fund never declared
        reg.send("FundDeclaration", reg.fund(platform_member, fund_id, 2), platform_member.key)
    reg.send("FundDeclaration", reg.fund(platform_member, fund_id), platform_member.key)
    with reverts("FundVersion"):  # declared twice
        reg.send("FundDeclaration", reg.fund(platform_member, fund_id, 1), platform_member.key)
    with reverts("FundVersion"):  # a skipped version
        reg.send("FundDeclaration", reg.fund(platform_member, fund_id, 3), platform_member.key)
    with reverts("FundPlatformMismatch"):  # another platform updating it
        reg.send("FundDeclaration", reg.fund(other_platform, fund_id, 2), other_platform.key)
    reg.send("FundDeclaration", reg.fund(other_platform, Web3.keccak(text="fund B")), other_platform.key)
    assert reg.contract.functions.fundOf(fund_id).call()[0] == 1


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"periodEnd": T0}, "InvalidPeriod"),
        ({"periodEnd": T0 - 1}, "InvalidPeriod"),
        ({"currency": "cny"}, "InvalidCurrency"),
        ({"currency": "CNYX"}, "InvalidCurrency"),
        ({"currency": "CN\n"}, "InvalidCurrency"),
        ({"currency": "CNY\n"}, "InvalidCurrency"),
        ({"currency": ""}, "InvalidCurrency"),
        ({"custodian": ""}, "EmptyCustodian"),
        ({"amount": 0}, "InvalidAmount"),
        ({"amount": MAX_AMOUNT + 1}, "InvalidAmount"),
    ],
)
def test_fund_shape(reg: Registry, platform_member: Member, fields: dict[str, Any], error: str) -> None:
    with reverts(error):
        reg.send("FundDeclaration", reg.fund(platform_member, Web3.keccak(text="f"), **fields), platform_member.key)


def test_fund_signers(
    reg: Registry, platform_member: Member, certifier_member: Member, regulator_members: list[Member]
) -> None:
    fund_id = Web3.keccak(text="fund S")
    with reverts("MissingRole"):  # a certifier signing its own "fund"
        reg.send("FundDeclaration", reg.fund(certifier_member, fund_id), certifier_member.key)
    with reverts("MissingRole"):  # a regulator may not declare a platform's fund either
        reg.send("FundDeclaration", reg.fund(regulator_members[0], fund_id), regulator_members[0].key)
    with reverts("IssuerMismatch"):  # signed by another organisation's key
        reg.send("FundDeclaration", reg.fund(platform_member, fund_id), certifier_member.key)
    with reverts("NotActiveSigner"):
        reg.send("FundDeclaration", reg.fund(platform_member, fund_id), Account.create())
    message = reg.fund(platform_member, fund_id)
    reg.send("FundDeclaration", message, platform_member.key)
    with reverts("AlreadyRecorded"):  # a replay
        reg.send("FundDeclaration", message, platform_member.key)


# cases


def test_a_case_from_complaint_to_closed(reg: Registry, platform_member: Member) -> None:
    case = reg.new_case()
    trace_code = Web3.keccak(text="/01/09506000134352/10/L1/21/S000001")
    complaint = reg.step(platform_member, case, Step.COMPLAINT, 12_000, traceCode=trace_code)
    opened = reg.send("CaseStep", complaint, platform_member.key)
    paid = reg.send("CaseStep", reg.step(platform_member, case, Step.COMPENSATED, 10_000), platform_member.key)
    print(f"gas of a COMPLAINT: {opened['gasUsed']}, of a COMPENSATED step: {paid['gasUsed']}")  # shown with -s
    assert reg.case_of(case) == (platform_member.id, MERCHANT, 1, 10_000, 0, T0 + DAY)
    reg.send("CaseStep", reg.step(platform_member, case, Step.RECOVERED, 4_000), platform_member.key)
    decision = Web3.keccak(text="a penalty record")
    reg.send("CaseStep", reg.step(platform_member, case, Step.RECOVERED, 6_000, decision=decision), platform_member.key)
    receipt = reg.send("CaseStep", reg.step(platform_member, case, Step.CLOSED), platform_member.key)
    print(f"gas of a CLOSED step: {receipt['gasUsed']}")  # shown with -s
    assert reg.case_of(case) == (platform_member.id, MERCHANT, 3, 10_000, 10_000, T0 + 3 * DAY)
    (event,) = reg.contract.events.CaseStepRecorded().process_receipt(receipt)
    assert event["args"]["caseId"] == case and event["args"]["step"]["step"] == int(Step.CLOSED)


def test_a_rejected_complaint_is_closed_directly(reg: Registry, platform_member: Member) -> None:
    case = reg.new_case()
    reg.send("CaseStep", reg.step(platform_member, case, Step.COMPLAINT, 500), platform_member.key)
    reg.send("CaseStep", reg.step(platform_member, case, Step.CLOSED), platform_member.key)
    with reverts("StepOutOfOrder"):  # nothing after CLOSED
        reg.send("CaseStep", reg.step(platform_member, case, Step.COMPENSATED, 500), platform_member.key)
    with reverts("StepOutOfOrder"):
        reg.send("CaseStep", reg.step(platform_member, case, Step.CLOSED), platform_member.key)
    with reverts("CaseExists"):  # a closed case is not reopened
        reg.send("CaseStep", reg.step(platform_member, case, Step.COMPLAINT, 500), platform_member.key)


def test_steps_out_of_order(reg: Registry, platform_member: Member) -> None:
    case = reg.new_case()
    with reverts("UnknownCase"):
        reg.send("CaseStep", reg.step(platform_member, case, Step.COMPENSATED, 100), platform_member.key)
    reg.send("CaseStep", reg.step(platform_member, case, Step.COMPLAINT, 100), platform_member.key)
    with reverts("CaseExists"):
        reg.send("CaseStep", reg.step(platform_member, case, Step.COMPLAINT, 100), platform_member.key)
    with reverts("StepOutOfOrder") as info:  # recovery before compensation
        reg.send("CaseStep", reg.step(platform_member, case, Step.RECOVERED, 100), platform_member.key)
    assert info.value.args_[1:] == (0, 2)
    reg.send("CaseStep", reg.step(platform_member, case, Step.COMPENSATED, 100), platform_member.key)
    with reverts("StepOutOfOrder"):  # compensated twice
        reg.send("CaseStep", reg.step(platform_member, case, Step.COMPENSATED, 100), platform_member.key)
    with reverts("InvalidStep"):
        reg.send("CaseStep", reg.step(platform_member, case, Step.CLOSED) | {"step": 4}, platform_member.key)


def test_recovery_never_exceeds_compensation(reg: Registry, platform_member: Member) -> None:
    case = reg.new_case()
    reg.send("CaseStep", reg.step(platform_member, case, Step.COMPLAINT, 9_000), platform_member.key)
    reg.send("CaseStep", reg.step(platform_member, case, Step.COMPENSATED, 8_000), platform_member.key)
    with reverts("RecoveryExceedsCompensation") as info:
        reg.send("CaseStep", reg.step(platform_member, case, Step.RECOVERED, 8_001), platform_member.key)
    assert info.value.args_[1:] == (8_000, 8_001)
    reg.send("CaseStep", reg.step(platform_member, case, Step.RECOVERED, 5_000), platform_member.key)
    with reverts("RecoveryExceedsCompensation"):  # cumulative: 5,000 + 3,001 > 8,000
        reg.send("CaseStep", reg.step(platform_member, case, Step.RECOVERED, 3_001), platform_member.key)
    with reverts("InvalidAmount"):
        reg.send("CaseStep", reg.step(platform_member, case, Step.RECOVERED, 0), platform_member.key)
    reg.send("CaseStep", reg.step(platform_member, case, Step.RECOVERED, 3_000), platform_member.key)
    with reverts("InvalidAmount"):  # a closing step carries no amount
        reg.send("CaseStep", reg.step(platform_member, case, Step.CLOSED, 1), platform_member.key)


def test_only_the_cases_platform_continues_it_against_its_merchant(
    reg: Registry, platform_member: Member, other_platform: Member, regulator_members: list[Member]
) -> None:
    case = reg.new_case()
    reg.send("CaseStep", reg.step(platform_member, case, Step.COMPLAINT, 100), platform_member.key)
    with reverts("CasePlatformMismatch"):
        reg.send("CaseStep", reg.step(other_platform, case, Step.COMPENSATED, 100), other_platform.key)
    with reverts("CaseMerchantMismatch"):
        step = reg.step(platform_member, case, Step.COMPENSATED, 100, merchant=OTHER_MERCHANT)
        reg.send("CaseStep", step, platform_member.key)
    with reverts("MissingRole"):  # a regulator does not record a platform's steps
        reg.send("CaseStep", reg.step(regulator_members[0], case, Step.COMPENSATED, 100), regulator_members[0].key)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"merchant": ZERO32}, "ZeroMerchant"),
        ({"amount": 0}, "InvalidAmount"),
        ({"amount": MAX_AMOUNT + 1}, "InvalidAmount"),
        ({"dueBy": T0 - 1}, "StepTimeBeforePrevious"),
    ],
)
def test_complaint_shape(reg: Registry, platform_member: Member, fields: dict[str, Any], error: str) -> None:
    with reverts(error):
        step = reg.step(platform_member, reg.new_case(), Step.COMPLAINT, **({"amount": 100} | fields))
        reg.send("CaseStep", step, platform_member.key)


def test_a_step_before_the_previous_one(reg: Registry, platform_member: Member) -> None:
    case = reg.new_case()
    reg.send("CaseStep", reg.step(platform_member, case, Step.COMPLAINT, 100), platform_member.key)
    with reverts("StepTimeBeforePrevious"):
        reg.send("CaseStep", reg.step(platform_member, case, Step.COMPENSATED, 100, at=T0 - 1), platform_member.key)
    reg.send("CaseStep", reg.step(platform_member, case, Step.COMPENSATED, 100, at=T0), platform_member.key)


def test_batched_steps_follow_each_other(reg: Registry, platform_member: Member) -> None:
    """A relayer's batch: the steps of one case in one transaction, each checked against the one before."""

    case = reg.new_case()
    messages = [
        reg.step(platform_member, case, Step.COMPLAINT, 300),
        reg.step(platform_member, case, Step.COMPENSATED, 300),
        reg.step(platform_member, case, Step.RECOVERED, 400),  # fails: more than paid
        reg.step(platform_member, case, Step.RECOVERED, 300),
    ]
    calls = [reg.calldata("CaseStep", m, platform_member.key) for m in messages]
    receipt = reg.send_batch(calls)
    failed = reg.contract.events.BatchCallFailed().process_receipt(receipt, errors=DISCARD)
    assert [f["args"]["index"] for f in failed] == [2]
    assert reg.case_of(case)[2:5] == (2, 300, 300)


# digests

_bytes32 = st.binary(min_size=32, max_size=32)
_u64 = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fund=st.fixed_dictionaries(
        {
            "platform": _bytes32,
            "fundId": _bytes32,
            "version": st.integers(0, 2**32 - 1),
            "amount": st.integers(0, 2**256 - 1),
            "currency": st.text(max_size=5),
            "custodian": st.text(max_size=40),
            "periodStart": _u64,
            "periodEnd": _u64,
            "nonce": st.integers(0, 2**256 - 1),
        }
    ),
    step=st.fixed_dictionaries(
        {
            "platform": _bytes32,
            "caseId": _bytes32,
            "step": st.integers(0, 255),
            "merchant": _bytes32,
            "consumer": _bytes32,
            "amount": st.integers(0, 2**256 - 1),
            "dueBy": _u64,
            "traceCode": _bytes32,
            "decision": _bytes32,
            "at": _u64,
            "nonce": st.integers(0, 2**256 - 1),
        }
    ),
)
def test_digests_agree(reg: Registry, fund: dict[str, Any], step: dict[str, Any]) -> None:
    for kind, message in (("FundDeclaration", fund), ("CaseStep", step)):
        ours = reg.domain.digest(kind, message)
        assert reference_digest(reg.domain.typed_data(kind, message)) == ours
        values = tuple(message[f["name"]] for f in REGISTRY.type(kind).fields)
        view = (
            reg.contract.functions.hashFundDeclaration
            if kind == "FundDeclaration"
            else reg.contract.functions.hashCaseStep
        )
        assert bytes(view(values).call()) == ours
    assert bytes(reg.contract.functions.domainSeparator().call()) == reg.domain.separator
