"""Logistics credit (C6): the LogisticsRegistry's signed messages, described once.

Mirrored in ``contracts/LogisticsRegistry.sol`` (same field lists, same checks):

- ``FirmRegistration`` — a LOGISTICS member registers a delivery firm by its unified social credit code (an
  organisation, so the code itself is the subject id, :func:`node_bridge.credit.subject_id`);
- ``CourierRegistration`` — a LOGISTICS member registers a courier of a registered firm: a natural person, known
  only by a salted commitment (``POST /v1/persons``, :mod:`credtrace.persons`);
- ``Evaluation`` — a PLATFORM or REGULATOR member's figures for one firm and one month (YYYYMM);
- ``RatingRule`` — a REGULATOR publishes the keccak256 of a rating rule file with its version (1, 2, 3...).

The rule files and the grading itself are in :mod:`credtrace.logistics_rating`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from credtrace.errors import ValidationFailed
from node_bridge.consortium import Role
from node_bridge.credit import subject_code
from node_bridge.eip712 import hex32
from node_bridge.events import DecodedEvent, EventDecoder
from node_bridge.rpc import Rpc
from node_bridge.signed import MessageType, SignedRegistry

CONTRACT = "LogisticsRegistry"
MAX_BPS = 10_000

FIRM = MessageType(
    "FirmRegistration",
    [
        {"name": "registrar", "type": "bytes32"},
        {"name": "firm", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
    ],
    "registerFirm",
    "registrar",
    Role.LOGISTICS,
    subjects=("firm",),
)
COURIER = MessageType(
    "CourierRegistration",
    [
        {"name": "registrar", "type": "bytes32"},
        {"name": "courier", "type": "bytes32"},
        {"name": "firm", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
    ],
    "registerCourier",
    "registrar",
    Role.LOGISTICS,
    subjects=("firm",),
)
EVALUATION = MessageType(
    "Evaluation",
    [
        {"name": "evaluator", "type": "bytes32"},
        {"name": "firm", "type": "bytes32"},
        {"name": "period", "type": "uint32"},
        {"name": "parcels", "type": "uint32"},
        {"name": "onTimeBps", "type": "uint16"},
        {"name": "lossDamageBps", "type": "uint16"},
        {"name": "complaintsPer10k", "type": "uint32"},
        {"name": "violations", "type": "uint16"},
        {"name": "sanctions", "type": "uint16"},
        {"name": "nonce", "type": "uint256"},
    ],
    "evaluate",
    "evaluator",
    Role.PLATFORM | Role.REGULATOR,
    subjects=("firm",),
)
RULE = MessageType(
    "RatingRule",
    [
        {"name": "publisher", "type": "bytes32"},
        {"name": "version", "type": "uint32"},
        {"name": "ruleHash", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
    ],
    "publishRule",
    "publisher",
    Role.REGULATOR,
)

REGISTRY = SignedRegistry(CONTRACT, (FIRM, COURIER, EVALUATION, RULE))
"""The LogisticsRegistry and the four message types it takes."""

EVENTS = {
    "FirmRegistered": ("FirmRegistration", "registration"),
    "CourierRegistered": ("CourierRegistration", "registration"),
    "EvaluationRecorded": ("Evaluation", "evaluation"),
    "RulePublished": ("RatingRule", "rule"),
}
"""Each event of the contract: the message type it carries and the argument holding the signed struct."""

INPUTS = ("parcels", "onTimeBps", "lossDamageBps", "complaintsPer10k", "violations", "sanctions")
"""The figures of an evaluation, as the rating rule names them."""


def check_period(period: int, field: str = "period") -> int:
    """A month YYYYMM, year 2000-2999 (the contract's ``InvalidPeriod``)."""
    year, month = divmod(period, 100)
    if not (2000 <= year <= 2999 and 1 <= month <= 12):
        raise ValidationFailed(field, f"{period} is not a month YYYYMM (year 2000-2999, month 01-12)")
    return period


def previous_periods(period: int, count: int) -> list[int]:
    """``count`` months ending with ``period`` (oldest first): the window a grade looks at."""
    year, month = divmod(period, 100)
    index = year * 12 + month - 1
    return [(i // 12) * 100 + i % 12 + 1 for i in range(index - count + 1, index + 1)]


def check_evaluation(message: Mapping[str, Any]) -> None:
    """What the contract checks of an evaluation's own figures; errors name the field."""
    check_period(message["period"])
    for name in ("onTimeBps", "lossDamageBps"):
        if message[name] > MAX_BPS:
            raise ValidationFailed(name, f"{message[name]} basis points is above {MAX_BPS} (100 %)")
    if message["parcels"] == 0:
        raise ValidationFailed("parcels", "an evaluation must cover at least one parcel")


def check_firm_code(firm: bytes, field: str = "firm") -> str:
    """A firm is an organisation: its subject id must hold a unified social credit code; returns the code."""
    code = subject_code(firm)
    if code is None:
        raise ValidationFailed(field, "a delivery firm is an organisation: give its unified social credit code")
    return code


def check_courier(courier: bytes, field: str = "courier") -> None:
    """A courier is a natural person: only a 0x commitment, never an organisation's code, never zero."""
    if courier == bytes(32):
        raise ValidationFailed(field, "must not be zero")
    if subject_code(courier) is not None:
        raise ValidationFailed(field, "a courier is a natural person: give the commitment from POST /v1/persons")


# reading the chain alone (no index): what `credtrace logistics score` grades from


@dataclass(frozen=True)
class ChainFirm:
    """What the LogisticsRegistry's logs say of one firm, and the published rules, read with ``eth_getLogs``."""

    firm: bytes
    registration: DecodedEvent | None
    evaluations: tuple[DecodedEvent, ...]
    rules: dict[int, DecodedEvent]
    """Each published version's ``RulePublished`` event."""

    def rule_hash(self, version: int) -> bytes | None:
        event = self.rules.get(version)
        return None if event is None else bytes(REGISTRY.from_event("RatingRule", event.args["rule"])["ruleHash"])


def read_chain(rpc: Rpc, address: str, firm: bytes, from_block: int = 0) -> ChainFirm:
    """A firm's registration and evaluations and every published rule, straight from the node's logs: three
    ``eth_getLogs`` in one JSON-RPC batch, filtered by the contract, the event's topic and (for the firm's events)
    the firm's indexed topic, decoded by :class:`node_bridge.events.EventDecoder`."""
    decoder = _decoder()
    firm_topic = hex32(firm)

    def logs(event: str, *topics: str | None) -> tuple[str, list[Any]]:
        query = {"address": address, "fromBlock": hex(from_block), "toBlock": "latest",
                 "topics": [decoder.topic0(event), *topics]}  # fmt: skip
        return "eth_getLogs", [query]

    registered, evaluated, published = rpc.batch(
        [logs("FirmRegistered", None, firm_topic), logs("EvaluationRecorded", None, firm_topic), logs("RulePublished")]
    )
    registration = [decoder.decode(log) for log in registered]
    rules = {int(event.args["version"]): event for event in map(decoder.decode, published)}
    return ChainFirm(firm, registration[0] if registration else None, tuple(map(decoder.decode, evaluated)), rules)


@cache
def _decoder() -> EventDecoder:
    from node_bridge.compiler import artifact

    return EventDecoder(artifact(CONTRACT).abi, CONTRACT)
