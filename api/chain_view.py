"""What the API knows of the chain: the node, its head, the deployment, and the index's lag behind it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, select
from web3 import Web3

from api.governance import ContractRef
from credtrace.errors import ChainUnavailable
from credtrace.settings import Settings
from node_bridge.chain import chain_urls, is_reachable, rpc_web3
from node_bridge.compiler import artifact
from node_bridge.credit import CONTRACT as CREDIT_CONTRACT
from node_bridge.credit import CreditDomain
from node_bridge.deploy import Deployment, load_deployment
from node_bridge.models import IndexerCheckpoint


class ChainHealth(BaseModel):
    reachable: bool
    url: str
    chain_id: int | None = None
    head_block: int | None = None
    head_timestamp: int | None = None
    contracts: dict[str, str] = {}


class IndexerHealth(BaseModel):
    checkpoint_block: int | None
    lag_blocks: int | None
    lag_seconds: int | None


@dataclass
class ChainView:
    """A read-only connection to the configured chain node(s), tried in order."""

    settings: Settings
    _ref: ContractRef | None = field(default=None, init=False)
    _deployment: Deployment | None = field(default=None, init=False)
    _credit: CreditDomain | None = field(default=None, init=False)

    def _connections(self) -> list[Web3]:
        return [rpc_web3(url, timeout=3) for url in chain_urls(self.settings)]

    def _reachable(self) -> Web3 | None:
        return next((w3 for w3 in self._connections() if is_reachable(w3)), None)

    def health(self) -> ChainHealth:
        w3 = self._reachable()
        if w3 is None:
            urls = ", ".join(str(getattr(w.provider, "endpoint_uri", "")) for w in self._connections())
            return ChainHealth(reachable=False, url=urls)
        deployment = load_deployment(w3, self.settings.deployments_dir)
        head = w3.eth.get_block("latest")
        return ChainHealth(
            reachable=True,
            url=str(getattr(w3.provider, "endpoint_uri", "")),
            chain_id=w3.eth.chain_id,
            head_block=head["number"],
            head_timestamp=head["timestamp"],
            contracts={name: c.address for name, c in deployment.contracts.items()} if deployment else {},
        )

    def deployment(self) -> Deployment:
        """The deployment on the configured chain (cached once found); :class:`ChainUnavailable` if none."""
        if self._deployment is None:
            w3 = self._reachable()
            if w3 is None:
                raise ChainUnavailable("the chain node does not answer, so the contracts cannot be located")
            deployment = load_deployment(w3, self.settings.deployments_dir)
            if deployment is None:
                raise ChainUnavailable(f"no deployment for chain {w3.eth.chain_id}: run `credtrace deploy`")
            self._deployment = deployment
        return self._deployment

    def consortium(self) -> ContractRef:
        """The deployed Consortium."""
        if self._ref is None:
            deployment = self.deployment()
            address = deployment.contracts["Consortium"].address
            self._ref = ContractRef(deployment.chain_id, address, artifact("Consortium").abi)
        return self._ref

    def credit(self) -> CreditDomain:
        """The EIP-712 domain of the deployed CreditRegistry: what record signatures name."""
        if self._credit is None:
            deployment = self.deployment()
            self._credit = CreditDomain(deployment.chain_id, deployment.contracts[CREDIT_CONTRACT].address)
        return self._credit


def indexer_health(engine: Engine, chain: ChainHealth) -> IndexerHealth:
    """How far the index trails the chain head, in blocks and in block-time seconds."""
    with Session(engine) as session:
        checkpoint = session.exec(select(IndexerCheckpoint).where(IndexerCheckpoint.chain_id == chain.chain_id)).first()
    if checkpoint is None or chain.head_block is None or chain.head_timestamp is None:
        return IndexerHealth(
            checkpoint_block=checkpoint.block_number if checkpoint else None, lag_blocks=None, lag_seconds=None
        )
    return IndexerHealth(
        checkpoint_block=checkpoint.block_number,
        lag_blocks=max(0, chain.head_block - checkpoint.block_number),
        lag_seconds=max(0, chain.head_timestamp - checkpoint.block_timestamp),
    )
