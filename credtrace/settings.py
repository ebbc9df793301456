"""All configuration in one place, read from ``CREDTRACE_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
    poll_interval: float = Field(0.1, gt=0, description="Seconds between relayer/indexer/anchorer polls when idle.")
    gas_price: int | None = Field(0, description="Gas price for our transactions; unset asks the node.")
    operator_password: str = Field("operator", description="Password of the operator keystore that pays for writes.")
    # access
    api_key_cache_seconds: float = Field(
        5.0, ge=0, description="How long a verified API key is trusted without SQL; revocation takes this long."
    )
    public_rate_limit: str = Field(
        "300/minute", description="Per client IP on public (unauthenticated) reads, e.g. '300/minute', '10/second'."
    )
    rate_limit_storage: str = Field(
        "memory://", description="limits storage URI: memory:// (per process) or e.g. redis://127.0.0.1:6379."
    )
    person_pepper: SecretStr | None = Field(
        None, description="Pepper of natural persons' lookup keys; default: <data dir>/person-pepper (0600)."
    )
    account_pepper: SecretStr | None = Field(
        None, description="Consortium secret (hex) keying settlement account hashes; default <data dir>/account-pepper."
    )
    strict_org_code: bool = Field(
        False, description="Reject (not just warn about) a credit code whose GB 11714 check digit is wrong."
    )
    # status
    measures_config: Path = Field(
        PROJECT_ROOT / "config" / "measures.yaml", description="The measure catalogue (C4), published at /v1/measures."
    )
    status_refresh_seconds: float = Field(
        0.2, gt=0, description="How often each API process folds newly indexed records into its status cache."
    )
    status_batch_max: int = Field(10_000, ge=1, description="Most subjects one POST /v1/subjects/status:batch takes.")
    compliance_window_days: float = Field(30, gt=0, description="Default look-back of GET /v1/compliance.")
    # feed and webhooks
    feed_poll_interval: float = Field(
        0.2, gt=0, description="Seconds between looks at the index checkpoint by the SSE stream and the dispatcher."
    )
    feed_heartbeat_seconds: float = Field(15, gt=0, description="Seconds between SSE heartbeats (': ping' comments).")
    webhook_batch_size: int = Field(100, ge=1, le=1000, description="Feed items per webhook POST, at most.")
    webhook_timeout: float = Field(10, gt=0, description="Seconds a webhook receiver has to answer one POST.")
    webhook_backoff_base: float = Field(1.0, gt=0, description="Seconds before the first retry; doubled each time.")
    webhook_backoff_cap: float = Field(600, gt=0, description="Longest pause between two attempts, in seconds.")
    webhook_max_failures: int = Field(20, ge=1, description="Failed attempts in a row that disable a webhook.")
    webhook_retention_days: float = Field(7, gt=0, description="Days a delivered webhook delivery is kept.")
    webhook_max_per_member: int = Field(20, ge=1, description="Webhook subscriptions one member may hold.")
    # scan
    scan_max_count: int = Field(20, ge=1, description="Scans of one code beyond which the consumer scan is suspicious.")
    scan_max_speed_kmh: float = Field(
        900, gt=0, description="Fastest plausible travel between two scans of one code (a plane); faster: copied."
    )
    scan_travel_min_km: float = Field(
        50, ge=0, description="Scan places closer than this are never 'impossible travel' (coarse geo is ~10 km)."
    )
    scan_sold_grace_seconds: int = Field(
        30 * 86400, ge=0, description="How long after its sale or delivery a code still scans genuine (the buyer)."
    )
    scan_cache_seconds: float = Field(5.0, ge=0, description="How long scan answers reuse member and product names.")
    scan_story_seconds: float = Field(
        0.2, ge=0, description="How often a scan process looks for new trace events to forget cached code stories."
    )
    scan_flush_seconds: float = Field(0.2, gt=0, description="Scans are written in one transaction this often.")
    scan_member_codes: list[str] = Field(
        default_factory=list, description="USCCs of members not in the config files, to check their blacklist status."
    )
    # traceability
    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="Public address of the API; QR codes encode {public_base_url}/t{path}."
    )
    anchor_interval: float = Field(2.0, gt=0, description="Seconds between anchor batches of trace events, at most.")
    anchor_max_batch: int = Field(50_000, ge=1, description="Trace events that close a batch at once when waiting.")
    anchor_min_batch: int = Field(
        1_000, ge=1, description="Trace events that close a batch before the interval once no more arrive."
    )
    anchor_key: str = Field("market-regulation", description="Keystore name of the REGULATOR key that signs anchors.")
    anchor_password: SecretStr = Field(SecretStr("demo"), description="Password of the anchor keystore.")
    trace_clock_skew: int = Field(300, ge=0, description="Seconds a signed trace event's time may be in the future.")
    trace_verify_workers: int | None = Field(
        None,
        ge=0,
        description="Processes that check big batches of trace events' signatures (default: one per "
        "core; 0: the request's thread).",
    )
    trace_verify_niceness: int = Field(
        10,
        ge=0,
        le=19,
        description="How far below the API's CPU priority those processes run: when the cores are all busy, writing "
        "accepted events and answering scans go first.",
    )

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
