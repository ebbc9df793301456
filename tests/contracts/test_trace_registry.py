"""The TraceRegistry contract on the in-process EVM, driven through node_bridge.trace (the Python mirror).

Every rule of ``commitCodes`` and ``anchor`` is triggered on purpose; the EIP-712 digests of Python, eth-account and
the contract are compared on random messages (unicode strings included); gas is measured and printed (``-s``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from credtrace.errors import ValidationFailed
from node_bridge import trace
from node_bridge.compiler import artifact
from node_bridge.consortium import ConsortiumClient, Role
from node_bridge.eip712 import reference_digest
from node_bridge.merkle import MerkleTree
from node_bridge.nonces import encode_batch
from node_bridge.trace import ZERO32, TraceDomain, as_tuple, calldata, code_id, digital_link
from node_bridge.transactions import Sender, decode_revert

from .conftest import Member, reverts

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
GTIN = "09506000134352"
ABI = artifact("TraceRegistry").abi


def lower(account: LocalAccount) -> str:
    """An address as custom-error arguments decode it."""
    return account.address.lower()


def root_of(n: int, lot: str = "L1") -> bytes:
    """The RFC 6962 root over the ids of ``n`` codes of ``lot``."""
    return MerkleTree([code_id(digital_link(GTIN, lot, f"S{i:06d}")) for i in range(n)]).root


@dataclass
class Registry:
    """A deployed TraceRegistry with message builders, sends and views."""

    w3: Web3
    contract: Contract
    sender: Sender
    domain: TraceDomain
    _nonces: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _roots: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # messages

    def code_batch(self, producer: Member | bytes, **fields: Any) -> dict[str, Any]:
        producer_id = producer.id if isinstance(producer, Member) else producer
        message = {
            "producer": producer_id, "gtin": GTIN, "lot": "L1", "count": 100, "root": root_of(100),
            "nonce": next(self._nonces),
        }  # fmt: skip
        return message | fields

    def next_anchor(self, **fields: Any) -> dict[str, Any]:
        """The anchor that extends the chain now (a fresh root of 1,000 events)."""
        message = {
            "index": self.count(), "root": root_of(3, f"R{next(self._roots)}"), "size": 1000,
            "previousRoot": self.last_root(), "firstTime": 1_767_225_600, "lastTime": 1_767_225_605,
        }  # fmt: skip
        return message | fields

    # writes

    def commit(self, batch: dict[str, Any], signer: LocalAccount, signature: bytes | None = None) -> TxReceipt:
        signature = self.domain.sign(signer, "CodeBatch", batch) if signature is None else signature
        return self.sender.transact_raw(self.contract.address, calldata("CodeBatch", batch, signature), ABI)

    def anchor(self, message: dict[str, Any], signer: LocalAccount, signature: bytes | None = None) -> TxReceipt:
        signature = self.domain.sign(signer, "Anchor", message) if signature is None else signature
        return self.sender.transact_raw(self.contract.address, calldata("Anchor", message, signature), ABI)

    # views

    def count(self) -> int:
        return int(self.contract.functions.anchoredCount().call())

    def last_root(self) -> bytes:
        return bytes(self.contract.functions.lastRoot().call())

    def committed(self, batch: dict[str, Any]) -> bool:
        return bool(self.contract.functions.isCommitted(self.domain.digest("CodeBatch", batch)).call())


@pytest.fixture
def reg(w3: Web3, sender: Sender, trace_registry: Contract) -> Registry:
    return Registry(w3, trace_registry, sender, TraceDomain(w3.eth.chain_id, trace_registry.address))


@pytest.fixture
def regulator(regulator_members: list[Member]) -> Member:
    return regulator_members[0]


# deployment and calldata


def test_registry_trusts_the_consortium_and_publishes_its_domain(reg: Registry, consortium: ConsortiumClient) -> None:
    assert reg.contract.functions.consortium().call() == consortium.contract.address
    assert reg.contract.functions.domainSeparator().call() == reg.domain.separator
    _, name, version, chain_id, verifying_contract, _, _ = reg.contract.functions.eip712Domain().call()
    assert (name, version) == (trace.DOMAIN_NAME, trace.DOMAIN_VERSION) == ("credtrace TraceRegistry", "1")
    assert (chain_id, verifying_contract) == (reg.w3.eth.chain_id, reg.contract.address)
    assert (reg.count(), reg.last_root()) == (0, ZERO32)


def test_calldata_is_the_abi_encoding_of_each_function(reg: Registry, producer_member: Member) -> None:
    batch = reg.code_batch(producer_member, lot="Lot-α")
    signature = reg.domain.sign(producer_member.key, "CodeBatch", batch)
    expected = reg.contract.functions.commitCodes(as_tuple("CodeBatch", batch), signature)._encode_transaction_data()
    assert calldata("CodeBatch", batch, signature) == HexBytes(expected)
    message = reg.next_anchor()
    expected = reg.contract.functions.anchor(as_tuple("Anchor", message), signature)._encode_transaction_data()
    assert calldata("Anchor", message, signature) == HexBytes(expected)
    with pytest.raises(ValidationFailed):
        calldata("TraceEvent", {}, signature)


# commitCodes


def test_a_producer_commits_a_code_batch(reg: Registry, producer_member: Member) -> None:
    batch = reg.code_batch(producer_member, lot='Apple_2026-"a%!', count=100_000, root=root_of(7))
    receipt = reg.commit(batch, producer_member.keys[1])
    batch_id = reg.domain.digest("CodeBatch", batch)
    assert batch_id == reg.contract.functions.hashCodeBatch(as_tuple("CodeBatch", batch)).call()
    (event,) = reg.contract.events.CodesCommitted().process_receipt(receipt, errors=DISCARD)
    assert dict(event["args"]) == {
        "id": batch_id, "producer": producer_member.id, "gtin": GTIN, "lot": batch["lot"], "count": 100_000,
        "root": batch["root"], "signer": producer_member.keys[1].address,
    }  # fmt: skip
    assert reg.committed(batch)
    assert not reg.committed(batch | {"nonce": batch["nonce"] + 1})
    print(f"\ncommitCodes gas: {receipt['gasUsed']}")


def test_a_code_batch_is_committed_once(reg: Registry, producer_member: Member) -> None:
    batch = reg.code_batch(producer_member)
    reg.commit(batch, producer_member.key)
    with reverts("AlreadyCommitted") as info:
        reg.commit(batch, producer_member.key)
    assert info.value.args_ == (reg.domain.digest("CodeBatch", batch),)
    with reverts("AlreadyCommitted"):  # the producer's other key signs the same message: the same id
        reg.commit(batch, producer_member.keys[1])
    reg.commit(batch | {"nonce": batch["nonce"] + 1000}, producer_member.key)  # a twin with its own nonce


def test_only_a_producer_commits_codes(
    reg: Registry, consortium: ConsortiumClient, regulators: list[LocalAccount], regulator: Member,
    platform_member: Member, producer_member: Member,
) -> None:  # fmt: skip
    for member in (regulator, platform_member):
        batch = reg.code_batch(member)
        with reverts("NotProducer") as info:
            reg.commit(batch, member.key)
        assert info.value.args_ == (lower(member.key),)
        assert not reg.committed(batch)
    consortium.change_roles(platform_member.id, Role.PLATFORM | Role.PRODUCER, regulators[:2])
    reg.commit(reg.code_batch(platform_member), platform_member.key)  # roles are read at commit time
    consortium.change_roles(producer_member.id, Role.LOGISTICS, regulators[:2])
    with reverts("NotProducer"):
        reg.commit(reg.code_batch(producer_member), producer_member.key)


def test_producer_must_be_the_signers_organisation(
    reg: Registry, regulator: Member, platform_member: Member, producer_member: Member
) -> None:
    for claimed in (platform_member.id, regulator.id, ZERO32):
        with reverts("ProducerMismatch") as info:
            reg.commit(reg.code_batch(claimed), producer_member.key)
        assert info.value.args_ == (claimed, producer_member.id)


def test_an_inactive_key_cannot_commit(
    reg: Registry, consortium: ConsortiumClient, regulators: list[LocalAccount], producer_member: Member
) -> None:
    first, second = producer_member.keys
    consortium.revoke_own_key(second, producer_member.id, first.address)
    batch = reg.code_batch(producer_member)
    with reverts("NotActiveSigner") as info:
        reg.commit(batch, first)
    assert info.value.args_ == (lower(first),)
    reg.commit(batch, second)

    consortium.suspend(producer_member.id, regulators[:2])
    with reverts("NotActiveSigner") as info:
        reg.commit(reg.code_batch(producer_member), second)
    assert info.value.args_ == (lower(second),)
    stranger = Account.create()
    with reverts("NotActiveSigner") as info:
        reg.commit(reg.code_batch(producer_member), stranger)
    assert info.value.args_ == (lower(stranger),)


def test_an_empty_or_rootless_batch_is_refused(reg: Registry, producer_member: Member) -> None:
    with reverts("EmptyBatch"):
        reg.commit(reg.code_batch(producer_member, count=0), producer_member.key)
    with reverts("ZeroRoot"):
        reg.commit(reg.code_batch(producer_member, root=ZERO32), producer_member.key)
    reg.commit(reg.code_batch(producer_member, count=1, root=root_of(1)), producer_member.key)


GTINS = [
    GTIN, "00000000000000", "04006381333931", "4006381333931", "0400638133393", "040063813339310",
    "04006381333932", "0400638133393a", "０4006381333931", "04006381333931\n", "", "0" * 13 + "\u0660",
]  # fmt: skip
LOTS = [
    "L1", "A" * 20, "A" * 21, "", "LOT/1", "LOT 1", "lot_%&'()*+,-.:;<=>?", '!"', "LOT#1", "LOT\x00", "LOT\n",
    "Lot-α", "苹果", "LOT@1", "LOT$", "LOT~",
]  # fmt: skip


def _python_accepts(check: Callable[[str], str], value: str) -> bool:
    try:
        return check(value) == value
    except ValidationFailed:
        return False


@pytest.mark.parametrize("gtin", GTINS)
def test_gtin_is_checked_on_chain(reg: Registry, producer_member: Member, gtin: str) -> None:
    """The contract accepts exactly the GTIN-14s node_bridge.trace accepts (check digit included)."""
    batch = reg.code_batch(producer_member, gtin=gtin)
    if _python_accepts(trace.normalise_gtin, gtin) and "\n" not in gtin and gtin.isascii():
        reg.commit(batch, producer_member.key)
        assert reg.committed(batch)
    else:
        with reverts("InvalidGtin") as info:
            reg.commit(batch, producer_member.key)
        assert info.value.args_ == (gtin,)


@pytest.mark.parametrize("lot", LOTS)
def test_lot_is_checked_on_chain(reg: Registry, producer_member: Member, lot: str) -> None:
    """The contract accepts exactly the lots node_bridge.trace accepts (GS1 AI 10, no '/')."""
    batch = reg.code_batch(producer_member, lot=lot)
    if _python_accepts(trace.check_lot, lot) and "\n" not in lot:
        reg.commit(batch, producer_member.key)
        assert reg.committed(batch)
    else:
        with reverts("InvalidLot") as info:
            reg.commit(batch, producer_member.key)
        assert info.value.args_ == (lot,)


def _malleated(signature: bytes) -> bytes:
    """The same signer's other valid (r, n - s, v') signature, which ECDSA.sol refuses as malleable."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda sig: b"",
    "64 bytes": lambda sig: sig[:64],
    "66 bytes": lambda sig: sig + b"\x00",
    "v 29": lambda sig: sig[:64] + b"\x1d",
    "r and s zero": lambda sig: bytes(64) + sig[64:],
    "high s": _malleated,
}


@pytest.mark.parametrize("malform", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signature_is_refused(
    reg: Registry, producer_member: Member, regulator: Member, malform: Callable[[bytes], bytes]
) -> None:
    batch = reg.code_batch(producer_member)
    with reverts("InvalidSignature"):
        reg.commit(batch, producer_member.key, malform(reg.domain.sign(producer_member.key, "CodeBatch", batch)))
    message = reg.next_anchor()
    with reverts("InvalidSignature"):
        reg.anchor(message, regulator.key, malform(reg.domain.sign(regulator.key, "Anchor", message)))


def test_a_signature_for_another_registry_recovers_to_a_stranger(
    reg: Registry, sender: Sender, consortium: ConsortiumClient, producer_member: Member
) -> None:
    other, _ = sender.deploy(artifact("TraceRegistry"), consortium.contract.address)
    batch = reg.code_batch(producer_member)
    signature = TraceDomain(reg.domain.chain_id, other.address).sign(producer_member.key, "CodeBatch", batch)
    with reverts("NotActiveSigner"):
        reg.commit(batch, producer_member.key, signature)
    sender.transact_raw(other.address, calldata("CodeBatch", batch, signature), ABI)  # valid where it was meant


# anchor


def test_anchors_form_an_append_only_chain(reg: Registry, regulator_members: list[Member]) -> None:
    roots = []
    for position in range(3):
        signer = regulator_members[position % 2].key
        message = reg.next_anchor(size=position + 1, firstTime=100 * position, lastTime=100 * position)
        receipt = reg.anchor(message, signer)
        (event,) = reg.contract.events.BatchAnchored().process_receipt(receipt, errors=DISCARD)
        assert dict(event["args"]) == message | {"signer": signer.address}
        roots.append(message["root"])
        assert (reg.count(), reg.last_root()) == (position + 1, message["root"])
    digest = reg.contract.functions.hashAnchor(as_tuple("Anchor", message)).call()
    assert digest == reg.domain.digest("Anchor", message)
    assert message["previousRoot"] == roots[1]


def test_an_anchor_must_take_the_next_index(reg: Registry, regulator: Member) -> None:
    with reverts("WrongIndex") as info:
        reg.anchor(reg.next_anchor(index=1), regulator.key)
    assert info.value.args_ == (1, 0)
    first = reg.next_anchor()
    reg.anchor(first, regulator.key)
    with reverts("WrongIndex") as info:  # the same anchor sent again (a relayer's retry): already there
        reg.anchor(first, regulator.key)
    assert info.value.args_ == (0, 1)
    with reverts("WrongIndex") as info:
        reg.anchor(reg.next_anchor(index=2**64 - 1), regulator.key)
    assert info.value.args_ == (2**64 - 1, 1)
    assert reg.count() == 1


def test_an_anchor_must_chain_to_the_last_root(reg: Registry, regulator: Member) -> None:
    bogus = b"\x01" * 32
    with reverts("WrongPreviousRoot") as info:  # before the first anchor the previous root is zero
        reg.anchor(reg.next_anchor(previousRoot=bogus), regulator.key)
    assert info.value.args_ == (bogus, ZERO32)
    first = reg.next_anchor()
    reg.anchor(first, regulator.key)
    for wrong in (ZERO32, bogus):
        with reverts("WrongPreviousRoot") as info:
            reg.anchor(reg.next_anchor(previousRoot=wrong), regulator.key)
        assert info.value.args_ == (wrong, first["root"])
    reg.anchor(reg.next_anchor(), regulator.key)
    assert reg.count() == 2


def test_an_anchor_needs_events_a_root_and_a_time_range(reg: Registry, regulator: Member) -> None:
    for size in (0, 2**48, 2**64 - 1):
        with reverts("InvalidSize") as info:
            reg.anchor(reg.next_anchor(size=size), regulator.key)
        assert info.value.args_ == (size,)
    with reverts("ZeroRoot"):
        reg.anchor(reg.next_anchor(root=ZERO32), regulator.key)
    for first, last in ((1_767_225_601, 1_767_225_600), (0, 2**40), (2**64 - 1, 2**64 - 1)):
        with reverts("InvalidTimeRange") as info:
            reg.anchor(reg.next_anchor(firstTime=first, lastTime=last), regulator.key)
        assert info.value.args_ == (first, last)
    assert reg.count() == 0
    reg.anchor(reg.next_anchor(size=2**48 - 1, firstTime=0, lastTime=2**40 - 1), regulator.key)  # the bounds
    reg.anchor(reg.next_anchor(size=1, firstTime=2**40 - 1, lastTime=2**40 - 1), regulator.key)
    assert reg.count() == 2


def test_only_a_regulator_anchors(
    reg: Registry, consortium: ConsortiumClient, regulators: list[LocalAccount], regulator: Member,
    producer_member: Member, platform_member: Member,
) -> None:  # fmt: skip
    message = reg.next_anchor()
    for member in (producer_member, platform_member):
        with reverts("NotRegulator") as info:
            reg.anchor(message, member.key)
        assert info.value.args_ == (lower(member.key),)
    assert reg.count() == 0
    consortium.change_roles(platform_member.id, Role.PLATFORM | Role.REGULATOR, regulators[:2])
    reg.anchor(message, platform_member.key)
    assert reg.count() == 1


def test_an_inactive_key_cannot_anchor(
    reg: Registry, consortium: ConsortiumClient, regulators: list[LocalAccount], platform_member: Member
) -> None:
    consortium.change_roles(platform_member.id, Role.REGULATOR, regulators[:2])
    first, second = platform_member.keys
    consortium.revoke_own_key(second, platform_member.id, first.address)
    with reverts("NotActiveSigner") as info:
        reg.anchor(reg.next_anchor(), first)
    assert info.value.args_ == (lower(first),)
    consortium.suspend(platform_member.id, regulators[:2])
    with reverts("NotActiveSigner"):
        reg.anchor(reg.next_anchor(), second)
    stranger = Account.create()
    with reverts("NotActiveSigner") as info:
        reg.anchor(reg.next_anchor(), stranger)
    assert info.value.args_ == (lower(stranger),)
    assert reg.count() == 0


def test_a_dirty_field_is_refused_without_data(reg: Registry, regulator: Member) -> None:
    """A uint64 field with bits above 64 is not the signed value: the call reverts as Solidity's decoder would."""
    message = reg.next_anchor()
    data = bytearray(calldata("Anchor", message, reg.domain.sign(regulator.key, "Anchor", message)))
    data[4 + 0x40 + 23] = 1  # size word: a bit above the low 64
    with reverts("Reverted") as info:
        reg.sender.transact_raw(reg.contract.address, bytes(data), ABI)
    assert info.value.args_ in ((HexBytes(b"").hex(),), ("",), ())
    assert reg.count() == 0


# batches


def test_several_writes_in_one_transaction(reg: Registry, regulator: Member, producer_member: Member) -> None:
    sign = reg.domain.sign
    batch = reg.code_batch(producer_member)
    first = reg.next_anchor()
    second = reg.next_anchor(index=1, previousRoot=first["root"])
    stale = second | {"root": b"\x02" * 32}  # a second anchor at index 1: refused, the others land
    calls = [
        calldata("CodeBatch", batch, sign(producer_member.key, "CodeBatch", batch)),
        calldata("Anchor", first, sign(regulator.key, "Anchor", first)),
        calldata("Anchor", second, sign(regulator.key, "Anchor", second)),
        calldata("Anchor", stale, sign(regulator.key, "Anchor", stale)),
        calldata("CodeBatch", batch, sign(producer_member.key, "CodeBatch", batch)),
    ]
    receipt = reg.sender.transact_raw(reg.contract.address, encode_batch(calls), ABI, gas=2_000_000)
    failed = reg.contract.events.BatchCallFailed().process_receipt(receipt, errors=DISCARD)
    assert [event["args"]["index"] for event in failed] == [3, 4]
    assert [decode_revert(ABI, event["args"]["reason"]) for event in failed] == [
        ("WrongIndex", (1, 2)),
        ("AlreadyCommitted", (reg.domain.digest("CodeBatch", batch),)),
    ]
    assert (reg.count(), reg.last_root()) == (2, second["root"])
    assert len(reg.contract.events.BatchAnchored().process_receipt(receipt, errors=DISCARD)) == 2


# gas


def test_gas_of_an_anchor_is_constant_in_the_batch_size(reg: Registry, regulator: Member) -> None:
    """An anchor costs the same for 1 or 2^48 - 1 events. Measured on the in-process EVM (py-evm), solc 0.8.28,
    optimizer 200 runs: the first anchor ~85.9k gas (two fresh storage words), every later one ~52.2k: ~52 gas per
    event at 1,000 events, under 50 from ~1,050, ~5 at 10,000 (anvil gives the same figures, printed by
    tests/node_bridge/test_trace_index.py; two anchors in one ``batch`` transaction cost ~68k together)."""
    used = []
    for size in (1, 1_000, 10_000, 1_000_000, 2**48 - 1):
        receipt = reg.anchor(reg.next_anchor(size=size), regulator.key)
        used.append(receipt["gasUsed"])
    first, *later = used
    assert max(later) - min(later) <= 100  # 12 gas per nonzero byte the larger sizes add to the calldata
    steady = max(later)
    print(f"\nanchor gas: first {first}, then {later}; per event at 1,000: {steady / 1000:.1f}")
    assert steady < 60_000


# digests: Python mirror == contract == eth-account


bytes32 = st.binary(min_size=32, max_size=32)
texts = st.text(max_size=80)  # any unicode but lone surrogates (not valid UTF-8)


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 2**bits - 1), st.sampled_from([0, 2**bits - 1]))


code_batches = st.fixed_dictionaries(
    {"producer": bytes32, "gtin": texts, "lot": texts, "count": uint(32), "root": bytes32, "nonce": uint(256)}
)
anchors = st.fixed_dictionaries(
    {
        "index": uint(64),
        "root": bytes32,
        "size": uint(64),
        "previousRoot": bytes32,
        "firstTime": uint(64),
        "lastTime": uint(64),
    }
)
property_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _three_digests(reg: Registry, primary: str, message: dict[str, Any], on_chain: bytes) -> None:
    python = reg.domain.digest(primary, message)
    assert python == reference_digest(reg.domain.typed_data(primary, message))
    assert bytes(on_chain) == python


@property_settings
@given(batch=code_batches)
def test_code_batch_digest_matches_contract_and_eth_account(reg: Registry, batch: dict[str, Any]) -> None:
    on_chain = reg.contract.functions.hashCodeBatch(as_tuple("CodeBatch", batch)).call()
    _three_digests(reg, "CodeBatch", batch, on_chain)


@property_settings
@given(message=anchors)
def test_anchor_digest_matches_contract_and_eth_account(reg: Registry, message: dict[str, Any]) -> None:
    on_chain = reg.contract.functions.hashAnchor(as_tuple("Anchor", message)).call()
    _three_digests(reg, "Anchor", message, on_chain)
