"""What the API knows of the chain for health checks: the node, its head and the deployment."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel
from web3 import Web3

from credtrace.settings import Settings
from node_bridge.chain import is_reachable, rpc_web3
from node_bridge.deploy import load_deployment


class ChainHealth(BaseModel):
    reachable: bool
    url: str
    chain_id: int | None = None
    head_block: int | None = None
    contracts: dict[str, str] = {}


@dataclass
class ChainView:
    """A read-only connection to the configured chain node(s), tried in order."""

    settings: Settings

    def _connections(self) -> list[Web3]:
        urls = self.settings.rpc_urls if self.settings.chain == "rpc" else [self.settings.rpc_url]
        return [rpc_web3(url, timeout=3) for url in urls]

    def health(self) -> ChainHealth:
        connections = self._connections()
        for w3 in connections:
            if not is_reachable(w3):
                continue
            deployment = load_deployment(w3, self.settings.deployments_dir)
            contracts = {name: c.address for name, c in deployment.contracts.items()} if deployment else {}
            url = str(getattr(w3.provider, "endpoint_uri", ""))
            return ChainHealth(
                reachable=True,
                url=url,
                chain_id=w3.eth.chain_id,
                head_block=w3.eth.block_number,
                contracts=contracts,
            )
        return ChainHealth(
            reachable=False, url=", ".join(str(getattr(w.provider, "endpoint_uri", "")) for w in connections)
        )
