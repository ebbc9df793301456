"""Signed credit records (C3): the one EIP-712 definition, kinds and role rules, subjects, and contract calldata.

:data:`EIP712_TYPES` is the single definition of what departments and platforms sign; ``contracts/
CreditRegistry.sol`` mirrors it, ``GET /v1/eip712`` publishes it, and a property test proves the Python and
Solidity digests agree. A record's id is its digest (:meth:`CreditDomain.id`).

Messages are dicts keyed by the EIP-712 field names (``effectiveAt``, ``refersTo``...) holding Python values
(``bytes`` for ``bytes32``, ``int`` for integers); :func:`normalise` turns JSON (0x-hex, decimal strings, a
subject given as its credit code) into that form and :func:`to_json` turns it back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from credtrace import uscc
from credtrace.errors import ValidationFailed
from node_bridge import abi
from node_bridge.consortium import Role
from node_bridge.eip712 import Domain, TypeFields, recover, to_bytes, to_int, to_json, to_text

DOMAIN_NAME = "credtrace CreditRegistry"
DOMAIN_VERSION = "1"
CONTRACT = "CreditRegistry"
ZERO32 = bytes(32)
FOREVER = 2**40 - 1
"""A ``validUntil`` that never comes (the contract keeps list windows in 40-bit seconds)."""


class Kind(enum.IntEnum):
    """Record kinds of C3, numbered as the contract numbers them."""

    COMMITMENT = 0
    ADMINISTRATIVE_PENALTY = 1
    RED_LIST = 2
    BLACKLIST = 3
    SERVICE_DEFAULT = 4
    CLICK_FARMING = 5
    CREDIT_SPECULATION = 6
    COUNTERFEIT_SUBSTANDARD = 7
    PERSONAL_INFORMATION_ABUSE = 8
    LOGISTICS_EVALUATION = 9
    REAL_NAME_CERTIFICATION = 10
    PAYMENT_VIOLATION = 11

    @property
    def slug(self) -> str:
        """The name used in JSON and the index, e.g. ``red_list``."""
        return self.name.lower()


class Tier(enum.IntEnum):
    MINOR = 0
    GENERAL = 1
    SEVERE = 2


class Relation(enum.IntEnum):
    """How a record relates to the record it ``refersTo``."""

    NONE = 0
    SUPERSEDES = 1
    AMENDS = 2
    BREACHES_COMMITMENT = 3


class RecordState(enum.IntEnum):
    """Lifecycle, as the contract's ``recordState`` numbers it."""

    UNKNOWN = 0
    NOTICE = 1
    ACTIVE = 2
    EXPIRED = 3
    REVOKED = 4
    REPAIRED = 5


REQUIRED_ROLES: dict[Kind, Role] = {
    kind: Role.REGULATOR for kind in Kind
} | {  # decisions need a regulator; these kinds widen or change it
    Kind.COMMITMENT: Role.REGULATOR | Role.PLATFORM,
    Kind.LOGISTICS_EVALUATION: Role.REGULATOR | Role.PLATFORM,
    Kind.REAL_NAME_CERTIFICATION: Role.CERTIFIER,
    Kind.PAYMENT_VIOLATION: Role.PAYMENT | Role.REGULATOR,
}
LIST_KINDS = {Kind.RED_LIST: "red", Kind.BLACKLIST: "black"}
"""The kinds that put a subject on a list other contracts can ask about (``isRedListed``, ``isBlacklisted``)."""

EIP712_TYPES: dict[str, TypeFields] = {
    "CreditRecord": [
        {"name": "kind", "type": "uint8"},
        {"name": "subject", "type": "bytes32"},
        {"name": "issuer", "type": "bytes32"},
        {"name": "legalBasis", "type": "string"},
        {"name": "tier", "type": "uint8"},
        {"name": "measures", "type": "uint32"},
        {"name": "documentHash", "type": "bytes32"},
        {"name": "effectiveAt", "type": "uint64"},
        {"name": "publicUntil", "type": "uint64"},
        {"name": "validUntil", "type": "uint64"},
        {"name": "relation", "type": "uint8"},
        {"name": "refersTo", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
    ],
    "Revocation": [
        {"name": "recordId", "type": "bytes32"},
        {"name": "issuer", "type": "bytes32"},
        {"name": "reason", "type": "string"},
        {"name": "nonce", "type": "uint256"},
    ],
    "Repair": [
        {"name": "recordId", "type": "bytes32"},
        {"name": "issuer", "type": "bytes32"},
        {"name": "reason", "type": "string"},
        {"name": "nonce", "type": "uint256"},
    ],
    "Enforcement": [
        {"name": "platform", "type": "bytes32"},
        {"name": "subject", "type": "bytes32"},
        {"name": "recordId", "type": "bytes32"},
        {"name": "measure", "type": "uint16"},
        {"name": "appliedAt", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
    ],
}
FIELD_TYPES = {primary: {f["name"]: f["type"] for f in fields} for primary, fields in EIP712_TYPES.items()}
FUNCTIONS = {"CreditRecord": "issue", "Revocation": "revoke", "Repair": "repair", "Enforcement": "enforce"}
"""The contract function that takes each signed type."""
MAX_TEXT = 1000
"""Longest ``legalBasis`` or ``reason`` accepted (characters)."""


# subjects


def subject_id(subject: str | bytes) -> bytes:
    """The 32-byte subject: a unified social credit code (validated, ASCII, zero-padded) or a 0x-hex commitment."""
    if isinstance(subject, bytes | bytearray):
        raw = bytes(subject)
    elif subject.startswith(("0x", "0X")):
        raw = to_bytes(subject, "subject")
    else:
        uscc.validate(subject, field="subject")
        return subject.encode().ljust(32, b"\0")
    if len(raw) != 32:
        raise ValidationFailed("subject", f"must be 32 bytes, got {len(raw)}")
    if raw == ZERO32:
        raise ValidationFailed("subject", "must not be zero")
    return raw


def subject_code(subject: bytes) -> str | None:
    """The credit code inside an organisation's subject id; None for a natural person's commitment."""
    if subject[18:] != bytes(14):
        return None
    try:
        code = subject[:18].decode("ascii")
    except UnicodeDecodeError:
        return None
    return code if all(c in uscc.ALPHABET for c in code) else None


def person_commitment(salt: bytes, normalised_id: str) -> bytes:
    """A natural person's subject id: ``keccak256(salt ‖ normalised id)``; shredding the salt unlinks it."""
    return keccak(bytes(salt) + normalised_id.encode())


# messages


def normalise(primary_type: str, message: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON message as Python values, every field present and of its type; errors name the field."""
    if primary_type not in FIELD_TYPES:
        raise ValidationFailed("type", f"{primary_type!r} is not one of {', '.join(FIELD_TYPES)}")
    types = FIELD_TYPES[primary_type]
    if unknown := sorted(set(message) - set(types)):
        raise ValidationFailed(unknown[0], f"is not a field of {primary_type}")
    out: dict[str, Any] = {}
    for name, abi_type in types.items():
        if name not in message:
            raise ValidationFailed(name, "is missing")
        value = message[name]
        if name in ("subject",):
            out[name] = subject_id(value)
        elif abi_type == "bytes32":
            raw = to_bytes(value, name)
            if len(raw) != 32:
                raise ValidationFailed(name, f"must be 32 bytes, got {len(raw)}")
            out[name] = raw
        elif abi_type.startswith("uint"):
            out[name] = to_int(value, name)
        else:
            out[name] = to_text(value, name, MAX_TEXT)
    return out


def check_record(record: Mapping[str, Any]) -> None:
    """The checks the contract makes on a record's own fields (``_checkShape``), plus text that must be given."""
    kind = record["kind"]
    if kind not in Kind._value2member_map_:
        raise ValidationFailed("kind", f"{kind} is not a record kind (0-{len(Kind) - 1})")
    if record["tier"] not in Tier._value2member_map_:
        raise ValidationFailed("tier", f"{record['tier']} is not 0 (minor), 1 (general) or 2 (severe)")
    if record["subject"] == ZERO32:
        raise ValidationFailed("subject", "must not be zero")
    if record["validUntil"] <= record["effectiveAt"]:
        raise ValidationFailed("validUntil", "must be after effectiveAt")
    if record["publicUntil"] < record["effectiveAt"]:
        raise ValidationFailed("publicUntil", "must not be before effectiveAt")
    relation, refers_to = record["relation"], record["refersTo"]
    if relation not in Relation._value2member_map_:
        raise ValidationFailed("relation", f"{relation} is not 0 (none), 1 (supersedes), 2 (amends) or 3 (breaches)")
    if (relation == Relation.NONE) != (refers_to == ZERO32):
        raise ValidationFailed("refersTo", "is required with a relation, and only with one")
    if not record["legalBasis"].strip():
        raise ValidationFailed("legalBasis", "must name the legal basis of the record")


def state_at(record: Mapping[str, Any], now: int, closed: str | None = None) -> RecordState:
    """Where an accepted record is at unix time ``now``; ``closed`` is "revoked" or "repaired" if it was."""
    if closed is not None:
        return RecordState[closed.upper()]
    if now < record["effectiveAt"]:
        return RecordState.NOTICE
    if now >= record["validUntil"]:
        return RecordState.EXPIRED
    return RecordState.ACTIVE


# the domain of one deployed registry


class CreditDomain(Domain):
    """The EIP-712 domain of the CreditRegistry at ``address`` on chain ``chain_id``."""

    def __init__(self, chain_id: int, address: str) -> None:
        super().__init__(DOMAIN_NAME, DOMAIN_VERSION, chain_id, address, EIP712_TYPES)

    def id(self, primary_type: str, message: Mapping[str, Any]) -> bytes:
        """A signed message's id: its EIP-712 digest."""
        return self.digest(primary_type, message)

    def signer(self, primary_type: str, message: Mapping[str, Any], signature: bytes) -> str:
        """Who signed ``message`` (recovered from ``signature``)."""
        return recover(self.digest(primary_type, message), signature)

    def sign_record(self, account: LocalAccount, record: Mapping[str, Any]) -> bytes:
        return self.sign(account, "CreditRecord", record)


# calldata


def as_tuple(primary_type: str, message: Mapping[str, Any]) -> tuple[Any, ...]:
    """A message as the contract's struct, in field order."""
    return tuple(message[f["name"]] for f in EIP712_TYPES[primary_type])


def calldata(
    primary_type: str, message: Mapping[str, Any], signature: bytes, record: Mapping[str, Any] | None = None
) -> bytes:
    """The call that submits a signed message; a revocation or repair also carries the record it closes."""
    args: list[Any] = [as_tuple(primary_type, message), bytes(signature)]
    if primary_type in ("Revocation", "Repair"):
        if record is None:
            raise ValidationFailed("record", f"a {primary_type} must carry the record it closes")
        args.insert(0, as_tuple("CreditRecord", record))
    return abi.call(CONTRACT, FUNCTIONS[primary_type], args)


def record_from_event(values: list[Any]) -> dict[str, Any]:
    """A record message from the ``record`` argument of a ``RecordIssued`` event as the indexer stores it."""
    out: dict[str, Any] = {}
    for field, value in zip(EIP712_TYPES["CreditRecord"], values, strict=True):
        name, abi_type = field["name"], field["type"]
        if abi_type == "bytes32":
            out[name] = to_bytes(value, name)
        elif abi_type.startswith("uint"):
            out[name] = int(value)
        else:
            out[name] = value
    return out


# published examples (GET /v1/eip712)

EXAMPLE_SUBJECT = "91330100MA27XY1222"
EXAMPLE_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z


def example_record(kind: Kind, issuer: bytes = ZERO32, nonce: int = 1) -> dict[str, Any]:
    """A complete, valid record message of ``kind`` (to be given the signer's issuer id and a fresh nonce)."""
    year = 365 * 86400
    return {
        "kind": int(kind),
        "subject": subject_id(EXAMPLE_SUBJECT),
        "issuer": issuer,
        "legalBasis": "E-Commerce Law of the PRC, art. 38",
        "tier": int(Tier.GENERAL),
        "measures": 0,
        "documentHash": keccak(b"the full decision document, kept off chain"),
        "effectiveAt": EXAMPLE_TIME,
        "publicUntil": EXAMPLE_TIME + year,
        "validUntil": EXAMPLE_TIME + 3 * year,
        "relation": int(Relation.NONE),
        "refersTo": ZERO32,
        "nonce": nonce,
    }


def examples(domain: Domain) -> dict[str, dict[str, Any]]:
    """One complete typed-data object per record kind, and one per revocation, repair and enforcement."""
    out = {kind.slug: domain.typed_data("CreditRecord", to_json(example_record(kind))) for kind in Kind}
    record_id = domain.digest("CreditRecord", example_record(Kind.BLACKLIST))
    closure = {"recordId": record_id, "issuer": ZERO32, "reason": "decision annulled on review", "nonce": 2}
    out["revocation"] = domain.typed_data("Revocation", to_json(closure))
    out["repair"] = domain.typed_data("Repair", to_json(closure | {"reason": "credit repair completed"}))
    enforcement = {
        "platform": ZERO32, "subject": subject_id(EXAMPLE_SUBJECT), "recordId": record_id, "measure": 0,
        "appliedAt": EXAMPLE_TIME + 3600, "nonce": 3,
    }  # fmt: skip
    out["enforcement"] = domain.typed_data("Enforcement", to_json(enforcement))
    return out
