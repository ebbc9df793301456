"""Contract fixtures, each built on the last: in-process EVM → sender → regulators → consortium (2 of 3) →
credit registry (bound to that consortium) with an admitted platform and certifier.

Shared by every registry's tests: :func:`reverts` (a call must fail with a given custom error), :func:`admit` (an
organisation with roles and fresh keys), :func:`deploy` (any registry trusting the consortium) and
:class:`SignedContract` (a deployed MemberSigned registry that signs and sends messages through its
:class:`~node_bridge.signed.SignedRegistry` description, as the API and CLI do).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from credtrace.errors import ContractReverted
from node_bridge.compiler import artifact
from node_bridge.consortium import ConsortiumClient, Role, deploy_consortium, member_id
from node_bridge.eip712 import Domain
from node_bridge.in_process import in_process_web3
from node_bridge.nonces import encode_batch
from node_bridge.signed import SignedRegistry
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


@contextmanager
def reverts(error: str) -> Iterator[pytest.ExceptionInfo[ContractReverted]]:
    """The block must revert with the custom error ``error``; yields the exception for checks of its arguments."""
    with pytest.raises(ContractReverted) as info:
        yield info
    assert info.value.error == error, str(info.value)


def admit(
    consortium: ConsortiumClient,
    regulators: list[LocalAccount],
    uscc: str,
    name: str,
    roles: Role | int,
    keys: int = 1,
) -> Member:
    """Admit an organisation with ``roles`` and ``keys`` fresh signing keys, approved by as many regulators as the
    threshold asks."""
    accounts = [Account.create() for _ in range(keys)]
    consortium.admit(uscc, name, roles, [k.address for k in accounts], regulators[:THRESHOLD])
    return Member(uscc, member_id(uscc), accounts)


@dataclass
class SignedContract:
    """A deployed MemberSigned registry: signs messages with its EIP-712 domain and sends them as the relayer.

    Each registry's tests subclass it with builders of their messages (numbered by :meth:`nonce`)."""

    w3: Web3
    contract: Contract
    sender: Sender
    registry: SignedRegistry
    domain: Domain = field(init=False)
    _nonces: Iterator[int] = field(init=False, repr=False, default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.domain = self.registry.domain(self.w3.eth.chain_id, self.contract.address)

    @cached_property
    def abi(self) -> list[dict[str, Any]]:
        """The contract's ABI, to decode its custom errors."""
        return artifact(self.registry.contract).abi

    def nonce(self) -> int:
        return next(self._nonces)

    def calldata(
        self, type_name: str, message: dict[str, Any], signer: LocalAccount, signature: bytes | None = None
    ) -> bytes:
        """The call recording ``message`` signed by ``signer`` (or carrying ``signature`` as it is)."""
        signature = self.domain.sign(signer, type_name, message) if signature is None else signature
        return self.registry.calldata(type_name, message, signature)

    def send(
        self, type_name: str, message: dict[str, Any], signer: LocalAccount, signature: bytes | None = None
    ) -> TxReceipt:
        """Sign (unless ``signature`` is given) and send ``message``; a revert raises ``ContractReverted``."""
        data = self.calldata(type_name, message, signer, signature)
        return self.sender.transact_raw(self.contract.address, data, self.abi)

    def send_batch(self, calls: list[bytes], gas: int = 2_000_000) -> TxReceipt:
        """Send ready calls in one ``batch`` transaction, with ``gas`` given: estimation would find the least gas at
        which the batch succeeds, which may be too little for the calls in it to succeed."""
        return self.sender.transact_raw(self.contract.address, encode_batch(calls), self.abi, gas)


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
def deploy(sender: Sender, consortium: ConsortiumClient) -> Callable[[str], Contract]:
    """Deploys a registry by contract name, trusting the consortium fixture's members and keys."""

    def deploy_registry(name: str) -> Contract:
        contract, _ = sender.deploy(artifact(name), consortium.contract.address)
        return contract

    return deploy_registry


@pytest.fixture
def registry(deploy: Callable[[str], Contract]) -> Contract:
    """A CreditRegistry trusting the consortium fixture's members and keys."""
    return deploy("CreditRegistry")


@pytest.fixture
def regulator_members(regulators: list[LocalAccount]) -> list[Member]:
    """The founding regulators as members (one key each)."""
    return [Member(uscc, member_id(uscc), [key]) for uscc, key in zip(REGULATOR_USCCS, regulators, strict=True)]


@pytest.fixture
def platform_member(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> Member:
    """An admitted PLATFORM member with two keys."""
    return admit(consortium, regulators, REGISTRY_PLATFORM_USCC, "Shop Ltd", Role.PLATFORM, keys=2)


@pytest.fixture
def certifier_member(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> Member:
    """An admitted CERTIFIER member with one key."""
    return admit(consortium, regulators, REGISTRY_CERTIFIER_USCC, "Cert Centre", Role.CERTIFIER)


# chain side (TraceRegistry)

REGISTRY_PRODUCER_USCC = "91370600000000019G"


@pytest.fixture
def trace_registry(deploy: Callable[[str], Contract]) -> Contract:
    """A TraceRegistry trusting the consortium fixture's members and keys."""
    return deploy("TraceRegistry")


@pytest.fixture
def producer_member(consortium: ConsortiumClient, regulators: list[LocalAccount]) -> Member:
    """An admitted PRODUCER member with two keys."""
    return admit(consortium, regulators, REGISTRY_PRODUCER_USCC, "Orchard Co-op", Role.PRODUCER, keys=2)
