"""A lean ABI encoder for the calls the write path builds thousands of times a second.

``eth_abi.encode`` costs ~0.25 ms for one signed record (it resolves encoders per call); this one handles what our
contract functions take (integers, bool, address, ``bytesN``, ``string``, ``bytes``, tuples and dynamic arrays of
those) in a tenth of that. :func:`encode` has eth_abi's signature and output; a test compares the two on random
input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from eth_utils.crypto import keccak

_WORD = 32
Encoder = Callable[[Any], bytes]


def split_tuple(abi_type: str) -> list[str]:
    """The component types of ``(a,b,(c,d))``."""
    parts, depth, current = [], 0, ""
    for char in abi_type[1:-1]:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += (char == "(") - (char == ")")
        current += char
    if current:
        parts.append(current)
    return parts


def is_dynamic(abi_type: str) -> bool:
    if abi_type.startswith("("):
        return any(is_dynamic(t) for t in split_tuple(abi_type))
    return abi_type in ("string", "bytes") or abi_type.endswith("[]")


def head_size(abi_type: str) -> int:
    """Bytes a value takes in its enclosing tuple's head: one word, or the whole of a static tuple."""
    if abi_type.startswith("(") and not is_dynamic(abi_type):
        return sum(head_size(t) for t in split_tuple(abi_type))
    return _WORD


def _padded(data: bytes) -> bytes:
    return len(data).to_bytes(_WORD, "big") + data + bytes(-len(data) % _WORD)


@cache
def encoder(abi_type: str) -> Encoder:
    """The encoder of one type (cached per type string)."""
    if abi_type.startswith("("):
        return _tuple_encoder(tuple(split_tuple(abi_type)))
    if abi_type.endswith("[]"):
        return _array_encoder(abi_type[:-2])
    if abi_type.startswith("uint"):
        return lambda value: int(value).to_bytes(_WORD, "big")
    if abi_type.startswith("int"):
        return lambda value: int(value).to_bytes(_WORD, "big", signed=True)
    if abi_type == "bool":
        return lambda value: (1 if value else 0).to_bytes(_WORD, "big")
    if abi_type == "address":
        return lambda value: bytes.fromhex(value[2:] if isinstance(value, str) else bytes(value).hex()).rjust(
            _WORD, b"\0"
        )
    if abi_type == "string":
        return lambda value: _padded(value.encode())
    if abi_type == "bytes":
        return lambda value: _padded(bytes(value))
    if abi_type.startswith("bytes"):
        return lambda value: bytes(value).ljust(_WORD, b"\0")
    raise NotImplementedError(f"{abi_type}: use eth_abi")


def _tuple_encoder(types: tuple[str, ...]) -> Encoder:
    parts = [(is_dynamic(t), encoder(t)) for t in types]
    heads_size = sum(head_size(t) for t in types)

    def encode_tuple(values: Sequence[Any]) -> bytes:
        heads: list[bytes] = []
        tails: list[bytes] = []
        offset = heads_size
        for (dynamic, encode_one), value in zip(parts, values, strict=True):
            encoded = encode_one(value)
            if dynamic:
                heads.append(offset.to_bytes(_WORD, "big"))
                tails.append(encoded)
                offset += len(encoded)
            else:
                heads.append(encoded)
        return b"".join(heads) + b"".join(tails)

    return encode_tuple


def _array_encoder(element: str) -> Encoder:
    """``T[]``: the length, then the elements encoded as a tuple of that many ``T``."""

    def encode_array(values: Sequence[Any]) -> bytes:
        return len(values).to_bytes(_WORD, "big") + _tuple_encoder((element,) * len(values))(values)

    return encode_array


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """``eth_abi.encode(types, values)`` for the types this module handles."""
    return encoder("(" + ",".join(types) + ")")(values)


def _canonical(item: Mapping[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in item["components"]) + ")" + item["type"][5:]
    return str(item["type"])


@cache
def function(contract: str, name: str) -> tuple[bytes, tuple[str, ...]]:
    """(selector, argument types) of function ``name`` of compiled contract ``contract``, from its ABI."""
    from node_bridge.compiler import artifact

    for item in artifact(contract).abi:
        if item.get("type") == "function" and item["name"] == name:
            types = tuple(_canonical(i) for i in item["inputs"])
            return keccak(f"{name}({','.join(types)})".encode())[:4], types
    raise KeyError(f"{contract} has no function {name}")


def call(contract: str, name: str, args: Sequence[Any]) -> bytes:
    """The calldata of ``contract.name(*args)``."""
    selector, types = function(contract, name)
    return selector + encode(types, args)
