"""The fast encoders of the write path against the reference libraries, on random input."""

from __future__ import annotations

from eth_abi import encode as reference_encode
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from credtrace.errors import ValidationFailed
from node_bridge import abi
from node_bridge.eip712 import SECP256K1_HALF_N, recover

RECORD = "(uint8,bytes32,bytes32,string,uint8,uint32,bytes32,uint64,uint64,uint64,uint8,bytes32,uint256)"
ENFORCEMENT = "(bytes32,bytes32,bytes32,uint16,uint64,uint256)"
records = st.tuples(
    st.integers(0, 255), st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.text(),
    st.integers(0, 255), st.integers(0, 2**32 - 1), st.binary(min_size=32, max_size=32), st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 255), st.binary(min_size=32, max_size=32),
    st.integers(0, 2**256 - 1),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(records, records, st.binary(max_size=100), st.booleans(), st.integers(-(2**255), 2**255 - 1))
def test_abi_encode_matches_eth_abi(first: tuple, second: tuple, raw: bytes, flag: bool, signed: int) -> None:
    receipt = (first[1], first[2], first[6], first[5] % 2**16, first[7], first[12])  # a static tuple, inline
    types = [RECORD, ENFORCEMENT, "bytes", "bool", RECORD, "int256", "address", "bytes[]", "uint256[]"]
    values = [first, receipt, raw, flag, second, signed, "0x" + "ab" * 20, [raw, b"", raw * 2], [1, 2**255]]
    assert abi.encode(types, values) == reference_encode(types, values)


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_recover_agrees_with_eth_account_and_refuses_malleable_signatures(digest: bytes) -> None:
    account = Account.create()
    signature = bytes(account.unsafe_sign_hash(digest).signature)
    assert recover(digest, signature) == account.address == Account._recover_hash(digest, signature=signature)
    s = int.from_bytes(signature[32:64], "big")
    flipped = signature[:32] + (2 * SECP256K1_HALF_N + 1 - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    try:
        recover(digest, flipped)
    except ValidationFailed as exc:
        assert exc.field == "signature" and "upper half" in exc.reason
    else:
        raise AssertionError("a high-s signature was accepted")


@settings(max_examples=100, deadline=None)
@given(records)
def test_the_event_decoder_reads_a_struct_as_eth_abi_does(record: tuple) -> None:
    from eth_abi import decode as reference_decode

    from node_bridge.compiler import artifact
    from node_bridge.events import EventDecoder, json_safe

    spec = EventDecoder(artifact("CreditRegistry").abi, "CreditRegistry").by_name["RecordIssued"]
    assert spec.data_readers is not None, "RecordIssued should take the fast path"
    data = abi.encode(list(spec.data_types), ["0x" + "cd" * 20, record])
    expected = [json_safe(value) for value in reference_decode(list(spec.data_types), data)]
    assert list(spec.decode_data(data)) == expected
