"""Chain providers, one way to get a web3 connection per tier.

- embedded: :func:`node_bridge.in_process.in_process_web3`, py-evm in process, for unit and contract tests;
- local: :class:`AnvilNode`, an anvil process on 127.0.0.1 with gas price 0 and its state persisted in the
  data directory, for ``make run``, integration tests and benchmarks;
- consortium: :func:`rpc_web3`, any EVM JSON-RPC endpoint (Hyperledger Besu with QBFT in production).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from web3 import HTTPProvider, Web3

from credtrace.errors import ChainUnavailable, ToolchainError
from credtrace.settings import PROJECT_ROOT, Settings

ANVIL_PLATFORM_DIRS = {"x86_64": "linux-amd64", "aarch64": "linux-arm64", "arm64": "linux-arm64"}


def rpc_web3(url: str, timeout: float = 10.0) -> Web3:
    """A connection to any EVM JSON-RPC endpoint."""
    return Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))


def chain_urls(settings: Settings) -> list[str]:
    """The JSON-RPC endpoints of the configured tier, in failover order."""
    return settings.rpc_urls if settings.chain == "rpc" else [settings.rpc_url]


def connect(settings: Settings) -> Web3:
    """The web3 connection for the configured tier (anvil or rpc), checked to answer."""
    urls = chain_urls(settings)
    for url in urls:
        w3 = rpc_web3(url)
        if is_reachable(w3):
            return w3
    raise ChainUnavailable(f"no chain node answers at {', '.join(urls)}")


def is_reachable(w3: Web3) -> bool:
    try:
        w3.eth.chain_id  # noqa: B018 - the call is the check
    except (requests.RequestException, OSError, ValueError):
        return False
    return True


def anvil_binary() -> Path:
    """The anvil executable shipped by the npm package ``@foundry-rs/anvil`` (or ``CREDTRACE_ANVIL``)."""
    if override := os.environ.get("CREDTRACE_ANVIL"):
        return Path(override)
    platform_dir = ANVIL_PLATFORM_DIRS.get(os.uname().machine, "linux-amd64")
    candidates = [
        PROJECT_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{platform_dir}" / "bin" / "anvil",
        PROJECT_ROOT / "node_modules" / ".bin" / "anvil",
    ]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise ToolchainError("anvil not found: run `npm ci` (or `make deps`) to install @foundry-rs/anvil")


@dataclass
class AnvilNode:
    """A local anvil process whose state lives in ``state_dir`` and survives restarts.

    ``start`` is idempotent: if this directory's node is already running it is reused, never started twice.
    """

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8545
    chain_id: int = 31337
    block_gas_limit: int = 300_000_000
    block_time: float | None = None
    state_interval: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> AnvilNode:
        return cls(
            settings.chain_dir,
            settings.anvil_host,
            settings.anvil_port,
            settings.anvil_chain_id,
            settings.anvil_block_gas_limit,
            state_interval=settings.anvil_state_interval,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "anvil.pid"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "anvil-state.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "anvil.log"

    def pid(self) -> int | None:
        """The pid of this directory's running node, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid if _is_anvil(pid) else None

    def is_running(self) -> bool:
        return self.pid() is not None and is_reachable(rpc_web3(self.url, timeout=2))

    def command(self) -> list[str]:
        cmd = [
            str(anvil_binary()),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--gas-price",
            "0",
            "--base-fee",
            "0",
            "--gas-limit",
            str(self.block_gas_limit),
            "--state",
            str(self.state_file),
            "--state-interval",
            str(self.state_interval),
            "--accounts",
            "1",
            "--quiet",
        ]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        return cmd

    def start(self, timeout: float = 30.0) -> Web3:
        """Start the node (or reuse the running one) and return a connection to it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        process: subprocess.Popen[bytes] | None = None
        with self._lock():
            if self.pid() is None:
                if is_reachable(rpc_web3(self.url, timeout=1)):
                    raise ChainUnavailable(f"{self.url} is taken by a node this data directory did not start")
                with self.log_file.open("ab") as log:
                    process = subprocess.Popen(
                        self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                self.pid_file.write_text(str(process.pid))
        w3 = rpc_web3(self.url)
        deadline = time.monotonic() + timeout
        while not is_reachable(w3):
            if process is not None and process.poll() is not None:
                raise ChainUnavailable(f"anvil exited at start; see {self.log_file}")
            if time.monotonic() > deadline:
                raise ChainUnavailable(f"anvil did not answer at {self.url} within {timeout:.0f}s")
            time.sleep(0.05)
        return w3

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the node cleanly (SIGTERM, so it writes its state); True if one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """kill -9 the node, as a crash would (for tests)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.02)

    @contextlib.contextmanager
    def _lock(self):  # type: ignore[no-untyped-def]
        with (self.state_dir / "anvil.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _is_anvil(pid: int) -> bool:
    try:
        return b"anvil" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
