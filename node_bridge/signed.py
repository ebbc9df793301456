"""Registries of member-signed messages: one description per contract of what its members sign.

The registries built on ``contracts/utils/MemberSigned.sol`` (logistics credit, consumer protection, payments,
supervision) each take a few EIP-712 message types, each signed by an organisation named in one of its fields and
holding one of some roles. A :class:`SignedRegistry` says all of that once, and from it come the EIP-712 domain,
JSON normalisation with errors naming the field, the calldata of the contract call, and the messages back out of
the contract's events; ``api/signed_writes.py`` accepts such messages into the outbox the same way for every
registry. The Solidity side mirrors the field lists; each registry's tests prove the digests agree.

Field conventions: ``bytes32`` fields named in :attr:`MessageType.subjects` take a unified social credit code or a
0x-hex commitment (:func:`node_bridge.credit.subject_id`); other ``bytes32`` fields take 0x-hex; ``uintN`` fields
take an integer or a decimal string; ``string`` fields take text of at most :attr:`MessageType.max_text` characters;
``bytes32[]`` fields take a list of 0x-hex (or subjects, when named in ``subjects``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from credtrace.errors import ValidationFailed
from node_bridge import abi
from node_bridge.consortium import Role
from node_bridge.credit import subject_id
from node_bridge.eip712 import Domain, TypeFields, to_bytes, to_int, to_text

MAX_ARRAY = 32
"""Most elements a ``bytes32[]`` field of a signed message may hold."""


@dataclass(frozen=True)
class MessageType:
    """One EIP-712 message type a registry takes.

    ``signer_field`` names the ``bytes32`` field holding the signing organisation's member id (the signer's key must
    belong to it); ``roles`` are the roles of which the organisation must hold one; ``function`` is the contract
    function taking ``(message, signature)``.
    """

    name: str
    fields: TypeFields
    function: str
    signer_field: str
    roles: Role
    subjects: tuple[str, ...] = ()
    max_text: int = 1000

    @cached_property
    def field_types(self) -> dict[str, str]:
        return {f["name"]: f["type"] for f in self.fields}


@dataclass(frozen=True)
class SignedRegistry:
    """A contract of member-signed messages: its deployment name and the message types it takes."""

    contract: str
    types: tuple[MessageType, ...]
    by_name: dict[str, MessageType] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {t.name: t for t in self.types})

    @property
    def domain_name(self) -> str:
        """The EIP-712 domain name, as the contract's constructor gives it to ``MemberSigned``."""
        return f"credtrace {self.contract}"

    @property
    def eip712_types(self) -> dict[str, TypeFields]:
        return {t.name: t.fields for t in self.types}

    def domain(self, chain_id: int, address: str) -> Domain:
        """The EIP-712 domain of this registry deployed at ``address`` on chain ``chain_id``."""
        return Domain(self.domain_name, "1", chain_id, address, self.eip712_types)

    def type(self, name: str) -> MessageType:
        if name not in self.by_name:
            raise ValidationFailed("type", f"{name!r} is not one of {', '.join(self.by_name)}")
        return self.by_name[name]

    def normalise(self, type_name: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON message as Python values, every field present and of its type; errors name the field."""
        kind = self.type(type_name)
        if not isinstance(message, Mapping):
            raise ValidationFailed("message", "must be an object")
        if unknown := sorted(set(message) - set(kind.field_types)):
            raise ValidationFailed(unknown[0], f"is not a field of {type_name}")
        out: dict[str, Any] = {}
        for name, abi_type in kind.field_types.items():
            if name not in message:
                raise ValidationFailed(name, "is missing")
            out[name] = _value(message[name], name, abi_type, name in kind.subjects, kind.max_text)
        return out

    def calldata(self, type_name: str, message: Mapping[str, Any], signature: bytes) -> bytes:
        """The call that records a signed message: ``function(message as a tuple, signature)``."""
        kind = self.type(type_name)
        values = tuple(message[f["name"]] for f in kind.fields)
        return abi.call(self.contract, kind.function, [values, bytes(signature)])

    def from_event(self, type_name: str, values: Sequence[Any]) -> dict[str, Any]:
        """A message from an event argument holding the signed struct, as the indexer stores it (JSON values)."""
        kind = self.type(type_name)
        out: dict[str, Any] = {}
        for spec, value in zip(kind.fields, values, strict=True):
            out[spec["name"]] = _value(value, spec["name"], spec["type"], False, 2**31)
        return out


def _value(value: Any, name: str, abi_type: str, is_subject: bool, max_text: int) -> Any:
    if abi_type.endswith("[]"):
        if not isinstance(value, list | tuple):
            raise ValidationFailed(name, "must be a list")
        if len(value) > MAX_ARRAY:
            raise ValidationFailed(name, f"holds {len(value)} items; at most {MAX_ARRAY}")
        return [_value(v, f"{name}[{i}]", abi_type[:-2], is_subject, max_text) for i, v in enumerate(value)]
    if abi_type == "bytes32":
        if is_subject and isinstance(value, str):
            try:
                return subject_id(value)
            except ValidationFailed as exc:  # subject_id names its field "subject"; ours may be "merchant"
                raise ValidationFailed(name, exc.reason) from None
        return _bytes32(value, name)
    if abi_type.startswith("uint"):
        number = to_int(value, name)
        bits = int(abi_type[4:] or 256)
        if number >= 2**bits:
            raise ValidationFailed(name, f"must fit in {abi_type} (below 2^{bits})")
        return number
    if abi_type == "string":
        return to_text(value, name, max_text)
    if abi_type == "bool":
        if not isinstance(value, bool):
            raise ValidationFailed(name, "must be true or false")
        return value
    raise ValidationFailed(name, f"has a type ({abi_type}) signed messages do not use")


def _bytes32(value: Any, name: str) -> bytes:
    raw = to_bytes(value, name)
    if len(raw) != 32:
        raise ValidationFailed(name, f"must be 32 bytes, got {len(raw)}")
    return raw
