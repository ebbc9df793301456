"""A running system for API tests: real anvil with the demo consortium, the API, a relayer and an indexer.

``credit_world`` adds what credit-record tests need: demo signing keys, API keys, and record signing.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from web3 import Web3

from api.app import create_app
from credtrace.demo import DEMO_PASSWORD, demo_api_keys, demo_members
from credtrace.keys import load_key
from credtrace.settings import Settings
from credtrace.system import ensure_deployment, operator_account
from credtrace.uscc import with_check_characters
from node_bridge import credit
from node_bridge.consortium import member_id
from node_bridge.deploy import ConsortiumConfig, Deployment
from node_bridge.indexer import Indexer
from node_bridge.relayer import Relayer
from node_bridge.store import open_store
from tests.conftest import relay_all

_SUBJECTS = itertools.count(1)


def fresh_subject() -> str:
    """A valid unified social credit code no other test uses."""
    return with_check_characters(f"9137{next(_SUBJECTS) + int(time.time()) % 10**6:012d}")


@dataclass
class CreditWorld:
    client: TestClient
    settings: Settings
    w3: Web3
    deployment: Deployment
    relayer: Relayer
    indexer: Indexer
    api_keys: dict[str, str]
    orgs: dict[str, bytes] = field(default_factory=dict)  # key name -> member id
    _nonce: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def domain(self) -> credit.CreditDomain:
        return credit.CreditDomain(self.deployment.chain_id, self.deployment.contracts["CreditRegistry"].address)

    def settle(self) -> None:
        """Relay what the outbox holds, then index what the chain says."""
        relay_all(self.relayer)
        self.indexer.step()

    def key(self, name: str) -> LocalAccount:
        return load_key(self.settings.keys_dir, name, DEMO_PASSWORD)

    def headers(self, name: str) -> dict[str, str]:
        """API-key headers of the demo member whose signing key is ``name``."""
        return {"Authorization": f"Bearer {self.api_keys[self.member_names[name]]}"}

    @property
    def member_names(self) -> dict[str, str]:
        regulators = ConsortiumConfig.read(self.settings.consortium_config).regulators
        return {r.key: r.name for r in regulators} | {m.key: m.name for m in demo_members()}

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def record(self, signer: str, kind: credit.Kind, subject: str, **fields: Any) -> dict[str, Any]:
        """A record message of ``kind`` issued by ``signer``'s organisation, active from now for a day."""
        now = self.now()
        message = credit.example_record(kind, self.orgs[signer], next(self._nonce))
        message.update(subject=credit.subject_id(subject), effectiveAt=now - 60, publicUntil=now + 3600)
        message.update(validUntil=now + 86400)
        message.update(fields)
        return message

    def signed(self, signer: str, primary: str, message: dict[str, Any]) -> dict[str, Any]:
        """The JSON body of one signed message."""
        signature = self.domain.sign(self.key(signer), primary, message)
        return {"type": primary, "message": credit.to_json(message), "signature": "0x" + signature.hex()}

    def closure(self, signer: str, record_id: str, reason: str = "annulled on review") -> dict[str, Any]:
        return {"recordId": bytes.fromhex(record_id[2:]), "issuer": self.orgs[signer], "reason": reason,
                "nonce": next(self._nonce)}  # fmt: skip

    def submit(self, signer: str, body: dict[str, Any], path: str = "/v1/records") -> Any:
        return self.client.post(path, json=body, headers=self.headers(signer))


@pytest.fixture
def credit_world(anvil_settings: Settings, anvil_w3: Web3) -> Iterator[CreditWorld]:
    deployment, _ = ensure_deployment(anvil_settings, anvil_w3)
    engine = open_store(anvil_settings.database)
    relayer = Relayer(engine, anvil_w3, deployment, operator_account(anvil_settings), anvil_settings)
    indexer = Indexer(engine, anvil_w3, deployment, anvil_settings)
    indexer.step()
    keys = demo_api_keys(anvil_settings)
    regulators = ConsortiumConfig.read(anvil_settings.consortium_config).regulators
    orgs = {r.key: member_id(r.uscc) for r in regulators} | {m.key: member_id(m.uscc) for m in demo_members()}
    with TestClient(create_app(anvil_settings)) as client:
        yield CreditWorld(client, anvil_settings, anvil_w3, deployment, relayer, indexer, keys, orgs)
    engine.dispose()
