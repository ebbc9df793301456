"""Deploy the contracts once per chain; remember where they are in ``<data dir>/deployments/<chain_id>.json``.

Deploying again on the same chain reuses the recorded deployment as long as the code is still there and
the ABI is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from credtrace import uscc
from credtrace.errors import ValidationFailed
from credtrace.keys import key_info
from node_bridge.compiler import artifact
from node_bridge.transactions import Sender

REGISTRIES = (
    "CreditRegistry",
    "TraceRegistry",
    "LogisticsRegistry",
    "ProtectionRegistry",
    "PaymentRegistry",
    "SupervisionRegistry",
)
"""The contracts deployed after the Consortium, each constructed with the Consortium's address."""
CONTRACTS = ("Consortium", *REGISTRIES)
"""What a deployment holds; a recorded deployment missing one is deployed again."""


class RegulatorConfig(BaseModel):
    """A founding regulator: its credit code, name and key (a keystore name or an address)."""

    uscc: str
    name: str = Field(min_length=1)
    key: str


class ConsortiumConfig(BaseModel):
    """The bootstrap consortium: founding regulators and the approval threshold."""

    threshold: int = Field(ge=1)
    proposal_lifetime_days: float = Field(7, gt=0)
    regulators: list[RegulatorConfig] = Field(min_length=1)

    @classmethod
    def read(cls, path: Path) -> ConsortiumConfig:
        config = cls.model_validate(yaml.safe_load(path.read_text()))
        for index, regulator in enumerate(config.regulators):
            uscc.validate(regulator.uscc, field=f"regulators[{index}].uscc")
        if config.threshold > len(config.regulators):
            raise ValidationFailed("threshold", f"{config.threshold} exceeds the {len(config.regulators)} regulators")
        return config

    def regulator_addresses(self, keys_dir: Path) -> list[str]:
        return [
            Web3.to_checksum_address(r.key) if r.key.startswith("0x") else key_info(keys_dir, r.key).address
            for r in self.regulators
        ]


class DeployedContract(BaseModel):
    address: str
    abi_hash: str
    block_number: int
    tx_hash: str


class Deployment(BaseModel):
    """Where the contracts of one chain live."""

    chain_id: int
    deployer: str
    contracts: dict[str, DeployedContract]

    @staticmethod
    def path(deployments_dir: Path, chain_id: int) -> Path:
        return deployments_dir / f"{chain_id}.json"

    def save(self, deployments_dir: Path) -> Path:
        deployments_dir.mkdir(parents=True, exist_ok=True)
        path = self.path(deployments_dir, self.chain_id)
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path

    def contract(self, w3: Web3, name: str) -> Contract:
        """A web3 contract object for one deployed contract, with the current ABI."""
        return w3.eth.contract(address=Web3.to_checksum_address(self.contracts[name].address), abi=artifact(name).abi)

    @property
    def start_block(self) -> int:
        return min(c.block_number for c in self.contracts.values())


def load_deployment(w3: Web3, deployments_dir: Path) -> Deployment | None:
    """The recorded deployment for this chain, if its code is on chain and its ABI matches the build."""
    path = Deployment.path(deployments_dir, w3.eth.chain_id)
    if not path.exists():
        return None
    deployment = Deployment.model_validate_json(path.read_text())
    if set(deployment.contracts) != set(CONTRACTS):
        return None
    for name, deployed in deployment.contracts.items():
        if deployed.abi_hash != artifact(name).abi_hash:
            return None
        if not w3.eth.get_code(Web3.to_checksum_address(deployed.address)):
            return None
    return deployment


def deploy(
    w3: Web3, sender: Sender, config: ConsortiumConfig, keys_dir: Path, deployments_dir: Path
) -> tuple[Deployment, bool]:
    """Deploy unless a valid deployment exists; returns it and whether it was created now."""
    existing = load_deployment(w3, deployments_dir)
    if existing is not None:
        return existing, False
    from node_bridge.consortium import deploy_consortium

    regulators = [
        (r.uscc, r.name, address)
        for r, address in zip(config.regulators, config.regulator_addresses(keys_dir), strict=True)
    ]
    lifetime = int(config.proposal_lifetime_days * 86400)
    consortium, receipt = deploy_consortium(sender, regulators, config.threshold, lifetime)
    contracts = {"Consortium": _deployed("Consortium", consortium, receipt)}
    for name in REGISTRIES:
        contracts[name] = _deployed(name, *sender.deploy(artifact(name), consortium.address))
    deployment = Deployment(chain_id=w3.eth.chain_id, deployer=sender.account.address, contracts=contracts)
    deployment.save(deployments_dir)
    return deployment, True


def _deployed(name: str, contract: Contract, receipt: TxReceipt) -> DeployedContract:
    return DeployedContract(
        address=contract.address,
        abi_hash=artifact(name).abi_hash,
        block_number=receipt["blockNumber"],
        tx_hash=receipt["transactionHash"].to_0x_hex(),
    )
