"""Bringing the system up: deploy once per chain, the demo consortium, state kept across node restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from web3 import Web3

from credtrace.demo import DEMO_PASSWORD, demo_members
from credtrace.errors import NotFound
from credtrace.keys import list_keys, load_key, new_key
from credtrace.settings import Settings
from credtrace.system import ensure_deployment
from node_bridge.chain import AnvilNode
from node_bridge.consortium import ConsortiumClient, MemberStatus, Role, member_id
from node_bridge.deploy import ConsortiumConfig, Deployment, load_deployment


def _client(w3: Web3, deployment: Deployment) -> ConsortiumClient:
    return ConsortiumClient.read_only(w3, deployment.contract(w3, "Consortium"))


def test_first_start_creates_the_demo_consortium(anvil_settings: Settings, anvil_w3: Web3) -> None:
    deployment, created = ensure_deployment(anvil_settings, anvil_w3)
    assert created
    recorded = json.loads(Deployment.path(anvil_settings.deployments_dir, 31337).read_text())
    assert recorded["contracts"]["Consortium"]["address"] == deployment.contracts["Consortium"].address
    assert recorded["contracts"]["Consortium"]["abi_hash"].startswith("0x")

    client = _client(anvil_w3, deployment)
    assert client.threshold() == 2
    config = ConsortiumConfig.read(anvil_settings.consortium_config)
    names = {info.name for info in list_keys(anvil_settings.keys_dir)}
    for regulator in config.regulators:
        account = load_key(anvil_settings.keys_dir, regulator.key, DEMO_PASSWORD)
        assert client.is_active_signer(account.address, Role.REGULATOR)
    members = demo_members()
    assert {m.key for m in members} <= names
    assert sorted(r for m in members for r in m.roles) == sorted(
        ["PLATFORM", "PLATFORM", "LOGISTICS", "PRODUCER", "CERTIFIER", "PAYMENT"]
    )
    for member in members:
        account = load_key(anvil_settings.keys_dir, member.key, DEMO_PASSWORD)
        info = client.member(member_id(member.uscc))
        assert info.status == MemberStatus.ACTIVE
        assert info.name == member.name
        assert client.is_active_signer(account.address, member.role_flags)
        assert not client.is_active_signer(account.address, Role.REGULATOR)
    summary = json.loads((anvil_settings.data_path / "demo.json").read_text())
    assert summary["status"] == "complete"


def test_deploying_again_reuses_the_deployment(anvil_settings: Settings, anvil_w3: Web3) -> None:
    first, created = ensure_deployment(anvil_settings, anvil_w3)
    head = anvil_w3.eth.block_number
    again, created_again = ensure_deployment(anvil_settings, anvil_w3)
    assert created and not created_again
    assert again == first
    assert anvil_w3.eth.block_number == head, "reusing a deployment must not send transactions"


def test_node_restart_keeps_the_deployment_and_the_members(
    anvil_settings: Settings, anvil_node: AnvilNode, anvil_w3: Web3
) -> None:
    deployment, _ = ensure_deployment(anvil_settings, anvil_w3)
    platform = demo_members()[0]
    address = load_key(anvil_settings.keys_dir, platform.key, DEMO_PASSWORD).address
    anvil_node.stop()
    w3 = anvil_node.start()
    assert load_deployment(w3, anvil_settings.deployments_dir) == deployment
    client = _client(w3, deployment)
    assert client.member(member_id(platform.uscc)).status == MemberStatus.ACTIVE
    assert client.is_active_signer(address, Role.PLATFORM)
    again, created = ensure_deployment(anvil_settings, w3)
    assert again == deployment and not created


def test_a_fresh_chain_gets_a_fresh_deployment(anvil_settings: Settings, anvil_node: AnvilNode, anvil_w3: Web3) -> None:
    ensure_deployment(anvil_settings, anvil_w3)
    anvil_node.stop()
    anvil_node.state_file.unlink()
    w3 = anvil_node.start()
    assert load_deployment(w3, anvil_settings.deployments_dir) is None
    second, created = ensure_deployment(anvil_settings, w3)
    assert created and second.contracts["Consortium"].block_number >= 1


def test_without_demo_deploy_needs_the_regulators_keys(data_dir: Path, anvil_settings: Settings) -> None:
    settings = anvil_settings.model_copy(update={"demo": False})
    w3 = AnvilNode.from_settings(settings).start()
    with pytest.raises(NotFound, match="credtrace keys new market-regulation"):
        ensure_deployment(settings, w3)
    for regulator in ConsortiumConfig.read(settings.consortium_config).regulators:
        new_key(settings.keys_dir, regulator.key, "s3cret")
    deployment, created = ensure_deployment(settings, w3)
    assert created
    assert not (settings.data_path / "demo.json").exists()
    platform = demo_members()[0]
    assert _client(w3, deployment).member(member_id(platform.uscc)).status == MemberStatus.NONE
