"""Bring the system up step by step: chain, operator key, compiled contracts, deployment, demo data.

The CLI (``credtrace up``, ``deploy``, ``status``) and ``scripts/deploy.py`` call these; each is idempotent.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3 import Web3

from credtrace import demo
from credtrace.keys import load_or_create
from credtrace.settings import Settings
from node_bridge.chain import AnvilNode, connect
from node_bridge.compiler import load_artifacts
from node_bridge.deploy import ConsortiumConfig, Deployment, deploy, load_deployment
from node_bridge.transactions import Sender

OPERATOR_KEY = "operator"


def operator_account(settings: Settings) -> LocalAccount:
    """The operator's key, which sends (and on a paid chain, pays for) transactions; created on first use."""
    return load_or_create(settings.keys_dir, OPERATOR_KEY, settings.operator_password)


def operator_sender(settings: Settings, w3: Web3) -> Sender:
    """A :class:`Sender` for the operator's key at the configured gas price."""
    return Sender(w3, operator_account(settings), settings.gas_price)


def start_chain(settings: Settings) -> tuple[Web3, bool]:
    """Connect to the configured chain, starting the local anvil node first if that is the tier.

    Returns the connection and whether this call started the node.
    """
    if settings.chain == "anvil":
        node = AnvilNode.from_settings(settings)
        already = node.pid() is not None
        return node.start(), not already
    return connect(settings), False


def ensure_deployment(settings: Settings, w3: Web3) -> tuple[Deployment, bool]:
    """Compile if stale, deploy if this chain has no valid deployment, seed the demo on a fresh one.

    Returns the deployment and whether it was created now.
    """
    load_artifacts()
    existing = load_deployment(w3, settings.deployments_dir)
    if existing is not None:
        if demo.is_pending(settings):
            demo.seed(settings, w3, existing, operator_sender(settings, w3))
        demo.refresh_api_keys(settings)
        return existing, False
    config = ConsortiumConfig.read(settings.consortium_config)
    if settings.demo:
        demo.prepare(settings, config)
    sender = operator_sender(settings, w3)
    deployment, created = deploy(w3, sender, config, settings.keys_dir, settings.deployments_dir)
    if settings.demo and demo.is_pending(settings):
        demo.seed(settings, w3, deployment, sender)
    return deployment, created
