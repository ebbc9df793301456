"""A lean decoder of raw ``eth_getLogs`` entries for any of our contracts, driven by the contract's ABI.

web3's ``get_logs`` + ``process_log`` decode about 2,000 events/s; a bulk indexer needs ten times that. So:
topic0 selects a precomputed event spec; indexed arguments are read straight from the topics; the data is read
word by word for the usual ABI types (integers, bool, address, fixed bytes, ``bytes``, ``string``, dynamic
arrays of those and dynamic tuples of those, such as a struct with a string), with ``eth_abi`` as the fallback
for anything else (static tuples, fixed-size arrays, nested arrays).

Values come out JSON-safe, as stored in ``chain_event.args``: bytes as lowercase 0x-hex, addresses checksummed,
integers as ``int`` (as decimal ``str`` beyond ±2^53, which JSON readers cannot hold exactly), bool as bool.
An indexed argument of a dynamic type is only its keccak hash in the topic: it is kept as that 0x-hex hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from operator import call
from typing import Any, NamedTuple

from eth_abi import decode as abi_decode
from eth_utils.crypto import keccak
from web3 import Web3

from credtrace.errors import CredtraceError
from node_bridge.abi import is_dynamic, split_tuple

JSON_SAFE_INT = 2**53
_WORD = 32


class UndecodableLog(CredtraceError):
    """A log whose topic0 is no event of the contract's ABI, or whose data does not match the event."""


class DecodedEvent(NamedTuple):
    """One decoded contract event. Its natural key is (chain, ``tx_hash``, ``log_index``).

    A named tuple whose fields follow the columns of ``chain_event``: a bulk backfill creates tens of thousands
    per range, and a frozen dataclass costs several times more.
    """

    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    contract: str
    address: str
    name: str
    args: dict[str, Any]

    @property
    def key(self) -> tuple[str, int]:
        """The natural key within one chain: (transaction hash, log index in its block)."""
        return self.tx_hash, self.log_index

    def row(self, chain_id: int) -> dict[str, Any]:
        """The ``chain_event`` row of this event."""
        return {"chain_id": chain_id, **self._asdict()}


@lru_cache(maxsize=65536)
def checksum(address: str) -> str:
    """EIP-55 checksummed form of a 0x-hex address (cached: the same signers recur in every batch)."""
    return Web3.to_checksum_address(address)


def json_int(value: int) -> int | str:
    return value if -JSON_SAFE_INT <= value <= JSON_SAFE_INT else str(value)


def json_safe(value: Any) -> Any:
    """A decoded ABI value made JSON-safe (used on eth_abi's output for the types the fast path skips)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return json_int(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        return checksum(value)
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# Fast word readers: (data, offset of the word) -> JSON-safe value.
WordReader = Callable[[bytes, int], Any]


def _uint(data: bytes, at: int) -> Any:
    return json_int(int.from_bytes(data[at : at + _WORD], "big"))


def _small_uint(data: bytes, at: int) -> Any:
    return int.from_bytes(data[at : at + _WORD], "big")  # uint8 .. uint48: always JSON-safe


def _int(data: bytes, at: int) -> Any:
    return json_int(int.from_bytes(data[at : at + _WORD], "big", signed=True))


def _bool(data: bytes, at: int) -> Any:
    return data[at + _WORD - 1] != 0


def _address(data: bytes, at: int) -> Any:
    return checksum("0x" + data[at + 12 : at + _WORD].hex())


def _fixed_bytes(size: int) -> WordReader:
    return lambda data, at: "0x" + data[at : at + size].hex()


def _static_reader(abi_type: str) -> WordReader | None:
    """A reader for one static elementary type, or None if the fast path does not handle it."""
    if abi_type == "bool":
        return _bool
    if abi_type == "address":
        return _address
    if abi_type.startswith("uint"):
        return _small_uint if int(abi_type[4:] or 256) <= 48 else _uint
    if abi_type.startswith("int"):
        return _int
    if abi_type.startswith("bytes") and abi_type[5:].isdigit():
        return _fixed_bytes(int(abi_type[5:]))
    return None


def _length_at(data: bytes, head: int) -> tuple[int, int]:
    """(start, length) of the dynamic value whose offset is in the head word at ``head``."""
    start = int.from_bytes(data[head : head + _WORD], "big")
    length = int.from_bytes(data[start : start + _WORD], "big")
    if start + _WORD + length > len(data):
        raise UndecodableLog(f"dynamic value at offset {start} runs past the {len(data)} bytes of data")
    return start + _WORD, length


def _bytes_reader(data: bytes, head: int) -> Any:
    start, length = _length_at(data, head)
    return "0x" + data[start : start + length].hex()


def _string_reader(data: bytes, head: int) -> Any:
    start, length = _length_at(data, head)
    return data[start : start + length].decode("utf-8", errors="replace")


def _array_reader(element: WordReader) -> WordReader:
    def read(data: bytes, head: int) -> Any:
        start, length = _length_at(data, head)
        if start + length * _WORD > len(data):
            raise UndecodableLog(f"array of {length} at offset {start} runs past the {len(data)} bytes of data")
        return [element(data, start + i * _WORD) for i in range(length)]

    return read


def _tuple_reader(abi_type: str) -> WordReader | None:
    """A reader of a dynamic tuple of handled, non-tuple types (a struct with a string, say), as a list."""
    parts = split_tuple(abi_type)
    readers = [None if part.startswith("(") else _reader(part) for part in parts]
    if not is_dynamic(abi_type) or any(r is None for r in readers):
        return None  # a static tuple sits inline and shifts the heads after it: eth_abi handles those
    heads = [(reader, _WORD * n) for n, reader in enumerate(readers) if reader is not None]

    def read(data: bytes, head: int) -> Any:
        start = int.from_bytes(data[head : head + _WORD], "big")
        if start + _WORD * len(heads) > len(data):
            raise UndecodableLog(f"tuple at offset {start} runs past the {len(data)} bytes of data")
        inner = data[start:]  # offsets inside a tuple count from its start
        return [reader(inner, at) for reader, at in heads]

    return read


def _reader(abi_type: str) -> WordReader | None:
    """A head-word reader for ``abi_type`` (static, or dynamic via its offset), None if not handled."""
    if abi_type.startswith("("):
        return _tuple_reader(abi_type)
    if abi_type == "bytes":
        return _bytes_reader
    if abi_type == "string":
        return _string_reader
    if abi_type.endswith("[]") and "[" not in abi_type[:-2]:
        element = _static_reader(abi_type[:-2])
        return _array_reader(element) if element is not None else None
    return _static_reader(abi_type)


def _topic_reader(abi_type: str) -> Callable[[str], Any]:
    """How to read an indexed argument from its 0x-hex topic."""
    if abi_type == "address":
        return lambda topic: checksum("0x" + topic[-40:])
    if abi_type == "bool":
        return lambda topic: int(topic, 16) != 0
    if abi_type.startswith("uint"):
        return lambda topic: json_int(int(topic, 16))
    if abi_type.startswith("int"):
        return lambda topic: json_int(int.from_bytes(bytes.fromhex(topic[2:]), "big", signed=True))
    if abi_type.startswith("bytes") and abi_type[5:].isdigit() and abi_type != "bytes32":
        size = int(abi_type[5:])
        return lambda topic: topic[: 2 + 2 * size].lower()
    return str.lower  # bytes32, or a dynamic type whose topic is its keccak hash


def _canonical_type(item: Mapping[str, Any]) -> str:
    abi_type = str(item["type"])
    if abi_type.startswith("tuple"):
        return "(" + ",".join(_canonical_type(c) for c in item["components"]) + ")" + abi_type[5:]
    return abi_type


@dataclass(frozen=True)
class EventSpec:
    """One event of an ABI, precomputed for decoding."""

    name: str
    signature: str
    topic0: str
    indexed_names: tuple[str, ...]
    indexed_readers: tuple[Callable[[str], Any], ...]
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]
    data_readers: tuple[WordReader, ...] | None  # None: decode the data with eth_abi
    data_offsets: tuple[int, ...]

    @classmethod
    def from_abi(cls, item: Mapping[str, Any]) -> EventSpec:
        inputs = list(item.get("inputs", []))
        types = [_canonical_type(i) for i in inputs]
        names = [str(i.get("name") or f"arg{n}") for n, i in enumerate(inputs)]
        signature = f"{item['name']}({','.join(types)})"
        indexed = [(name, t) for name, t, i in zip(names, types, inputs, strict=True) if i.get("indexed")]
        data = [(name, t) for name, t, i in zip(names, types, inputs, strict=True) if not i.get("indexed")]
        readers = [_reader(t) for _, t in data]
        return cls(
            name=str(item["name"]),
            signature=signature,
            topic0="0x" + keccak(text=signature).hex(),
            indexed_names=tuple(n for n, _ in indexed),
            indexed_readers=tuple(_topic_reader(t) for _, t in indexed),
            data_names=tuple(n for n, _ in data),
            data_types=tuple(t for _, t in data),
            data_readers=None if any(r is None for r in readers) else tuple(r for r in readers if r is not None),
            data_offsets=tuple(_WORD * n for n in range(len(data))),
        )

    def decode_data(self, data: bytes) -> Iterable[Any]:
        if self.data_readers is None:
            return [json_safe(v) for v in abi_decode(list(self.data_types), data, strict=False)]
        if len(data) < _WORD * len(self.data_readers):
            raise UndecodableLog(
                f"{self.name}: {len(data)} bytes of data, expected at least {_WORD * len(self.data_readers)}"
            )
        return list(map(call, self.data_readers, repeat(data), self.data_offsets))


class EventDecoder:
    """Decodes raw logs (JSON-RPC dicts) of one contract: ``EventDecoder(abi, "Consortium").decode(log)``."""

    def __init__(self, abi: Sequence[Mapping[str, Any]], contract_name: str) -> None:
        self.contract_name = contract_name
        specs = [EventSpec.from_abi(item) for item in abi if item.get("type") == "event" and not item.get("anonymous")]
        self.events: dict[str, EventSpec] = {spec.topic0: spec for spec in specs}
        self.by_name: dict[str, EventSpec] = {spec.name: spec for spec in specs}

    def topic0(self, name: str) -> str:
        """The topic0 (keccak of the signature) of event ``name``."""
        return self.by_name[name].topic0

    def decode(self, log: Mapping[str, Any]) -> DecodedEvent:
        """One raw ``eth_getLogs`` entry decoded; :class:`UndecodableLog` if it is not an event of this ABI."""
        topics = log["topics"]
        spec = (self.events.get(topics[0]) or self.events.get(topics[0].lower())) if topics else None
        if spec is None:
            raise UndecodableLog(
                f"log {log.get('logIndex')} of tx {log.get('transactionHash')}: topic0 "
                f"{topics[0] if topics else None} is no event of {self.contract_name}"
            )
        if len(topics) != len(spec.indexed_names) + 1:
            raise UndecodableLog(f"{spec.name}: {len(topics) - 1} indexed topics, expected {len(spec.indexed_names)}")
        args = dict(zip(spec.indexed_names, map(call, spec.indexed_readers, topics[1:]), strict=True))
        raw = log["data"]
        data = bytes.fromhex(raw[2:]) if isinstance(raw, str) else bytes(raw)
        try:
            args.update(zip(spec.data_names, spec.decode_data(data), strict=True))
        except (ValueError, IndexError) as exc:
            raise UndecodableLog(f"{spec.name} in tx {log.get('transactionHash')}: {exc}") from exc
        return DecodedEvent(
            log["transactionHash"].lower(),
            int(log["logIndex"], 16),
            int(log["blockNumber"], 16),
            log["blockHash"].lower(),
            self.contract_name,
            checksum(log["address"]),
            spec.name,
            args,
        )
