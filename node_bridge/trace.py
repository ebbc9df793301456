"""Product traceability (C5): GTINs, GS1 Digital Link paths, checkpoint steps, and the one EIP-712 definition.

Mirrored in ``contracts/TraceRegistry.sol`` (``CodeBatch`` and ``Anchor`` go on chain; ``TraceEvent`` never does:
only the Merkle roots of batches of event digests are anchored, see :mod:`node_bridge.merkle`).

- A **trace code** is a GS1 Digital Link path ``/01/{gtin14}/10/{lot}/21/{serial}``; its id is
  ``keccak256(path as UTF-8)``. A **code batch** is committed as the RFC 6962 root over the code ids (leaf data =
  the 32-byte id), signed by the PRODUCER as ``CodeBatch``.
- A **checkpoint event** (after GS1 EPCIS 2.0: what, when, where, who, why) is signed by its actor as
  ``TraceEvent``; its id is its EIP-712 digest, and that digest is the leaf data of the anchored batch tree.
- An **anchor** (``Anchor``) chains batch roots: index, root, size, the previous root, and the time range.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Mapping
from typing import Any

from credtrace.errors import ValidationFailed
from node_bridge import abi
from node_bridge.consortium import Role
from node_bridge.eip712 import Domain, TypeFields, keccak

DOMAIN_NAME = "credtrace TraceRegistry"
DOMAIN_VERSION = "1"
CONTRACT = "TraceRegistry"
ZERO32 = bytes(32)


class Step(enum.IntEnum):
    """Business steps (EPCIS CBV bizStep), numbered as the contract and the signed events number them."""

    COMMISSION = 0
    PACK = 1
    UNPACK = 2
    SHIP = 3
    RECEIVE = 4
    TRANSFORM = 5
    SELL = 6
    DELIVER = 7
    RETURN = 8
    RECALL = 9
    DESTROY = 10

    @property
    def slug(self) -> str:
        return self.name.lower()


class Disposition(enum.IntEnum):
    """The state a step leaves the goods in (EPCIS CBV disposition)."""

    ACTIVE = 0
    IN_PROGRESS = 1
    IN_TRANSIT = 2
    SELLABLE = 3
    SOLD = 4
    DELIVERED = 5
    RETURNED = 6
    RECALLED = 7
    DESTROYED = 8


STEP_ROLES: dict[Step, Role] = {
    Step.COMMISSION: Role.PRODUCER,
    Step.PACK: Role.PRODUCER | Role.LOGISTICS,
    Step.UNPACK: Role.PRODUCER | Role.LOGISTICS | Role.PLATFORM,
    Step.SHIP: Role.PRODUCER | Role.LOGISTICS | Role.PLATFORM,
    Step.RECEIVE: Role.PRODUCER | Role.LOGISTICS | Role.PLATFORM,
    Step.TRANSFORM: Role.PRODUCER,
    Step.SELL: Role.PLATFORM | Role.PRODUCER,
    Step.DELIVER: Role.LOGISTICS | Role.PLATFORM,
    Step.RETURN: Role.PLATFORM | Role.LOGISTICS,
    Step.RECALL: Role.PRODUCER | Role.REGULATOR,
    Step.DESTROY: Role.PRODUCER | Role.REGULATOR,
}
"""Which member roles may sign each step."""

EIP712_TYPES: dict[str, TypeFields] = {
    "CodeBatch": [
        {"name": "producer", "type": "bytes32"},
        {"name": "gtin", "type": "string"},
        {"name": "lot", "type": "string"},
        {"name": "count", "type": "uint32"},
        {"name": "root", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
    ],
    "TraceEvent": [
        {"name": "actor", "type": "bytes32"},
        {"name": "step", "type": "uint8"},
        {"name": "codes", "type": "bytes32[]"},
        {"name": "parent", "type": "bytes32"},
        {"name": "time", "type": "uint64"},
        {"name": "location", "type": "string"},
        {"name": "geo", "type": "string"},
        {"name": "disposition", "type": "uint8"},
        {"name": "corrects", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
    ],
    "Anchor": [
        {"name": "index", "type": "uint64"},
        {"name": "root", "type": "bytes32"},
        {"name": "size", "type": "uint64"},
        {"name": "previousRoot", "type": "bytes32"},
        {"name": "firstTime", "type": "uint64"},
        {"name": "lastTime", "type": "uint64"},
    ],
}
"""``TraceEvent.codes``: ids of the codes the event is about (for PACK/UNPACK, the children; ``parent`` the case or
pallet code). ``location``: a location id (a GLN or the member's own site id); ``geo``: optional "lat,lon" with at
most 2 decimals (coarse). ``corrects``: the id of the event this one corrects (events are never edited)."""


class TraceDomain(Domain):
    """The EIP-712 domain of the TraceRegistry at ``address`` on chain ``chain_id``."""

    def __init__(self, chain_id: int, address: str) -> None:
        super().__init__(DOMAIN_NAME, DOMAIN_VERSION, chain_id, address, EIP712_TYPES)


# GTIN and GS1 Digital Link

_GTIN = re.compile(r"[0-9]{8}|[0-9]{12,14}")
_LOT = re.compile(r"[!%-?A-Z_a-z\"]{1,20}")  # GS1 AI 10: up to 20 characters of GS1 AI encodable set 82
_SERIAL = _LOT
_PATH = re.compile(r"/01/(?P<gtin>[0-9]{14})/10/(?P<lot>[^/]{1,20})/21/(?P<serial>[^/]{1,20})")
SERIAL_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O
SERIAL_LENGTH = 16
"""16 characters of 34: ~81 bits, so serials cannot be guessed from others."""


def gtin_check_digit(body: str) -> str:
    """The GS1 mod-10 check digit of a GTIN without it (weights 3, 1, 3, ... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def normalise_gtin(value: str, field: str = "gtin") -> str:
    """A GTIN-8/12/13/14 checked (digits, length, check digit) and padded to 14 digits; errors name what is wrong."""
    if not isinstance(value, str) or not _GTIN.fullmatch(value):
        raise ValidationFailed(field, "must be 8, 12, 13 or 14 digits (a GTIN)")
    expected = gtin_check_digit(value[:-1])
    if value[-1] != expected:
        raise ValidationFailed(field, f"check digit is {value[-1]}, expected {expected} (GS1 mod 10)")
    return value.zfill(14)


def check_lot(value: str, field: str = "lot") -> str:
    if not isinstance(value, str) or not _LOT.fullmatch(value):
        raise ValidationFailed(field, "must be 1 to 20 characters of the GS1 character set, without '/'")
    if "/" in value:
        raise ValidationFailed(field, "must not contain '/'")
    return value


def new_serial() -> str:
    """An unguessable serial (``secrets``)."""
    return "".join(secrets.choice(SERIAL_ALPHABET) for _ in range(SERIAL_LENGTH))


def digital_link(gtin: str, lot: str, serial: str) -> str:
    """``/01/{gtin14}/10/{lot}/21/{serial}``."""
    return f"/01/{gtin}/10/{lot}/21/{serial}"


def parse_digital_link(path: str, field: str = "path") -> tuple[str, str, str]:
    """(gtin14, lot, serial) of a Digital Link path; ValidationFailed naming what is wrong."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise ValidationFailed(field, "must be a GS1 Digital Link path /01/{14-digit gtin}/10/{lot}/21/{serial}")
    gtin = normalise_gtin(match["gtin"], field=f"{field}.gtin")
    return gtin, check_lot(match["lot"], f"{field}.lot"), check_lot(match["serial"], f"{field}.serial")


def code_id(path: str) -> bytes:
    """A trace code's id: ``keccak256(path)``; the leaf data of its code batch tree."""
    return keccak(path.encode())


def check_event(message: Mapping[str, Any]) -> None:
    """The shape of a TraceEvent message; errors name the field."""
    if message["step"] not in Step._value2member_map_:
        raise ValidationFailed("step", f"{message['step']} is not a step (0-{len(Step) - 1})")
    if message["disposition"] not in Disposition._value2member_map_:
        raise ValidationFailed("disposition", f"{message['disposition']} is not a disposition")
    codes = message["codes"]
    if not codes and message["parent"] == ZERO32:
        raise ValidationFailed("codes", "an event must name at least one code (or a parent code)")
    if len(set(codes)) != len(codes):
        raise ValidationFailed("codes", "names a code twice")
    step = Step(message["step"])
    if step in (Step.PACK, Step.UNPACK) and message["parent"] == ZERO32:
        raise ValidationFailed("parent", f"a {step.slug} event needs the parent (case or pallet) code")
    if not message["location"].strip():
        raise ValidationFailed("location", "must name where the event happened")
    geo = message["geo"]
    if geo and not re.fullmatch(r"-?\d{1,2}(\.\d{1,2})?,-?\d{1,3}(\.\d{1,2})?", geo):
        raise ValidationFailed("geo", "must be empty or coarse 'lat,lon' with at most 2 decimals")


# on chain (TraceRegistry)

FUNCTIONS = {"CodeBatch": "commitCodes", "Anchor": "anchor"}
"""The TraceRegistry function that takes each signed type (``TraceEvent`` never goes on chain)."""


def as_tuple(primary_type: str, message: Mapping[str, Any]) -> tuple[Any, ...]:
    """A ``CodeBatch`` or ``Anchor`` message as the contract's struct, in field order."""
    return tuple(message[f["name"]] for f in EIP712_TYPES[primary_type])


def calldata(primary_type: str, message: Mapping[str, Any], signature: bytes) -> bytes:
    """The TraceRegistry call that submits a signed ``CodeBatch`` (``commitCodes``) or ``Anchor`` (``anchor``).

    ``message`` holds Python values (``bytes`` for ``bytes32``, ``int`` for integers, ``str`` for strings), as
    :meth:`TraceDomain.digest` takes them. Several calls go in one transaction with
    :func:`node_bridge.nonces.encode_batch`.
    """
    if primary_type not in FUNCTIONS:
        raise ValidationFailed("type", f"{primary_type!r} does not go on chain (one of {', '.join(FUNCTIONS)})")
    return abi.call(CONTRACT, FUNCTIONS[primary_type], [as_tuple(primary_type, message), bytes(signature)])
