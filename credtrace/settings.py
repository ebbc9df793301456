"""All configuration in one place, read from ``CREDTRACE_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """credtrace settings; every field can be set as ``CREDTRACE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="CREDTRACE_", extra="ignore")

    data_dir: Path = Field(Path(".credtrace"), description="Where keys, chain state, database and deployments live.")
    chain: Literal["anvil", "rpc"] = Field(
        "anvil", description="anvil: a local node the project starts; rpc: rpc_urls."
    )
    rpc_urls: list[str] = Field(
        default_factory=list, description="JSON-RPC endpoints for chain=rpc, in failover order."
    )
    anvil_host: str = "127.0.0.1"
    anvil_port: int = 8545
    anvil_chain_id: int = 31337
    anvil_block_gas_limit: int = 300_000_000
    anvil_state_interval: int = Field(
        2, ge=1, description="Seconds between anvil state dumps; a kill -9 loses at most this much (re-sent)."
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    demo: bool = Field(True, description="Create the demo consortium on first start with an empty data directory.")
    consortium_config: Path = Field(
        PROJECT_ROOT / "config" / "consortium.yaml",
        description="Bootstrap regulators and threshold for deploy.",
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the data directory.")
    confirmations: int = Field(0, ge=0, description="Blocks to wait before indexing (0 on anvil and QBFT).")
    reorg_window: int = Field(64, ge=1, description="Deepest reorg the indexer rolls back; deeper stops it.")
    relayer_batch_size: int = Field(200, ge=1, le=1000, description="Signed writes per transaction.")
    poll_interval: float = Field(0.2, gt=0, description="Seconds between relayer/indexer polls when idle.")
    gas_price: int | None = Field(0, description="Gas price for our transactions; unset asks the node.")
    operator_password: str = Field("operator", description="Password of the operator keystore that pays for writes.")

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def keys_dir(self) -> Path:
        return self.data_path / "keys"

    @property
    def chain_dir(self) -> Path:
        return self.data_path / "chain"

    @property
    def deployments_dir(self) -> Path:
        return self.data_path / "deployments"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'credtrace.db'}"

    @property
    def rpc_url(self) -> str:
        if self.chain == "rpc":
            if not self.rpc_urls:
                raise ValueError("CREDTRACE_RPC_URLS is empty while CREDTRACE_CHAIN=rpc")
            return self.rpc_urls[0]
        return f"http://{self.anvil_host}:{self.anvil_port}"


@cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return Settings()
