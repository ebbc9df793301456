"""The CreditRegistry contract on the in-process EVM, driven through node_bridge.credit (the Python mirror).

Time: ``Registry.travel_to(t)`` makes the latest block's timestamp ``t``, so views (``recordState``,
``isRedListed``...) read the chain at ``t`` and the next transaction runs at ``t + 1``. A transaction that
reverts is refused at gas estimation and mines no block, so the clock does not move.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from credtrace.errors import ValidationFailed
from node_bridge import credit
from node_bridge.compiler import artifact
from node_bridge.consortium import ConsortiumClient, Role
from node_bridge.credit import (
    REQUIRED_ROLES,
    ZERO32,
    CreditDomain,
    Kind,
    RecordState,
    Relation,
    Tier,
    as_tuple,
    calldata,
    example_record,
    person_commitment,
    subject_id,
)
from node_bridge.eip712 import reference_digest
from node_bridge.nonces import encode_batch
from node_bridge.transactions import Sender, decode_revert

from .conftest import Member, reverts

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DECISIONS = [
    Kind.ADMINISTRATIVE_PENALTY,
    Kind.RED_LIST,
    Kind.BLACKLIST,
    Kind.SERVICE_DEFAULT,
    Kind.CLICK_FARMING,
    Kind.CREDIT_SPECULATION,
    Kind.COUNTERFEIT_SUBSTANDARD,
    Kind.PERSONAL_INFORMATION_ABUSE,
]
ACCEPTED_ROLES: dict[Kind, set[Role]] = {kind: {Role.REGULATOR} for kind in DECISIONS} | {
    Kind.COMMITMENT: {Role.REGULATOR, Role.PLATFORM},
    Kind.LOGISTICS_EVALUATION: {Role.REGULATOR, Role.PLATFORM},
    Kind.REAL_NAME_CERTIFICATION: {Role.CERTIFIER},
    Kind.PAYMENT_VIOLATION: {Role.PAYMENT, Role.REGULATOR},
}
"""The role rule of C3, written out independently of ``credit.REQUIRED_ROLES``."""


def subject(n: int) -> bytes:
    """A natural person's subject id (salted commitment), distinct per ``n``."""
    return person_commitment(b"test salt", f"11010119900307{n:04d}")


def lower(account: LocalAccount) -> str:
    """An address as custom-error arguments decode it."""
    return account.address.lower()


@dataclass
class Registry:
    """A deployed CreditRegistry with the helpers the tests need: records, closures, sends, views and time."""

    w3: Web3
    contract: Contract
    sender: Sender
    domain: CreditDomain
    _nonces: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    # time

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel_to(self, timestamp: int) -> None:
        """Make the latest block's timestamp ``timestamp`` (views read at it; the next transaction at +1)."""
        assert timestamp > self.now(), "time only goes forward"
        self.w3.provider.ethereum_tester.time_travel(timestamp + 1)  # type: ignore[attr-defined]
        assert self.now() == timestamp

    # messages

    def nonce(self) -> int:
        return next(self._nonces)

    def record(self, kind: Kind | int, issuer: Member | bytes, **fields: Any) -> dict[str, Any]:
        """A valid record of ``kind`` for ``issuer``, active from a minute ago for a day, with a fresh nonce."""
        now = self.now()
        issuer_id = issuer.id if isinstance(issuer, Member) else issuer
        message = example_record(Kind.COMMITMENT, issuer_id, self.nonce()) | {"kind": int(kind)}
        message.update(effectiveAt=now - 60, publicUntil=now + 3600, validUntil=now + 86400)
        message.update(fields)
        return message

    def window(self, kind: Kind, issuer: Member, who: bytes, start: int, end: int) -> dict[str, Any]:
        """A record of ``kind`` about ``who`` valid in [start, end)."""
        return self.record(kind, issuer, subject=who, effectiveAt=start, publicUntil=start, validUntil=end)

    def closure(
        self, record: dict[str, Any], issuer: Member | bytes, reason: str = "annulled on review", **fields: Any
    ) -> dict[str, Any]:
        issuer_id = issuer.id if isinstance(issuer, Member) else issuer
        message = {"recordId": self.id(record), "issuer": issuer_id, "reason": reason, "nonce": self.nonce()}
        return message | fields

    def enforcement(self, platform: Member | bytes, record: dict[str, Any], **fields: Any) -> dict[str, Any]:
        platform_id = platform.id if isinstance(platform, Member) else platform
        message = {
            "platform": platform_id, "subject": record["subject"], "recordId": self.id(record), "measure": 3,
            "appliedAt": self.now(), "nonce": self.nonce(),
        }  # fmt: skip
        return message | fields

    def id(self, record: dict[str, Any]) -> bytes:
        return self.domain.id("CreditRecord", record)

    # writes

    def issue(self, record: dict[str, Any], signer: LocalAccount, signature: bytes | None = None) -> TxReceipt:
        signature = self.domain.sign_record(signer, record) if signature is None else signature
        return self.sender.transact(self.contract.functions.issue(as_tuple("CreditRecord", record), signature))

    def revoke(self, record: dict[str, Any], closure: dict[str, Any], signer: LocalAccount) -> TxReceipt:
        return self.close("Revocation", record, closure, signer)

    def repair(self, record: dict[str, Any], closure: dict[str, Any], signer: LocalAccount) -> TxReceipt:
        return self.close("Repair", record, closure, signer)

    def close(self, primary: str, record: dict[str, Any], closure: dict[str, Any], signer: LocalAccount) -> TxReceipt:
        signature = self.domain.sign(signer, primary, closure)
        function = self.contract.functions.revoke if primary == "Revocation" else self.contract.functions.repair
        return self.sender.transact(function(as_tuple("CreditRecord", record), as_tuple(primary, closure), signature))

    def enforce(self, enforcement: dict[str, Any], signer: LocalAccount) -> TxReceipt:
        signature = self.domain.sign(signer, "Enforcement", enforcement)
        return self.sender.transact(self.contract.functions.enforce(as_tuple("Enforcement", enforcement), signature))

    # views

    def state(self, record: dict[str, Any]) -> RecordState:
        return RecordState(self.contract.functions.recordState(as_tuple("CreditRecord", record)).call())

    def nonce_used(self, issuer: Member | bytes, nonce: int) -> bool:
        issuer_id = issuer.id if isinstance(issuer, Member) else issuer
        return bool(self.contract.functions.nonceUsed(issuer_id, nonce).call())

    def red(self, who: bytes) -> bool:
        return bool(self.contract.functions.isRedListed(who).call())

    def black(self, who: bytes) -> bool:
        return bool(self.contract.functions.isBlacklisted(who).call())

    def lists(self, who: bytes) -> tuple[bool, bool]:
        """(red-listed, blacklisted) now."""
        return self.red(who), self.black(who)


@pytest.fixture
def reg(w3: Web3, sender: Sender, registry: Contract) -> Registry:
    return Registry(w3, registry, sender, CreditDomain(w3.eth.chain_id, registry.address))


# deployment, ids and calldata


def test_registry_trusts_the_consortium_and_publishes_its_domain(reg: Registry, consortium: ConsortiumClient) -> None:
    assert reg.contract.functions.consortium().call() == consortium.contract.address
    assert reg.contract.functions.domainSeparator().call() == reg.domain.separator
    _, name, version, chain_id, verifying_contract, _, _ = reg.contract.functions.eip712Domain().call()
    assert (name, version) == (credit.DOMAIN_NAME, credit.DOMAIN_VERSION)
    assert (chain_id, verifying_contract) == (reg.w3.eth.chain_id, reg.contract.address)


def test_calldata_is_the_abi_encoding_of_each_function(reg: Registry, regulator_members: list[Member]) -> None:
    key = regulator_members[0].key
    record = reg.record(Kind.BLACKLIST, regulator_members[0])
    closure = reg.closure(record, regulator_members[0])
    enforcement = reg.enforcement(regulator_members[0], record)
    functions = reg.contract.functions
    signature = reg.domain.sign_record(key, record)
    expected = functions.issue(as_tuple("CreditRecord", record), signature)._encode_transaction_data()
    assert calldata("CreditRecord", record, signature) == HexBytes(expected)
    for primary, function in (("Revocation", functions.revoke), ("Repair", functions.repair)):
        expected = function(as_tuple("CreditRecord", record), as_tuple(primary, closure), signature)
        assert calldata(primary, closure, signature, record) == HexBytes(expected._encode_transaction_data())
        with pytest.raises(ValidationFailed):
            calldata(primary, closure, signature)
    expected = functions.enforce(as_tuple("Enforcement", enforcement), signature)._encode_transaction_data()
    assert calldata("Enforcement", enforcement, signature) == HexBytes(expected)


def test_issue_emits_every_field_of_the_record(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    record = reg.record(
        Kind.SERVICE_DEFAULT, issuer, subject=subject_id("91330100MA27XY1222"), legalBasis="《电子商务法》第三十八条",
        tier=Tier.SEVERE, measures=0b1011, relation=Relation.AMENDS, refersTo=keccak(b"earlier"), nonce=2**200 + 5,
    )  # fmt: skip
    receipt = reg.issue(record, issuer.key)
    (event,) = reg.contract.events.RecordIssued().process_receipt(receipt, errors=DISCARD)
    record_id = reg.id(record)
    assert record_id == reg.contract.functions.hashRecord(as_tuple("CreditRecord", record)).call()
    args = event["args"]
    assert (args["id"], args["subject"], args["issuer"]) == (record_id, record["subject"], issuer.id)
    assert args["signer"] == issuer.key.address
    assert dict(args["record"]) == record
    assert credit.record_from_event(list(args["record"].values())) == record  # what the indexer stores


# role rules


@pytest.mark.parametrize("kind", list(Kind), ids=lambda kind: kind.slug)
def test_each_kind_accepts_only_the_roles_it_requires(
    reg: Registry, kind: Kind, regulator_members: list[Member], platform_member: Member, certifier_member: Member
) -> None:
    required = 0
    for role in ACCEPTED_ROLES[kind]:
        required |= role
    assert required == REQUIRED_ROLES[kind], "the Python mirror disagrees with C3"
    for role, member in (
        (Role.REGULATOR, regulator_members[0]),
        (Role.PLATFORM, platform_member),
        (Role.CERTIFIER, certifier_member),
    ):
        record = reg.record(kind, member)
        if role in ACCEPTED_ROLES[kind]:
            reg.issue(record, member.key)
            assert reg.state(record) is RecordState.ACTIVE, role
        else:
            with reverts("RoleNotAllowed") as info:
                reg.issue(record, member.key)
            assert info.value.args_ == (lower(member.key), kind, required), role
            assert reg.state(record) is RecordState.UNKNOWN
            assert not reg.nonce_used(member, record["nonce"])


def test_roles_are_read_at_issue_time(
    reg: Registry, consortium: ConsortiumClient, regulators: list[LocalAccount], platform_member: Member
) -> None:
    with reverts("RoleNotAllowed"):
        reg.issue(reg.record(Kind.BLACKLIST, platform_member), platform_member.key)
    consortium.change_roles(platform_member.id, Role.PLATFORM | Role.REGULATOR, regulators[:2])
    reg.issue(reg.record(Kind.BLACKLIST, platform_member), platform_member.key)
    consortium.change_roles(platform_member.id, Role.AUDITOR, regulators[:2])
    with reverts("RoleNotAllowed") as info:
        reg.issue(reg.record(Kind.COMMITMENT, platform_member), platform_member.key)
    assert info.value.args_ == (lower(platform_member.key), Kind.COMMITMENT, Role.REGULATOR | Role.PLATFORM)


# signer standing


def test_revoked_key_is_not_an_active_signer(
    reg: Registry, consortium: ConsortiumClient, platform_member: Member
) -> None:
    first, second = platform_member.keys
    consortium.revoke_own_key(second, platform_member.id, first.address)
    record = reg.record(Kind.COMMITMENT, platform_member)
    with reverts("NotActiveSigner") as info:
        reg.issue(record, first)
    assert info.value.args_ == (lower(first),)
    reg.issue(record, second)  # the organisation's other key still signs
    assert reg.state(record) is RecordState.ACTIVE


def test_suspended_or_removed_member_cannot_sign(
    reg: Registry, consortium: ConsortiumClient, regulators: list[LocalAccount], platform_member: Member
) -> None:
    consortium.suspend(platform_member.id, regulators[:2])
    record = reg.record(Kind.COMMITMENT, platform_member)
    for key in platform_member.keys:
        with reverts("NotActiveSigner") as info:
            reg.issue(record, key)
        assert info.value.args_ == (lower(key),)
    enforcement = reg.enforcement(platform_member, record)
    with reverts("NotActiveSigner"):
        reg.enforce(enforcement, platform_member.key)

    consortium.reinstate(platform_member.id, regulators[:2])
    reg.issue(record, platform_member.key)
    reg.enforce(enforcement, platform_member.key)

    consortium.remove(platform_member.id, regulators[:2])
    with reverts("NotActiveSigner"):
        reg.issue(reg.record(Kind.COMMITMENT, platform_member), platform_member.keys[1])
    with reverts("NotActiveSigner"):  # nor may it close its own records any more
        reg.revoke(record, reg.closure(record, platform_member), platform_member.key)


def test_key_of_no_member_is_not_an_active_signer(reg: Registry, regulator_members: list[Member]) -> None:
    stranger = Account.create()
    with reverts("NotActiveSigner") as info:
        reg.issue(reg.record(Kind.BLACKLIST, regulator_members[0]), stranger)
    assert info.value.args_ == (lower(stranger),)


def test_issuer_must_be_the_signers_organisation(
    reg: Registry, regulator_members: list[Member], platform_member: Member
) -> None:
    first, second = regulator_members[:2]
    with reverts("IssuerMismatch") as info:  # a platform key claiming to issue for a regulator
        reg.issue(reg.record(Kind.COMMITMENT, first), platform_member.key)
    assert info.value.args_ == (first.id, platform_member.id)
    with reverts("IssuerMismatch") as info:  # one regulator signing in another's name
        reg.issue(reg.record(Kind.BLACKLIST, second), first.key)
    assert info.value.args_ == (second.id, first.id)
    with reverts("IssuerMismatch") as info:
        reg.issue(reg.record(Kind.BLACKLIST, ZERO32), first.key)
    assert info.value.args_ == (ZERO32, first.id)


def test_signature_for_another_domain_recovers_to_a_stranger(
    reg: Registry, sender: Sender, consortium: ConsortiumClient, regulator_members: list[Member]
) -> None:
    key = regulator_members[0].key
    record = reg.record(Kind.BLACKLIST, regulator_members[0])
    other_registry, _ = sender.deploy(artifact("CreditRegistry"), consortium.contract.address)
    foreign_domains = {
        "another chain": CreditDomain(reg.domain.chain_id + 1, reg.contract.address),
        "another contract": CreditDomain(reg.domain.chain_id, other_registry.address),
    }
    for name, foreign in foreign_domains.items():
        signature = foreign.sign_record(key, record)
        stranger = reg.domain.signer("CreditRecord", record, signature)  # what this registry recovers
        assert stranger != key.address
        with reverts("NotActiveSigner") as info:
            reg.issue(record, key, signature)
        assert info.value.args_ == (stranger.lower(),), name
    assert reg.state(record) is RecordState.UNKNOWN

    signature = foreign_domains["another contract"].sign_record(key, record)  # valid where it was meant to go
    sender.transact(other_registry.functions.issue(as_tuple("CreditRecord", record), signature))
    assert reg.state(record) is RecordState.UNKNOWN
    assert other_registry.functions.recordState(as_tuple("CreditRecord", record)).call() == RecordState.ACTIVE


def _malleated(signature: bytes) -> bytes:
    """The same signer's other valid (r, n - s, v') signature, which ECDSA.sol refuses as malleable."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda sig: b"",
    "64 bytes": lambda sig: sig[:64],
    "66 bytes": lambda sig: sig + b"\x00",
    "v 29": lambda sig: sig[:64] + b"\x1d",
    "v 0": lambda sig: sig[:64] + bytes([sig[64] - 27]),
    "r and s zero": lambda sig: bytes(64) + sig[64:],
    "high s": _malleated,
}


@pytest.mark.parametrize("malform", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signature_is_refused(
    reg: Registry, regulator_members: list[Member], malform: Callable[[bytes], bytes]
) -> None:
    key = regulator_members[0].key
    record = reg.record(Kind.BLACKLIST, regulator_members[0])
    signature = reg.domain.sign_record(key, record)
    with reverts("InvalidSignature") as info:
        reg.issue(record, key, malform(signature))
    assert info.value.args_ == ()
    closure = reg.closure(record, regulator_members[0])
    with reverts("InvalidSignature"):
        reg.sender.transact(
            reg.contract.functions.revoke(
                as_tuple("CreditRecord", record), as_tuple("Revocation", closure), malform(signature)
            )
        )
    reg.issue(record, key, signature)
    assert reg.state(record) is RecordState.ACTIVE


# replay


def test_a_signed_record_lands_once(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    record = reg.record(Kind.BLACKLIST, issuer, nonce=7)
    signature = reg.domain.sign_record(issuer.key, record)
    assert not reg.nonce_used(issuer, 7)
    reg.issue(record, issuer.key, signature)
    assert reg.nonce_used(issuer, 7)
    with reverts("NonceUsed") as info:
        reg.issue(record, issuer.key, signature)
    assert info.value.args_ == (issuer.id, 7)
    other = record | {"legalBasis": "another decision", "subject": subject(1)}
    with reverts("NonceUsed") as info:
        reg.issue(other, issuer.key)
    assert info.value.args_ == (issuer.id, 7)
    assert reg.state(record) is RecordState.ACTIVE


def test_nonces_in_one_word_and_across_words(reg: Registry, regulator_members: list[Member]) -> None:
    first, second = regulator_members[:2]
    used = [0, 1, 255, 256, 511, 2**255, 2**256 - 1]
    for nonce in used:
        reg.issue(reg.record(Kind.ADMINISTRATIVE_PENALTY, first, nonce=nonce), first.key)
    for nonce in used:
        assert reg.nonce_used(first, nonce), nonce
        assert not reg.nonce_used(second, nonce), nonce
    for nonce in (2, 254, 257, 510, 512, 2**255 - 1, 2**255 + 1, 2**256 - 2):
        assert not reg.nonce_used(first, nonce), nonce
    for nonce in used:  # nonces are per organisation
        reg.issue(reg.record(Kind.ADMINISTRATIVE_PENALTY, second, nonce=nonce), second.key)
    with reverts("NonceUsed") as info:
        reg.issue(reg.record(Kind.ADMINISTRATIVE_PENALTY, first, nonce=256), first.key)
    assert info.value.args_ == (first.id, 256)


def test_records_closures_and_receipts_share_the_nonce_space(
    reg: Registry, regulator_members: list[Member], platform_member: Member
) -> None:
    issuer = regulator_members[0]
    record = reg.record(Kind.BLACKLIST, issuer)
    reg.issue(record, issuer.key)
    with reverts("NonceUsed") as info:
        reg.revoke(record, reg.closure(record, issuer, nonce=record["nonce"]), issuer.key)
    assert info.value.args_ == (issuer.id, record["nonce"])
    commitment = reg.record(Kind.COMMITMENT, platform_member)
    reg.issue(commitment, platform_member.key)
    with reverts("NonceUsed") as info:
        reg.enforce(reg.enforcement(platform_member, record, nonce=commitment["nonce"]), platform_member.key)
    assert info.value.args_ == (platform_member.id, commitment["nonce"])


# shape


def _window(effective: int, public: int, valid: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(record: dict[str, Any]) -> dict[str, Any]:
        at = record["effectiveAt"]
        return {"effectiveAt": at + effective, "publicUntil": at + public, "validUntil": at + valid}

    return change


BAD_SHAPES: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]], Callable[[dict[str, Any]], tuple]]] = {
    "kind 12": ("InvalidKind", lambda r: {"kind": 12}, lambda r: (12,)),
    "kind 255": ("InvalidKind", lambda r: {"kind": 255}, lambda r: (255,)),
    "tier 3": ("InvalidTier", lambda r: {"tier": 3}, lambda r: (3,)),
    "tier 255": ("InvalidTier", lambda r: {"tier": 255}, lambda r: (255,)),
    "zero subject": ("InvalidSubject", lambda r: {"subject": ZERO32}, lambda r: ()),
    "validUntil = effectiveAt": ("InvalidWindow", _window(0, 0, 0), lambda r: (r["effectiveAt"],) * 3),
    "validUntil < effectiveAt": (
        "InvalidWindow",
        _window(0, 0, -1),
        lambda r: (r["effectiveAt"], r["publicUntil"], r["validUntil"]),
    ),
    "publicUntil < effectiveAt": (
        "InvalidWindow",
        _window(0, -1, 100),
        lambda r: (r["effectiveAt"], r["publicUntil"], r["validUntil"]),
    ),
    "relation without refersTo": (
        "InvalidReference",
        lambda r: {"relation": Relation.SUPERSEDES},
        lambda r: (1, ZERO32),
    ),
    "refersTo without relation": (
        "InvalidReference",
        lambda r: {"refersTo": keccak(b"other")},
        lambda r: (0, keccak(b"other")),
    ),
    "relation 4": (
        "InvalidReference",
        lambda r: {"relation": 4, "refersTo": keccak(b"other")},
        lambda r: (4, keccak(b"other")),
    ),
    "relation 255 without refersTo": ("InvalidReference", lambda r: {"relation": 255}, lambda r: (255, ZERO32)),
}


@pytest.mark.parametrize("case", BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_malformed_record_is_refused(
    reg: Registry,
    regulator_members: list[Member],
    case: tuple[str, Callable[..., dict[str, Any]], Callable[..., tuple]],
) -> None:
    error, change, expected_args = case
    issuer = regulator_members[0]
    record = reg.record(Kind.BLACKLIST, issuer)
    record.update(change(record))
    with reverts(error) as info:
        reg.issue(record, issuer.key)
    assert info.value.args_ == expected_args(record)
    assert not reg.nonce_used(issuer, record["nonce"])
    with pytest.raises(ValidationFailed):  # the API refuses it before it costs gas
        credit.check_record(record)


def test_boundary_shapes_are_accepted(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    now = reg.now()
    accepted = [
        reg.record(Kind.BLACKLIST, issuer, effectiveAt=now, publicUntil=now, validUntil=now + 1),  # shortest window
        reg.record(Kind.RED_LIST, issuer, tier=Tier.MINOR, validUntil=2**64 - 1, publicUntil=2**64 - 1),
        reg.record(Kind.ADMINISTRATIVE_PENALTY, issuer, tier=Tier.SEVERE, measures=2**32 - 1),
        *(
            reg.record(Kind.CLICK_FARMING, issuer, relation=relation, refersTo=keccak(b"%d" % relation))
            for relation in (Relation.SUPERSEDES, Relation.AMENDS, Relation.BREACHES_COMMITMENT)
        ),
    ]
    for record in accepted:
        credit.check_record(record)
        reg.issue(record, issuer.key)
        assert reg.state(record) in {RecordState.ACTIVE, RecordState.EXPIRED}


# lifecycle


def test_lifecycle_notice_active_expired(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    start = reg.now() + 1000
    record = reg.window(Kind.ADMINISTRATIVE_PENALTY, issuer, subject(1), start, start + 100)
    assert reg.state(record) is RecordState.UNKNOWN
    reg.issue(record, issuer.key)
    assert reg.state(record) is RecordState.NOTICE
    expected = [
        (start - 1, RecordState.NOTICE),
        (start, RecordState.ACTIVE),
        (start + 99, RecordState.ACTIVE),
        (start + 100, RecordState.EXPIRED),
        (start + 10**6, RecordState.EXPIRED),
    ]
    for at, state in expected:
        reg.travel_to(at)
        assert reg.state(record) is state, at
        assert credit.state_at(record, at) is state, at

    record_id = reg.id(record)
    for close in (reg.revoke, reg.repair):
        with reverts("RecordNotActive") as info:
            close(record, reg.closure(record, issuer), issuer.key)
        assert info.value.args_ == (record_id, RecordState.EXPIRED)
    assert reg.state(record) is RecordState.EXPIRED


def test_revoke_in_notice_and_after(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    start = reg.now() + 1000
    record = reg.record(Kind.BLACKLIST, issuer, effectiveAt=start, publicUntil=start, validUntil=start + 100)
    reg.issue(record, issuer.key)
    closure = reg.closure(record, issuer, reason="写错了 — wrong subject")
    receipt = reg.revoke(record, closure, issuer.key)
    (event,) = reg.contract.events.RecordRevoked().process_receipt(receipt, errors=DISCARD)
    closure_id = reg.domain.id("Revocation", closure)
    assert closure_id == reg.contract.functions.hashClosure(as_tuple("Revocation", closure), False).call()
    assert dict(event["args"]) == {
        "id": reg.id(record), "closureId": closure_id, "issuer": issuer.id, "signer": issuer.key.address,
        "reason": closure["reason"],
    }  # fmt: skip
    assert reg.nonce_used(issuer, closure["nonce"])
    for at in (reg.now() + 1, start, start + 100):  # closed beats every window
        reg.travel_to(at)
        assert reg.state(record) is RecordState.REVOKED
        assert not reg.black(record["subject"])


def test_revoke_and_repair_when_active(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    revoked, repaired = (reg.record(Kind.ADMINISTRATIVE_PENALTY, issuer, subject=subject(n)) for n in (1, 2))
    for record in (revoked, repaired):
        reg.issue(record, issuer.key)
        assert reg.state(record) is RecordState.ACTIVE
    reg.revoke(revoked, reg.closure(revoked, issuer), issuer.key)
    closure = reg.closure(repaired, issuer, reason="credit repair completed")
    receipt = reg.repair(repaired, closure, issuer.key)
    (event,) = reg.contract.events.RecordRepaired().process_receipt(receipt, errors=DISCARD)
    closure_id = reg.domain.id("Repair", closure)
    assert closure_id == reg.contract.functions.hashClosure(as_tuple("Repair", closure), True).call()
    assert closure_id != reg.domain.id("Revocation", closure)
    assert (event["args"]["id"], event["args"]["closureId"]) == (reg.id(repaired), closure_id)
    assert (event["args"]["issuer"], event["args"]["reason"]) == (issuer.id, "credit repair completed")
    assert reg.state(revoked) is RecordState.REVOKED
    assert reg.state(repaired) is RecordState.REPAIRED


def test_repair_needs_an_active_record(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    start = reg.now() + 1000
    record = reg.record(Kind.RED_LIST, issuer, effectiveAt=start, publicUntil=start, validUntil=start + 100)
    reg.issue(record, issuer.key)
    reg.travel_to(start - 2)  # the repair runs at start - 1: still in notice
    with reverts("RecordNotActive") as info:
        reg.repair(record, reg.closure(record, issuer), issuer.key)
    assert info.value.args_ == (reg.id(record), RecordState.NOTICE)
    reg.travel_to(start - 1)  # runs at start
    reg.repair(record, reg.closure(record, issuer), issuer.key)
    assert reg.state(record) is RecordState.REPAIRED


def test_a_record_closes_once(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    revoked, repaired = (reg.record(Kind.BLACKLIST, issuer, subject=subject(n)) for n in (1, 2))
    for record in (revoked, repaired):
        reg.issue(record, issuer.key)
    closure = reg.closure(revoked, issuer)
    reg.revoke(revoked, closure, issuer.key)
    reg.repair(repaired, reg.closure(repaired, issuer), issuer.key)
    for record, state in ((revoked, RecordState.REVOKED), (repaired, RecordState.REPAIRED)):
        for close in (reg.revoke, reg.repair):
            with reverts("RecordNotActive") as info:
                close(record, reg.closure(record, issuer), issuer.key)
            assert info.value.args_ == (reg.id(record), state)
        assert reg.state(record) is state
    with reverts("RecordNotActive"):  # the very same revocation again
        reg.revoke(revoked, closure, issuer.key)


def test_only_the_issuing_organisation_closes(
    reg: Registry, regulator_members: list[Member], platform_member: Member
) -> None:
    first, second = regulator_members[:2]
    record = reg.record(Kind.BLACKLIST, first)
    reg.issue(record, first.key)
    with reverts("NotIssuingOrganisation") as info:  # another regulator, in its own name
        reg.revoke(record, reg.closure(record, second), second.key)
    assert info.value.args_ == (second.id, first.id)
    with reverts("NotIssuingOrganisation"):
        reg.repair(record, reg.closure(record, second), second.key)
    with reverts("IssuerMismatch") as info:  # another regulator, in the issuer's name
        reg.revoke(record, reg.closure(record, first), second.key)
    assert info.value.args_ == (first.id, second.id)
    with reverts("NotActiveSigner"):
        reg.revoke(record, reg.closure(record, first), Account.create())
    assert reg.state(record) is RecordState.ACTIVE

    commitment = reg.record(Kind.COMMITMENT, platform_member)
    reg.issue(commitment, platform_member.keys[0])
    receipt = reg.revoke(commitment, reg.closure(commitment, platform_member), platform_member.keys[1])
    (event,) = reg.contract.events.RecordRevoked().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["signer"] == platform_member.keys[1].address  # another key of the same organisation
    assert reg.state(commitment) is RecordState.REVOKED


def test_closure_must_name_the_record_it_carries(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    record, other = (reg.record(Kind.BLACKLIST, issuer, subject=subject(n)) for n in (1, 2))
    for r in (record, other):
        reg.issue(r, issuer.key)
    closure = reg.closure(other, issuer)
    for close in (reg.revoke, reg.repair):
        with reverts("RecordMismatch") as info:
            close(record, closure, issuer.key)
        assert info.value.args_ == (reg.id(other), reg.id(record))
    assert (reg.state(record), reg.state(other)) == (RecordState.ACTIVE, RecordState.ACTIVE)


def test_record_never_accepted_cannot_be_closed(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    record = reg.record(Kind.BLACKLIST, issuer)
    for close in (reg.revoke, reg.repair):
        with reverts("RecordNotFound") as info:
            close(record, reg.closure(record, issuer), issuer.key)
        assert info.value.args_ == (reg.id(record),)
    assert reg.state(record) is RecordState.UNKNOWN


def test_closure_nonce_is_not_replayed(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    first, second = (reg.record(Kind.BLACKLIST, issuer, subject=subject(n)) for n in (1, 2))
    for record in (first, second):
        reg.issue(record, issuer.key)
    reg.revoke(first, reg.closure(first, issuer, nonce=9), issuer.key)
    for close in (reg.revoke, reg.repair):
        with reverts("NonceUsed") as info:
            close(second, reg.closure(second, issuer, nonce=9), issuer.key)
        assert info.value.args_ == (issuer.id, 9)
    assert reg.state(second) is RecordState.ACTIVE


# A record is "accepted" only if it was issued: sharing an issuer and nonce with something accepted (a record,
# a closure, a receipt) does not make it so (ICreditRegistry.recordState: "UNKNOWN if it was never accepted").


def test_record_sharing_a_used_nonce_was_never_accepted(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    accepted = reg.record(Kind.BLACKLIST, issuer)
    reg.issue(accepted, issuer.key)
    twin = accepted | {"legalBasis": "a record that was never issued"}  # same issuer, nonce, subject, window
    with reverts("NonceUsed"):
        reg.issue(twin, issuer.key)
    assert reg.state(twin) is RecordState.UNKNOWN


def test_record_sharing_a_closure_nonce_was_never_accepted(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    record = reg.record(Kind.ADMINISTRATIVE_PENALTY, issuer)
    reg.issue(record, issuer.key)
    closure = reg.closure(record, issuer)
    reg.revoke(record, closure, issuer.key)
    never_issued = reg.record(Kind.ADMINISTRATIVE_PENALTY, issuer, nonce=closure["nonce"])
    assert reg.state(never_issued) is RecordState.UNKNOWN


def test_twin_of_an_accepted_record_cannot_be_closed(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    who = subject(1)
    accepted = reg.record(Kind.BLACKLIST, issuer, subject=who)
    reg.issue(accepted, issuer.key)
    twin = accepted | {"legalBasis": "a record that was never issued"}
    with reverts("RecordNotFound") as info:
        reg.revoke(twin, reg.closure(twin, issuer), issuer.key)
    assert info.value.args_ == (reg.id(twin),)
    assert reg.state(accepted) is RecordState.ACTIVE
    assert reg.black(who)


def test_a_member_cannot_delist_a_subject_listed_by_another(
    reg: Registry, regulator_members: list[Member], platform_member: Member
) -> None:
    """A platform may not blacklist, nor close another organisation's record: so it cannot take a subject off
    a regulator's blacklist by revoking a blacklist record "of its own" that it never issued."""
    regulator = regulator_members[0]
    who = subject(1)
    listing = reg.record(Kind.BLACKLIST, regulator, subject=who)
    reg.issue(listing, regulator.key)
    receipt = reg.enforcement(platform_member, listing)
    reg.enforce(receipt, platform_member.key)  # uses one of the platform's nonces
    phantom = listing | {"issuer": platform_member.id, "nonce": receipt["nonce"]}
    with reverts("RoleNotAllowed"):  # a platform may not close a blacklist record at all
        reg.revoke(phantom, reg.closure(phantom, platform_member), platform_member.key)
    # another regulator may close blacklist records, but not a phantom of one: its nonce's fingerprint differs
    other = regulator_members[1]
    own = reg.record(Kind.ADMINISTRATIVE_PENALTY, other, subject=subject(2))
    reg.issue(own, other.key)
    phantom = listing | {"issuer": other.id, "nonce": own["nonce"]}
    assert reg.state(phantom) is RecordState.UNKNOWN
    with reverts("RecordNotFound"):
        reg.revoke(phantom, reg.closure(phantom, other), other.key)
    assert reg.state(listing) is RecordState.ACTIVE
    assert reg.black(who)


# list views


def test_list_membership_is_the_validity_window(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    who, bystander = subject(1), subject(2)
    start = reg.now() + 1000
    reg.issue(reg.window(Kind.BLACKLIST, issuer, who, start, start + 100), issuer.key)
    assert reg.lists(who) == (False, False)  # notice
    expected = [(start - 1, False), (start, True), (start + 99, True), (start + 100, False), (start + 5000, False)]
    for at, listed in expected:
        reg.travel_to(at)
        assert reg.lists(who) == (False, listed), at
        assert reg.lists(bystander) == (False, False), at


def test_lists_are_independent_per_subject_and_list(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    red, black, both, penalised, nobody = (subject(n) for n in range(1, 6))
    reg.issue(reg.record(Kind.RED_LIST, issuer, subject=red), issuer.key)
    reg.issue(reg.record(Kind.BLACKLIST, issuer, subject=black), issuer.key)
    reg.issue(reg.record(Kind.RED_LIST, issuer, subject=both), issuer.key)
    reg.issue(reg.record(Kind.BLACKLIST, issuer, subject=both), issuer.key)
    for kind in set(Kind) - {Kind.RED_LIST, Kind.BLACKLIST, Kind.REAL_NAME_CERTIFICATION}:
        reg.issue(reg.record(kind, issuer, subject=penalised), issuer.key)
    assert reg.lists(red) == (True, False)
    assert reg.lists(black) == (False, True)
    assert reg.lists(both) == (True, True)
    assert reg.lists(penalised) == (False, False)
    assert reg.lists(nobody) == (False, False)


@pytest.mark.parametrize("kind", [Kind.RED_LIST, Kind.BLACKLIST], ids=lambda kind: kind.slug)
def test_revoke_and_repair_take_a_subject_off_the_list(
    reg: Registry, regulator_members: list[Member], kind: Kind
) -> None:
    issuer = regulator_members[0]
    on = (True, False) if kind is Kind.RED_LIST else (False, True)
    revoked, repaired = subject(1), subject(2)
    records = {who: reg.record(kind, issuer, subject=who) for who in (revoked, repaired)}
    for record in records.values():
        reg.issue(record, issuer.key)
    assert reg.lists(revoked) == reg.lists(repaired) == on
    reg.revoke(records[revoked], reg.closure(records[revoked], issuer), issuer.key)
    assert (reg.lists(revoked), reg.lists(repaired)) == ((False, False), on)
    reg.repair(records[repaired], reg.closure(records[repaired], issuer), issuer.key)
    assert reg.lists(repaired) == (False, False)


def test_many_windows_for_one_subject(reg: Registry, regulator_members: list[Member]) -> None:
    """Six windows take two storage words; closing some keeps the others, in either word."""
    first, second = regulator_members[:2]
    who = subject(1)
    t = reg.now() + 1000
    red = [reg.window(Kind.RED_LIST, first, who, t + 200 * i, t + 200 * i + 100) for i in range(5)]
    black = reg.window(Kind.BLACKLIST, second, who, t, t + 900)
    for record in red:
        reg.issue(record, first.key)
    reg.issue(black, second.key)
    reg.revoke(red[3], reg.closure(red[3], first), first.key)  # in the second word
    reg.revoke(red[1], reg.closure(red[1], first), first.key)  # in the first
    expected = [  # (time, red-listed, blacklisted)
        (t - 1, False, False), (t, True, True), (t + 99, True, True), (t + 100, False, True),
        (t + 250, False, True), (t + 450, True, True), (t + 650, False, True), (t + 850, True, True),
        (t + 899, True, True), (t + 900, False, False),
    ]  # fmt: skip
    for at, is_red, is_black in expected:
        reg.travel_to(at)
        assert reg.lists(who) == (is_red, is_black), at - t

    more = [reg.window(Kind.RED_LIST, first, who, t + 1000 + 10 * i, t + 2000) for i in range(4)]
    for record in more:
        reg.issue(record, first.key)
    reg.travel_to(t + 1100)
    assert reg.lists(who) == (True, False)
    for record in more[:-1]:
        reg.repair(record, reg.closure(record, first), first.key)
        assert reg.lists(who) == (True, False)
    reg.revoke(more[-1], reg.closure(more[-1], first), first.key)
    assert reg.lists(who) == (False, False)


def test_place_of_an_expired_window_is_reused(reg: Registry, regulator_members: list[Member]) -> None:
    issuer = regulator_members[0]
    who = subject(1)
    now = reg.now()
    short_red = reg.window(Kind.RED_LIST, issuer, who, now - 60, now + 100)
    short_black = reg.window(Kind.BLACKLIST, issuer, who, now - 60, now + 100)
    long_red = reg.window(Kind.RED_LIST, issuer, who, now - 60, now + 10_000)
    for record in (short_red, short_black, long_red):  # one full word
        reg.issue(record, issuer.key)
    reg.travel_to(now + 200)
    assert reg.state(short_red) is reg.state(short_black) is RecordState.EXPIRED
    assert reg.lists(who) == (True, False)

    t = reg.now()
    black = reg.window(Kind.BLACKLIST, issuer, who, t - 10, t + 5000)  # takes an expired place
    later_red = reg.window(Kind.RED_LIST, issuer, who, t + 20_000, t + 30_000)  # takes the other
    for record in (black, later_red):
        reg.issue(record, issuer.key)
    assert reg.lists(who) == (True, True)
    assert reg.state(short_red) is reg.state(short_black) is RecordState.EXPIRED  # state is not in the place

    reg.revoke(black, reg.closure(black, issuer), issuer.key)
    assert reg.lists(who) == (True, False)
    reg.repair(long_red, reg.closure(long_red, issuer), issuer.key)
    assert reg.lists(who) == (False, False)
    reg.travel_to(t + 20_000)
    assert reg.lists(who) == (True, False)
    reg.travel_to(t + 30_000)
    assert reg.lists(who) == (False, False)

    # dead (closed) places are reused too, and the subject's other windows stay right
    t = reg.now()
    fresh = [reg.window(Kind.BLACKLIST, issuer, who, t - 10, t + 100 + i) for i in range(4)]
    for record in fresh:
        reg.issue(record, issuer.key)
    assert reg.lists(who) == (False, True)
    for record in fresh:
        assert reg.lists(who) == (False, True)
        reg.revoke(record, reg.closure(record, issuer), issuer.key)
    assert reg.lists(who) == (False, False)


def test_same_window_from_two_issuers(reg: Registry, regulator_members: list[Member]) -> None:
    first, second = regulator_members[:2]
    who = subject(1)
    now = reg.now()
    a = reg.window(Kind.BLACKLIST, first, who, now - 60, now + 1000)
    b = reg.window(Kind.BLACKLIST, second, who, now - 60, now + 1000)
    reg.issue(a, first.key)
    reg.issue(b, second.key)
    reg.revoke(a, reg.closure(a, first), first.key)
    assert reg.black(who)
    reg.repair(b, reg.closure(b, second), second.key)
    assert not reg.black(who)


# enforcement receipts


def test_platform_files_an_enforcement_receipt(
    reg: Registry, regulator_members: list[Member], platform_member: Member
) -> None:
    record = reg.record(Kind.BLACKLIST, regulator_members[0])
    reg.issue(record, regulator_members[0].key)
    enforcement = reg.enforcement(platform_member, record, measure=2**16 - 1, nonce=2**256 - 1)
    receipt = reg.enforce(enforcement, platform_member.keys[1])
    (event,) = reg.contract.events.EnforcementFiled().process_receipt(receipt, errors=DISCARD)
    receipt_id = reg.domain.id("Enforcement", enforcement)
    assert receipt_id == reg.contract.functions.hashEnforcement(as_tuple("Enforcement", enforcement)).call()
    assert dict(event["args"]) == {
        "id": receipt_id, "platform": platform_member.id, "subject": record["subject"], "recordId": reg.id(record),
        "measure": 2**16 - 1, "appliedAt": enforcement["appliedAt"], "signer": platform_member.keys[1].address,
    }  # fmt: skip
    assert reg.nonce_used(platform_member, 2**256 - 1)


def test_only_a_platform_files_receipts(
    reg: Registry, regulator_members: list[Member], platform_member: Member, certifier_member: Member
) -> None:
    record = reg.record(Kind.BLACKLIST, regulator_members[0])
    for member in (regulator_members[0], certifier_member):
        with reverts("NotPlatform") as info:
            reg.enforce(reg.enforcement(member, record), member.key)
        assert info.value.args_ == (lower(member.key),)
    with reverts("IssuerMismatch") as info:  # a platform key filing in another organisation's name
        reg.enforce(reg.enforcement(regulator_members[0], record), platform_member.key)
    assert info.value.args_ == (regulator_members[0].id, platform_member.id)
    with reverts("NotActiveSigner"):
        reg.enforce(reg.enforcement(platform_member, record), Account.create())


def test_enforcement_nonce_is_not_replayed(reg: Registry, platform_member: Member) -> None:
    record = reg.record(Kind.BLACKLIST, ZERO32)  # receipts do not check the record
    enforcement = reg.enforcement(platform_member, record, nonce=77)
    reg.enforce(enforcement, platform_member.key)
    with reverts("NonceUsed") as info:
        reg.enforce(enforcement, platform_member.key)
    assert info.value.args_ == (platform_member.id, 77)
    with reverts("NonceUsed"):
        reg.enforce(enforcement | {"measure": 4, "appliedAt": reg.now()}, platform_member.keys[1])


# batches


def test_batch_lands_the_good_calls_and_reports_the_bad_one(
    reg: Registry, regulator_members: list[Member], platform_member: Member
) -> None:
    regulator = regulator_members[0]
    first = reg.record(Kind.BLACKLIST, regulator, subject=subject(1))
    bad = reg.record(Kind.BLACKLIST, platform_member, subject=subject(2))  # a platform may not blacklist
    third = reg.record(Kind.RED_LIST, regulator, subject=subject(3))
    revocation = reg.closure(first, regulator)
    enforcement = reg.enforcement(platform_member, third)
    sign = reg.domain.sign
    calls = [
        calldata("CreditRecord", first, sign(regulator.key, "CreditRecord", first)),
        calldata("CreditRecord", bad, sign(platform_member.key, "CreditRecord", bad)),
        calldata("CreditRecord", third, sign(regulator.key, "CreditRecord", third)),
        calldata("CreditRecord", first, sign(regulator.key, "CreditRecord", first)),  # twice in one batch
        calldata("Revocation", revocation, sign(regulator.key, "Revocation", revocation), first),
        calldata("Enforcement", enforcement, sign(platform_member.key, "Enforcement", enforcement)),
    ]
    data = encode_batch(calls)
    assert data == HexBytes(reg.contract.functions.batch(calls)._encode_transaction_data())
    tx_hash = reg.w3.eth.send_transaction(
        {"from": reg.w3.eth.accounts[0], "to": reg.contract.address, "data": data, "gas": 5_000_000}
    )
    receipt = reg.w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1

    failed = reg.contract.events.BatchCallFailed().process_receipt(receipt, errors=DISCARD)
    assert [event["args"]["index"] for event in failed] == [1, 3]
    abi = artifact("CreditRegistry").abi
    reasons = [decode_revert(abi, event["args"]["reason"]) for event in failed]
    assert reasons == [
        ("RoleNotAllowed", (lower(platform_member.key), Kind.BLACKLIST, Role.REGULATOR)),
        ("NonceUsed", (regulator.id, first["nonce"])),
    ]

    issued = reg.contract.events.RecordIssued().process_receipt(receipt, errors=DISCARD)
    assert [event["args"]["id"] for event in issued] == [reg.id(first), reg.id(third)]
    assert len(reg.contract.events.RecordRevoked().process_receipt(receipt, errors=DISCARD)) == 1
    assert len(reg.contract.events.EnforcementFiled().process_receipt(receipt, errors=DISCARD)) == 1
    assert (reg.state(first), reg.state(bad), reg.state(third)) == (
        RecordState.REVOKED,
        RecordState.UNKNOWN,
        RecordState.ACTIVE,
    )
    assert not reg.nonce_used(platform_member, bad["nonce"])
    assert reg.lists(subject(1)) == (False, False)
    assert reg.lists(subject(3)) == (True, False)


# digests: Python mirror == contract == eth-account


bytes32 = st.binary(min_size=32, max_size=32)
texts = st.text(max_size=120)  # any unicode but lone surrogates (not valid UTF-8)


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 2**bits - 1), st.sampled_from([0, 2**bits - 1]))


records = st.fixed_dictionaries(
    {
        "kind": st.one_of(st.sampled_from(list(Kind)).map(int), uint(8)),
        "subject": bytes32,
        "issuer": bytes32,
        "legalBasis": texts,
        "tier": uint(8),
        "measures": uint(32),
        "documentHash": bytes32,
        "effectiveAt": uint(64),
        "publicUntil": uint(64),
        "validUntil": uint(64),
        "relation": uint(8),
        "refersTo": bytes32,
        "nonce": uint(256),
    }
)
closures = st.fixed_dictionaries({"recordId": bytes32, "issuer": bytes32, "reason": texts, "nonce": uint(256)})
enforcements = st.fixed_dictionaries(
    {
        "platform": bytes32,
        "subject": bytes32,
        "recordId": bytes32,
        "measure": uint(16),
        "appliedAt": uint(64),
        "nonce": uint(256),
    }
)
property_settings = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _three_digests(reg: Registry, primary: str, message: dict[str, Any], on_chain: bytes) -> None:
    python = reg.domain.digest(primary, message)
    reference = reference_digest(reg.domain.typed_data(primary, message))
    assert python == reference
    assert bytes(on_chain) == python


@property_settings
@given(record=records)
def test_record_digest_matches_contract_and_eth_account(reg: Registry, record: dict[str, Any]) -> None:
    on_chain = reg.contract.functions.hashRecord(as_tuple("CreditRecord", record)).call()
    _three_digests(reg, "CreditRecord", record, on_chain)


@property_settings
@given(closure=closures, repair=st.booleans())
def test_closure_digest_matches_contract_and_eth_account(reg: Registry, closure: dict[str, Any], repair: bool) -> None:
    primary = "Repair" if repair else "Revocation"
    on_chain = reg.contract.functions.hashClosure(as_tuple(primary, closure), repair).call()
    _three_digests(reg, primary, closure, on_chain)


@property_settings
@given(enforcement=enforcements)
def test_enforcement_digest_matches_contract_and_eth_account(reg: Registry, enforcement: dict[str, Any]) -> None:
    on_chain = reg.contract.functions.hashEnforcement(as_tuple("Enforcement", enforcement)).call()
    _three_digests(reg, "Enforcement", enforcement, on_chain)


def test_an_oversized_batch_is_refused_whole(reg: Registry, regulator_members: list[Member]) -> None:
    regulator = regulator_members[0]
    record = reg.record(Kind.RED_LIST, regulator, subject=subject(1))
    call = calldata("CreditRecord", record, reg.domain.sign(regulator.key, "CreditRecord", record))
    limit = reg.contract.functions.MAX_BATCH().call()
    assert limit == 1000
    with reverts("BatchTooLarge") as info:
        reg.sender.transact_raw(
            reg.contract.address, encode_batch([call] * (limit + 1)), artifact("CreditRegistry").abi
        )
    assert info.value.args_ == (limit + 1, limit)
    assert reg.state(record) is RecordState.UNKNOWN
