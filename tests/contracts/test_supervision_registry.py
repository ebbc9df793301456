"""The SupervisionRegistry on the in-process EVM: cases, referrals, joint decisions, each rule's custom error.

Messages are built and signed with ``node_bridge.supervision`` (the Python mirror the API uses), so these tests
also prove that both sides compute the same digests. Departments are the consortium fixture's three regulators.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from node_bridge.supervision import CONTRACT, REGISTRY, ZERO32, Action, Standing, case_id, note_hash
from node_bridge.transactions import Sender

from .conftest import Member, SignedContract, reverts

SUBJECT = b"91370102765432104K".ljust(32, b"\0")
OTHER_SUBJECT = b"913702023579135748".ljust(32, b"\0")
DAY = 86400


@dataclass
class Desk(SignedContract):
    """A deployed SupervisionRegistry and helpers to sign and send entries and joint decisions."""

    departments: list[Member]

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel_to(self, timestamp: int) -> None:
        self.w3.provider.ethereum_tester.time_travel(timestamp + 1)  # type: ignore[attr-defined]

    def entry(self, who: Member, case: bytes, action: Action, **fields: Any) -> dict[str, Any]:
        message = {
            "department": who.id, "caseId": case, "action": int(action), "subject": ZERO32, "counterpart": ZERO32,
            "deadline": 0, "documentHash": ZERO32, "noteHash": ZERO32, "ref": ZERO32, "at": self.now(),
            "nonce": self.nonce(),
        }  # fmt: skip
        message.update(fields)
        return message

    def record(self, who: Member, case: bytes, action: Action, *, key: LocalAccount | None = None, **f: Any) -> bytes:
        """Sign (with ``key``, default the department's) and record an entry; returns its id."""
        message = self.entry(who, case, action, **f)
        receipt = self.send("CaseEntry", message, key or who.key)
        events = self.contract.events.CaseEntryRecorded().process_receipt(receipt, errors=DISCARD)
        assert len(events) == 1
        entry_id = bytes(events[0]["args"]["id"])
        assert entry_id == self.domain.digest("CaseEntry", message)
        return entry_id

    def decision(self, case: bytes, departments: list[Member], **fields: Any) -> dict[str, Any]:
        now = self.now()
        message = {
            "caseId": case, "subject": SUBJECT, "kind": 2, "tier": 2, "measures": 5,
            "documentHash": Web3.keccak(text="joint decision document"), "effectiveAt": now,
            "validUntil": now + 365 * DAY, "departments": [d.id for d in departments], "nonce": self.nonce(),
        }  # fmt: skip
        message.update(fields)
        return message

    def cosign(self, message: dict[str, Any], key: LocalAccount) -> TxReceipt:
        return self.send("JointDecision", message, key)

    def standing(self, case: bytes, who: Member) -> Standing:
        return Standing(self.contract.functions.departmentState(case, who.id).call())

    def opened(self, reference: str, opener: Member | None = None, subject: bytes = SUBJECT) -> bytes:
        case = case_id(reference)
        self.record(opener or self.departments[0], case, Action.OPEN, subject=subject, noteHash=note_hash("summary"))
        return case

    def referred(self, case: bytes, by: Member, to: Member, days: int = 7) -> bytes:
        return self.record(by, case, Action.REFER, counterpart=to.id, deadline=self.now() + days * DAY)


@pytest.fixture
def desk(w3: Web3, sender: Sender, deploy: Callable[[str], Contract], regulator_members: list[Member]) -> Desk:
    return Desk(w3, deploy(CONTRACT), sender, REGISTRY, regulator_members)


def test_python_and_solidity_hash_the_same_messages(desk: Desk) -> None:
    assert desk.contract.functions.domainSeparator().call() == desk.domain.separator

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        words=st.lists(st.binary(min_size=32, max_size=32), min_size=7, max_size=7),
        small=st.lists(st.integers(0, 2**64 - 1), min_size=4, max_size=4),
        action=st.integers(0, 255),
        departments=st.lists(st.binary(min_size=32, max_size=32), max_size=5),
        nonce=st.integers(0, 2**256 - 1),
    )
    def agree(words: list[bytes], small: list[int], action: int, departments: list[bytes], nonce: int) -> None:
        entry = dict(
            zip(
                ("department", "caseId", "subject", "counterpart", "documentHash", "noteHash", "ref"),
                words,
                strict=True,
            )
        )
        entry.update(action=action, deadline=small[0], at=small[1], nonce=nonce)
        as_tuple = tuple(entry[f["name"]] for f in REGISTRY.type("CaseEntry").fields)
        assert desk.contract.functions.hashCaseEntry(as_tuple).call() == desk.domain.digest("CaseEntry", entry)
        decision = {
            "caseId": words[0], "subject": words[1], "kind": action, "tier": small[2] % 256,
            "measures": small[3] % 2**32, "documentHash": words[2], "effectiveAt": small[0], "validUntil": small[1],
            "departments": departments, "nonce": nonce,
        }  # fmt: skip
        values = tuple(decision[f["name"]] for f in REGISTRY.type("JointDecision").fields)
        assert desk.contract.functions.hashJointDecision(values).call() == desk.domain.digest("JointDecision", decision)

    agree()


def test_a_referred_case_ends_in_an_active_joint_decision(desk: Desk) -> None:
    market, credit_office, commerce = desk.departments
    case = desk.opened("MR-2026-0017")
    assert desk.contract.functions.caseState(case).call() == [SUBJECT, market.id, False]
    assert desk.standing(case, market) == Standing.ON_CASE

    referral = desk.referred(case, market, credit_office)
    assert desk.standing(case, credit_office) == Standing.REFERRED
    deadline = desk.contract.functions.referral(referral).call()[2]
    ack_id = desk.record(credit_office, case, Action.ACKNOWLEDGE, ref=referral)
    assert desk.contract.functions.referral(referral).call() == [case, credit_office.id, deadline, True]
    assert desk.standing(case, credit_office) == Standing.ON_CASE
    assert ack_id != referral

    desk.record(credit_office, case, Action.EVIDENCE, documentHash=Web3.keccak(text="pdf"), noteHash=note_hash("x"))
    desk.record(market, case, Action.FINDING, noteHash=note_hash("fake reviews bought from a click farm"))
    desk.record(market, case, Action.LINK_DECISION, subject=SUBJECT, ref=Web3.keccak(text="a credit record id"))

    decision = desk.decision(case, [market, credit_office])
    decision_id = desk.domain.digest("JointDecision", decision)
    receipt = desk.cosign(decision, market.key)
    signed = desk.contract.events.JointDecisionSigned().process_receipt(receipt, errors=DISCARD)
    assert [(e["args"]["department"], e["args"]["remaining"]) for e in signed] == [(market.id, 1)]
    assert bytes(signed[0]["args"]["id"]) == decision_id
    assert not desk.contract.events.JointDecisionActive().process_receipt(receipt, errors=DISCARD)
    assert desk.contract.functions.jointDecisionState(decision_id).call() == [0b01, False]  # waits for credit office

    receipt = desk.cosign(decision, credit_office.key)
    active = desk.contract.events.JointDecisionActive().process_receipt(receipt, errors=DISCARD)
    assert [bytes(e["args"]["id"]) for e in active] == [decision_id]
    assert desk.contract.functions.jointDecisionState(decision_id).call() == [0b11, True]

    with reverts("NotOpener"):  # only the opening department closes the case
        desk.record(credit_office, case, Action.CLOSE)
    desk.record(market, case, Action.CLOSE, noteHash=note_hash("closed: joint decision taken"))
    assert desk.contract.functions.caseState(case).call()[2] is True
    with reverts("CaseClosed"):  # nothing after
        desk.record(market, case, Action.FINDING, noteHash=note_hash("late finding"))
    with reverts("CaseClosed"):
        desk.referred(case, market, commerce)
    with reverts("CaseClosed"):
        desk.cosign(desk.decision(case, [market, credit_office]), market.key)


def test_only_departments_sign_and_only_for_themselves(desk: Desk, platform_member: Member) -> None:
    market, credit_office, _ = desk.departments
    with reverts("MissingRole"):  # a platform is no department
        desk.record(platform_member, case_id("P-1"), Action.OPEN, subject=SUBJECT)
    with reverts("IssuerMismatch"):  # a department signs for itself only
        desk.record(credit_office, case_id("P-1"), Action.OPEN, subject=SUBJECT, key=market.key)
    case = desk.opened("P-1")
    with reverts("NotADepartment"):  # referrals go to departments
        desk.record(market, case, Action.REFER, counterpart=platform_member.id, deadline=desk.now() + DAY)
    referral = desk.referred(case, market, credit_office)
    desk.record(credit_office, case, Action.ACKNOWLEDGE, ref=referral)
    decision = desk.decision(case, [market, credit_office])
    with reverts("MissingRole"):
        desk.cosign(decision, platform_member.key)


def test_steps_out_of_order_are_refused(desk: Desk) -> None:
    market, credit_office, commerce = desk.departments
    ghost = case_id("never opened")
    with reverts("UnknownCase"):
        desk.record(market, ghost, Action.FINDING, noteHash=note_hash("x"))
    with reverts("MissingSubject"):
        desk.record(market, ghost, Action.OPEN)
    with reverts("ZeroCaseId"):
        desk.record(market, ZERO32, Action.OPEN, subject=SUBJECT)
    case = desk.opened("ORDER-1")
    with reverts("CaseExists"):
        desk.record(credit_office, case, Action.OPEN, subject=SUBJECT)
    with reverts("UnknownAction"):
        desk.record(market, case, 7)  # type: ignore[arg-type]
    with reverts("SubjectMismatch"):
        desk.record(market, case, Action.FINDING, subject=OTHER_SUBJECT, noteHash=note_hash("x"))
    with reverts("NotOnCase"):  # commerce has nothing to do with this case
        desk.record(commerce, case, Action.EVIDENCE, documentHash=Web3.keccak(text="d"), noteHash=note_hash("d"))
    with reverts("NotOnCase"):
        desk.referred(case, commerce, credit_office)
    with reverts("InvalidDeadline"):
        desk.record(market, case, Action.REFER, counterpart=credit_office.id, deadline=desk.now() - 1)
    with reverts("AlreadyOnCase"):
        desk.referred(case, market, market)
    referral = desk.referred(case, market, credit_office)
    with reverts("AlreadyOnCase"):  # referred once is enough
        desk.referred(case, market, credit_office)
    with reverts("NotOnCase"):  # referred but not acknowledged: not on the case yet
        desk.record(credit_office, case, Action.FINDING, noteHash=note_hash("x"))
    with reverts("WrongDepartment"):  # a referral acknowledged by a department it was not made to
        desk.record(commerce, case, Action.ACKNOWLEDGE, ref=referral)
    with reverts("NoReferral"):
        desk.record(credit_office, case, Action.ACKNOWLEDGE, ref=Web3.keccak(text="no such referral"))
    with reverts("MissingReference"):
        desk.record(credit_office, case, Action.ACKNOWLEDGE)
    other = desk.opened("ORDER-2")
    with reverts("NoReferral"):  # a referral of another case
        desk.record(credit_office, other, Action.ACKNOWLEDGE, ref=referral)
    desk.record(credit_office, case, Action.ACKNOWLEDGE, ref=referral)
    with reverts("AlreadyAcknowledged"):
        desk.record(credit_office, case, Action.ACKNOWLEDGE, ref=referral)
    with reverts("MissingDocument"):
        desk.record(market, case, Action.EVIDENCE, noteHash=note_hash("a description"))
    with reverts("MissingNote"):
        desk.record(market, case, Action.EVIDENCE, documentHash=Web3.keccak(text="d"))
    with reverts("MissingNote"):
        desk.record(market, case, Action.FINDING)
    with reverts("MissingReference"):
        desk.record(market, case, Action.LINK_DECISION)
    message = desk.entry(market, case, Action.FINDING, noteHash=note_hash("once"))
    desk.send("CaseEntry", message, market.key)
    with reverts("AlreadyRecorded"):  # a replay of the same signed entry
        desk.send("CaseEntry", message, market.key)


def test_an_acknowledgement_after_the_deadline_is_recorded_late(desk: Desk) -> None:
    market, credit_office, commerce = desk.departments
    case = desk.opened("LATE-1")
    on_time = desk.referred(case, market, credit_office, days=3)
    late = desk.referred(case, market, commerce, days=3)
    receipt = desk.send(
        "CaseEntry", desk.entry(credit_office, case, Action.ACKNOWLEDGE, ref=on_time), credit_office.key
    )
    assert desk.contract.events.CaseEntryRecorded().process_receipt(receipt, errors=DISCARD)[0]["args"]["late"] is False
    desk.travel_to(desk.now() + 4 * DAY)
    receipt = desk.send("CaseEntry", desk.entry(commerce, case, Action.ACKNOWLEDGE, ref=late), commerce.key)
    event = desk.contract.events.CaseEntryRecorded().process_receipt(receipt, errors=DISCARD)[0]
    assert event["args"]["late"] is True
    assert desk.standing(case, commerce) == Standing.ON_CASE  # accepted all the same


def test_joint_decision_rules(desk: Desk) -> None:
    market, credit_office, commerce = desk.departments
    case = desk.opened("JOINT-1")
    desk.record(credit_office, case, Action.ACKNOWLEDGE, ref=desk.referred(case, market, credit_office))
    pair = [market, credit_office]
    with reverts("DepartmentCount"):
        desk.cosign(desk.decision(case, [market]), market.key)
    with reverts("DuplicateDepartment"):
        desk.cosign(desk.decision(case, [market, market]), market.key)
    with reverts("NotOnCase"):  # every named department must be on the case
        desk.cosign(desk.decision(case, [market, commerce]), market.key)
    with reverts("NotNamedDepartment"):
        desk.cosign(desk.decision(case, pair), commerce.key)
    with reverts("InvalidValidity"):
        desk.cosign(desk.decision(case, pair, validUntil=desk.now() - DAY), market.key)
    with reverts("SubjectMismatch"):
        desk.cosign(desk.decision(case, pair, subject=OTHER_SUBJECT), market.key)
    with reverts("UnknownCase"):
        desk.cosign(desk.decision(case_id("nowhere"), pair), market.key)
    decision = desk.decision(case, pair)
    desk.cosign(decision, credit_office.key)  # any order
    with reverts("AlreadySigned"):
        desk.cosign(decision, credit_office.key)
    decision_id = desk.domain.digest("JointDecision", decision)
    assert desk.contract.functions.jointDecisionState(decision_id).call() == [0b10, False]


def test_a_batch_carries_a_whole_case(desk: Desk) -> None:
    """The relayer (and the demo) send many signed messages in one transaction; each is checked as if alone."""
    market, credit_office, _ = desk.departments
    case = case_id("BATCH-1")
    opening = desk.entry(market, case, Action.OPEN, subject=SUBJECT)
    refer = desk.entry(market, case, Action.REFER, counterpart=credit_office.id, deadline=desk.now() + DAY)
    ack = desk.entry(credit_office, case, Action.ACKNOWLEDGE, ref=desk.domain.digest("CaseEntry", refer))
    wrong = desk.entry(credit_office, case, Action.CLOSE)
    calls = [
        desk.calldata("CaseEntry", m, k)
        for m, k in ((opening, market.key), (refer, market.key), (ack, credit_office.key), (wrong, credit_office.key))
    ]
    receipt = desk.send_batch(calls)
    assert len(desk.contract.events.CaseEntryRecorded().process_receipt(receipt, errors=DISCARD)) == 3
    failed = desk.contract.events.BatchCallFailed().process_receipt(receipt, errors=DISCARD)
    assert [e["args"]["index"] for e in failed] == [3]
    assert desk.standing(case, credit_office) == Standing.ON_CASE
