"""The consortium over HTTP: signed governance writes go to the outbox (202), reads come from the index only.

Writes carry a member's API key (the demo's, from ``api-keys.json``): a regulator's for governance, any
member's for a key revocation and for following a write.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from web3 import Web3

from api.app import create_app
from credtrace.demo import DEMO_PASSWORD, demo_api_keys, demo_directory, demo_members
from credtrace.keys import load_key
from credtrace.settings import Settings
from credtrace.system import ensure_deployment, operator_account
from node_bridge.consortium import Action, Role, encode_payload, member_id, proposal_message, sign, typed_data
from node_bridge.deploy import Deployment
from node_bridge.indexer import Indexer
from node_bridge.relayer import Relayer
from node_bridge.store import open_store
from tests.conftest import relay_all


@dataclass
class World:
    client: TestClient
    settings: Settings
    w3: Web3
    deployment: Deployment
    relayer: Relayer
    indexer: Indexer
    api_keys: dict[str, str]

    def settle(self) -> None:
        """Relay what the outbox holds, then index what the chain says."""
        relay_all(self.relayer)
        self.indexer.step()

    def typed(self, primary: str, message: dict[str, object]) -> dict[str, object]:
        return typed_data(primary, message, self.deployment.chain_id, self.deployment.contracts["Consortium"].address)

    def key(self, name: str) -> LocalAccount:
        return load_key(self.settings.keys_dir, name, DEMO_PASSWORD)

    def auth(self, name: str) -> dict[str, str]:
        """The ``Authorization`` header of a demo member's API key (``name`` as its keystore: qilu-mall)."""
        full_name = demo_directory(self.settings)[name][1]
        return {"Authorization": f"Bearer {self.api_keys[full_name]}"}


@pytest.fixture
def world(anvil_settings: Settings, anvil_w3: Web3) -> Iterator[World]:
    deployment, _ = ensure_deployment(anvil_settings, anvil_w3)
    engine = open_store(anvil_settings.database)
    relayer = Relayer(engine, anvil_w3, deployment, operator_account(anvil_settings), anvil_settings)
    indexer = Indexer(engine, anvil_w3, deployment, anvil_settings)
    world = World(None, anvil_settings, anvil_w3, deployment, relayer, indexer, demo_api_keys(anvil_settings))  # type: ignore[arg-type]
    world.settle()  # the demo's own writes (its trace code batches) leave the outbox before the tests count it
    with TestClient(create_app(anvil_settings)) as client:
        world.client = client
        yield world
    engine.dispose()


def _proposal_body(world: World, signer: LocalAccount, action: Action, member: bytes, payload: bytes) -> dict[str, str]:
    nonce = secrets.randbits(64)
    signature = sign(signer, world.typed("Proposal", proposal_message(action, member, payload, nonce)))
    return {
        "action": action.name,
        "member": "0x" + member.hex(),
        "payload": "0x" + payload.hex(),
        "nonce": str(nonce),
        "signature": "0x" + signature.hex(),
    }


def test_members_come_from_the_index(world: World) -> None:
    response = world.client.get("/v1/members", params={"limit": 50})
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 9
    platforms = world.client.get("/v1/members", params={"role": "platform"}).json()
    assert {m["name"] for m in platforms["items"]} == {m.name for m in demo_members() if "PLATFORM" in m.roles}
    qilu = demo_members()[0]
    one = world.client.get(f"/v1/members/0x{member_id(qilu.uscc).hex()}").json()
    assert one["roles"] == ["PLATFORM"] and one["status"] == "active"
    assert [k["address"] for k in one["keys"]] == [world.key(qilu.key).address]


def test_a_signed_admission_travels_outbox_chain_index(world: World) -> None:
    newcomer_key = Account.create()
    uscc = "91370100MA3C8L4H91"
    name = "Laiwu Fresh Market Co."
    payload = encode_payload(Action.ADMIT, name=name, roles=Role.PLATFORM, keys=[newcomer_key.address])
    body = _proposal_body(world, world.key("market-regulation"), Action.ADMIT, member_id(uscc), payload)
    anonymous = world.client.post("/v1/proposals", json=body)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    by_platform = world.client.post("/v1/proposals", json=body, headers=world.auth("qilu-mall"))
    assert by_platform.status_code == 403 and "REGULATOR" in by_platform.json()["detail"]["message"]
    accepted = world.client.post("/v1/proposals", json=body, headers=world.auth("market-regulation"))
    assert accepted.status_code == 202, accepted.text
    proposal_id = accepted.json()["id"]
    again = world.client.post("/v1/proposals", json=body, headers=world.auth("credit-office"))
    assert again.status_code == 202 and again.json()["id"] == proposal_id
    assert world.client.get("/healthz").json()["outbox"]["depth"] == 1

    world.settle()
    assert world.client.get(accepted.json()["status_url"]).status_code == 401
    status = world.client.get(accepted.json()["status_url"], headers=world.auth("jiaodong-express")).json()
    assert status["status"] == "confirmed" and status["block_number"] > 0
    proposal = world.client.get(f"/v1/proposals/{proposal_id}").json()
    assert proposal["action"] == "ADMIT" and proposal["approvals"] == 1 and not proposal["executed"]
    assert proposal["fields"]["keys"] == [newcomer_key.address]
    early = world.client.post(f"/v1/proposals/{proposal_id}/execution", headers=world.auth("market-regulation"))
    assert early.status_code == 422 and "1 of the 2 approvals" in early.text

    approval = sign(world.key("credit-office"), world.typed("Approval", {"proposalId": bytes.fromhex(proposal_id[2:])}))
    approved = world.client.post(
        f"/v1/proposals/{proposal_id}/approvals",
        json={"signature": "0x" + approval.hex()},
        headers=world.auth("credit-office"),
    )
    assert approved.status_code == 202, approved.text
    world.settle()
    proposal = world.client.get(f"/v1/proposals/{proposal_id}").json()
    assert proposal["approvals"] == 2
    assert len(proposal["approvers"]) == 2

    executed = world.client.post(f"/v1/proposals/{proposal_id}/execution", headers=world.auth("commerce-department"))
    assert executed.status_code == 202, executed.text
    world.settle()
    assert world.client.get(f"/v1/proposals/{proposal_id}").json()["executed"] is True
    newcomer = world.client.get(f"/v1/members/0x{member_id(uscc).hex()}").json()
    assert newcomer["name"] == name and newcomer["roles"] == ["PLATFORM"] and newcomer["status"] == "active"
    assert [k["address"] for k in newcomer["keys"]] == [newcomer_key.address]
    again = world.client.post(f"/v1/proposals/{proposal_id}/execution", headers=world.auth("market-regulation"))
    assert again.status_code == 202 and again.json()["id"] == executed.json()["id"]


def test_bad_writes_get_a_4xx_naming_the_field(world: World) -> None:
    regulator = world.key("market-regulation")
    good = _proposal_body(world, regulator, Action.SUSPEND, member_id(demo_members()[0].uscc), b"")
    cases = [
        ({**good, "action": "DISSOLVE"}, 422, "action"),
        ({**good, "payload": "0x1234"}, 422, "payload"),
        ({**good, "member": "0x" + "00" * 32}, 422, "member"),
        ({**good, "signature": "0x" + "11" * 65}, 422, "signature"),
        ({**good, "member": "0x12"}, 422, "member"),
    ]
    for body, code, field in cases:
        response = world.client.post("/v1/proposals", json=body, headers=world.auth("market-regulation"))
        assert response.status_code == code, (field, response.text)
        assert field in response.text
    platform = world.key(demo_members()[0].key)
    by_platform = _proposal_body(world, platform, Action.SUSPEND, member_id(demo_members()[1].uscc), b"")
    refused = world.client.post("/v1/proposals", json=by_platform, headers=world.auth("market-regulation"))
    assert refused.status_code == 403
    assert platform.address in refused.json()["detail"]["message"]
    assert world.client.get("/healthz").json()["outbox"]["depth"] == 0


def test_health_and_metrics_show_lag_and_outbox(world: World) -> None:
    health = world.client.get("/healthz").json()
    assert health["indexer"]["checkpoint_block"] == world.w3.eth.block_number
    assert health["indexer"]["lag_blocks"] == 0
    world.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert world.client.get("/healthz").json()["indexer"]["lag_blocks"] == 1
    metrics = world.client.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert "credtrace_outbox_depth 0.0" in text
    assert "credtrace_indexer_lag_blocks 1.0" in text
    assert "credtrace_chain_reachable 1.0" in text
    events = next(line for line in text.splitlines() if line.startswith("credtrace_indexer_events_total"))
    assert float(events.split()[-1]) > 0


def test_a_member_revokes_its_own_key_at_once(world: World) -> None:
    qilu = demo_members()[0]
    key = world.key(qilu.key)
    member = member_id(qilu.uscc)
    signature = sign(key, world.typed("KeyRevocation", {"member": member, "key": key.address}))
    body = {"member": "0x" + member.hex(), "key": key.address, "signature": "0x" + signature.hex()}
    stranger = world.key(demo_members()[1].key)
    forged = sign(stranger, world.typed("KeyRevocation", {"member": member, "key": key.address}))
    refused = world.client.post(
        "/v1/key-revocations", json={**body, "signature": "0x" + forged.hex()}, headers=world.auth(qilu.key)
    )
    assert refused.status_code == 403
    assert world.client.post("/v1/key-revocations", json=body).status_code == 401
    accepted = world.client.post("/v1/key-revocations", json=body, headers=world.auth(qilu.key))
    assert accepted.status_code == 202, accepted.text
    world.settle()
    keys = world.client.get(f"/v1/members/0x{member.hex()}").json()["keys"]
    assert keys == [
        {
            "address": key.address,
            "active": False,
            "added_block": keys[0]["added_block"],
            "revoked_block": keys[0]["revoked_block"],
            "revoked_by_self": True,
        }
    ]
    assert keys[0]["revoked_block"] > keys[0]["added_block"]
    again = world.client.post("/v1/key-revocations", json=body, headers=world.auth(qilu.key))
    assert again.status_code == 202 and again.json()["id"] == accepted.json()["id"]


def test_the_demo_consortium_comes_with_api_keys(world: World) -> None:
    path = world.settings.data_path / "api-keys.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == world.api_keys and len(world.api_keys) == 9
    ensure_deployment(world.settings, world.w3)  # a restart keeps the keys the store still knows
    assert json.loads(path.read_text()) == world.api_keys
    for name in world.api_keys:
        headers = {"Authorization": f"Bearer {world.api_keys[name]}"}
        assert world.client.get(f"/v1/writes/0x{'00' * 32}", headers=headers).status_code == 404, name
