"""Contract fixtures, each built on the last: in-process EVM → sender → regulators → consortium (2 of 3) →
credit registry (bound to that consortium) with an admitted platform and certifier."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from node_bridge.compiler import artifact
from node_bridge.consortium import ConsortiumClient, Role, deploy_consortium, member_id
from node_bridge.in_process import in_process_web3
from node_bridge.transactions import Sender, fund

REGULATOR_USCCS = ("11100000000018271R", "11100000000013127G", "11100000717802103X")
THRESHOLD = 2
REGISTRY_PLATFORM_USCC = "913301000000000196"
REGISTRY_CERTIFIER_USCC = "12330100000000000E"


@dataclass
class Member:
    """An admitted organisation: its unified social credit code, Consortium id and signing keys."""

    uscc: str
    id: bytes
    keys: list[LocalAccount]

    @property
    def key(self) -> LocalAccount:
        return self.keys[0]


@pytest.fixture
def w3() -> Web3:
    return in_process_web3()


@pytest.fixture
def sender(w3: Web3) -> Sender:
    """The relayer: pays for transactions but has no say in governance."""
    account: LocalAccount = Account.create()
    fund(w3, account.address)
    return Sender(w3, account)


@pytest.fixture
def regulators() -> list[LocalAccount]:
    """One signing key per founding regulator, in the order of ``REGULATOR_USCCS``."""
    return [Account.create() for _ in REGULATOR_USCCS]


@pytest.fixture
def regulator_ids() -> list[bytes]:
    return [member_id(uscc) for uscc in REGULATOR_USCCS]


@pytest.fixture
def consortium(w3: Web3, sender: Sender, regulators: list[LocalAccount]) -> ConsortiumClient:
    founders = [
        (uscc, f"Regulator {index}", key.address)
        for index, (uscc, key) in enumerate(zip(REGULATOR_USCCS, regulators, strict=True))
    ]
    contract, _ = deploy_consortium(sender, founders, THRESHOLD)
    return ConsortiumClient(w3, contract, sender)


@pytest.fixture
def registry(sender: Sender, consortium: ConsortiumClient) -> Contract:
    """A CreditRegistry trusting the consortium fixture's members and keys."""
    contract, _ = sender.deploy(artifact("CreditRegistry"), consortium.contract.address)
    return contract


@pytest.fixture
def regulator_members(regulators: list[LocalAccount]) -> list[Member]:
    """The founding regulators as members (one key each)."""
    return [Member(uscc, member_id(uscc), [key]) for uscc, key in zip(REGULATOR_USCCS, regulators, strict=True)]


@pytest.fixture
def platform_member(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> Member:
    """An admitted PLATFORM member with two keys."""
    keys = [Account.create(), Account.create()]
    consortium.admit(REGISTRY_PLATFORM_USCC, "Shop Ltd", Role.PLATFORM, [k.address for k in keys], regulators[:2])
    return Member(REGISTRY_PLATFORM_USCC, member_id(REGISTRY_PLATFORM_USCC), keys)


@pytest.fixture
def certifier_member(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> Member:
    """An admitted CERTIFIER member with one key."""
    keys = [Account.create()]
    consortium.admit(REGISTRY_CERTIFIER_USCC, "Cert Centre", Role.CERTIFIER, [k.address for k in keys], regulators[:2])
    return Member(REGISTRY_CERTIFIER_USCC, member_id(REGISTRY_CERTIFIER_USCC), keys)


# chain side (TraceRegistry)

REGISTRY_PRODUCER_USCC = "91370600000000019G"


@pytest.fixture
def trace_registry(sender: Sender, consortium: ConsortiumClient) -> Contract:
    """A TraceRegistry trusting the consortium fixture's members and keys."""
    contract, _ = sender.deploy(artifact("TraceRegistry"), consortium.contract.address)
    return contract


@pytest.fixture
def producer_member(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> Member:
    """An admitted PRODUCER member with two keys."""
    keys = [Account.create(), Account.create()]
    consortium.admit(REGISTRY_PRODUCER_USCC, "Orchard Co-op", Role.PRODUCER, [k.address for k in keys], regulators[:2])
    return Member(REGISTRY_PRODUCER_USCC, member_id(REGISTRY_PRODUCER_USCC), keys)
