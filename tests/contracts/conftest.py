"""Contract fixtures, each built on the last: in-process EVM → sender → regulators → consortium (2 of 3)."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from node_bridge.consortium import ConsortiumClient, deploy_consortium, member_id
from node_bridge.in_process import in_process_web3
from node_bridge.transactions import Sender, fund

REGULATOR_USCCS = ("11100000000018271R", "11100000000013127G", "11100000717802103X")
THRESHOLD = 2


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
