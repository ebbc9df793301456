"""Consumer protection (C7): what platforms sign about their protection funds and advance-compensation cases.

:data:`REGISTRY` describes the ProtectionRegistry's two EIP-712 types once (``contracts/ProtectionRegistry.sol``
mirrors the field lists; its tests prove the digests agree):

- ``FundDeclaration``: a platform's consumer-protection fund (amount in minor units of an ISO 4217 currency, the
  custodian holding it, the period it covers); version 1 declares it, each update is the next version;
- ``CaseStep``: one step of an advance-compensation case, COMPLAINT → COMPENSATED (the platform paid the consumer
  first) → RECOVERED (from the merchant, possibly several times, never more than was paid) → CLOSED. A complaint
  that is rejected or withdrawn may be closed straight away; a case may be closed with its compensation not (fully)
  recovered (the platform writes the rest off), and such a case still counts as unrecovered.

The order and amount rules live here once (:func:`next_fund_version`, :func:`advance`), raising
:class:`RuleBroken` with the contract's custom error name and the field at fault: the write API runs them over the
index, the messages pending in the outbox and those earlier in the same batch, so what it accepts the contract
accepts too. The consumer is a salted commitment (:func:`consumer_commitment`) or zero: no consumer's personal data
ever leaves the platform.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from credtrace.errors import ValidationFailed
from node_bridge.consortium import Role
from node_bridge.eip712 import hex32, keccak
from node_bridge.signed import MessageType, SignedRegistry

CONTRACT = "ProtectionRegistry"
ZERO32 = bytes(32)
MAX_AMOUNT = 2**63 - 1
"""Largest amount the contract takes (minor units): every index can hold it in a signed 64-bit integer."""
CURRENCY = re.compile(r"[A-Z]{3}")
MAX_CUSTODIAN = 200
"""Longest custodian name accepted (characters)."""


class Step(enum.IntEnum):
    """Steps of an advance-compensation case, numbered as the contract numbers them."""

    COMPLAINT = 0
    COMPENSATED = 1
    RECOVERED = 2
    CLOSED = 3


FUND_FIELDS = [
    {"name": "platform", "type": "bytes32"},
    {"name": "fundId", "type": "bytes32"},
    {"name": "version", "type": "uint32"},
    {"name": "amount", "type": "uint256"},
    {"name": "currency", "type": "string"},
    {"name": "custodian", "type": "string"},
    {"name": "periodStart", "type": "uint64"},
    {"name": "periodEnd", "type": "uint64"},
    {"name": "nonce", "type": "uint256"},
]
STEP_FIELDS = [
    {"name": "platform", "type": "bytes32"},
    {"name": "caseId", "type": "bytes32"},
    {"name": "step", "type": "uint8"},
    {"name": "merchant", "type": "bytes32"},
    {"name": "consumer", "type": "bytes32"},
    {"name": "amount", "type": "uint256"},
    {"name": "dueBy", "type": "uint64"},
    {"name": "traceCode", "type": "bytes32"},
    {"name": "decision", "type": "bytes32"},
    {"name": "at", "type": "uint64"},
    {"name": "nonce", "type": "uint256"},
]

REGISTRY = SignedRegistry(
    CONTRACT,
    (
        MessageType("FundDeclaration", FUND_FIELDS, "declareFund", "platform", Role.PLATFORM, max_text=MAX_CUSTODIAN),
        MessageType("CaseStep", STEP_FIELDS, "recordCaseStep", "platform", Role.PLATFORM, subjects=("merchant",)),
    ),
)
EVENTS = {"FundDeclared": "FundDeclaration", "CaseStepRecorded": "CaseStep"}
"""Each event of the contract and the signed type its struct argument holds."""


class RuleBroken(ValidationFailed):
    """A message the contract would refuse by an order or amount rule: ``error`` is its custom error."""

    def __init__(self, field: str, error: str, reason: str) -> None:
        super().__init__(field, reason)
        self.error = error


def fund_id(platform: bytes, reference: str) -> bytes:
    """A fund's id: ``keccak256(platform member id ‖ the platform's own reference of it)``, unique per platform."""
    return keccak(bytes(platform) + reference.encode())


def case_id(platform: bytes, reference: str) -> bytes:
    """A case's id: ``keccak256(platform member id ‖ "case:" ‖ the platform's case reference)``; the reference
    (a ticket number) is the platform's business and holds no personal data."""
    return keccak(bytes(platform) + b"case:" + reference.encode())


def consumer_commitment(salt: bytes, consumer_ref: str) -> bytes:
    """``keccak256(salt ‖ ref)``: how a platform names a consumer in a case without revealing who it is.

    ``ref`` is the platform's own reference of the consumer (an account id, an order's buyer id); the salt (at
    least 16 random bytes) stays with the platform, so only it can tie the commitment back to the consumer.
    """
    if len(salt) < 16:
        raise ValidationFailed("salt", "must be at least 16 random bytes")
    if not consumer_ref:
        raise ValidationFailed("consumer", "is empty")
    return keccak(bytes(salt) + consumer_ref.encode())


def looks_like_text(value: bytes) -> bool:
    """True for 32 bytes that read as zero-padded printable ASCII (a phone number, a name, an id number put in
    as text), which a salted commitment never does: such a ``consumer`` is refused as personal data."""
    body = value.rstrip(b"\0")
    return 0 < len(body) < 32 and all(0x20 <= b < 0x7F for b in body)


def check_fund_shape(message: Mapping[str, Any]) -> None:
    """The contract's shape checks of a fund declaration; :class:`RuleBroken` naming the field."""
    if message["periodEnd"] <= message["periodStart"]:
        raise RuleBroken("periodEnd", "InvalidPeriod", "the period must end after it starts")
    if not CURRENCY.fullmatch(message["currency"]):
        raise RuleBroken("currency", "InvalidCurrency", "must be an ISO 4217 code: three upper-case letters")
    if not message["custodian"]:
        raise RuleBroken("custodian", "EmptyCustodian", "name the bank or trust holding the fund")
    _check_amount(message["amount"])


def _check_amount(amount: int) -> None:
    if amount == 0 or amount > MAX_AMOUNT:
        raise RuleBroken("amount", "InvalidAmount", f"must be 1 to {MAX_AMOUNT} minor units")


@dataclass(frozen=True)
class FundState:
    """What the contract keeps of a fund: its platform and current version (0: never declared)."""

    platform: bytes = ZERO32
    version: int = 0


def next_fund_version(state: FundState, message: Mapping[str, Any]) -> FundState:
    """The fund after ``message``, or :class:`RuleBroken` as the contract would revert."""
    check_fund_shape(message)
    fund_id = hex32(message["fundId"])
    if state.version and state.platform != message["platform"]:
        raise RuleBroken(
            "platform", "FundPlatformMismatch",
            f"fund {fund_id} was declared by {hex32(state.platform)}; only that platform updates it",
        )  # fmt: skip
    if message["version"] != state.version + 1:
        expected = state.version + 1
        raise RuleBroken(
            "version", "FundVersion",
            f"fund {fund_id} is at version {state.version}; the next declaration must be version {expected}",
        )  # fmt: skip
    return FundState(message["platform"], message["version"])


@dataclass(frozen=True)
class CaseState:
    """What the contract keeps of a case (``platform`` zero: no such case)."""

    platform: bytes = ZERO32
    merchant: bytes = ZERO32
    step: Step = Step.COMPLAINT
    compensated: int = 0
    recovered: int = 0
    last_at: int = 0

    @property
    def exists(self) -> bool:
        return self.platform != ZERO32


def advance(state: CaseState, message: Mapping[str, Any]) -> CaseState:
    """The case after step ``message``, or :class:`RuleBroken` as the contract would revert (same order)."""
    case_id = hex32(message["caseId"])
    try:
        step = Step(message["step"])
    except ValueError:
        raise RuleBroken("step", "InvalidStep", "must be 0 complaint, 1 compensated, 2 recovered or 3 closed") from None
    amount, at = message["amount"], message["at"]
    if step is Step.COMPLAINT:
        if state.exists:
            raise RuleBroken("caseId", "CaseExists", f"case {case_id} is open already; a complaint opens a new case")
        if message["merchant"] == ZERO32:
            raise RuleBroken("merchant", "ZeroMerchant", "name the merchant complained about")
        _check_amount(amount)
        if message["dueBy"] < at:
            raise RuleBroken("dueBy", "StepTimeBeforePrevious", "the promised pay-by time is before the complaint")
        return CaseState(message["platform"], message["merchant"], step, 0, 0, at)
    if not state.exists:
        raise RuleBroken("caseId", "UnknownCase", f"no complaint opened case {case_id}")
    if state.platform != message["platform"]:
        raise RuleBroken(
            "platform", "CasePlatformMismatch",
            f"case {case_id} is {hex32(state.platform)}'s; only that platform continues it",
        )  # fmt: skip
    if state.merchant != message["merchant"]:
        raise RuleBroken(
            "merchant", "CaseMerchantMismatch", f"case {case_id} is against merchant {hex32(state.merchant)}"
        )
    out_of_order = RuleBroken(
        "step", "StepOutOfOrder", f"case {case_id} is at {state.step.name}; {step.name} cannot follow it"
    )
    new = state
    if step is Step.COMPENSATED:
        if state.step is not Step.COMPLAINT:
            raise out_of_order
        _check_amount(amount)
        new = replace(state, compensated=amount)
    elif step is Step.RECOVERED:
        if state.step not in (Step.COMPENSATED, Step.RECOVERED):
            raise out_of_order
        _check_amount(amount)
        if state.recovered + amount > state.compensated:
            raise RuleBroken(
                "amount", "RecoveryExceedsCompensation",
                f"case {case_id} was compensated with {state.compensated} and {state.recovered} is recovered "
                f"already; {amount} more would exceed the compensation",
            )  # fmt: skip
        new = replace(state, recovered=state.recovered + amount)
    else:
        if state.step is Step.CLOSED:
            raise out_of_order
        if amount != 0:
            raise RuleBroken("amount", "InvalidAmount", "a CLOSED step carries no amount (0)")
    if at < state.last_at:
        raise RuleBroken("at", "StepTimeBeforePrevious", f"the previous step of case {case_id} was at {state.last_at}")
    return replace(new, step=step, last_at=at)
