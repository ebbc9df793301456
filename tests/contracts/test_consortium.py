"""The Consortium contract on the in-process EVM, driven through node_bridge.consortium."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.logs import DISCARD

from credtrace.errors import ContractReverted, ValidationFailed
from node_bridge.consortium import (
    Action,
    ConsortiumClient,
    MemberStatus,
    Role,
    decode_payload,
    deploy_consortium,
    encode_payload,
    member_id,
    proposal_id,
    proposal_message,
    sign,
    typed_data,
)
from node_bridge.transactions import Sender

from .conftest import REGULATOR_USCCS, reverts

PLATFORM_USCC = "91330100MA27XYZ12K"


@dataclass
class Org:
    id: bytes
    keys: list[LocalAccount]


def advance(w3: Web3, seconds: int) -> None:
    tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
    tester.time_travel(w3.eth.get_block("latest")["timestamp"] + seconds)
    tester.mine_blocks(1)


def admit_payload(name: str, roles: int, keys: list[LocalAccount]) -> bytes:
    return encode_payload(Action.ADMIT, name=name, roles=roles, keys=[k.address for k in keys])


@pytest.fixture
def platform(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> Org:
    """An admitted PLATFORM member with two keys."""
    keys = [Account.create(), Account.create()]
    consortium.admit(PLATFORM_USCC, "Shop Ltd", Role.PLATFORM, [k.address for k in keys], regulators[:2])
    return Org(member_id(PLATFORM_USCC), keys)


def test_bootstrap_admits_regulators_and_sets_threshold(
    consortium: ConsortiumClient, regulators: list[LocalAccount], regulator_ids: list[bytes]
) -> None:
    assert consortium.threshold() == 2
    assert consortium.active_regulator_count() == 3
    for rid, key in zip(regulator_ids, regulators, strict=True):
        info = consortium.member(rid)
        assert (info.roles, info.status, info.id) == (Role.REGULATOR, MemberStatus.ACTIVE, rid)
        assert consortium.keys_of(rid) == [key.address]
        assert consortium.member_of(key.address) == rid
        assert consortium.is_active_signer(key.address, Role.REGULATOR)
    assert consortium.contract.functions.proposalLifetime().call() == 7 * 24 * 3600
    assert consortium.member(member_id("unknown")).status is MemberStatus.NONE


def test_bootstrap_emits_events_for_the_indexer(sender: Sender, regulators: list[LocalAccount]) -> None:
    founders = [(uscc, "R", key.address) for uscc, key in zip(REGULATOR_USCCS, regulators, strict=True)]
    contract, receipt = deploy_consortium(sender, founders, 3)
    admitted = contract.events.MemberAdmitted().process_receipt(receipt, errors=DISCARD)
    keys = contract.events.KeyAdded().process_receipt(receipt, errors=DISCARD)
    (threshold,) = contract.events.ThresholdChanged().process_receipt(receipt, errors=DISCARD)
    assert [e["args"]["member"] for e in admitted] == [member_id(u) for u in REGULATOR_USCCS]
    assert [e["args"]["key"] for e in keys] == [k.address for k in regulators]
    assert (threshold["args"]["oldThreshold"], threshold["args"]["newThreshold"]) == (0, 3)


@pytest.mark.parametrize("threshold", [0, 4])
def test_bootstrap_rejects_an_impossible_threshold(
    sender: Sender, regulators: list[LocalAccount], threshold: int
) -> None:
    founders = [(uscc, "R", key.address) for uscc, key in zip(REGULATOR_USCCS, regulators, strict=True)]
    with reverts("InvalidThreshold") as info:
        deploy_consortium(sender, founders, threshold)
    assert info.value.args_ == (threshold,)


def test_proposal_executes_only_with_quorum_of_distinct_regulators(
    consortium: ConsortiumClient, regulators: list[LocalAccount], regulator_ids: list[bytes]
) -> None:
    keys = [Account.create(), Account.create()]
    mid = member_id(PLATFORM_USCC)
    pid = consortium.propose(regulators[0], Action.ADMIT, mid, admit_payload("Shop Ltd", Role.PLATFORM, keys))
    with reverts("QuorumNotReached") as info:
        consortium.execute(pid)
    assert info.value.args_ == (pid, 1, 2)
    assert consortium.has_approved(pid, regulator_ids[0])

    consortium.approve(regulators[1], pid)
    consortium.execute(pid)

    info_ = consortium.member(mid)
    assert (info_.name, info_.roles, info_.status) == ("Shop Ltd", Role.PLATFORM, MemberStatus.ACTIVE)
    assert consortium.keys_of(mid) == [k.address for k in keys]
    assert all(consortium.is_active_signer(k.address, Role.PLATFORM) for k in keys)
    proposal = consortium.proposal(pid)
    assert (proposal.executed, proposal.approvals, proposal.proposer) == (True, 2, regulator_ids[0])


def test_non_regulators_cannot_propose_or_approve(
    consortium: ConsortiumClient, regulators: list[LocalAccount], platform: Org
) -> None:
    pid = consortium.propose(regulators[0], Action.SUSPEND, platform.id, b"")
    stranger = Account.create()
    for signer in (platform.keys[0], stranger):
        with reverts("NotActiveRegulator") as info:
            consortium.approve(signer, pid)
        assert info.value.args_ == (signer.address.lower(),)
        with reverts("NotActiveRegulator"):
            consortium.propose(signer, Action.SUSPEND, platform.id, b"")


def test_one_approval_per_regulator_organisation(
    consortium: ConsortiumClient, regulators: list[LocalAccount], regulator_ids: list[bytes]
) -> None:
    second_key = Account.create()
    consortium.add_key(regulator_ids[1], second_key.address, regulators[:2])
    pid = consortium.propose(regulators[0], Action.SUSPEND, regulator_ids[2], b"")
    with reverts("AlreadyApproved") as info:
        consortium.approve(regulators[0], pid)
    assert info.value.args_ == (pid, regulator_ids[0])
    consortium.approve(regulators[1], pid)
    for key in (regulators[1], second_key):
        with reverts("AlreadyApproved") as info:
            consortium.approve(key, pid)
        assert info.value.args_ == (pid, regulator_ids[1])
    assert consortium.proposal(pid).approvals == 2


def test_expired_proposal_cannot_be_approved_or_executed(
    w3: Web3, consortium: ConsortiumClient, regulators: list[LocalAccount], platform: Org
) -> None:
    pid = consortium.propose(regulators[0], Action.SUSPEND, platform.id, b"")
    expires_at = consortium.proposal(pid).expires_at
    advance(w3, 7 * 24 * 3600)
    with reverts("ProposalExpired") as info:
        consortium.approve(regulators[1], pid)
    assert info.value.args_ == (pid, expires_at)
    with reverts("ProposalExpired"):
        consortium.execute(pid)


def test_suspended_regulator_loses_its_vote(
    consortium: ConsortiumClient, regulators: list[LocalAccount], regulator_ids: list[bytes], platform: Org
) -> None:
    pid = consortium.propose(regulators[2], Action.SUSPEND, platform.id, b"")
    consortium.suspend(regulator_ids[2], regulators[:2])
    assert consortium.active_regulator_count() == 2
    assert not consortium.is_active_signer(regulators[2].address, Role.REGULATOR)

    other = consortium.propose(regulators[0], Action.REINSTATE, regulator_ids[2], b"")
    with reverts("NotActiveRegulator"):
        consortium.approve(regulators[2], other)
    with reverts("NotActiveRegulator"):
        consortium.propose(regulators[2], Action.REINSTATE, regulator_ids[2], b"")
    consortium.approve(regulators[1], pid)
    with reverts("QuorumNotReached") as info:
        consortium.execute(pid)
    assert info.value.args_ == (pid, 1, 2)
    consortium.approve(regulators[0], pid)
    consortium.execute(pid)
    assert consortium.member(platform.id).status is MemberStatus.SUSPENDED


def test_executed_proposal_is_final(
    consortium: ConsortiumClient, regulators: list[LocalAccount], platform: Org
) -> None:
    pid = consortium.govern(Action.SUSPEND, platform.id, b"", regulators[:2])
    with reverts("ProposalAlreadyExecuted"):
        consortium.execute(pid)
    with reverts("ProposalAlreadyExecuted"):
        consortium.approve(regulators[2], pid)
    with reverts("UnknownProposal"):
        consortium.execute(b"\x01" * 32)


def test_forged_signatures_are_refused(
    w3: Web3, consortium: ConsortiumClient, regulators: list[LocalAccount], platform: Org
) -> None:
    pid = consortium.propose(regulators[0], Action.SUSPEND, platform.id, b"", nonce=7)
    good = sign(regulators[1], consortium.typed("Approval", {"proposalId": pid}))
    approve = consortium.contract.functions.approve
    with reverts("InvalidSignature"):
        consortium.sender.transact(approve(pid, good[:64]))
    garbled = bytes([good[0] ^ 1]) + good[1:]
    with pytest.raises(ContractReverted) as info:
        consortium.sender.transact(approve(pid, garbled))
    assert info.value.error in {"InvalidSignature", "NotActiveRegulator"}
    wrong_chain = proposal_message(Action.SUSPEND, platform.id, b"", 8)
    foreign = sign(regulators[0], typed_data("Proposal", wrong_chain, 999, consortium.contract.address))
    with reverts("NotActiveRegulator"):
        consortium.sender.transact(consortium.contract.functions.propose(1, platform.id, b"", 8, foreign))
    with reverts("ProposalAlreadyExists") as info:
        consortium.propose(regulators[0], Action.SUSPEND, platform.id, b"", nonce=7)
    assert info.value.args_ == (pid,)


def test_key_rotation_and_addition_by_proposal(
    consortium: ConsortiumClient, regulators: list[LocalAccount], regulator_ids: list[bytes], platform: Org
) -> None:
    old, new, extra = platform.keys[0], Account.create(), Account.create()
    consortium.rotate_key(platform.id, old.address, new.address, regulators[:2])
    assert not consortium.is_key_active(old.address)
    assert not consortium.is_active_signer(old.address, Role.PLATFORM)
    assert consortium.is_active_signer(new.address, Role.PLATFORM)
    consortium.add_key(platform.id, extra.address, regulators[1:])
    assert consortium.is_active_signer(extra.address, Role.PLATFORM)
    assert consortium.keys_of(platform.id) == [
        old.address,
        platform.keys[1].address,
        new.address,
        extra.address,
    ]
    assert consortium.member_of(new.address) == platform.id

    for key in (old.address, regulators[0].address):  # revoked, or another member's
        with reverts("KeyAlreadyRegistered") as info:
            consortium.add_key(platform.id, key, regulators[:2])
        assert info.value.args_ == (key.lower(),)

    new_regulator_key = Account.create()
    consortium.rotate_key(regulator_ids[0], regulators[0].address, new_regulator_key.address, regulators[:2])
    pid = consortium.propose(new_regulator_key, Action.SUSPEND, platform.id, b"")
    with reverts("NotActiveRegulator"):
        consortium.approve(regulators[0], pid)


def test_self_revocation_needs_no_vote(
    consortium: ConsortiumClient, regulators: list[LocalAccount], regulator_ids: list[bytes], platform: Org
) -> None:
    first, second = platform.keys
    receipt = consortium.revoke_own_key(second, platform.id, first.address)
    (event,) = consortium.contract.events.KeyRevoked().process_receipt(receipt, errors=DISCARD)
    assert dict(event["args"]) == {"member": platform.id, "key": first.address, "bySelf": True}
    assert not consortium.is_active_signer(first.address, Role.PLATFORM)
    assert consortium.is_active_signer(second.address, Role.PLATFORM)

    with reverts("NotMemberKey") as info:  # a revoked key cannot sign
        consortium.revoke_own_key(first, platform.id, second.address)
    assert info.value.args_ == (first.address.lower(), platform.id)
    with reverts("NotMemberKey"):  # nor can another member's key
        consortium.revoke_own_key(regulators[0], platform.id, second.address)
    with reverts("KeyNotActive"):
        consortium.revoke_own_key(second, platform.id, first.address)

    consortium.revoke_own_key(second, platform.id, second.address)  # a key may revoke itself
    assert not consortium.is_active_signer(second.address, Role.PLATFORM)


def test_revoked_regulator_key_cannot_sign(
    consortium: ConsortiumClient, regulators: list[LocalAccount], regulator_ids: list[bytes], platform: Org
) -> None:
    pid = consortium.propose(regulators[0], Action.SUSPEND, platform.id, b"")
    consortium.revoke_own_key(regulators[1], regulator_ids[1], regulators[1].address)
    with reverts("NotActiveRegulator"):
        consortium.approve(regulators[1], pid)


def test_threshold_change_by_proposal(
    consortium: ConsortiumClient, regulators: list[LocalAccount], regulator_ids: list[bytes], platform: Org
) -> None:
    pid = consortium.change_threshold(3, regulators[:2])
    assert consortium.threshold() == 3
    assert consortium.proposal(pid).executed
    with reverts("QuorumNotReached"):
        consortium.suspend(platform.id, regulators[:2])
    with reverts("InvalidThreshold") as info:  # suspending a regulator would leave 2 < 3
        consortium.suspend(regulator_ids[2], regulators)
    assert info.value.args_ == (3,)
    with reverts("InvalidThreshold"):  # so would taking its REGULATOR role
        consortium.change_roles(regulator_ids[2], Role.AUDITOR, regulators)


@pytest.mark.parametrize("threshold", [0, 4])
def test_invalid_threshold_is_refused_at_execution(
    consortium: ConsortiumClient, regulators: list[LocalAccount], threshold: int
) -> None:
    with reverts("InvalidThreshold") as info:
        consortium.change_threshold(threshold, regulators[:2])
    assert info.value.args_ == (threshold,)
    assert consortium.threshold() == 2


def test_is_active_signer_per_role_and_status(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> None:
    key = Account.create()
    roles = Role.LOGISTICS | Role.PAYMENT
    consortium.admit("91110000100000000X", "Express Co", roles, [key.address], regulators[:2])
    mid = member_id("91110000100000000X")
    for role in Role:
        assert consortium.is_active_signer(key.address, role) == (role in roles), role
    assert consortium.is_active_signer(regulators[0].address, Role.REGULATOR)
    assert not consortium.is_active_signer(regulators[0].address, Role.PLATFORM)

    consortium.suspend(mid, regulators[:2])
    assert not consortium.is_active_signer(key.address, Role.LOGISTICS)
    assert consortium.is_key_active(key.address)
    consortium.reinstate(mid, regulators[1:])
    assert consortium.is_active_signer(key.address, Role.LOGISTICS)
    consortium.change_roles(mid, Role.PRODUCER, regulators[:2])
    assert not consortium.is_active_signer(key.address, Role.LOGISTICS)
    assert consortium.is_active_signer(key.address, Role.PRODUCER)
    consortium.remove(mid, regulators[:2])
    assert consortium.member(mid).status is MemberStatus.REMOVED
    assert not consortium.is_active_signer(key.address, Role.PRODUCER)


def test_invalid_changes_are_refused(
    consortium: ConsortiumClient, regulators: list[LocalAccount], platform: Org
) -> None:
    signers = regulators[:2]
    with reverts("InvalidStatusTransition") as info:
        consortium.reinstate(platform.id, signers)
    assert info.value.args_ == (platform.id, MemberStatus.ACTIVE)
    with reverts("MemberAlreadyExists"):
        consortium.admit(PLATFORM_USCC, "Again", Role.PLATFORM, [], signers)
    with reverts("UnknownMember"):
        consortium.suspend(member_id("nobody"), signers)
    with reverts("InvalidRoles") as info:
        consortium.change_roles(platform.id, 128, signers)
    assert info.value.args_ == (128,)
    with reverts("InvalidRoles"):
        consortium.admit("91110000100000000X", "No roles", 0, [], signers)
    with reverts("InvalidAction"):
        consortium.propose(regulators[0], 9, platform.id, b"")
    with reverts("InvalidPayload"):
        consortium.propose(regulators[0], Action.SUSPEND, platform.id, b"\x00")
    with reverts("InvalidPayload"):
        consortium.propose(regulators[0], Action.CHANGE_THRESHOLD, platform.id, encode_payload(8, threshold=1))
    consortium.remove(platform.id, signers)
    with reverts("InvalidStatusTransition"):
        consortium.add_key(platform.id, Account.create().address, signers)


def test_payloads_round_trip_and_reject_wrong_fields() -> None:
    key = Account.create().address
    payload = encode_payload(Action.ROTATE_KEY, old_key=key, new_key=key)
    assert decode_payload(Action.ROTATE_KEY, payload) == {"old_key": key, "new_key": key}
    assert decode_payload(Action.ADMIT, encode_payload(Action.ADMIT, name="A", roles=3, keys=[key])) == {
        "name": "A",
        "roles": Role.REGULATOR | Role.PLATFORM,
        "keys": [key],
    }
    assert encode_payload(Action.SUSPEND) == b""
    with pytest.raises(ValidationFailed):
        encode_payload(Action.ADD_KEY, address=key)


def test_proposal_created_event_carries_the_python_digest(
    consortium: ConsortiumClient, regulators: list[LocalAccount], regulator_ids: list[bytes], platform: Org
) -> None:
    payload = encode_payload(Action.CHANGE_ROLES, roles=Role.PLATFORM | Role.AUDITOR)
    typed = consortium.typed("Proposal", proposal_message(Action.CHANGE_ROLES, platform.id, payload, 42))
    call = consortium.contract.functions.propose(4, platform.id, payload, 42, sign(regulators[2], typed))
    receipt = consortium.sender.transact(call)
    (event,) = consortium.contract.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)
    expected = proposal_id(4, platform.id, payload, 42, consortium.chain_id, consortium.contract.address)
    assert event["args"]["proposalId"] == expected
    assert event["args"]["proposer"] == regulator_ids[2]
    assert event["args"]["signer"] == regulators[2].address
    assert event["args"]["payload"] == payload


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    action=st.integers(0, 255),
    member=st.binary(min_size=32, max_size=32),
    payload=st.binary(max_size=160),
    nonce=st.integers(0, 2**256 - 1),
)
def test_python_and_solidity_compute_the_same_proposal_id(
    consortium: ConsortiumClient, action: int, member: bytes, payload: bytes, nonce: int
) -> None:
    on_chain = consortium.contract.functions.hashProposal(action, member, payload, nonce).call()
    assert on_chain == proposal_id(action, member, payload, nonce, consortium.chain_id, consortium.contract.address)
