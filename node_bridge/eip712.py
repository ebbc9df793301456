"""EIP-712 typed data over type definitions given as data: digests, signatures and recovery, fast.

Each contract module defines its types once, as ``{type name: [{"name", "type"}, ...]}`` (the standard JSON form
that eth-account, ethers and wallets take), and a :class:`Domain`. :class:`StructType` turns one flat type (fields of
atomic types: ``uintN``, ``intN``, ``bool``, ``address``, ``bytesN``, ``string``, ``bytes``, and dynamic arrays of
them) into a hasher that costs a few microseconds per message, where eth-account's generic encoder costs a hundred
or more: the write API checks thousands of signed records a second. Tests prove both give the same digest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from coincurve import PublicKey
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from sha3 import keccak_256  # safe-pysha3: C keccak, ten times eth-utils' per call
from web3 import Web3

from credtrace.errors import ValidationFailed

TypeFields = list[dict[str, str]]


def keccak(data: bytes) -> bytes:
    """keccak256 of ``data``."""
    return bytes(keccak_256(data).digest())


DOMAIN_TYPE: TypeFields = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def to_bytes(value: Any, field: str) -> bytes:
    """``bytes`` from bytes or 0x-hex text (what JSON carries)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            raise ValidationFailed(field, "is not valid 0x-hex") from None
    raise ValidationFailed(field, f"must be 0x-hex bytes, got {type(value).__name__}")


def to_int(value: Any, field: str) -> int:
    """An integer from an int or a string of decimal digits (what JSON carries for uint256); not a boolean."""
    if isinstance(value, bool):
        raise ValidationFailed(field, "must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValidationFailed(field, f"must be an integer or a string of digits, got {value!r}")


def to_text(value: Any, field: str, max_length: int) -> str:
    """A string of at most ``max_length`` characters (what a ``string`` field of a signed message may hold)."""
    if not isinstance(value, str):
        raise ValidationFailed(field, f"must be text, got {type(value).__name__}")
    if len(value) > max_length:
        raise ValidationFailed(field, f"is {len(value)} characters; at most {max_length}")
    return value


def hex32(value: bytes) -> str:
    """0x-hex of raw bytes (ids, subjects, hashes): how the index stores them, the API shows them and errors name
    them, for every registry alike."""
    return "0x" + value.hex()


JSON_SAFE_INT = 2**53
"""Integers above this go to JSON as decimal strings: JSON readers cannot hold them exactly."""


def to_json(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message as JSON values (the inverse of :func:`to_bytes` / :func:`to_int`): bytes as 0x-hex (also inside
    lists), integers beyond 2^53 as decimal strings (JSON readers cannot hold them exactly)."""
    return {name: _json(value) for name, value in message.items()}


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        return hex32(value)
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value > JSON_SAFE_INT:
        return str(value)
    return value


def _encoder(abi_type: str, field: str) -> Callable[[Any], bytes]:
    """The 32-byte EIP-712 encoding of one field: an atomic type, or a dynamic array of one (``bytes32[]``)."""
    if abi_type.endswith("[]"):
        element = _encoder(abi_type[:-2], field)

        def array(values: Any) -> bytes:
            if not isinstance(values, list | tuple):
                raise ValidationFailed(field, f"must be a list, got {type(values).__name__}")
            return keccak(b"".join(element(v) for v in values))

        return array
    if abi_type.startswith(("uint", "int")):
        signed = abi_type.startswith("int")
        bits = int(abi_type.removeprefix("u").removeprefix("int") or 256)
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)

        def integer(value: Any) -> bytes:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationFailed(field, f"must be an integer ({abi_type}), got {value!r}")
            if not low <= value < high:
                raise ValidationFailed(field, f"{value} is out of range for {abi_type}")
            return value.to_bytes(32, "big", signed=signed)

        return integer
    if abi_type == "bool":
        return lambda value: int(bool(value)).to_bytes(32, "big")
    if abi_type == "address":

        def address(value: Any) -> bytes:
            raw = to_bytes(value, field)
            if len(raw) != 20:
                raise ValidationFailed(field, f"must be a 20-byte address, got {len(raw)} bytes")
            return raw.rjust(32, b"\0")

        return address
    if abi_type == "string":
        return lambda value: keccak(str(value).encode())
    if abi_type == "bytes":
        return lambda value: keccak(to_bytes(value, field))
    if abi_type.startswith("bytes"):
        size = int(abi_type[5:])

        def fixed(value: Any) -> bytes:
            raw = to_bytes(value, field)
            if len(raw) != size:
                raise ValidationFailed(field, f"must be {size} bytes, got {len(raw)}")
            return raw.ljust(32, b"\0")

        return fixed
    raise NotImplementedError(f"{abi_type} is not an atomic EIP-712 type")


class StructType:
    """One flat EIP-712 struct type: its type string, type hash and a fast ``hashStruct``."""

    def __init__(self, name: str, fields: TypeFields) -> None:
        self.name = name
        self.fields = fields
        self.encode_type = f"{name}({','.join(f['type'] + ' ' + f['name'] for f in fields)})"
        self.type_hash = keccak(self.encode_type.encode())
        self._encoders = [(f["name"], _encoder(f["type"], f["name"])) for f in fields]

    def hash_struct(self, message: Mapping[str, Any]) -> bytes:
        """``keccak256(typeHash ‖ encodeData(message))``; a missing or malformed field raises ValidationFailed."""
        parts = [self.type_hash]
        for name, encode in self._encoders:
            if name not in message:
                raise ValidationFailed(name, "is missing")
            parts.append(encode(message[name]))
        return keccak(b"".join(parts))


class Domain:
    """An EIP-712 domain (name, version, chain id, verifying contract) and the types signed under it."""

    def __init__(
        self, name: str, version: str, chain_id: int, verifying_contract: str, types: Mapping[str, TypeFields]
    ) -> None:
        self.name = name
        self.version = version
        self.chain_id = chain_id
        self.verifying_contract = Web3.to_checksum_address(verifying_contract)
        self.types = types
        self._structs = {type_name: StructType(type_name, fields) for type_name, fields in types.items()}
        self.separator = StructType("EIP712Domain", DOMAIN_TYPE).hash_struct(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }

    def struct(self, primary_type: str) -> StructType:
        if primary_type not in self._structs:
            raise ValidationFailed("type", f"{primary_type!r} is not one of {', '.join(self._structs)}")
        return self._structs[primary_type]

    def digest(self, primary_type: str, message: Mapping[str, Any]) -> bytes:
        """``keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message))``: what is signed, and our record ids."""
        return keccak(b"\x19\x01" + self.separator + self.struct(primary_type).hash_struct(message))

    def typed_data(self, primary_type: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """The standard JSON typed data (``types``, ``primaryType``, ``domain``, ``message``) for a wallet."""
        self.struct(primary_type)
        return {
            "types": {"EIP712Domain": DOMAIN_TYPE, primary_type: list(self.types[primary_type])},
            "primaryType": primary_type,
            "domain": self.as_dict(),
            "message": dict(message),
        }

    def sign(self, account: LocalAccount, primary_type: str, message: Mapping[str, Any]) -> bytes:
        """``account``'s 65-byte signature (r ‖ s ‖ v) of a message."""
        return bytes(account.unsafe_sign_hash(Hash32(self.digest(primary_type, message))).signature)


SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def recover(digest: bytes, signature: bytes) -> str:
    """The checksummed address that signed ``digest``, with the contract's rules (OpenZeppelin ECDSA):
    65 bytes r ‖ s ‖ v, v 27/28 (or 0/1), s in the lower half of the curve order. Else ValidationFailed."""
    if len(signature) != 65:
        raise ValidationFailed("signature", f"must be 65 bytes (r ‖ s ‖ v), got {len(signature)}")
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    if v not in (0, 1):
        raise ValidationFailed("signature", f"v must be 27 or 28, got {signature[64]}")
    if int.from_bytes(signature[32:64], "big") > SECP256K1_HALF_N:
        raise ValidationFailed("signature", "s is in the upper half of the curve order (a malleable signature)")
    try:
        public = PublicKey.from_signature_and_message(signature[:64] + bytes([v]), digest, hasher=None)
    except Exception as exc:  # coincurve raises ValueError or its own error for an r or s off the curve
        raise ValidationFailed("signature", f"does not recover to a public key ({exc})") from None
    return checksum("0x" + keccak(public.format(compressed=False)[1:])[-20:].hex())


@lru_cache(maxsize=65536)
def checksum(address: str) -> str:
    """EIP-55 form of a 0x-hex address (cached: the same signers recur)."""
    return Web3.to_checksum_address(address)


def reference_digest(typed: Mapping[str, Any]) -> bytes:
    """eth-account's digest of full typed data: the independent implementation tests compare against."""
    signable = encode_typed_data(full_message=dict(typed))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)
