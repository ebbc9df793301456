"""``GET /healthz`` reports the chain as it is: id, head, contracts, reachability."""

from __future__ import annotations

from fastapi.testclient import TestClient
from web3 import Web3

from api.app import create_app
from credtrace.settings import Settings
from credtrace.system import ensure_deployment
from node_bridge.chain import AnvilNode
from node_bridge.deploy import CONTRACTS


def test_healthz_reports_chain_head_and_contracts(anvil_settings: Settings, anvil_w3: Web3) -> None:
    deployment, _ = ensure_deployment(anvil_settings, anvil_w3)
    with TestClient(create_app(anvil_settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["chain"]["reachable"] is True
    assert body["chain"]["chain_id"] == 31337
    assert body["chain"]["head_block"] == anvil_w3.eth.block_number
    assert body["chain"]["contracts"] == {name: c.address for name, c in deployment.contracts.items()}
    assert set(body["chain"]["contracts"]) == set(CONTRACTS)


def test_healthz_answers_503_when_the_node_is_down(anvil_settings: Settings, anvil_node: AnvilNode) -> None:
    anvil_node.stop()
    with TestClient(create_app(anvil_settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["chain"]["reachable"] is False


def test_openapi_is_served(anvil_settings: Settings) -> None:
    with TestClient(create_app(anvil_settings)) as client:
        assert client.get("/docs").status_code == 200
        assert "/healthz" in client.get("/openapi.json").json()["paths"]
